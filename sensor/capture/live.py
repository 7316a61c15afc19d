"""Live capture: packet batches from network interfaces.

Each interface gets an AF_PACKET socket with a memory-mapped TPACKET_V3
ring (``_native/ring.c``).  Why not libpcap: its ring is the same kernel
ring, but its API hands frames to a per-packet callback, and a callback
per packet is the loop this design keeps out of Python.  With the ring
drained a block at a time into pcap-format records, a live batch goes
through the same record walker, decoder and pipeline as a replayed file.

The capture filter is compiled by libpcap's own compiler (``pcap_compile``
through ctypes), so it means exactly what it means to tcpdump, and is
attached in the kernel before the socket is bound: nothing unfiltered is
ever read.  Kernel drop counters are read with ``PACKET_STATISTICS``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import select
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

from sensor import _fastpath
from sensor.capture.base import BATCH_ROWS, PacketBatch
from sensor.rows import packet_rows_for_walker

LINKTYPE_ETHERNET = 1


class CaptureError(OSError):
    """An interface cannot be captured on; the message says which and why."""


@dataclass(frozen=True)
class RingSize:
    block_bytes: int = 1 << 22     # 4 MiB blocks
    blocks: int = 16               # 64 MiB of ring per interface: about a second at 1 Gbit/s
    block_timeout_ms: int = 100    # a part-filled block is handed over after this


@dataclass
class InterfaceStats:
    packets: int = 0      # seen by the kernel's socket (after the filter)
    drops: int = 0        # dropped by the kernel: the ring was full
    freezes: int = 0      # times the ring was full


class _BPFProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


def compile_filter(expression: str, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 65535) -> bytes:
    """A tcpdump-syntax filter compiled by libpcap to classic BPF (8 bytes
    per instruction, as the kernel's ``struct sock_filter``)."""
    name = ctypes.util.find_library("pcap")
    if not name:
        raise CaptureError("a capture filter needs libpcap (Debian: libpcap0.8), which is not installed")
    pcap = ctypes.CDLL(name)
    pcap.pcap_open_dead.restype = ctypes.c_void_p
    pcap.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    pcap.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BPFProgram), ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32]
    pcap.pcap_geterr.restype = ctypes.c_char_p
    pcap.pcap_geterr.argtypes = [ctypes.c_void_p]
    pcap.pcap_freecode.argtypes = [ctypes.POINTER(_BPFProgram)]
    pcap.pcap_close.argtypes = [ctypes.c_void_p]
    handle = pcap.pcap_open_dead(linktype, snaplen)
    if not handle:
        raise CaptureError("libpcap could not open a compiler handle")
    program = _BPFProgram()
    try:
        netmask_unknown = 0xFFFFFFFF
        if pcap.pcap_compile(handle, ctypes.byref(program), expression.encode(), 1, netmask_unknown) < 0:
            reason = pcap.pcap_geterr(handle).decode(errors="replace")
            raise CaptureError(f"capture filter {expression!r}: {reason}")
        code = ctypes.string_at(program.bf_insns, program.bf_len * 8)
        pcap.pcap_freecode(ctypes.byref(program))
        return code
    finally:
        pcap.pcap_close(handle)


class LiveCapture:
    """Batches from one or more interfaces (a ``PacketBatch`` source, as a
    capture file is, plus kernel counters)."""

    def __init__(self, interfaces: Sequence[str], snaplen: int = 0, promiscuous: bool = True,
                 bpf_filter: str = "", ring: RingSize = RingSize()) -> None:
        self.interfaces = list(dict.fromkeys(interfaces))
        self.ring = ring
        self.rings: dict[str, _fastpath.Ring] = {}
        code = compile_filter(bpf_filter, snaplen=snaplen or 65535) if bpf_filter else b""
        try:
            for name in self.interfaces:
                try:
                    self.rings[name] = _fastpath.Ring(name, snaplen, promiscuous, code, ring.block_bytes,
                                                      ring.blocks, ring.block_timeout_ms)
                except OSError as exc:
                    raise CaptureError(f"interface {name}: {exc}") from None
        except BaseException:
            self.close()
            raise
        self._poll = select.poll()
        self._by_fd = {}
        for name, r in self.rings.items():
            self._poll.register(r.fileno(), select.POLLIN)
            self._by_fd[r.fileno()] = name
        size = 2 * ring.block_bytes
        self._buffers = [bytearray(size), bytearray(size)]
        self._rows = [packet_rows_for_walker(BATCH_ROWS), packet_rows_for_walker(BATCH_ROWS)]
        self._frames = dict.fromkeys(self.interfaces, 0)
        self._last_ts = dict.fromkeys(self.interfaces, 0)

    def batches(self, timeout_s: float) -> Iterator[tuple[str, PacketBatch]]:
        """(interface, batch) for every ready block, waiting up to timeout_s
        for the first; nothing when the wait runs out."""
        for fd, _ in self._poll.poll(int(timeout_s * 1000)):
            name = self._by_fd[fd]
            ring = self.rings[name]
            while True:
                buf = self._buffers[0]
                self._buffers.reverse()
                used, _ = ring.drain(buf)
                if not used:
                    break
                yield from self._walk(name, ring.linktype, memoryview(buf)[:used])

    def _walk(self, name: str, linktype: int, view: memoryview) -> Iterator[tuple[str, PacketBatch]]:
        pos = 0
        while pos < len(view):
            rows = self._rows[0]
            self._rows.reverse()
            n, pos, status, _, self._frames[name], self._last_ts[name] = _fastpath.walk_pcap(
                view, pos, False, True, 16, 0, linktype, rows, self._frames[name], self._last_ts[name])
            if n:
                yield name, PacketBatch(view, rows[:n], 0)
            if status != _fastpath.WALK_FULL:
                break

    def last_batches(self) -> Iterator[tuple[str, PacketBatch]]:
        """What is left in the rings when capture stops: the kernel hands
        over its part-filled blocks once their timeout passes."""
        time.sleep(self.ring.block_timeout_ms / 1000 + 0.05)
        yield from self.batches(0)

    def stats(self) -> dict[str, InterfaceStats]:
        """Kernel counters per interface since the capture opened."""
        return {name: InterfaceStats(*ring.stats()) for name, ring in self.rings.items()}

    def close(self) -> None:
        for ring in self.rings.values():
            ring.close()
