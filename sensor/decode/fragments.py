"""IP fragment reassembly and the KDD ``wrong_fragment`` count.

Fragments are rare in normal traffic and common only in the attacks KDD
names (teardrop, ping of death), so this stage loops in Python over the
fragment rows of a batch only; every other row passes untouched.

A fragment is *wrong* (kdd-features.md section 1.4 and feature 8) when it
overlaps data already received (teardrop), would carry the datagram past
65,535 bytes (ping of death), is a non-final fragment whose length is not
a multiple of 8, is empty, has a bad IPv4 header checksum, or disagrees
with the datagram's end.  Each fragment counts at most once.  A datagram
that never completes is still delivered, when it times out, to the flow
given by its addresses and protocol (and ports when its first fragment
arrived), with each of its fragments counted as wrong.  A fragment of a
datagram already reassembled (a late duplicate) overlaps it: it becomes a
zero-length packet of that datagram's flow, one wrong fragment.
"""

from __future__ import annotations

import heapq
import itertools
import struct
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from sensor import _fastpath
from sensor.capture import PacketBatch
from sensor.rows import STATUS, empty_packets

FRAGMENT = STATUS["fragment"]
ABSORBED = STATUS["absorbed"]
OK = STATUS["ok"]
LINKTYPE_RAW = 101
MAX_DATAGRAM = 65535
HEAD_DATA = 64  # bytes of the datagram kept: enough for any transport header


@dataclass(frozen=True)
class FragmentTimeouts:
    timeout_ns: int = 30_000_000_000   # Linux ipfrag_time
    max_datagrams: int = 65536


@dataclass
class _Datagram:
    first_ts: int
    last_ts: int = 0
    last_frame: int = 0
    pieces: list[tuple[int, int]] = field(default_factory=list)  # merged [start, end)
    total_end: int | None = None
    head: bytes | None = None   # IP header + leading data of the first fragment
    hdr_len: int = 0
    wrong: int = 0
    fragments: int = 0
    seq: int = 0                # arrival order, to break first_ts ties when evicting

    def max_end(self) -> int:
        return self.pieces[-1][1] if self.pieces else 0

    def overlaps(self, start: int, end: int) -> bool:
        return any(s < end and start < e for s, e in self.pieces)

    def add(self, start: int, end: int) -> None:
        merged = []
        for s, e in sorted(self.pieces + [(start, end)]):
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        self.pieces = merged

    def complete(self) -> bool:
        if self.total_end is None or self.head is None:
            return False
        return len(self.pieces) == 1 and self.pieces[0] == (0, max(self.total_end, self.max_end()))


