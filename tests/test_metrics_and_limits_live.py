"""The live sensor's Prometheus endpoint, and its memory bound under a
flood of spoofed sources (a private namespace, see netlab.py)."""

from __future__ import annotations

import random
import re
import struct
import time

import pytest

import netlab
from conftest import SHARED

pytestmark = pytest.mark.skipif(netlab.available() is not None, reason=str(netlab.available()))
FTP = SHARED / "pcaps" / "zeek__ftp-bruteforce.pcap"



def test_metrics_serve_the_counters_and_they_move_with_traffic(lab):
    sensor = netlab.Sensor(lab, "timeouts:\n  tcp_close: 0.2\n")
    before = lab.metrics()
    lab.replay(FTP)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and lab.metrics().get("sensor_records_total", 0) < 30:
        time.sleep(0.2)
    after = lab.metrics()
    iface = f'{{interface="{lab.sniff}"}}'
    assert before[f"sensor_packets_total{iface}"] == 0
    assert after[f"sensor_packets_total{iface}"] == 606
    assert after[f"sensor_kernel_packets_total{iface}"] >= 606
    assert after[f"sensor_kernel_drops_total{iface}"] == 0
    assert after[f"sensor_bytes_total{iface}"] > 0
    assert after["sensor_records_total"] == 30
    assert after['sensor_alerts_total{rule="password-guessing",severity="high"}'] >= 1
    assert any(name.startswith("sensor_sink_alerts_total{") and 'outcome="sent"' in name and value > 0
               for name, value in after.items())
    assert after["sensor_internal_drops_total"] == 0
    assert after["process_resident_memory_bytes"] > 50e6
    for name in ("sensor_connections_active", "sensor_evictions_total", "sensor_processing_lag_seconds",
                 "sensor_detector_queue_batches", "sensor_tracker_bytes"):
        assert name in after, name
    assert sensor.stop() == 0


def _spoofed_syn_flood(path, packets: int, seed: int = 7) -> None:
    """SYNs to 10.255.0.1:80 from random 10.x.y.z sources and ports (a
    neptune-style flood; addresses from a private range, sent only into
    the lab's veth)."""
    rnd = random.Random(seed)
    dst = bytes([10, 255, 0, 1])
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(packets):
            src = bytes([10, rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255)])
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, i & 0xFFFF, 0, 64, 6, 0, src, dst)
            tcp = struct.pack("!HHIIBBHHH", rnd.randrange(1024, 65535), 80, rnd.getrandbits(32), 0, 5 << 4, 0x02,
                              64240, 0, 0)
            frame = b"\x02\x00\x0a\xff\x00\x01" + b"\x02\x00" + src + b"\x08\x00" + ip + tcp
            f.write(struct.pack("<IIII", 1700000000 + i // 100_000, i % 100_000 * 10, len(frame), len(frame)))
            f.write(frame)


def test_a_spoofed_flood_stays_within_the_memory_budget_evicts_and_alerts(lab, tmp_path):
    flood = tmp_path / "flood.pcap"
    _spoofed_syn_flood(flood, 150_000)
    budget_mb = 700
    sensor = netlab.Sensor(lab, f"limits:\n  connections: 20000\n  memory_mb: {budget_mb}\n"
                                "capture:\n  ring_mb: 64\n")
    lab.replay(flood, pps=50_000)
    time.sleep(1.0)
    metrics = lab.metrics()
    status = open(f"/proc/{sensor.proc.pid}/status").read()
    peak_kb = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
    assert sensor.stop() == 0
    assert peak_kb < budget_mb * 1024
    assert metrics["sensor_connections_active"] <= 20000
    assert metrics["sensor_evictions_total"] > 100_000
    assert sensor.wait_for("stopped")["evicted"] >= metrics["sensor_evictions_total"]
    dos = [a for a in sensor.alert_lines() if a["category"] == "dos"]
    assert dos and {a["dst"] for a in dos} == {"10.255.0.1"}
