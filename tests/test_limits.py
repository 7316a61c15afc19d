"""Bounded connection state: a full table evicts the connections idle
longest as records, counts them, and loses no packet."""

from __future__ import annotations

import numpy as np

from conftest import SHARED, KeepRecords
from sensor.capture import open_capture
from sensor.config import config_from_dict
from sensor.pipeline import Pipeline
from sensor.replay import replay
from sensor.rows import END_REASONS

SCAN = SHARED / "pcaps" / "chrissanders__synscan.pcapng"
FLOOD = SHARED / "pcaps" / "nsl-kdd-examine__synflood.pcapng"


def _records(capture, limits: dict) -> tuple[np.ndarray, object]:
    keep = KeepRecords()
    summary = replay([capture], config_from_dict({"limits": limits}), [keep])
    return np.concatenate(keep.conns), summary


def test_a_full_table_evicts_as_records_and_loses_no_packet():
    whole, unbounded = _records(SCAN, {})
    bounded, summary = _records(SCAN, {"connections": 64})
    assert unbounded.evicted == 0 and summary.evicted > 0
    evicted = bounded[bounded["end_reason"] == END_REASONS.index("evicted")]
    assert len(evicted) == summary.evicted
    for column in ("orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes"):
        assert int(bounded[column].sum()) == int(whole[column].sum()), column


def test_the_limit_holds_through_a_flood():
    pipeline = Pipeline(config_from_dict({"limits": {"connections": 1000}}), [KeepRecords()])
    reader = open_capture(FLOOD)
    peak = 0
    for batch in reader.batches():
        pipeline.feed(batch, "flood")
        peak = max(peak, pipeline.tracker.active)
    summary = pipeline.finish()
    assert 900 <= peak <= 1000
    assert summary.evicted > 10_000           # a 14,000-packet flood of one-packet connections
    assert pipeline.tracker.memory < 4 << 20  # the table never grew past the limit


def test_a_hold_bound_releases_records_past_open_connections_and_loses_none():
    """With hold_seconds, a finished record stops waiting for an older
    connection still open: it leaves within the bound, the open one is
    released late when it ends, and every packet is still counted once."""
    capture = SHARED / "pcaps" / "ndpi__ocs.pcap"   # long-lived connections beside short ones
    exact, exact_summary = _records(capture, {})
    held, summary = _records(capture, {"hold_seconds": 0.05})
    assert exact_summary.released_late == 0
    assert summary.released_late > 0
    assert sorted(held["uid"].tolist()) == sorted(exact["uid"].tolist())
    assert list(held["uid"]) != list(exact["uid"])     # the order is no longer start order
    for column in ("orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes"):
        assert int(held[column].sum()) == int(exact[column].sum()), column