class FragmentReassembler:
    """Turns fragment rows into one datagram row each, counting wrong fragments."""

    def __init__(self, timeouts: FragmentTimeouts = FragmentTimeouts()) -> None:
        self.timeouts = timeouts
        self._pending: dict[tuple, _Datagram] = {}
        # (first_ts, seq, key) of pending datagrams, oldest first; entries of
        # datagrams since finished are skipped when popped, and pruned in bulk
        self._oldest: list[tuple[int, int, tuple]] = []
        self._arrivals = itertools.count()
        self._given_up: list[np.ndarray] = []
        # recently reassembled datagrams: key -> (time, their packet row)
        self._done: OrderedDict[tuple, tuple[int, np.ndarray]] = OrderedDict()
        self.datagrams_reassembled = 0
        self.datagrams_incomplete = 0

    def process(self, batch: PacketBatch) -> np.ndarray:
        """Reassemble the batch's fragments in place.

        The row of the fragment that completes a datagram becomes the
        datagram; the other fragment rows are marked absorbed.  Returns
        rows for datagrams given up on (timed out or evicted), older than
        this batch, to be tracked before it.
        """
        rows = batch.rows
        for i in np.flatnonzero(rows["status"] == FRAGMENT):
            self._fragment(batch, rows, int(i))
        if len(rows):
            self.expire(int(rows["ts"][-1]))
        return self._take_given_up()

    def expire(self, now: int) -> None:
        """Give up on datagrams whose first fragment is older than the timeout,
        and forget reassembled ones as old."""
        for key in [k for k, d in self._pending.items() if now - d.first_ts >= self.timeouts.timeout_ns]:
            self._give_up(key)
        while self._done and now - next(iter(self._done.values()))[0] >= self.timeouts.timeout_ns:
            self._done.popitem(last=False)

    def _remember(self, key: tuple, ts: int, row: np.ndarray) -> None:
        self._done[key] = (ts, row)
        if len(self._done) > self.timeouts.max_datagrams:
            self._done.popitem(last=False)

    def flush(self) -> np.ndarray:
        """Give up on every pending datagram (end of input)."""
        for key in list(self._pending):
            self._give_up(key)
        return self._take_given_up()

    # ---------------------------------------------------------------

    def _take_given_up(self) -> np.ndarray:
        out = np.concatenate(self._given_up) if self._given_up else empty_packets(0)
        self._given_up = []
        return out

    def _track_age(self, key: tuple, d: _Datagram) -> None:
        heapq.heappush(self._oldest, (d.first_ts, d.seq, key))
        if len(self._oldest) > 2 * len(self._pending) + 1024:  # mostly finished datagrams: rebuild
            self._oldest = [(p.first_ts, p.seq, k) for k, p in self._pending.items()]
            heapq.heapify(self._oldest)

    def _pop_oldest(self) -> tuple:
        """The pending datagram with the earliest first fragment (the earlier
        arrival on a tie): the one a full table gives up on."""
        while True:
            _, seq, key = heapq.heappop(self._oldest)
            d = self._pending.get(key)
            if d is not None and d.seq == seq:
                return key

    def _give_up(self, key: tuple) -> None:
        d = self._pending.pop(key)
        self.datagrams_incomplete += 1
        self._given_up.append(_datagram_row(key, d, empty_packets(1)[0], given_up=True))

    def _fragment(self, batch: PacketBatch, rows: np.ndarray, i: int) -> None:
        r = rows[i]
        key = (int(r["ip_ver"]), int(r["src_hi"]), int(r["src_lo"]), int(r["dst_hi"]),
               int(r["dst_lo"]), int(r["proto"]), int(r["frag_id"]))
        d = self._pending.get(key)
        if d is None and key in self._done:
            rows[i] = _late_duplicate(self._done[key][1], r)
            return
        if d is None:
            if len(self._pending) >= self.timeouts.max_datagrams:
                self._give_up(self._pop_oldest())
            d = self._pending[key] = _Datagram(first_ts=int(r["ts"]), seq=next(self._arrivals))
            self._track_age(key, d)
        start = int(r["frag_off"])
        end = start + int(r["l4_len"])
        more = bool(r["frag_more"])
        d.fragments += 1
        d.last_ts = max(d.last_ts, int(r["ts"]))
        d.last_frame = int(r["frame"])
        d.wrong += _is_wrong(d, r, start, end, more)
        if not more and d.total_end is None:
            d.total_end = end
        if start == 0 and d.head is None:
            d.hdr_len = int(r["l3_hdr_len"])
            frame = int(r["frame_off"])
            l3 = frame + int(r["l3_off"])
            data_at = frame + int(r["l4_off"])
            captured_end = frame + int(r["caplen"])
            d.head = bytes(batch.buffer[l3 : l3 + d.hdr_len]) + bytes(
                batch.buffer[data_at : min(data_at + HEAD_DATA, captured_end)]
            )
        if end > start:
            d.add(start, end)
        if d.complete():
            del self._pending[key]
            self.datagrams_reassembled += 1
            done = _datagram_row(key, d, r, given_up=False)
            rows[i] = done[0]
            self._remember(key, d.last_ts, done)
        else:
            rows["status"][i] = ABSORBED


