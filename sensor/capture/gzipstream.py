"""A gzip reader that keeps everything before damage.

``gzip.GzipFile.readinto`` raises on a truncated or corrupt stream and
drops what it had decompressed in that call; an incident responder's
half-copied ``capture.pcap.gz`` would lose its last megabytes.  This
stream decompresses incrementally, hands out every byte it could decode,
and records what went wrong in :attr:`problem`.  Concatenated gzip
members are read one after another, as gzip(1) does.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
READ_BYTES = 1 << 20
OUT_BYTES = 1 << 20  # bounded output per call: a compression bomb cannot balloon memory


class GzipStream:
    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(wbits=31)
        self._out = b""
        self._out_pos = 0
        self._raw_eof = False
        self._done = False
        self.problem: str | None = None

    def readinto(self, view: memoryview) -> int:
        while self._out_pos == len(self._out):
            if self._done:
                return 0
            self._out, self._out_pos = self._inflate(), 0
        n = min(len(view), len(self._out) - self._out_pos)
        view[:n] = self._out[self._out_pos : self._out_pos + n]
        self._out_pos += n
        return n

    def read(self, n: int) -> bytes:
        buf = bytearray(n)
        got = 0
        while got < n:
            k = self.readinto(memoryview(buf)[got:])
            if not k:
                break
            got += k
        return bytes(buf[:got])

    def _inflate(self) -> bytes:
        try:
            if self._z.unconsumed_tail:
                return self._z.decompress(self._z.unconsumed_tail, OUT_BYTES)
            if self._z.eof:
                return self._next_member()
            data = self._raw.read(READ_BYTES)
            if not data:
                self._done = True
                self.problem = "compressed stream ends before its end marker (truncated .gz)"
                return self._z.flush()
            return self._z.decompress(data, OUT_BYTES)
        except zlib.error as exc:
            self._done = True
            self.problem = f"corrupt compressed data ({exc})"
            return b""

    def _next_member(self) -> bytes:
        rest = self._z.unused_data + (b"" if len(self._z.unused_data) >= 2 else self._raw.read(2))
        if rest[:2] != GZIP_MAGIC:
            self._done = True
            if rest.strip(b"\0"):
                self.problem = "data after the end of the compressed stream ignored"
            return b""
        self._z = zlib.decompressobj(wbits=31)
        return self._z.decompress(rest, OUT_BYTES)

    def close(self) -> None:
        self._raw.close()
