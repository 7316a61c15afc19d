"""The pipeline: decode -> fragments -> tracker -> start order -> features -> sinks.

Live capture and replay share this object; only the source of packet
batches differs.  Every stage sees whole batches; nothing flows upstream.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from sensor._logging import get_logger
from sensor.capture import Damage, PacketBatch
from sensor.config import NS, SensorConfig
from sensor.decode import FragmentReassembler, FragmentTimeouts, decode
from sensor.features import FeatureEngine
from sensor.rows import FIRST_MALFORMED, STATUS_NAMES
from sensor.track import ConnectionTracker

log = get_logger("sensor.pipeline")

#: malformed frames listed one by one per file and reason; the rest are counted
MALFORMED_LISTED = 5

# statuses that are neither tracked nor malformed, and say nothing about damage
_PASSED_OVER = ("not_ip", "other_ip_protocol", "wlan_skipped", "unsupported_link_type")


class RecordSink(Protocol):
    """Where finished connection records go.

    The arrays passed to ``write`` are reused once the pipeline moves on:
    a sink copies whatever it keeps beyond the call.
    """

    def write(self, conns: np.ndarray, features: np.ndarray) -> None: ...

    def close(self) -> None: ...


@dataclass
class Summary:
    """What a run saw: counts for the end-of-run report."""

    files: int = 0
    packets: int = 0
    captured_bytes: int = 0
    connections: int = 0
    frames: Counter = field(default_factory=Counter)  # status name -> frames
    damage: list[Damage] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    fragments_reassembled: int = 0
    fragments_incomplete: int = 0
    released_late: int = 0
    evicted: int = 0


class Pipeline:
    """Turns packet batches into connection records delivered to sinks."""

    def __init__(self, config: SensorConfig, sinks: Sequence[RecordSink], uid_seed: int = 0) -> None:
        self.config = config
        self.sinks = list(sinks)
        self.summary = Summary()
        self.tracker = ConnectionTracker(config.timeouts, config.limits, config.content, uid_seed)
        self.tracker.set_limits(config.limits.connections, hold_seconds=config.limits.hold_seconds)
        self.features = FeatureEngine(config)
        self.fragments = FragmentReassembler(
            FragmentTimeouts(int(config.timeouts.fragment * NS), config.limits.fragment_datagrams)
        )
        self._listed: Counter = Counter()
        self.per_source: dict[str, tuple[int, int]] = {}   # source -> (packets, captured bytes)

    def feed(self, batch: PacketBatch, source: str) -> None:
        """Process one batch of packets from ``source`` (a file name or interface)."""
        decode(batch)
        self._account(batch, source)
        self.tracker.process(self.fragments.process(batch))
        self.tracker.process(batch.rows, batch.buffer)
        self.tracker.expire()
        self._emit(self.tracker.take())

    def tick(self, now_ns: int) -> None:
        """Expire connections on the wall clock (live capture): a connection
        ends on time even when no packet arrives to move capture time on."""
        self.tracker.expire(now_ns)
        self._emit(self.tracker.take())

    def end_of_source(self, source: str) -> None:
        """Report what was only counted for one source."""
        for (src, name), listed in sorted(self._listed.items()):
            if src == source and listed > MALFORMED_LISTED:
                log.warning("more malformed frames not listed", file=source, reason=name,
                            frames=listed - MALFORMED_LISTED)

    def finish(self) -> Summary:
        """End of input: flush every open connection through to the sinks."""
        self.tracker.process(self.fragments.flush())
        self.tracker.flush()
        self._emit(self.tracker.take())
        for sink in self.sinks:
            sink.close()
        s = self.summary
        s.fragments_reassembled = self.fragments.datagrams_reassembled
        s.fragments_incomplete = self.fragments.datagrams_incomplete
        s.released_late = self.tracker.released_late
        s.evicted = self.tracker.evicted
        return s

    def _emit(self, conns: np.ndarray) -> None:
        if not len(conns):
            return
        features = self.features.compute(conns)
        for sink in self.sinks:
            sink.write(conns, features)
        self.summary.connections += len(conns)

    def _account(self, batch: PacketBatch, source: str) -> None:
        rows = batch.rows
        s = self.summary
        captured = int(rows["caplen"].sum())
        s.packets += len(rows)
        s.captured_bytes += captured
        packets, nbytes = self.per_source.get(source, (0, 0))
        self.per_source[source] = (packets + len(rows), nbytes + captured)
        counts = np.bincount(rows["status"], minlength=len(STATUS_NAMES))
        for code in np.flatnonzero(counts):
            name = STATUS_NAMES[code]
            s.frames[name] += int(counts[code])
            if code >= FIRST_MALFORMED:
                self._list_malformed(batch, source, int(code))
            elif name == "unsupported_link_type" and not self._listed[(source, name)]:
                self._listed[(source, name)] = 1
                linktype = int(rows["linktype"][rows["status"] == code][0])
                log.warning("link type not supported; its frames are counted and skipped",
                            file=source, linktype=linktype)

    def _list_malformed(self, batch: PacketBatch, source: str, code: int) -> None:
        name = STATUS_NAMES[code]
        key = (source, name)
        where = np.flatnonzero(batch.rows["status"] == code)
        room = max(MALFORMED_LISTED - self._listed[key], 0)
        self._listed[key] += len(where)
        listed = where[:room]
        for i, offset in zip(listed.tolist(), batch.frame_offsets(listed).tolist()):
            frame = int(batch.rows["frame"][i])
            log.error(f"{source}: offset {offset}: frame {frame + 1}: malformed packet ({name})",
                      file=source, offset=offset, frame=frame + 1, reason=name)


def passed_over(summary: Summary) -> dict[str, int]:
    """Frames neither tracked nor malformed (non-IP, other protocols, ...)."""
    return {name: summary.frames[name] for name in _PASSED_OVER if summary.frames[name]}
