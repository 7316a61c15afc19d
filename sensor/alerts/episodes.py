"""Episodes: one alert per attack, not one per connection.

A rule's matches are grouped by its track key (source, destination, the
pair, or the rule alone).  An episode opens when a key's matches reach the
rule's threshold, absorbs every later match of that key, and closes after
``idle`` seconds without one.  A 20,000-connection SYN flood is one episode
with its count, first and last seen and a sample of uids.

Emissions follow Suricata's threshold types, read as episode updates
(capture time throughout, so a replay gives the same alerts every time):

- ``limit`` (count N, seconds S): the episode opens on the first match and
  is emitted at most N times per S seconds;
- ``threshold``: it opens once N matches fall within S seconds, and is
  re-emitted each further N matches, at most once per S seconds;
- ``both``: it opens once N matches fall within S seconds and is emitted
  at most once per S seconds.

With ``distinct`` (src, dst or dst_port), the threshold counts distinct
values rather than matches: 20 ports of one host within a minute is a
port scan, 20 connections to one port is not.

An episode still growing since its last emission is emitted once more
when it closes, so the last word on every episode is its final count.
Emissions of one episode share its ``id``; ``update`` numbers them.

The matches of a batch arrive grouped by key (:class:`Matches`); a key
whose episode is open absorbs its whole group in a few list operations,
and only keys still below their threshold are walked match by match, so
the cost follows the number of keys, not of connections.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sensor.alerts.values import uid_text

NS = 1_000_000_000
UID_SAMPLE = 10          # uids kept per episode
DISTINCT_CAP = 65_536    # distinct sources/destinations/ports counted per episode
PENDING_KEYS = 100_000   # keys below threshold remembered per rule (oldest forgotten)


@dataclass(frozen=True)
class Pacing:
    """A rule's threshold, in nanoseconds."""

    type: str = "limit"     # limit | threshold | both
    count: int = 1
    window_ns: int = 60 * NS
    distinct: str | None = None  # src | dst | dst_port


@dataclass
class Episode:
    rule: str
    key: tuple
    id: str
    first_ns: int
    last_ns: int
    trigger: int                      # row index of the opening record, valid during its batch
    count: int = 0
    update: int = 0
    emitted_count: int = 0            # count at the last emission
    window_start_ns: int = 0          # start of the current emission window
    window_emissions: int = 0
    uids: list[str] = field(default_factory=list)   # a sample, as the records print them
    src: set = field(default_factory=set)
    dst: set = field(default_factory=set)
    dst_port: set = field(default_factory=set)
    announced: bool = False           # its opening emission is out
    evidence: dict = field(default_factory=dict)  # filled by the alert builder at open


@dataclass
class Matches:
    """One rule's matches in one batch, grouped by track key.

    Group ``g`` holds positions ``bounds[g]:bounds[g + 1]`` of the arrays,
    in record (start time) order.  ``src``/``dst`` are address identities,
    ``dst_port`` the responder port; ``rows`` index the batch.  ``first``
    and ``last`` are each group's first and latest time.  The arrays stay
    numpy: a group that grows an open episode is absorbed in a few array
    operations, and only groups walked match by match read Python lists
    (:meth:`column`, converted once per batch).
    """

    keys: list[tuple]
    bounds: list[int]
    rows: np.ndarray
    times: np.ndarray
    uids: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    dst_port: np.ndarray
    first: list[int] = field(init=False)
    last: list[int] = field(init=False)
    _lists: dict[str, list] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        starts = np.asarray(self.bounds[:-1], dtype=np.intp)
        self.first = self.times[starts].tolist()
        self.last = np.maximum.reduceat(self.times, starts).tolist() if len(starts) else []

    @classmethod
    def of(cls, keys: list[tuple], bounds: list[int], rows: np.ndarray, ts: np.ndarray, uids: np.ndarray,
           src: np.ndarray, dst: np.ndarray, dst_port: np.ndarray) -> "Matches":
        return cls(keys, bounds, rows, ts[rows], uids[rows], src[rows], dst[rows], dst_port[rows])

    def column(self, name: str) -> list:
        """A column as a Python list, for the match-by-match walk."""
        if name not in self._lists:
            self._lists[name] = getattr(self, name).tolist()
        return self._lists[name]


#: called with (episode, reason) where reason is "open", "update" or "close"
Emit = Callable[[Episode, str], None]


