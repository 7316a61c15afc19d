"""pcapng files: sections (either byte order), interfaces with their own
link types and timestamp resolutions, EPB/SPB/OPB packets.  Unknown
blocks are skipped."""

from __future__ import annotations

import struct

import numpy as np

from sensor import _fastpath
from sensor.capture.base import CaptureReader, _Walk, host_swapped
from sensor.rows import IFACE_DTYPE

SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END, OPT_TSRESOL, OPT_FCSLEN, OPT_TSOFFSET = 0, 9, 13, 14
DEFAULT_TSRESOL = 6  # microseconds


class PcapngReader(CaptureReader):
    def _start(self, buf: memoryview) -> int:
        self._order = "<"
        self._ifaces = np.zeros(0, dtype=IFACE_DTYPE)
        return 0  # the walker hands the first SHB back to _control_block

    def _walk(self, buf: memoryview, pos: int, rows: np.ndarray) -> _Walk:
        n, pos, status, damage, self._next_frame, self._last_ts = _fastpath.walk_pcapng(
            buf, pos, self._swapped, self._ifaces, rows, self._next_frame, self._last_ts
        )
        return _Walk(n, pos, status, damage)

    def _resync(self, buf: memoryview, start: int) -> tuple[int, bool]:
        return _fastpath.resync_pcapng(buf, start, self._swapped, self._eof)

    def _damage_detail(self, code: int, buf: memoryview, pos: int) -> tuple[str, str]:
        name, text = super()._damage_detail(code, buf, pos)
        (length,) = struct.unpack_from(self._order + "I", buf, pos + 4) if len(buf) >= pos + 8 else (0,)
        return name, text.format(caplen=length, snaplen=0)

    def _control_block(self, buf: memoryview, pos: int) -> int | None:
        if len(buf) - pos < 12:
            return None
        (block_type,) = struct.unpack_from(self._order + "I", buf, pos)
        if block_type == SHB_TYPE:
            return self._section_header(buf, pos)
        (total,) = struct.unpack_from(self._order + "I", buf, pos + 4)
        self._interface(bytes(buf[pos + 8 : pos + total - 4]))
        return pos + total

    def _section_header(self, buf: memoryview, pos: int) -> int | None:
        (bom,) = struct.unpack_from("<I", buf, pos + 8)
        if bom == BYTE_ORDER_MAGIC:
            self._order = "<"
        elif bom == struct.unpack("<I", struct.pack(">I", BYTE_ORDER_MAGIC))[0]:
            self._order = ">"
        else:
            self._report(pos, "bad_section_header", "section header has no valid byte-order magic")
            return self._skip_to_next_block(buf, pos)
        self._swapped = host_swapped(self._order == "<")
        (total,) = struct.unpack_from(self._order + "I", buf, pos + 4)
        if total < 28 or total % 4 or total > (16 << 20):
            self._report(pos, "block_length", f"section header length {total} is impossible")
            return self._skip_to_next_block(buf, pos)
        if len(buf) - pos < total:
            return None
        self._ifaces = np.zeros(0, dtype=IFACE_DTYPE)  # interfaces are per section
        return pos + total

    def _skip_to_next_block(self, buf: memoryview, pos: int) -> int | None:
        found, need_more = self._resync(buf, pos + 4)
        if found < 0 or need_more:
            return len(buf) if found < 0 else None
        return found

    def _interface(self, body: bytes) -> None:
        linktype, _, snaplen = struct.unpack_from(self._order + "HHI", body, 0)
        tsresol, tsoffset, fcslen = DEFAULT_TSRESOL, 0, 0
        for code, value in self._options(body[8:]):
            if code == OPT_TSRESOL and value:
                r = value[0]
                tsresol = -(r & 0x7F) if r & 0x80 else r
            elif code == OPT_TSOFFSET and len(value) >= 8:
                (tsoffset,) = struct.unpack_from(self._order + "q", value)
            elif code == OPT_FCSLEN and value:
                fcslen = value[0]
        row = np.zeros(1, dtype=IFACE_DTYPE)
        row["linktype"] = linktype
        row["snaplen"] = snaplen if snaplen <= _fastpath.MAX_CAPLEN else 0
        row["tsresol"] = tsresol
        row["fcs_len"] = fcslen
        row["tsoffset_ns"] = tsoffset * 1_000_000_000
        self._ifaces = np.concatenate([self._ifaces, row])

    def _options(self, data: bytes):
        pos = 0
        while pos + 4 <= len(data):
            code, length = struct.unpack_from(self._order + "HH", data, pos)
            if code == OPT_END:
                return
            value = data[pos + 4 : pos + 4 + length]
            yield code, value
            pos += 4 + ((length + 3) & ~3)
