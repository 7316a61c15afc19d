"""The source stage's contract and the streaming loop shared by all formats.

A reader turns a byte stream into :class:`PacketBatch` es: one chunk of
the file plus a packet-row array whose capture columns (time, frame
number, offset, lengths, link type) are filled.  It never holds more than
a chunk and one pending record in memory.  Damage (a truncated record, an
impossible length, a broken block) is reported as :class:`Damage` with its
byte offset, then the reader resynchronises on the next plausible record
so every good record is still delivered.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

from sensor import _fastpath
from sensor.rows import packet_rows_for_walker

CHUNK_BYTES = 4 << 20
HEADROOM = 1 << 20  # room for the unread tail of a chunk, so buffers are rarely regrown
BATCH_ROWS = 65536

_DAMAGE_TEXT = {
    "caplen_over_snaplen": "record length {caplen} exceeds the snapshot length {snaplen}",
    "caplen_over_max": "record length {caplen} exceeds the 256 KiB maximum",
    "block_length": "block length {caplen} is impossible (below 12, unaligned or over 16 MiB)",
    "block_trailer": "block's trailing length does not match its leading length",
    "block_body": "packet fields do not fit inside their block",
    "unknown_interface": "packet refers to an interface that was never described",
}


class NotACaptureError(ValueError):
    """The file is not a packet capture in any format we read."""


@dataclass(frozen=True)
class Damage:
    """A damaged stretch of a capture: where, what, and how much was skipped."""

    path: str
    offset: int
    reason: str
    detail: str
    skipped: int = 0
    resumed: bool = False
    compressed: bool = False

    def message(self) -> str:
        where = "decompressed offset" if self.compressed else "offset"
        if self.resumed:
            tail = f"; skipped {self.skipped} bytes to the next good record"
        elif self.skipped:
            tail = f"; no readable record in the remaining {self.skipped} bytes"
        else:
            tail = ""
        return f"{self.path}: {where} {self.offset}: {self.detail}{tail}"


@dataclass
class PacketBatch:
    """One chunk of capture bytes and the packets found in it.

    The buffer is reused for a later chunk: it is valid until the batch
    after the next one is read.  Copy what must outlive that.
    """

    buffer: memoryview
    rows: np.ndarray
    base_offset: int

    def frame_offsets(self, index: np.ndarray) -> np.ndarray:
        """File (stream) offsets of the given rows' frames, for error messages."""
        return self.base_offset + self.rows["frame_off"][index].astype(np.int64)


@dataclass
class _Walk:
    """Result of one call into a compiled walker."""

    n: int
    pos: int
    status: int
    damage: int


