"""Record output: JSON lines and CSV, start order, determinism, and results
that do not depend on how the input was cut into batches or files."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import random
import struct

import numpy as np
import pytest
from conftest import FIXTURES, KeepRecords, SHARED
from craft import Conversation, replay, write

import sensor.capture.base as capture_base
from sensor.config import Limits, SensorConfig
from sensor.output.columns import ADDR, FIXED, NS_SECONDS, Column, format_rows
from sensor.replay import replay as replay_api

FIXTURE = FIXTURES / "ftp-bruteforce.pcap"
CONN_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "duration",
               "orig_bytes", "resp_bytes", "conn_state", "history", "orig_pkts", "resp_pkts",
               "orig_ip_bytes", "resp_ip_bytes"]
KDD_NAMES = [line.split(":")[0] for line in (SHARED / "datasets" / "kddcup99" / "kddcup.names").read_text().splitlines()[1:]
             if ":" in line]


class Collect(KeepRecords):
    def records(self) -> np.ndarray:
        return np.concatenate(self.conns) if self.conns else np.zeros(0)


def jsonl(path) -> list[dict]:
    result = replay(path)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_jsonl_fields_in_zeek_order_with_a_kdd_object():
    records = jsonl(FIXTURE)
    assert len(records) == 30
    for rec in records:
        assert list(rec) == CONN_FIELDS + ["kdd"]
        assert list(rec["kdd"]) == KDD_NAMES and len(KDD_NAMES) == 41
        assert rec["uid"].startswith("C") and len(rec["uid"]) == 12
        assert isinstance(rec["duration"], float) and isinstance(rec["kdd"]["duration"], int)
        assert rec["kdd"]["duration"] == int(rec["duration"])


def test_csv_has_the_same_values_as_jsonl():
    result = replay(FIXTURE, fmt="csv")
    assert result.returncode == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == CONN_FIELDS + [f"kdd.{k}" for k in KDD_NAMES]
    for row, rec in zip(rows, jsonl(FIXTURE), strict=True):
        assert row["uid"] == rec["uid"] and row["history"] == rec["history"]
        assert int(row["orig_bytes"]) == rec["orig_bytes"] and row["kdd.service"] == rec["kdd"]["service"]
        assert float(row["duration"]) == pytest.approx(rec["duration"], abs=1e-6)


def test_records_come_in_start_order_and_are_deterministic():
    first = jsonl(SHARED / "pcaps" / "ppa__dns.cap")
    again = jsonl(SHARED / "pcaps" / "ppa__dns.cap")
    assert first == again
    starts = [r["ts"] for r in first]
    assert starts == sorted(starts) and len(first) == 13


def test_output_file_option(tmp_path):
    out = tmp_path / "records.jsonl"
    result = replay(FIXTURE, extra=("-o", str(out)))
    assert result.returncode == 0
    assert len(out.read_text().splitlines()) == 30
    # with the records in a file, standard output carries the alerts (JSON lines off a terminal)
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    assert alerts and all({"id", "rule", "category", "severity"} <= set(a) for a in alerts)


def _api_records(paths, monkeypatch=None, chunk=None, rows=None, config=SensorConfig()):
    if monkeypatch and chunk:
        monkeypatch.setattr(capture_base, "CHUNK_BYTES", chunk)
        monkeypatch.setattr(capture_base, "HEADROOM", 0)
    if monkeypatch and rows:
        monkeypatch.setattr(capture_base, "BATCH_ROWS", rows)
    sink = Collect()
    summary = replay_api(paths, config, [sink])
    return sink.records(), summary


@pytest.mark.parametrize("capture", ["zeek__ssh.pcap", "nsl-kdd-examine__synflood.pcapng", "ppa__dns.cap"])
def test_batch_boundaries_do_not_change_records(monkeypatch, capture):
    path = SHARED / "pcaps" / capture
    whole, _ = _api_records([path])
    small, _ = _api_records([path], monkeypatch, chunk=3000, rows=7)
    assert len(whole) > 5
    assert small.tobytes() == whole.tobytes()


def test_files_read_as_consecutive_pieces(tmp_path):
    data = FIXTURE.read_bytes()
    pos, offsets = 24, []
    while pos < len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    cut = offsets[len(offsets) // 2]  # in the middle of some FTP session
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    a.write_bytes(data[:cut])
    b.write_bytes(data[:24] + data[cut:])
    whole, _ = _api_records([FIXTURE])
    pieces, summary = _api_records([a, b])
    assert summary.files == 2 and len(whole) == 30
    # identical but for frame numbers, which count from each file's start
    differing = [f for f in whole.dtype.names if (pieces[f] != whole[f]).any()]
    assert differing == ["first_frame"]


def test_long_open_connection_holds_back_at_most_the_limit(tmp_path):
    # One connection stays open for the whole capture; 50 rejected attempts
    # start after it and end (5 s close delay) while it is still open.
    long = Conversation(cport=30000)
    t = long.handshake()
    packets = list(long.packets)
    for i in range(50):
        c = Conversation(cport=31000 + i, sport=21)
        c.c("S", t + i * 0.01)
        c.s("RA", t + i * 0.01 + 0.001, seq=0, ack=1001)
        packets += c.packets
    packets.append(long.c("A", t + 10.0))  # time moves on; the long connection is still open
    path = write(tmp_path / "long.pcap", packets)

    held, summary = _api_records([path])
    assert len(held) == 51 and summary.released_late == 0
    assert list(held["order"]) == sorted(held["order"]) and held["orig_p"][0] == 30000

    limited, summary = _api_records([path], config=SensorConfig(limits=Limits(reorder_records=8)))
    assert len(limited) == 51  # nothing lost: the long record alone comes out late
    assert summary.released_late == 1 and limited["orig_p"][-1] == 30000
    assert list(limited["order"][:-1]) == sorted(limited["order"][:-1])


# ------------------------------------------------------------------ formatter


def _format(columns, n) -> list[dict]:
    out = bytearray()
    size = format_rows(columns, n, False, out)
    return [json.loads(line) for line in bytes(out[:size]).splitlines()]


def test_addresses_print_like_the_ipaddress_module():
    rng = random.Random(5)
    addrs = [ipaddress.IPv6Address(rng.getrandbits(128)) for _ in range(200)]
    addrs += [ipaddress.IPv6Address(x) for x in ("::", "::1", "2001:db8::", "fe80::1:0:0:1", "1:0:0:2:0:0:0:3",
                                                  "0:0:1::", "2001:db8:0:0:1:0:0:1", "::ffff:0:1")]
    for _ in range(100):  # zero runs of random lengths
        words = [rng.choice([0, 0, rng.getrandbits(16)]) for _ in range(8)]
        addrs.append(ipaddress.IPv6Address(sum(w << (16 * (7 - i)) for i, w in enumerate(words))))
    v4 = [ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(100)] + [ipaddress.IPv4Address("0.0.0.0")]
    values = [int(a) for a in addrs] + [(0xFFFF << 32) | int(a) for a in v4]
    hi = np.array([v >> 64 for v in values], dtype=np.uint64)
    lo = np.array([v & (2**64 - 1) for v in values], dtype=np.uint64)
    got = [r["a"] for r in _format([Column("a", ADDR, hi, lo)], len(values))]
    # an IPv4-mapped ::ffff:a.b.c.d address is how IPv4 is stored, and prints as IPv4
    expected = [a.compressed if not (a.ipv4_mapped) else str(a.ipv4_mapped) for a in addrs] + [str(a) for a in v4]
    assert got == expected


def test_times_and_fixed_decimals():
    ns = np.array([0, 1, 499, 500, 1_700_000_000_123_456_789, -1_500_000], dtype=np.int64)
    rates = np.array([0.0, 0.004, 0.006, 1.0, 0.3333, 2 / 3], dtype=np.float64)
    rows = _format([Column("t", NS_SECONDS, ns), Column("r", FIXED, rates, decimals=2)], len(ns))
    assert [r["t"] for r in rows] == [0.0, 0.0, 0.0, 0.000001, 1700000000.123457, -0.0015]
    assert [r["r"] for r in rows] == [0.0, 0.0, 0.01, 1.0, 0.33, 0.67]


def test_progress_bar_on_a_terminal_only(tmp_path):
    # a 34 MB capture: the bar appears for files of 32 MB and more
    data = FIXTURE.read_bytes()
    body = data[24:]
    big = tmp_path / "big.pcap"
    big.write_bytes(data[:24] + body * (34_000_000 // len(body) + 1))
    import subprocess
    import sys

    cmd = f"{sys.executable} -m sensor replay {big} -o /dev/null"
    tty = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=120)
    assert tty.returncode == 0
    assert "big.pcap" in tty.stdout and "MB" in tty.stdout and "replay summary" in tty.stdout
    piped = replay(big, extra=("-o", "/dev/null"))
    assert "MB" not in piped.stderr and "packets:" in piped.stderr