def _is_wrong(d: _Datagram, r: np.void, start: int, end: int, more: bool) -> int:
    """Whether one fragment is malformed, judged against what came before it."""
    size_limit = MAX_DATAGRAM - int(r["l3_hdr_len"]) if r["ip_ver"] == 4 else MAX_DATAGRAM
    return int(
        bool(r["ip_csum_bad"])
        or end == start
        or (more and (end - start) % 8 != 0)
        or end > size_limit
        or d.overlaps(start, end)
        or (not more and d.total_end is not None and d.total_end != end)
        or (not more and end < d.max_end())
        or (more and d.total_end is not None and end > d.total_end)
    )


def _datagram_row(key: tuple, d: _Datagram, template: np.void, given_up: bool) -> np.ndarray:
    """The datagram as one packet row, its transport header decoded from the first fragment.

    Capture columns (time, frame) are those of the datagram's last fragment.
    """
    ip_ver, src_hi, src_lo, dst_hi, dst_lo, proto, _ = key
    if given_up:
        size = sum(e - s for s, e in d.pieces)
    else:
        size = max(d.total_end or 0, d.max_end())
    out = empty_packets(1)
    if d.head is not None:
        buf = _synthetic_packet(ip_ver, d, proto, src_hi, src_lo, dst_hi, dst_lo)
        out["caplen"] = out["wirelen"] = len(buf)
        out["linktype"] = LINKTYPE_RAW
        _fastpath.decode(buf, out)
        header = _transport_header_len(out[0])
        ip_len = d.hdr_len + size
    else:  # no first fragment: addresses and protocol only
        out["status"] = OK if proto in (1, 6, 17, 58) else STATUS["other_ip_protocol"]
        out["ip_ver"], out["proto"] = ip_ver, proto
        out["src_hi"], out["src_lo"], out["dst_hi"], out["dst_lo"] = src_hi, src_lo, dst_hi, dst_lo
        header = 0
        ip_len = size + (20 if ip_ver == 4 else 40)
    result = np.array([template], dtype=out.dtype)
    for name in ("status", "ip_ver", "proto", "src_hi", "src_lo", "dst_hi", "dst_lo", "sport",
                 "dport", "seq", "ack", "tcp_flags", "window", "urg_ptr"):
        result[name] = out[name]
    result["ip_len"] = ip_len
    result["l4_len"] = size if proto in (1, 58) else max(size - header, 0)
    result["l4_off"] = result["caplen"]  # the payload is not in the batch buffer
    result["wrong_frag"] = d.wrong + (d.fragments if given_up else 0)
    result["frag_off"] = 0
    result["frag_more"] = 0
    result["ts"] = d.last_ts
    result["frame"] = d.last_frame
    return result


def _late_duplicate(done: np.ndarray, fragment: np.void) -> np.void:
    """A fragment of an already reassembled datagram: an empty packet of its flow."""
    row = done.copy()
    row["ts"], row["frame"] = fragment["ts"], fragment["frame"]
    row["ip_len"] = fragment["ip_len"]
    row["l4_len"] = 0
    row["tcp_flags"] = 0
    row["wrong_frag"] = 1
    return row[0]


def _transport_header_len(row: np.void) -> int:
    if row["status"] != OK:
        return 0
    return int(row["l4_off"]) - int(row["l3_off"]) - int(row["l3_hdr_len"])


def _synthetic_packet(ip_ver: int, d: _Datagram, proto: int, src_hi: int, src_lo: int,
                      dst_hi: int, dst_lo: int) -> bytes:
    """An unfragmented IP packet holding the datagram's first bytes, to decode its header."""
    data = d.head[d.hdr_len :]
    if ip_ver == 4:
        header = bytearray(d.head[: d.hdr_len])
        struct.pack_into("!H", header, 2, len(header) + len(data))  # total length
        struct.pack_into("!H", header, 6, 0)  # no more-fragments flag, offset 0
        return bytes(header) + data
    fixed = struct.pack("!IHBB", 6 << 28, len(data), proto, 64)
    return fixed + struct.pack("!QQQQ", src_hi, src_lo, dst_hi, dst_lo) + data
