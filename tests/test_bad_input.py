"""Bad input: damaged captures and malformed packets.

For each: no traceback, a one-line error naming the file and the byte
offset, every good record still emitted, exit 0 for a damaged capture and
non-zero only for a file that is not a capture at all.
"""

from __future__ import annotations

import json
import random
import re
import struct
from pathlib import Path

from conftest import SHARED
from craft import IP, TCP, Conversation, Raw, at, eth, replay, write
from scapy.all import PcapNgWriter

SOURCE = SHARED / "pcaps" / "zeek__ftp-bruteforce.pcap"  # 606 packets, 30 connections


def pcap_records(path: Path) -> tuple[bytes, list[tuple[int, bytes]]]:
    """(global header, [(offset, record bytes)]) of a little-endian pcap."""
    data = path.read_bytes()
    pos, out = 24, []
    while pos < len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        out.append((pos, data[pos : pos + 16 + caplen]))
        pos += 16 + caplen
    return data[:24], out


def outcome(path: Path) -> tuple[int, list[dict], str]:
    result = replay(path)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def error_lines(stderr: str, path: Path) -> list[str]:
    return [line for line in stderr.splitlines() if "[error" in line and str(path) in line]


def offset_in(line: str) -> int:
    return int(re.search(r"offset (\d+)", line).group(1))


def test_truncated_file_keeps_every_complete_record(tmp_path):
    header, recs = pcap_records(SOURCE)
    cut = 400
    whole = tmp_path / "whole.pcap"
    whole.write_bytes(header + b"".join(r for _, r in recs[:cut]))
    truncated = tmp_path / "truncated.pcap"
    truncated.write_bytes(header + b"".join(r for _, r in recs[:cut]) + recs[cut][1][:30])

    code, records, stderr = outcome(truncated)
    assert code == 0
    assert records == outcome(whole)[1] and len(records) > 10
    (line,) = error_lines(stderr, truncated)
    assert offset_in(line) == recs[cut][0] and "ends inside a record" in line
    assert "damaged stretches: 1" in stderr


def _with_bad_record(tmp_path: Path, caplen: int, snaplen: int) -> tuple[Path, int, int]:
    """The source capture with record 200's length field replaced; returns
    (path, offset of the bad record, records in the file)."""
    header, recs = pcap_records(SOURCE)
    header = header[:16] + struct.pack("<I", snaplen) + header[20:]
    offset, bad = recs[200]
    recs[200] = (offset, bad[:8] + struct.pack("<I", caplen) + bad[12:])
    path = tmp_path / "bad.pcap"
    path.write_bytes(header + b"".join(r for _, r in recs))
    return path, offset, len(recs)


def _resynchronised(tmp_path, caplen, snaplen, words):
    path, offset, total = _with_bad_record(tmp_path, caplen, snaplen)
    code, records, stderr = outcome(path)
    assert code == 0
    (line,) = error_lines(stderr, path)
    assert offset_in(line) == offset and all(w in line for w in words), line
    assert "skipped" in line
    # only the damaged record is lost: the reader found the next one
    assert f"packets: {total - 1}" in stderr
    assert len(records) >= 29


def test_caplen_beyond_snaplen(tmp_path):
    _resynchronised(tmp_path, caplen=5000, snaplen=1514, words=["5000", "snapshot length 1514"])


def test_caplen_beyond_256_kib(tmp_path):
    _resynchronised(tmp_path, caplen=300_000, snaplen=0, words=["300000", "256 KiB"])


def test_garbage_file_is_not_a_capture(tmp_path):
    path = tmp_path / "garbage.pcap"
    path.write_bytes(random.Random(7).randbytes(5000))
    result = replay(path)
    assert result.returncode != 0 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert f"{path}: not a pcap or pcapng capture" in result.stderr


def test_garbage_file_does_not_stop_the_others(tmp_path):
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"this is not a capture at all\n" * 10)
    result = replay(garbage, SOURCE)
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 30


def _pcapng(tmp_path: Path, n: int) -> tuple[Path, list[int]]:
    """A pcapng of n TCP SYNs; returns it and each packet block's offset."""
    path = tmp_path / "in.pcapng"
    w = PcapNgWriter(str(path))
    for i in range(n):
        w.write(at(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1000 + i, dport=80, flags="S"), i))
    w.close()
    data = path.read_bytes()
    offsets, pos = [], 0
    while pos < len(data):
        btype, length = struct.unpack_from("<II", data, pos)
        if btype == 6:
            offsets.append(pos)
        pos += length
    return path, offsets


