"""A record sink that runs another one on its own thread.

Scoring is the detection stage's largest cost, and onnxruntime releases
the GIL while it runs: with the detector on a second thread, the models
score one batch while the pipeline decodes and tracks the next.  The
queue is short, so memory stays bounded and a slow detector slows the
replay instead of piling batches up.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from sensor.pipeline import RecordSink

QUEUE_BATCHES = 4
_STOP = object()


@dataclass(frozen=True)
class _Call:
    fn: Callable




class BackgroundSink:
    """Feeds ``sink`` from a worker thread, in order; errors surface on the next call."""

    def __init__(self, sink: RecordSink, depth: int = QUEUE_BATCHES) -> None:
        self.sink = sink
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sensor-detect", daemon=True)
        self._thread.start()

    def write(self, conns: np.ndarray, features: np.ndarray) -> None:
        self._raise()
        # the pipeline reuses its arrays once write returns
        self._queue.put((conns.copy(), features.copy()))

    def call(self, fn: Callable[[RecordSink], None]) -> None:
        """Run ``fn(sink)`` on the worker, between the batches queued before
        and after it (a rule reload lands between two batches, never inside one)."""
        self._raise()
        self._queue.put(_Call(fn))

    @property
    def queued(self) -> int:
        """Batches waiting for the worker."""
        return self._queue.qsize()

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()
        self._raise()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            if self._error is None:  # after an error, drain without writing
                try:
                    if isinstance(item, _Call):
                        item.fn(self.sink)
                    else:
                        self.sink.write(*item)
                except BaseException as exc:  # noqa: BLE001 - handed to the pipeline's thread
                    self._error = exc
        try:
            self.sink.close()
        except BaseException as exc:  # noqa: BLE001
            self._error = self._error or exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
