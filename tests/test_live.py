"""``sensor run`` on a live interface: a veth pair in a private network
namespace, shared captures replayed into one end with tcpreplay, the
sensor capturing the other.

Parity is checked twice.  Exactly: tcpdump captures the same interface
beside the sensor, and ``sensor replay`` of tcpdump's file must give the
sensor's live records field for field, timestamps and uids included.
Against the original capture: tcpreplay sends at a fixed rate, so times,
durations and the 2-second-window features change, and everything else
(addresses, ports, bytes, flags, history, content and host-window
features) and the alerts must equal a replay of the original file.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

import netlab
from conftest import ROOT, SHARED

pytestmark = pytest.mark.skipif(netlab.available() is not None, reason=str(netlab.available()))

CAPTURES = SHARED / "pcaps"
PARITY = ["zeek__ftp-bruteforce.pcap", "zeek__nmap-vsn.pcap", "zeek__wikipedia.pcap", "ppa__dns.cap",
          "evilfingers__nmap_FIN_SCAN.pcap"]
# what a fixed replay rate changes: the clock, and the features read off it
TIMED = {"ts", "duration", "count", "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate",
         "srv_rerror_rate", "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate"}



def replay_records(capture: Path, *args: str) -> list[dict]:
    out = subprocess.run([*netlab.SENSOR, "replay", str(capture), "-q", "--no-progress", *args],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def replay_alerts(capture: Path, tmp_path: Path) -> list[dict]:
    alerts = tmp_path / "replay-alerts.jsonl"
    replay_records(capture, "-o", "/dev/null", "--alert-to", f"file:{alerts}")
    return [json.loads(line) for line in alerts.read_text().splitlines()]


def untimed(records: list[dict]) -> list[dict]:
    def strip(r: dict) -> dict:
        return {k: strip(v) if isinstance(v, dict) else v for k, v in r.items() if k not in TIMED and k != "uid"}

    return [strip(r) for r in records]


def episodes(alerts: list[dict]) -> set[tuple]:
    """The episodes as an analyst reads them: which rule, about whom (its
    track key).  Counts follow the clock, and so does which record opens
    a per-rule episode: a model reads the 2-second-window features."""
    keys = {"by_src": ("src",), "by_dst": ("dst",), "by_pair": ("src", "dst"), "by_rule": ()}
    return {(a["rule"], a["category"], a["severity"], *(a[k] for k in keys[a["track"]])) for a in alerts}


def final(alerts: list[dict]) -> list[dict]:
    """Each episode's last emission, without the fields that name the sensor host."""
    last = {}
    for a in alerts:
        last[a["id"]] = {k: v for k, v in a.items() if k != "sensor"}
    return sorted(last.values(), key=lambda a: a["id"])


@pytest.mark.parametrize("capture", PARITY)
def test_live_records_and_alerts_equal_replay(capture, lab, tmp_path):
    tcpdump_file = tmp_path / "tcpdump.pcap"
    tcpdump = lab.start("tcpdump", "-i", lab.sniff, "-w", str(tcpdump_file), "-U", "-Z", "root", "-s", "0",
                        "--time-stamp-precision=nano", "--immediate-mode",
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sensor = netlab.Sensor(lab)
    time.sleep(0.5)  # tcpdump's socket is open by now
    lab.replay(CAPTURES / capture, pps=2000)
    time.sleep(0.5)
    tcpdump.send_signal(signal.SIGTERM)
    _, tcpdump_said = tcpdump.communicate(timeout=10)
    assert sensor.stop() == 0
    live = sensor.record_lines()
    assert live, sensor.log.read_text()

    # exactly what tcpdump saw, replayed: records and alerts, field for field
    assert live == replay_records(tcpdump_file, "--no-alerts"), tcpdump_said.decode()
    assert final(sensor.alert_lines()) == final(replay_alerts(tcpdump_file, tmp_path))
    # the original capture, but for the clock
    original = replay_records(CAPTURES / capture, "--no-alerts")
    assert untimed(live) == untimed(original)
    assert episodes(sensor.alert_lines()) == episodes(replay_alerts(CAPTURES / capture, tmp_path))
    stopped = sensor.wait_for("stopped")
    assert stopped["kernel_drops"] == {lab.sniff: 0}
