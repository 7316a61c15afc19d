"""Configures the compiled tracker and converts its output to arrays."""

from __future__ import annotations

import secrets

import numpy as np

from sensor import _fastpath
from sensor.config import Content, Limits, Timeouts
from sensor.features.content_rules import analyzer_ports, pattern_blob
from sensor.features.services import likely_server_ports
from sensor.rows import CONN_DTYPE


class ConnectionTracker:
    """Assembles packets into connection records (see ``_native/tracker.c``).

    A connection ends on a close or reset plus Zeek's delay, an unanswered
    SYN after the attempt delay, inactivity, port reuse, or :meth:`flush`
    at the end of input.  Records are released in the order their
    connections started: a finished record waits (up to
    ``limits.reorder_records`` of them) until every older connection has
    finished.  For a capture whose clock runs forward that is start-time
    order.
    """

    def __init__(self, timeouts: Timeouts, limits: Limits = Limits(), content: Content = Content(),
                 uid_seed: int = 0) -> None:
        likely_tcp, likely_udp = likely_server_ports()
        # the hash seed is secret so crafted traffic cannot force collisions;
        # record uids depend only on the traffic and uid_seed
        self._core = _fastpath.Tracker(
            timeouts.tracker_ns(), likely_tcp, likely_udp, secrets.randbits(64), uid_seed,
            limits.reorder_records, analyzer_ports(), pattern_blob(), content.byte_cap,
        )
        self.now = 0
        self._out = [bytearray(), bytearray()]  # alternate, like the capture buffers

    def process(self, rows: np.ndarray, buffer: memoryview | bytes = b"") -> None:
        """Feed decoded packet rows (only rows with status ok are used) and
        the bytes their frame offsets point into (payloads for the content
        analyzers)."""
        if len(rows):
            self._core.process(rows, buffer)
            self.now = max(self.now, int(rows["ts"][-1]))

    def expire(self, now_ns: int | None = None) -> None:
        """Finish connections whose deadline has passed at the latest packet's
        time, or at ``now_ns`` (the wall clock of a live capture whose
        traffic has stopped) when that is later."""
        if now_ns is not None:
            self.now = max(self.now, now_ns)
        self._core.expire(self.now)

    def flush(self) -> None:
        """Finish every open connection (end of input)."""
        self._core.flush()

    def take(self) -> np.ndarray:
        """Records released since the last call, in start order.

        The array is reused by the call after next: copy what must outlive it.
        """
        buf = self._out[0]
        self._out.reverse()
        n = self._core.take_into(buf)
        return np.frombuffer(buf, dtype=CONN_DTYPE, count=n)

    def set_limits(self, connections: int = 0, memory_bytes: int = 0, hold_seconds: float = 0.0) -> None:
        """Bound the open connections by count and by bytes (0: no bound):
        when either is reached, the eighth of the connections idle longest
        is finished early as records (end reason ``evicted``) and counted.
        ``hold_seconds`` bounds how long (capture time) a finished record
        waits for older open connections before it is released anyway
        (0: only the reorder ring bounds it)."""
        self._core.set_limits(connections, memory_bytes, int(hold_seconds * 1e9))

    @property
    def evicted(self) -> int:
        """Connections finished early because the table was full."""
        return self._core.evicted

    @property
    def active(self) -> int:
        return self._core.active

    @property
    def held(self) -> int:
        """Finished records waiting for an older connection to finish."""
        return self._core.held

    @property
    def released_late(self) -> int:
        """Records released after younger ones because the wait grew too long."""
        return self._core.released_late

    @property
    def memory(self) -> int:
        return self._core.memory