class RuleEpisodes:
    """The episodes of one rule: threshold state per track key."""

    def __init__(self, rule: str, pacing: Pacing, idle_ns: int, sensor: str, emit: Emit) -> None:
        self.rule = rule
        self.pacing = pacing
        self.idle_ns = max(idle_ns, pacing.window_ns)
        self.sensor = sensor
        self.emit = emit
        self.open: dict[tuple, Episode] = {}
        # below threshold: key -> recent match times, or value -> last time (distinct)
        self.pending: OrderedDict[tuple, list | dict] = OrderedDict()

    def observe(self, m: Matches) -> None:
        for g, key in enumerate(m.keys):
            start, end = m.bounds[g], m.bounds[g + 1]
            episode = self.open.get(key)
            if episode is not None and m.first[g] - episode.last_ns > self.idle_ns:
                self._close(key)
                episode = None
            if episode is not None and m.last[g] - m.first[g] <= self.idle_ns:
                self._grow(episode, m, start, end, m.last[g])
            else:
                self._walk(key, m, start, end)

    def _walk(self, key: tuple, m: Matches, start: int, end: int) -> None:
        """Match by match: a key below its threshold, or an idle gap inside the group."""
        times = m.column("times")
        i = start
        while i < end:
            episode = self.open.get(key)
            if episode is not None:
                if times[i] - episode.last_ns > self.idle_ns:
                    self._close(key)
                    continue
                stop = i + 1
                while stop < end and times[stop] - times[stop - 1] <= self.idle_ns:
                    stop += 1
                self._grow(episode, m, i, stop, max(times[i:stop]))
                i = stop
                continue
            opened = self._reached(key, m, i, end)
            if opened is None:
                return
            self.open[key] = self._new(key, int(m.rows[opened]), times[opened])
            i = opened

    def _reached(self, key: tuple, m: Matches, start: int, end: int) -> int | None:
        """Position of the match that reaches the threshold (its state is then
        dropped), or None with the state remembered for the next batch."""
        p = self.pacing
        if p.type == "limit" and not p.distinct:
            self.pending.pop(key, None)
            return start
        state = self.pending.pop(key, None)
        window = p.window_ns
        times = m.column("times")
        if p.distinct:
            seen: dict = state if state is not None else {}
            values = m.column(p.distinct)
            if len(seen) + end - start < p.count:   # cannot reach it: remember, without the walk
                seen.update(zip(values[start:end], times[start:end]))
            else:
                for i in range(start, end):
                    t = times[i]
                    seen[values[i]] = t
                    if len(seen) >= p.count:
                        seen = {v: s for v, s in seen.items() if t - s <= window}
                        if len(seen) >= p.count:
                            return i
        else:
            seen = state if state is not None else []
            need = p.count
            if len(seen) + end - start < need:
                seen.extend(times[start:end])
            else:
                for i in range(start, end):
                    t = times[i]
                    seen.append(t)
                    if len(seen) >= need and t - seen[-need] <= window:
                        return i
            seen = seen[-(need - 1):] if need > 1 else []
        self.pending[key] = seen
        if len(self.pending) > PENDING_KEYS:
            self.pending.popitem(last=False)
        return None

    def _new(self, key: tuple, row: int, ts: int) -> Episode:
        digest = hashlib.sha256(f"{self.sensor}|{self.rule}|{key}|{ts}".encode()).hexdigest()[:20]
        return Episode(self.rule, key, f"a-{digest}", ts, ts, row, window_start_ns=ts)

    def _grow(self, episode: Episode, m: Matches, start: int, end: int, last: int) -> None:
        episode.count += end - start
        episode.last_ns = max(episode.last_ns, last)
        room = UID_SAMPLE - len(episode.uids)
        if room > 0:
            episode.uids.extend(uid_text(u) for u in m.uids[start:min(end, start + room)].tolist())
        for seen, values in ((episode.src, m.src), (episode.dst, m.dst), (episode.dst_port, m.dst_port)):
            if len(seen) < DISTINCT_CAP:
                seen.update(values[start:end].tolist())
        if not episode.announced:
            episode.announced = True
            self._emit(episode, "open")
        elif self._due(episode):
            self._emit(episode, "update")

    def _due(self, episode: Episode) -> bool:
        p = self.pacing
        if episode.last_ns - episode.window_start_ns >= p.window_ns:
            episode.window_start_ns, episode.window_emissions = episode.last_ns, 0
        room = p.count if p.type == "limit" else 1
        if episode.window_emissions >= room or episode.count == episode.emitted_count:
            return False
        return p.type != "threshold" or episode.count - episode.emitted_count >= p.count

    def _emit(self, episode: Episode, reason: str) -> None:
        self.emit(episode, reason)
        episode.emitted_count = episode.count
        episode.window_emissions += 1
        episode.update += 1

    def _close(self, key) -> None:
        episode = self.open.pop(key)
        if episode.count != episode.emitted_count:
            self._emit(episode, "close")

    def expire(self, now_ns: int) -> None:
        """Close the episodes idle for longer than ``idle`` at capture time ``now_ns``."""
        for key in [k for k, e in self.open.items() if now_ns - e.last_ns > self.idle_ns]:
            self._close(key)
        window = self.pacing.window_ns
        while self.pending:
            state = next(iter(self.pending.values()))
            latest = max(state.values()) if isinstance(state, dict) else (state[-1] if state else None)
            if latest is not None and now_ns - latest <= window:
                break
            self.pending.popitem(last=False)

    def finish(self) -> None:
        for key in list(self.open):
            self._close(key)