class CaptureReader(ABC):
    """Streams a capture as packet batches; subclasses know one format."""

    def __init__(self, stream: BinaryIO, path: str, compressed: bool, header: bytes, raw: BinaryIO) -> None:
        self.path = path
        self.compressed = compressed
        self.damage: list[Damage] = []
        self._stream = stream
        self._raw = raw
        self._header = header
        self._swapped = False
        self._next_frame = 0
        self._last_ts = 0
        self._eof = False
        self._base = 0
        self._spare: bytearray | None = None
        self._read_at = 0

    # ---------------------------------------------------- format hooks

    @abstractmethod
    def _start(self, buf: memoryview) -> int:
        """Parse the file header; return where records start."""

    @abstractmethod
    def _walk(self, buf: memoryview, pos: int, rows: np.ndarray) -> _Walk:
        """Fill rows from records at pos."""

    @abstractmethod
    def _resync(self, buf: memoryview, start: int) -> tuple[int, bool]:
        """Next plausible record at or after start: (pos or -1, need_more)."""

    def _control_block(self, buf: memoryview, pos: int) -> int | None:
        """Parse a block the walker hands back; return the position after it,
        or None when the block is incomplete."""
        raise NotImplementedError

    def _damage_detail(self, code: int, buf: memoryview, pos: int) -> tuple[str, str]:
        name = _fastpath.DAMAGE_NAMES[code]
        return name, _DAMAGE_TEXT.get(name, name)

    # --------------------------------------------------------- stream

    def _read_into(self, view: memoryview) -> int:
        """Fill view from the stream; a read error (a corrupt gzip stream, an
        I/O error) is damage at the current offset and ends the stream."""
        got = 0
        while got < len(view):
            try:
                n = self._stream.readinto(view[got:])
            except OSError as exc:
                self._report_read_error(got, exc.strerror or str(exc))
                n = 0
            if not n:
                self._eof = True
                problem = getattr(self._stream, "problem", None)
                if problem:
                    self._report_read_error(got, problem)
                break
            got += n
        return got

    def _report_read_error(self, got: int, what: str) -> None:
        self.damage.append(
            Damage(self.path, self._read_at + got, "read_error", what, compressed=self.compressed)
        )

    def _refill(self, buf: memoryview, keep_from: int) -> memoryview:
        """Keep buf[keep_from:] and append the next chunk of the stream.

        Two buffers alternate, so the batch just yielded stays valid while
        the next one is read and no chunk is allocated (and page-faulted)
        afresh; a buffer only grows for a record bigger than its headroom.
        """
        keep = buf[keep_from:]
        self._read_at = self._base + len(buf)  # stream offset of the bytes about to be read
        need = len(keep) + CHUNK_BYTES
        spare, self._spare = self._spare, buf.obj if isinstance(buf.obj, bytearray) else None
        if spare is None or len(spare) < need:
            spare = bytearray(max(need, CHUNK_BYTES + HEADROOM))
        spare[: len(keep)] = keep
        got = self._read_into(memoryview(spare)[len(keep) : need])
        self._base += keep_from
        return memoryview(spare)[: len(keep) + got]

    def _report(self, offset: int, reason: str, detail: str, skipped: int = 0, resumed: bool = False) -> None:
        """Record damage at a position of the current buffer."""
        self.damage.append(
            Damage(self.path, self._base + offset, reason, detail, skipped, resumed, self.compressed)
        )

    # ----------------------------------------------------------- loop

    def batches(self) -> Iterator[PacketBatch]:
        """Yield packet batches until the end of the stream."""
        head = bytearray(self._header)
        buf = self._refill(memoryview(head), 0)
        self._base = 0
        pos = self._start(buf)
        if pos < 0:
            return
        row_sets = [packet_rows_for_walker(BATCH_ROWS), packet_rows_for_walker(BATCH_ROWS)]
        while True:
            rows = row_sets[0]
            row_sets.reverse()  # alternate, like the byte buffers
            walk = self._walk(buf, pos, rows)
            if walk.n:
                yield PacketBatch(buf, rows[: walk.n], self._base)
            pos = walk.pos
            if walk.status == _fastpath.WALK_FULL:
                continue
            if walk.status == _fastpath.WALK_CONTROL_BLOCK:
                after = self._control_block(buf, pos)
                if after is not None:
                    pos = after
                    continue
            if walk.status in (_fastpath.WALK_NEED_MORE, _fastpath.WALK_CONTROL_BLOCK):
                if self._eof:
                    if pos < len(buf):
                        present = len(buf) - pos
                        self._report(pos, "truncated", f"capture ends inside a record ({present} bytes of it present)")
                    return
                buf, pos = self._refill(buf, pos), 0
                continue
            reason, detail = self._damage_detail(walk.damage, buf, pos)
            resumed = self._resynchronise(buf, pos, reason, detail)
            if resumed is None:
                return
            buf, pos = resumed

    def _resynchronise(self, buf: memoryview, bad: int, reason: str, detail: str) -> tuple[memoryview, int] | None:
        """Skip a damaged record: find the next good one, reading more as needed."""
        bad_at = bad
        start = bad + 1
        while True:
            found, need_more = self._resync(buf, start)
            if need_more and not self._eof:
                buf = self._refill(buf, found)
                bad_at -= found
                start = 0
                continue
            if found < 0:
                self._report(bad_at, reason, detail, skipped=len(buf) - bad_at)
                return None
            self._report(bad_at, reason, detail, skipped=found - bad_at, resumed=True)
            return buf, found

    @property
    def position(self) -> int:
        """Bytes of the file consumed so far (compressed bytes for gzip), for progress."""
        return self._raw.tell()

    def close(self) -> None:
        self._stream.close()
        self._raw.close()


def host_swapped(little_endian_file: bool) -> bool:
    """Whether the file's byte order differs from this machine's."""
    return little_endian_file != (sys.byteorder == "little")
