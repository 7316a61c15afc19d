"""Source stage: capture files in, packet batches out.

:func:`open_capture` detects the format from the magic number (never the
file name): classic pcap, pcapng, either gzip-compressed or not.
"""

from __future__ import annotations

import struct
from pathlib import Path

from sensor.capture.base import CaptureReader, Damage, NotACaptureError, PacketBatch
from sensor.capture.gzipstream import GZIP_MAGIC, GzipStream
from sensor.capture.pcap import MAGICS as PCAP_MAGICS
from sensor.capture.pcap import PcapReader
from sensor.capture.pcapng import SHB_TYPE, PcapngReader

__all__ = ["CaptureReader", "Damage", "NotACaptureError", "PacketBatch", "open_capture"]



def open_capture(path: str | Path) -> CaptureReader:
    """Open a capture for streaming; raises NotACaptureError for anything else."""
    path = str(path)
    raw = open(path, "rb")
    try:
        stream, compressed = raw, False
        if raw.peek(2)[:2] == GZIP_MAGIC:
            stream, compressed = GzipStream(raw), True
        head = stream.read(4)
        if compressed and len(head) < 4 and stream.problem:
            raise NotACaptureError(f"{path}: unreadable gzip data: {stream.problem}")
        if len(head) < 4:
            raise NotACaptureError(f"{path}: too short to be a capture ({len(head)} bytes)")
        (magic,) = struct.unpack("<I", head)
        if magic in PCAP_MAGICS:
            return PcapReader(stream, path, compressed, head, raw)
        if magic == SHB_TYPE:
            return PcapngReader(stream, path, compressed, head, raw)
        raise NotACaptureError(f"{path}: not a pcap or pcapng capture (magic 0x{magic:08x})")
    except BaseException:
        raw.close()
        raise
