"""Traffic features 23-41: hand-worked scenarios, a property test against an
offline reference, and streaming = offline on the shared captures."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import KeepRecords, PCAPS
from window_reference import reference

from sensor import _fastpath
from sensor.config import SensorConfig, Traffic
from sensor.features.basic import FLAG_NAMES
from sensor.features.services import SERVICE_CODE
from sensor.features.kdd import KDD_DTYPE
from sensor.features.traffic import TRAFFIC_FEATURES, TrafficWindows
from sensor.replay import replay
from sensor.rows import CONN_DTYPE

S = 1_000_000_000


def run(records, cfg: Traffic = Traffic()) -> list[dict]:
    """records: (seconds, host number, service, flag, source port) in start order."""
    conns = np.zeros(len(records), dtype=CONN_DTYPE)
    conns["ts_first"] = [int(round(r[0] * S)) for r in records]
    conns["resp_lo"] = [0xFFFF_0A00_0000 | r[1] for r in records]
    conns["orig_p"] = [r[4] for r in records]
    service = np.array([SERVICE_CODE[r[2]] for r in records], dtype=np.uint8)
    flag = np.array([FLAG_NAMES.index(r[3]) for r in records], dtype=np.uint8)
    out = features(TrafficWindows(cfg), conns, service, flag)
    return [{name: (float(row[name]) if "rate" in name else int(row[name])) for name in TRAFFIC_FEATURES} for row in out]


def features(windows, conns, service, flag):
    """Traffic features of records whose KDD service and flag codes are given."""
    rows = np.zeros(len(conns), dtype=KDD_DTYPE)
    rows["service"], rows["flag"] = service, flag
    windows.write(conns, rows, KDD_DTYPE.fields["count"][1])
    return rows


def col(rows, name):
    return [r[name] for r in rows]


# ------------------------------------------------------------------ scenarios


def test_burst_to_one_host():
    rows = run([(i * 0.1, 1, "http", "SF", 40000 + i) for i in range(5)])
    assert col(rows, "count") == [1, 2, 3, 4, 5]
    assert col(rows, "srv_count") == [1, 2, 3, 4, 5]
    assert col(rows, "same_srv_rate") == [1.0] * 5
    assert col(rows, "diff_srv_rate") == [0.0] * 5
    assert col(rows, "dst_host_count") == [0, 1, 2, 3, 4]
    assert col(rows, "dst_host_srv_count") == [0, 1, 2, 3, 4]
    assert col(rows, "dst_host_same_srv_rate") == [0.0, 1.0, 1.0, 1.0, 1.0]
    # each source port is new: the record's own port alone matches (the KDD "1/n" pattern)
    assert col(rows, "dst_host_same_src_port_rate") == [0.0, 1.0, 0.5, 0.33, 0.25]


def test_port_scan_is_all_different_services():
    services = ["ftp", "ssh", "telnet", "smtp", "http", "private"]
    rows = run([(i * 0.01, 2, s, "REJ", 55555) for i, s in enumerate(services)])
    assert col(rows, "count") == [1, 2, 3, 4, 5, 6]
    assert col(rows, "srv_count") == [1] * 6
    assert col(rows, "same_srv_rate") == [1.0, 0.5, 0.33, 0.25, 0.2, 0.17]
    assert col(rows, "diff_srv_rate") == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # all distinct, own included
    assert col(rows, "rerror_rate") == [1.0] * 6 and col(rows, "srv_rerror_rate") == [1.0] * 6
    assert col(rows, "serror_rate") == [0.0] * 6
    assert col(rows, "dst_host_diff_srv_rate") == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert col(rows, "dst_host_rerror_rate") == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    # one source port for the whole scan: every earlier record shares it
    assert col(rows, "dst_host_same_src_port_rate") == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_host_sweep_is_all_different_hosts():
    rows = run([(i * 0.01, 10 + i, "eco_i", "SF", 8) for i in range(5)])
    assert col(rows, "count") == [1] * 5
    assert col(rows, "srv_count") == [1, 2, 3, 4, 5]
    assert col(rows, "srv_diff_host_rate") == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert col(rows, "dst_host_count") == [0] * 5
    assert col(rows, "dst_host_srv_count") == [0, 1, 2, 3, 4]
    assert col(rows, "dst_host_srv_diff_host_rate") == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_syn_flood_drives_serror_rates_to_one():
    rows = run([(i * 0.05, 3, "private", "S0", 1024 + i) for i in range(10)])
    assert col(rows, "serror_rate") == [1.0] * 10 and col(rows, "srv_serror_rate") == [1.0] * 10
    assert col(rows, "dst_host_serror_rate") == [0.0] + [1.0] * 9
    assert col(rows, "dst_host_srv_serror_rate") == [0.0] + [1.0] * 9
    assert col(rows, "rerror_rate") == [0.0] * 10


def test_mixed_flags_and_which_are_errors():
    rows = run([(0.0, 4, "http", "SF", 1), (0.1, 4, "http", "SH", 2), (0.2, 4, "http", "RSTO", 3),
                (0.3, 4, "http", "OTH", 4)])
    # SH is a SYN error, RSTO a reject, OTH neither (docs/features.md: what the rows say)
    assert col(rows, "serror_rate") == [0.0, 0.5, 0.33, 0.25]
    assert col(rows, "rerror_rate") == [0.0, 0.0, 0.33, 0.25]
    # host window: the record replaces the oldest earlier one in the rate set
    assert col(rows, "dst_host_serror_rate") == [0.0, 1.0, 0.5, 0.33]
    assert col(rows, "dst_host_rerror_rate") == [0.0, 0.0, 0.5, 0.33]


def test_exactly_two_seconds_apart_is_outside():
    rows = run([(0.0, 5, "http", "SF", 1), (2.0, 5, "http", "SF", 2), (3.999999, 5, "http", "SF", 3)])
    assert col(rows, "count") == [1, 1, 2]


def test_ties_on_equal_start_times():
    rows = run([(1.0, 6, "http", "SF", 1), (1.0, 6, "http", "S0", 2), (1.0, 6, "smtp", "SF", 3)])
    # each counts the tied records before it and itself, not those after
    assert col(rows, "count") == [1, 2, 3]
    assert col(rows, "serror_rate") == [0.0, 0.5, 0.33]
    assert col(rows, "diff_srv_rate") == [0.0, 0.0, 0.67]


def test_host_window_boundary():
    cfg = Traffic(host_window=4)
    recs = [(i * 10.0, 7, "http", "SF", i) for i in range(6)]  # 10 s apart: the time window sees one
    recs.insert(3, (25.0, 8, "http", "SF", 99))               # another host, inside the last N
    rows = run(recs, cfg)
    assert col(rows, "count") == [1] * 7
    # records to host 7 among the last 4 before each
    assert col(rows, "dst_host_count") == [0, 1, 2, 0, 3, 3, 3]
    assert col(rows, "dst_host_srv_count") == [0, 1, 2, 3, 4, 4, 4]


def test_counts_are_capped_rates_are_not():
    rows = run([(i * 0.001, 9, "ecr_i", "SF", 0) for i in range(600)])
    assert rows[-1]["count"] == 511 and rows[-1]["srv_count"] == 511
    assert rows[510]["count"] == 511 and rows[509]["count"] == 510
    assert rows[-1]["dst_host_count"] == 255  # 256 earlier records, capped
    assert rows[-1]["same_srv_rate"] == 1.0


def test_alternative_definitions():
    recs = [(0.0, 1, "http", "SF", 5), (0.1, 1, "ftp", "SF", 6), (0.2, 1, "http", "SF", 5)]
    kdd = run(recs)
    alt = run(recs, Traffic(diff_rates="complement", host_rates="earlier_only"))
    assert col(kdd, "diff_srv_rate") == [0.0, 1.0, 0.67]   # distinct services: 1, 2, 2
    assert col(alt, "diff_srv_rate") == [0.0, 0.5, 0.33]   # 1 - same
    assert col(kdd, "dst_host_same_src_port_rate") == [0.0, 1.0, 0.5]  # itself, and one earlier
    assert col(alt, "dst_host_same_src_port_rate") == [0.0, 0.0, 0.5]  # earlier records only


def test_rates_round_like_the_kdd_files():
    # single precision, then printf("%.2f"): every k/n the windows can produce
    for n in range(1, 600):
        k = np.arange(n + 1, dtype=np.float32)
        expected = [float(f"{v:.2f}") for v in (k / np.float32(n)).astype(np.float64)]
        assert [_fastpath.kdd_rate(int(i), n) for i in range(n + 1)] == expected


# ------------------------------------------------------------------ property


def _random_stream(rng, n):
    gaps = rng.choice([0.0, 0.0, 0.3, 0.9, 1.9, 2.0, 2.1, 5.0], size=n)  # ties and edges
    ts = (np.cumsum(gaps) * S).astype(np.int64)
    host = rng.integers(1, 6, n)
    service = rng.choice([SERVICE_CODE[s] for s in ("http", "ftp", "smtp", "private", "eco_i")], n)
    flag = rng.choice([FLAG_NAMES.index(f) for f in ("SF", "SF", "S0", "REJ", "RSTO", "SH", "OTH")], n)
    sport = rng.choice([80, 1024, 1025, 5000], n)
    return ts, host, service.astype(np.uint8), flag.astype(np.uint8), sport


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("cfg", [Traffic(host_window=16), Traffic(host_window=7, diff_rates="complement"),
                                 Traffic(host_window=9, host_rates="earlier_only")],
                         ids=["kdd", "complement", "earlier-only"])
def test_streaming_equals_the_offline_reference(seed, cfg):
    rng = np.random.default_rng(seed)
    ts, host, service, flag, sport = _random_stream(rng, 300)
    conns = np.zeros(len(ts), dtype=CONN_DTYPE)
    conns["ts_first"], conns["resp_lo"], conns["orig_p"] = ts, host, sport
    windows = TrafficWindows(cfg)
    cut = int(rng.integers(1, len(ts)))  # two batches: state carries over
    got = np.concatenate([features(windows, conns[:cut], service[:cut], flag[:cut]),
                          features(windows, conns[cut:], service[cut:], flag[cut:])])
    want = reference(ts, host, service, flag, sport, cfg)
    for i, w in enumerate(want):
        assert {k: float(got[k][i]) for k in TRAFFIC_FEATURES} == pytest.approx(w, abs=0), (i, w)


# ------------------------------------------------------------------ captures




@pytest.mark.parametrize("path", [p for p in PCAPS if p.stat().st_size < 2_000_000], ids=lambda p: p.name)
def test_streaming_equals_offline_on_shared_captures(path):
    keep = KeepRecords()
    summary = replay([path], SensorConfig(), [keep])
    if not keep.conns:
        assert summary.connections == 0
        return
    conns, feats = np.concatenate(keep.conns), np.concatenate(keep.features)
    assert summary.released_late == 0
    assert (np.diff(conns["order"].astype(np.int64)) > 0).all()  # start order
    hosts = np.unique(np.stack([conns["resp_hi"], conns["resp_lo"]], 1), axis=0, return_inverse=True)[1]
    want = reference(conns["ts_first"], hosts.ravel(), feats["service"], feats["flag"], conns["orig_p"])
    mismatched = [i for i, w in enumerate(want) if {k: float(feats[k][i]) for k in TRAFFIC_FEATURES} != w]
    assert mismatched == []
