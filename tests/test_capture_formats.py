"""Capture formats and link types: every variant gives the same records,
and tshark agrees with our per-frame decode.

Files are written byte by byte here (struct), so each test controls the
exact header fields, byte order and timestamp resolution it exercises.
"""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import pytest
from craft import T0
from oracle import compare
from scapy.all import (
    IP, LLC, SNAP, TCP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Dot11, Dot11QoS, Ether, IPv6, Loopback,
    PPPoE, PPP, RadioTap,
)

from sensor.capture import open_capture

SYN = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="S", seq=1)
SYN6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=40000, dport=80, flags="S", seq=1)
MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def write_pcap(path: Path, linktype: int, frames: list[bytes], big_endian=False, nsec=False,
               snaplen=65535, step_ns=1_500_000_123) -> Path:
    """A classic pcap: frame i at T0 + i * step_ns."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for i, frame in enumerate(frames):
        ns = int(T0) * 1_000_000_000 + i * step_ns
        sec, frac = divmod(ns, 1_000_000_000)
        out.append(struct.pack(e + "IIII", sec, frac if nsec else frac // 1000, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))
    return path


def rows_of(path: Path):
    reader = open_capture(path)
    rows = [b.rows.copy() for b in reader.batches()]
    reader.close()
    return [r for batch in rows for r in batch], reader


def decoded(path: Path) -> list[tuple]:
    from sensor.decode import decode

    reader = open_capture(path)
    out = []
    for batch in reader.batches():
        decode(batch)
        out += [(int(r["ts"]), int(r["proto"]), int(r["sport"]), int(r["dport"]), int(r["tcp_flags"]),
                 int(r["status"])) for r in batch.rows]
    reader.close()
    return out


# ------------------------------------------------------------------ pcap files


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nsec", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path, big_endian, nsec):
    frames = [bytes(Ether(**MACS) / SYN)] * 3
    path = write_pcap(tmp_path / "x.pcap", 1, frames, big_endian=big_endian, nsec=nsec)
    rows, reader = rows_of(path)
    base = int(T0) * 1_000_000_000
    expected = [base + i * 1_500_000_123 for i in range(3)]
    if not nsec:  # microsecond files keep microseconds
        expected = [t // 1000 * 1000 for t in expected]
    assert [int(r["ts"]) for r in rows] == expected
    assert [int(r["caplen"]) for r in rows] == [len(f) for f in frames]
    assert reader.damage == []


def test_gzip_and_misleading_names(tmp_path):
    plain = write_pcap(tmp_path / "a.pcap", 1, [bytes(Ether(**MACS) / SYN)] * 2)
    packed = tmp_path / "looks-plain.pcapng"   # gzip of a classic pcap, wrongly named
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert decoded(packed) == decoded(plain) and len(decoded(plain)) == 2


def test_gzip_with_several_members(tmp_path):
    data = write_pcap(tmp_path / "a.pcap", 1, [bytes(Ether(**MACS) / SYN)] * 4).read_bytes()
    two = tmp_path / "two.gz"
    two.write_bytes(gzip.compress(data[:100]) + gzip.compress(data[100:]))
    assert len(decoded(two)) == 4


# ------------------------------------------------------------------ pcapng


def _block(e: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack(e + "II", btype, len(body) + 12) + body + struct.pack(e + "I", len(body) + 12)


def _option(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _section(e: str) -> bytes:
    return _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def _idb(e: str, linktype: int, tsresol: int | None = None, snaplen: int = 0) -> bytes:
    opts = b""
    if tsresol is not None:
        opts = _option(e, 9, bytes([tsresol])) + _option(e, 0, b"")
    return _block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts)


def _epb(e: str, iface: int, units: int, frame: bytes) -> bytes:
    return _block(e, 6, struct.pack(e + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(frame), len(frame)) + frame)


def test_pcapng_interfaces_with_their_own_link_types_and_resolutions(tmp_path):
    e = "<"
    eth = bytes(Ether(**MACS) / SYN)
    raw = bytes(SYN)
    sll = bytes(CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, proto=0x0800) / SYN)
    t_us = int(T0) * 1_000_000 + 1            # interface 0: microseconds (default)
    t_ns = int(T0) * 1_000_000_000 + 2        # interface 1: if_tsresol 9
    t_bin = int(T0) * (1 << 20) + (1 << 19)    # interface 2: if_tsresol 2^-20, +0.5 s
    data = b"".join([
        _section(e),
        _idb(e, 1),
        _idb(e, 101, tsresol=9),
        _idb(e, 113, tsresol=0x80 | 20),
        _block(e, 4, b"\0" * 8),                            # name resolution block: skipped
        _epb(e, 0, t_us, eth),
        _epb(e, 1, t_ns, raw),
        _block(e, 0x00000BAD, b"custom stuff"),             # custom block: skipped
        _epb(e, 2, t_bin, sll),
        _block(e, 3, struct.pack(e + "I", len(eth)) + eth),  # simple packet block: interface 0
        _block(e, 2, struct.pack(e + "HHIIII", 0, 0, t_us >> 32, t_us & 0xFFFFFFFF, len(eth), len(eth)) + eth),  # obsolete
        _block(e, 5, struct.pack(e + "III", 0, 0, 0)),       # statistics: skipped
    ])
    path = tmp_path / "multi.pcapng"
    path.write_bytes(data)
    rows, reader = rows_of(path)
    assert reader.damage == []
    assert [int(r["linktype"]) for r in rows] == [1, 101, 113, 1, 1]
    base = int(T0) * 1_000_000_000
    assert [int(r["ts"]) for r in rows] == [base + 1000, base + 2, base + 500_000_000, base + 500_000_000, base + 1000]
    assert [(p, s, d, st) for _, p, s, d, _, st in decoded(path)] == [(6, 40000, 80, 0)] * 5


def test_pcapng_second_section_in_the_other_byte_order(tmp_path):
    frame = bytes(Ether(**MACS) / SYN)
    units = int(T0) * 1_000_000
    data = (_section("<") + _idb("<", 1) + _epb("<", 0, units, frame)
            + _section(">") + _idb(">", 1) + _epb(">", 0, units + 7, frame))
    path = tmp_path / "two.pcapng"
    path.write_bytes(data)
    rows, reader = rows_of(path)
    assert reader.damage == []
    assert [int(r["ts"]) - units * 1000 for r in rows] == [0, 7000]


# ------------------------------------------------------------------ link types

WLAN_DATA = Dot11(type=2, subtype=0, FCfield="to_DS", addr1="02:00:00:00:00:02", addr2="02:00:00:00:00:01",
                  addr3="02:00:00:00:00:03")
WLAN_QOS = Dot11(type=2, subtype=8, FCfield="to_DS", addr1="02:00:00:00:00:02", addr2="02:00:00:00:00:01",
                 addr3="02:00:00:00:00:03") / Dot11QoS()

LINK_CASES = {
    "ethernet": (1, Ether(**MACS) / SYN),
    "vlan": (1, Ether(**MACS) / Dot1Q(vlan=10) / SYN),
    "qinq": (1, Ether(**MACS) / Dot1AD(vlan=100) / Dot1Q(vlan=10) / SYN),
    "pppoe": (1, Ether(**MACS) / PPPoE(sessionid=7) / PPP(proto=0x0021) / SYN),
    "ethernet-ipv6": (1, Ether(**MACS) / SYN6),
    "sll": (113, CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, proto=0x0800) / SYN),
    "sll2": (276, CookedLinuxV2(proto=0x86DD, ifindex=2, lladdrtype=1, pkttype=0, lladdrlen=6) / SYN6),
    "raw-12": (12, SYN),
    "raw-14": (14, SYN6),
    "raw-101": (101, SYN),
    "ipv4-228": (228, SYN),
    "ipv6-229": (229, SYN6),
    "null-af-inet": (0, Loopback(type=2) / SYN),
    "null-af-inet6-bsd": (0, Loopback(type=30) / SYN6),
    "loop": (108, struct.pack(">I", 2) + bytes(SYN)),
    "wlan": (105, WLAN_DATA / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800) / SYN),
    "wlan-qos": (105, WLAN_QOS / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800) / SYN),
    "radiotap-wlan": (127, RadioTap() / WLAN_DATA / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x86DD) / SYN6),
}


@pytest.mark.parametrize("case", sorted(LINK_CASES))
def test_link_types_decode_like_tshark(tmp_path, case):
    linktype, frame = LINK_CASES[case]
    path = write_pcap(tmp_path / f"{case}.pcap", linktype, [bytes(frame)] * 2)
    assert compare(str(path)) == []
    assert [(p, s, d, f, st) for _, p, s, d, f, st in decoded(path)] == [(6, 40000, 80, 0x02, 0)] * 2


def test_null_link_type_in_big_endian_host_order(tmp_path):
    path = write_pcap(tmp_path / "null-be.pcap", 0, [struct.pack(">I", 2) + bytes(SYN)])
    assert [st for *_, st in decoded(path)] == [0]


@pytest.mark.parametrize(
    "frame, status",
    [
        (RadioTap() / Dot11(type=0, subtype=8) / (b"\0" * 20), "wlan_skipped"),  # a beacon
        (RadioTap() / Dot11(type=2, subtype=0, FCfield="protected") / (b"\x01" * 40), "wlan_skipped"),
        (RadioTap() / Dot11(type=2, subtype=4), "wlan_skipped"),  # null data
    ],
)
def test_wlan_frames_without_clear_ip_are_counted_and_skipped(tmp_path, frame, status):
    from sensor.rows import STATUS

    path = write_pcap(tmp_path / "w.pcap", 127, [bytes(frame)])
    assert [st for *_, st in decoded(path)] == [STATUS[status]]


def test_unsupported_link_type_is_counted(tmp_path):
    from craft import replay

    path = write_pcap(tmp_path / "odd.pcap", 147, [bytes(SYN)] * 3)  # LINKTYPE_USER0
    result = replay(path)
    assert result.returncode == 0 and result.stdout == ""
    assert "link type not supported" in result.stderr and "linktype=147" in result.stderr
    assert "skipped: unsupported link type: 3" in result.stderr


def test_the_bundled_sll2_capture_matches_tshark():
    from conftest import SHARED

    assert shutil.which("tshark")
    assert compare(str(SHARED / "pcaps" / "lwerdna__simple_http_sll2.pcap")) == []
