"""The background record sink: order, copies, and errors that reach the caller."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sensor.background import BackgroundSink


class Keep:
    def __init__(self):
        self.batches, self.closed, self.threads = [], False, set()

    def write(self, conns, features):
        self.threads.add(threading.current_thread().name)
        self.batches.append((conns, features))

    def close(self):
        self.closed = True


def test_batches_arrive_in_order_as_copies_on_another_thread():
    keep = Keep()
    sink = BackgroundSink(keep, depth=2)
    conns, features = np.zeros(3, np.int64), np.zeros(3, np.float64)
    for i in range(20):
        conns[:] = i
        features[:] = -i
        sink.write(conns, features)  # the caller reuses its arrays at once
    sink.close()
    assert keep.closed
    assert [int(c[0]) for c, _ in keep.batches] == list(range(20))
    assert [float(f[0]) for _, f in keep.batches] == [-float(i) for i in range(20)]
    assert keep.threads == {"sensor-detect"}


class Explode(Keep):
    def write(self, conns, features):
        super().write(conns, features)
        if len(self.batches) == 2:
            raise RuntimeError("model file vanished")


def test_an_error_on_the_worker_reaches_the_caller_and_nothing_hangs():
    explode = Explode()
    sink = BackgroundSink(explode, depth=1)
    batch = np.zeros(1), np.zeros(1)
    with pytest.raises(RuntimeError, match="vanished"):
        for _ in range(50):
            sink.write(*batch)
        sink.close()
    assert len(explode.batches) == 2   # nothing written after the error
