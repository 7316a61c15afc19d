"""Release connection records in the order their connections started.

Records finish in end order; the tracker's watermark (the creation order
of the oldest still-open connection) says which finished records can no
longer be overtaken.  Those are released sorted by creation order, which
is start-time order for a capture whose clock runs forward.  A
connection that stays open for the whole capture would hold everything
back, so at most ``limit`` records wait; beyond that the oldest are
released early and counted.
"""

from __future__ import annotations

import numpy as np

from sensor.rows import empty_connections


class StartOrder:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.released_early = 0
        self._chunks: list[np.ndarray] = []  # each sorted by "order"
        self._held = 0

    @property
    def held(self) -> int:
        return self._held

    def push(self, records: np.ndarray, watermark: int) -> np.ndarray:
        """Add finished records; return those now final, in start order."""
        if len(records):
            self._chunks.append(_by_order(records))
            self._held += len(records)
        out = [self._take_below(watermark)]
        if self._held > self.limit:
            excess = self._held - self.limit
            early = self._take_lowest(excess)
            self.released_early += len(early)
            out.append(early)
        return _merge(out)

    def drain(self, records: np.ndarray) -> np.ndarray:
        """Everything, at the end of input."""
        return self.push(records, np.iinfo(np.uint64).max)

    def _take_below(self, watermark: int) -> np.ndarray:
        taken, kept = [], []
        for chunk in self._chunks:
            cut = int(np.searchsorted(chunk["order"], np.uint64(watermark), side="left"))
            if cut:
                taken.append(chunk[:cut])
            if cut < len(chunk):
                kept.append(chunk[cut:])
        self._chunks = kept
        if len(self._chunks) > 64:
            self._chunks = [_merge(self._chunks)]
        released = _merge(taken)
        self._held -= len(released)
        return released

    def _take_lowest(self, n: int) -> np.ndarray:
        everything = _merge(self._chunks)
        self._chunks = [everything[n:]] if len(everything) > n else []
        self._held -= min(n, len(everything))
        return everything[:n]


def _merge(chunks: list[np.ndarray]) -> np.ndarray:
    chunks = [c for c in chunks if len(c)]
    if not chunks:
        return empty_connections()
    if len(chunks) == 1:
        return chunks[0]
    return _by_order(np.concatenate(chunks))


def _by_order(records: np.ndarray) -> np.ndarray:
    return records[np.argsort(records["order"], kind="stable")]
