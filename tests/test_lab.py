"""End to end on real modern traffic: the lab's short run (real servers,
real attack tools, tests/lab/) through the sensor with the default rules
and shipped models.

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
from collections import Counter
from datetime import datetime

import pytest

from conftest import ROOT
from sensor import labels as lab_labels

LAB = ROOT / "tests" / "lab"
sys.path.insert(0, str(LAB))

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


@pytest.fixture(scope="module")
def lab_run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab")
    lab_run.run(out, short=True, prefix=PREFIX)
    records = subprocess.run([sys.executable, "-m", "sensor", "replay", str(out / "capture.pcap"),
                              "-o", str(out / "records.jsonl"), "--alert-to", f"file:{out / 'alerts.jsonl'}", "-q"],
                             capture_output=True, text=True, cwd=ROOT)
    assert records.returncode == 0, records.stderr
    return out


def test_the_lab_leaves_nothing_behind(lab_run_dir):
    assert topology.leftovers(PREFIX) == {"namespaces": [], "processes": [], "accounts": []}


def test_every_phase_is_in_the_capture(lab_run_dir):
    labels = lab_labels.read_labels(lab_run_dir / "labels.jsonl")
    records = [json.loads(line) for line in (lab_run_dir / "records.jsonl").read_text().splitlines()]
    per_phase = Counter(phase for _, phase in lab_labels.label_records(records, labels))
    assert [e.phase for e in labels if per_phase[e.phase] == 0] == []


def test_each_attack_phase_alerts_in_its_category_and_normal_use_stays_quiet(lab_run_dir):
    labels = lab_labels.read_labels(lab_run_dir / "labels.jsonl")
    records = [json.loads(line) for line in (lab_run_dir / "records.jsonl").read_text().splitlines()]
    alerts = [json.loads(line) for line in (lab_run_dir / "alerts.jsonl").read_text().splitlines()]
    tags = lab_labels.label_records(records, labels)
    connections = Counter(phase for _, phase in tags)
    first_packet = {}
    for r, (_, phase) in zip(records, tags):
        first_packet[phase] = min(first_packet.get(phase, r["ts"]), r["ts"])
    table = lab_labels.alerts_by_phase(alerts, labels)

    print(f"\n{'phase':14} {'category':8} {'conns':>6} {'alerts':>6}  {'first alert after':>17}  rules")
    missed, noisy = [], []
    for entry in labels:
        raised = table[entry.phase]
        right = [a for a in raised if a["category"] == entry.category]
        latency = min((_seconds(a["ts"]) - first_packet[entry.phase] for a in right), default=None)
        print(f"{entry.phase:14} {entry.category:8} {connections[entry.phase]:6} {len(raised):6}  "
              f"{'-' if latency is None else f'{latency:.1f} s':>17}  "
              f"{', '.join(sorted({a['rule'] + ' (' + a['severity'] + ')' for a in raised}))}")
        if entry.category != "normal" and not right:
            missed.append(entry.phase)
        if entry.category == "normal" and any(a["severity"] != "low" for a in raised):
            noisy.append(entry.phase)
    assert missed == [] and noisy == []


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
