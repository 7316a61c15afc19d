"""Configures the compiled tracker and converts its output to arrays."""

from __future__ import annotations

import secrets

import numpy as np

from sensor import _fastpath
from sensor.config import Timeouts
from sensor.features.services import likely_server_ports
from sensor.rows import CONN_DTYPE


class ConnectionTracker:
    """Assembles packets into connection records (see ``_native/tracker.c``).

    Records come out when their connection ends: a close or reset plus
    Zeek's delay, an unanswered SYN after the attempt delay, inactivity,
    port reuse, or :meth:`flush` at the end of input.
    """

    def __init__(self, timeouts: Timeouts, uid_seed: int = 0) -> None:
        likely_tcp, likely_udp = likely_server_ports()
        # the hash seed is secret so crafted traffic cannot force collisions;
        # record uids depend only on the traffic and uid_seed
        self._core = _fastpath.Tracker(
            timeouts.tracker_ns(), likely_tcp, likely_udp, secrets.randbits(64), uid_seed
        )
        self.now = 0

    def process(self, rows: np.ndarray) -> None:
        """Feed decoded packet rows (only rows with status ok are used)."""
        if len(rows):
            self._core.process(rows)
            self.now = max(self.now, int(rows["ts"][-1]))

    def expire(self, now: int | None = None) -> None:
        """Finish connections whose deadline has passed at ``now`` (ns)."""
        self._core.expire(self.now if now is None else now)

    def flush(self) -> None:
        """Finish every open connection (end of input)."""
        self._core.flush()

    def take(self) -> np.ndarray:
        """Records finished since the last call, in no particular order."""
        return np.frombuffer(self._core.take(), dtype=CONN_DTYPE)

    def watermark(self) -> int:
        """Creation order of the oldest open connection: every record
        created before it is final."""
        return self._core.watermark()

    @property
    def active(self) -> int:
        return self._core.active

    @property
    def memory(self) -> int:
        return self._core.memory
