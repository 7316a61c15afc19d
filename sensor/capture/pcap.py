"""Classic libpcap files: both byte orders, micro- and nanosecond
timestamps, and the Kuznetzov variant with 24-byte record headers."""

from __future__ import annotations

import struct

import numpy as np

from sensor import _fastpath
from sensor.capture.base import CaptureReader, _Walk, host_swapped

# magic as read little-endian -> (file is little-endian, nanoseconds, record header bytes)
MAGICS = {
    0xA1B2C3D4: (True, False, 16),
    0xD4C3B2A1: (False, False, 16),
    0xA1B23C4D: (True, True, 16),
    0x4D3CB2A1: (False, True, 16),
    0xA1B2CD34: (True, False, 24),
    0x34CDB2A1: (False, False, 24),
}
GLOBAL_HEADER = 24


class PcapReader(CaptureReader):
    def _start(self, buf: memoryview) -> int:
        if len(buf) < GLOBAL_HEADER:
            self._report(0, "truncated", f"capture ends inside the {GLOBAL_HEADER}-byte file header")
            return -1
        (magic,) = struct.unpack_from("<I", buf, 0)
        little, self._nsec, self._rec_hdr = MAGICS[magic]
        self._order = "<" if little else ">"
        self._swapped = host_swapped(little)
        _, _, _, _, snaplen, linktype = struct.unpack_from(self._order + "HHiIII", buf, 4)
        # snaplen 0 (and the odd writer's values above libpcap's maximum) mean "no limit"
        self.snaplen = snaplen if 0 < snaplen <= _fastpath.MAX_CAPLEN else 0
        self.linktype = linktype & 0xFFFF
        return GLOBAL_HEADER

    def _walk(self, buf: memoryview, pos: int, rows: np.ndarray) -> _Walk:
        n, pos, status, damage, self._next_frame, self._last_ts = _fastpath.walk_pcap(
            buf, pos, self._swapped, self._nsec, self._rec_hdr, self.snaplen, self.linktype,
            rows, self._next_frame, self._last_ts,
        )
        return _Walk(n, pos, status, damage)

    def _resync(self, buf: memoryview, start: int) -> tuple[int, bool]:
        return _fastpath.resync_pcap(
            buf, start, self._swapped, self._nsec, self._rec_hdr, self.snaplen, self._last_ts, self._eof
        )

    def _damage_detail(self, code: int, buf: memoryview, pos: int) -> tuple[str, str]:
        name, text = super()._damage_detail(code, buf, pos)
        (caplen,) = struct.unpack_from(self._order + "I", buf, pos + 8)
        return name, text.format(caplen=caplen, snaplen=self.snaplen)
