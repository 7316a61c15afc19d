"""End to end on real modern traffic: the lab's short run (real servers,
real attack tools, background users, tests/lab/) through the sensor with
the default rules and shipped models, twice: the live sensor on the
lab's mirror port as the run goes, and a replay of the capture.

Every attack phase must raise at least one alert of its KDD category,
and the normal phases none at medium severity or above.  The per-phase
table is printed (pytest -s).  The lab must leave nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

LAB = ROOT / "tests" / "lab"
sys.path.insert(0, str(LAB))

import report as lab_report  # noqa: E402
import run as lab_run  # noqa: E402
import topology  # noqa: E402


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (CI runs the suite as root)"
    if shutil.which("ip") is None or subprocess.run(["ip", "netns", "list"], capture_output=True).returncode:
        return "no 'ip netns' here"
    if lab_run.missing_tools():
        return f"lab tools missing {lab_run.missing_tools()}: run tests/lab/install.sh (scripts/bootstrap --dev does)"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))
PREFIX = f"stest{os.getpid()}"
# A live alert comes when the connections that show the attack end: a
# phase's first alert of its category is due within the phase, plus the
# timer that ends its records in the example configuration (TCP: the 5 s
# close and handshake delays; UDP: the 60 s idle timer; ICMP: 1 s), plus
# SLACK for the expiry tick, the hold, the rules and the file sink.
TIMER = {"tcp": 5.0, "udp": 60.0, "icmp": 1.0}
SLACK = 10.0


@pytest.fixture(scope="module")
def lab_run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab")
    lab_run.run(out, short=True, prefix=PREFIX, live=True)
    lab_report.replay(out)
    return out


@pytest.fixture(scope="module")
def rows(lab_run_dir):
    rows = lab_report.phase_rows(lab_run_dir)
    print("\n" + lab_report.markdown(rows))
    return rows


def test_the_lab_leaves_nothing_behind(lab_run_dir):
    assert topology.leftovers(PREFIX) == {"namespaces": [], "processes": [], "accounts": []}


def test_every_phase_is_in_the_capture(rows):
    assert [r.phase for r in rows if r.connections == 0] == []


def test_the_background_users_make_a_normal_corpus(rows):
    """The workday runs through every phase: hundreds of normal
    connections, enough to see a false-positive rate, not a few dozen."""
    workday = next(r for r in rows if r.phase == "workday")
    assert workday.category == "normal" and workday.connections >= 500


def test_replayed_capture_each_attack_phase_alerts_in_its_category_and_normal_use_stays_quiet(rows):
    assert [r.phase for r in rows if r.category != "normal" and not r.caught(r.replay)] == []
    assert [r.phase for r in rows if r.category == "normal" and r.loud(r.replay)] == []


def test_live_sensor_on_the_mirror_port_does_the_same_within_seconds(rows, lab_run_dir):
    """The live sensor, with the shipped example configuration, raises
    the same categories as it runs, without kernel drops, and each alert
    comes as soon as the connections showing the attack end, not at
    shutdown."""
    assert [r.phase for r in rows if r.category != "normal" and not r.caught(r.live)] == []
    assert [r.phase for r in rows if r.category == "normal" and r.loud(r.live)] == []
    stopped = [json.loads(line) for line in (lab_run_dir / "live-sensor.log").read_text().splitlines()
               if '"stopped"' in line]
    assert len(stopped) == 1 and set(stopped[0]["kernel_drops"].values()) == {0}
    late = {r.phase: round(r.latency, 1) for r in rows if r.first_live is not None
            and r.latency > r.seconds + TIMER[r.first_live["proto"]] + SLACK}
    assert late == {}
