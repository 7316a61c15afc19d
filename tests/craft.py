"""Crafting test traffic with scapy: conversations written to capture files.

A :class:`Conversation` plays a client and a server exchanging TCP
segments with explicit sequence numbers, so each test states exactly the
packets a connection state comes from.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from scapy.all import ICMP, IP, TCP, UDP, Ether, IPv6, Raw, wrpcap  # noqa: F401  (re-exported)

T0 = 1_700_000_000.0
CLIENT, SERVER = "10.0.0.1", "10.0.0.2"
CLIENT6, SERVER6 = "2001:db8::1", "2001:db8::2"


def eth(**fields):
    """Explicit MAC addresses: scapy would otherwise resolve them with ARP
    on the host's network while building the frame."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **fields)


def at(packet, t: float):
    """Stamp a packet with capture time T0 + t."""
    packet.time = T0 + t
    return packet


@dataclass
class Conversation:
    """TCP between client:cport and server:sport, with tracked sequence numbers."""

    cport: int = 40000
    sport: int = 80
    client: str = CLIENT
    server: str = SERVER
    cseq: int = 1000
    sseq: int = 5000
    packets: list = field(default_factory=list)
    ipv6: bool = False

    def _ip(self, src: str, dst: str):
        return IPv6(src=src, dst=dst) if self.ipv6 else IP(src=src, dst=dst)

    def c(self, flags: str, t: float, data: bytes = b"", seq: int | None = None, ack: int | None = None, **kw):
        """The client sends; its sequence number advances by the data and SYN/FIN."""
        return self._send(True, flags, t, data, seq, ack, **kw)

    def s(self, flags: str, t: float, data: bytes = b"", seq: int | None = None, ack: int | None = None, **kw):
        return self._send(False, flags, t, data, seq, ack, **kw)

    def _send(self, from_client: bool, flags: str, t: float, data: bytes, seq, ack, **kw):
        mine = self.cseq if from_client else self.sseq
        theirs = self.sseq if from_client else self.cseq
        seg = TCP(
            sport=self.cport if from_client else self.sport,
            dport=self.sport if from_client else self.cport,
            flags=flags,
            seq=mine if seq is None else seq,
            ack=(theirs if "A" in flags else 0) if ack is None else ack,
            **kw,
        )
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        pkt = eth() / self._ip(src, dst) / seg
        if data:
            pkt = pkt / Raw(data)
        at(pkt, t)
        self.packets.append(pkt)
        if seq is None:
            advance = len(data) + ("S" in flags) + ("F" in flags)
            if "R" in flags:
                advance = 0
            if from_client:
                self.cseq += advance
            else:
                self.sseq += advance
        return pkt

    def handshake(self, t: float = 0.0, gap: float = 0.01) -> float:
        self.c("S", t)
        self.s("SA", t + gap)
        self.c("A", t + 2 * gap)
        return t + 2 * gap


def write(path: Path, packets: list) -> Path:
    wrpcap(str(path), sorted(packets, key=lambda p: float(p.time)))
    return path


def replay(*paths: Path, fmt: str = "jsonl", extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``sensor replay`` as a user would; stdout holds the records."""
    return subprocess.run(
        [sys.executable, "-m", "sensor", "replay", *map(str, paths), "--format", fmt, "--no-progress", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )


def records(*paths: Path) -> list[dict]:
    """Replay and parse the JSON-lines records; the run must succeed."""
    result = replay(*paths)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]
