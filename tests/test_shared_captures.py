"""The 40 shared captures: decoding agrees with tshark frame by frame, and
each replays cleanly, with records exactly where it holds IP traffic."""

from __future__ import annotations

import json
import re

import pytest
from conftest import PCAPS
from craft import replay
from oracle import compare, tshark_frames

IDS = [p.name for p in PCAPS]


def test_all_forty_captures_are_here():
    assert len(PCAPS) == 40


@pytest.mark.parametrize("path", PCAPS, ids=IDS)
def test_decoding_matches_tshark(path):
    assert compare(str(path)) == []


@pytest.mark.parametrize("path", PCAPS, ids=IDS)
def test_replays_with_records_where_there_is_ip(path):
    result = replay(path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    frames = tshark_frames(str(path))
    has_ip = any(f.network for f in frames)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert bool(records) == has_ip
    assert re.search(rf"^packets: {len(frames):,}$", result.stderr, re.M), result.stderr
    assert all(r["kdd"]["protocol_type"] in ("tcp", "udp", "icmp") for r in records)
