"""Hostile input: randomly damaged captures must never crash the sensor.

Each case flips, inserts or deletes bytes of a real capture (headers
included) and replays it in-process: the compiled core reads every byte
of these files, so an out-of-bounds read or a crash would end the test
run.  Decoded rows must stay within their frames.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import PCAPS

from sensor.capture import NotACaptureError, open_capture
from sensor.config import SensorConfig
from sensor.decode import decode
from sensor.replay import replay

SMALL = [p for p in PCAPS if p.stat().st_size < 200_000]


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 60)):
        op = rng.random()
        i = rng.randrange(len(buf))
        if op < 0.7:
            buf[i] = rng.randrange(256)
        elif op < 0.85:
            buf[i:i] = rng.randbytes(rng.randint(1, 40))
        else:
            del buf[i : i + rng.randint(1, 40)]
    if rng.random() < 0.3:
        del buf[rng.randrange(len(buf)) :]
    return bytes(buf)


class Count:
    records = 0

    def write(self, conns, features):
        self.records += len(conns)
        assert (features["src_bytes"] == conns["orig_bytes"]).all()

    def close(self):
        pass


@pytest.mark.parametrize("seed", range(120))
def test_damaged_captures_never_crash(tmp_path, seed):
    rng = random.Random(seed)
    source = rng.choice(SMALL)
    path = tmp_path / source.name
    path.write_bytes(mutate(source.read_bytes(), rng))

    try:
        reader = open_capture(path)
    except NotACaptureError:
        return  # the magic number itself was damaged: reported, not read
    for batch in reader.batches():
        decode(batch)
        rows = batch.rows
        inside = rows["frame_off"].astype(np.int64) + rows["caplen"] <= len(batch.buffer)
        assert inside.all()
    reader.close()

    sink = Count()
    summary = replay([path], SensorConfig(), [sink])
    assert summary.connections == sink.records
    assert summary.files == 1