def test_pcapng_block_with_bad_length(tmp_path):
    path, offsets = _pcapng(tmp_path, 10)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, offsets[4] + 4, 13)  # not a multiple of 4
    path.write_bytes(data)
    code, records, stderr = outcome(path)
    assert code == 0
    (line,) = error_lines(stderr, path)
    assert offset_in(line) == offsets[4] and "block length 13" in line
    assert sorted(r["id.orig_p"] for r in records) == [1000 + i for i in range(10) if i != 4]


def test_pcapng_block_with_bad_trailer(tmp_path):
    path, offsets = _pcapng(tmp_path, 6)
    data = bytearray(path.read_bytes())
    length = struct.unpack_from("<I", data, offsets[2] + 4)[0]
    struct.pack_into("<I", data, offsets[2] + length - 4, 0xDEAD)
    path.write_bytes(data)
    code, records, stderr = outcome(path)
    assert code == 0
    (line,) = error_lines(stderr, path)
    assert offset_in(line) == offsets[2] and "trailing length" in line
    assert len(records) == 5


def _malformed(tmp_path: Path, bad_frame: bytes) -> tuple[Path, int]:
    """A good connection with one malformed frame in the middle; returns
    the file and the bad frame's byte offset."""
    c = Conversation()
    t = c.handshake()
    c.c("PA", t + 0.01, b"hello")
    good = c.packets
    packets = good[:3] + [at(eth(type=0x0800) / Raw(bad_frame), t + 0.005)] + good[3:]
    path = write(tmp_path / "m.pcap", packets)
    _, recs = pcap_records(path)
    return path, recs[3][0] + 16  # the frame's bytes start after its record header


def _check_malformed(path: Path, frame_offset: int, reason: str):
    code, records, stderr = outcome(path)
    assert code == 0
    (line,) = error_lines(stderr, path)
    assert offset_in(line) == frame_offset and "frame 4" in line and reason in line, line
    assert f"malformed: {reason.replace('_', ' ')}: 1" in stderr
    (rec,) = records  # the good connection is intact
    assert rec["history"] == "ShAD" and rec["orig_bytes"] == 5


def test_ip_header_shorter_than_20_bytes(tmp_path):
    ip = bytearray(bytes(IP(src="10.0.0.7", dst="10.0.0.8") / TCP()))
    ip[0] = 0x44  # IHL 4: a 16-byte header
    path, offset = _malformed(tmp_path, bytes(ip))
    _check_malformed(path, offset, "ip_header_short")


def test_tcp_data_offset_below_5(tmp_path):
    pkt = bytearray(bytes(IP(src="10.0.0.7", dst="10.0.0.8") / TCP(sport=1, dport=2)))
    pkt[20 + 12] = 0x40  # data offset 4
    path, offset = _malformed(tmp_path, bytes(pkt))
    _check_malformed(path, offset, "tcp_bad_data_offset")


def test_ip_total_length_beyond_the_captured_bytes(tmp_path):
    pkt = bytearray(bytes(IP(src="10.0.0.7", dst="10.0.0.8") / TCP(sport=1, dport=2)))
    struct.pack_into("!H", pkt, 2, 1000)  # claims 1000 bytes; the frame holds 40
    path, offset = _malformed(tmp_path, bytes(pkt))
    _check_malformed(path, offset, "ip_length_beyond_frame")


def test_many_malformed_frames_are_listed_then_counted(tmp_path):
    pkt = bytearray(bytes(IP(src="10.0.0.7", dst="10.0.0.8") / TCP()))
    pkt[0] = 0x43
    frames = [at(eth(type=0x0800) / Raw(bytes(pkt)), i * 0.001) for i in range(50)]
    path = write(tmp_path / "many.pcap", frames)
    code, records, stderr = outcome(path)
    assert code == 0 and records == []
    assert len(error_lines(stderr, path)) == 5
    assert "more malformed frames not listed" in stderr and "frames=45" in stderr
    assert "malformed: ip header short: 50" in stderr
