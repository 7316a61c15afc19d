"""tshark as a decoding oracle: per-frame header fields, for comparison with ours."""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass

import numpy as np

from sensor.capture import open_capture
from sensor.decode import decode
from sensor.rows import STATUS

FIELDS = (
    "frame.number", "frame.protocols", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
    "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.len", "udp.srcport", "udp.dstport",
    "udp.length", "ip.flags.mf", "ip.frag_offset", "ipv6.fraghdr.offset", "ipv6.fraghdr.more",
)
TRANSPORTS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}


@dataclass
class Frame:
    number: int
    protocols: list[str]
    fields: dict[str, str]

    @property
    def network(self) -> str | None:
        """'ip' or 'ipv6': the first network layer, if the frame has one."""
        for p in self.protocols:
            if p in ("ip", "ipv6"):
                return p
        return None

    @property
    def transport(self) -> int | None:
        """Protocol number of the first transport after the first network layer."""
        seen_ip = False
        for p in self.protocols:
            if p in ("ip", "ipv6"):
                if seen_ip:
                    return None  # a tunnel: the outer packet's transport is not TCP/UDP/ICMP
                seen_ip = True
            elif seen_ip and p in TRANSPORTS:
                return TRANSPORTS[p]
        return None


def tshark_frames(path: str) -> list[Frame]:
    cmd = ["tshark", "-n", "-r", path, "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
           "-o", "tcp.desegment_tcp_streams:FALSE", "-T", "fields", "-E", "occurrence=f",
           "-E", "separator=\t"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    frames = []
    for line in out.splitlines():
        values = line.split("\t")
        values += [""] * (len(FIELDS) - len(values))
        fields = dict(zip(FIELDS, values))
        frames.append(Frame(int(fields["frame.number"]), fields["frame.protocols"].split(":"), fields))
    return frames


def our_rows(path: str) -> np.ndarray:
    reader = open_capture(path)
    batches = []
    for batch in reader.batches():
        decode(batch)
        batches.append(batch.rows.copy())
    reader.close()
    return np.concatenate(batches) if batches else np.zeros(0)


def addr(hi: int, lo: int) -> str:
    if hi == 0 and lo >> 32 == 0xFFFF:
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def compare(path: str) -> list[str]:
    """Mismatches between tshark and our decoder, one line each."""
    frames = tshark_frames(path)
    rows = our_rows(path)
    problems = []
    if len(frames) != len(rows):
        problems.append(f"frame count: tshark {len(frames)}, ours {len(rows)}")
    for f, r in zip(frames, rows):
        problems += [f"frame {f.number}: {p}" for p in compare_frame(f, r)]
    return problems


def compare_frame(f: Frame, r: np.void) -> list[str]:
    net = f.network
    if net is None:  # exempt: tshark does not see IP here
        return [] if r["ip_ver"] == 0 or r["status"] >= STATUS["truncated_link_header"] else [
            f"we decoded IP where tshark saw {':'.join(f.protocols)}"]
    if r["ip_ver"] == 0:
        return [f"tshark decoded {net}, we did not (status {r['status']})"]
    src_key, dst_key = ("ip.src", "ip.dst") if net == "ip" else ("ipv6.src", "ipv6.dst")
    problems = []
    ours_src, ours_dst = addr(int(r["src_hi"]), int(r["src_lo"])), addr(int(r["dst_hi"]), int(r["dst_lo"]))
    if (ours_src, ours_dst) != (f.fields[src_key], f.fields[dst_key]):
        problems.append(f"addresses: tshark {f.fields[src_key]}>{f.fields[dst_key]}, ours {ours_src}>{ours_dst}")
    fragment = f.fields["ip.flags.mf"] in ("1", "True") or f.fields["ip.frag_offset"] not in ("", "0") \
        or f.fields["ipv6.fraghdr.offset"] not in ("", "0") or f.fields["ipv6.fraghdr.more"] in ("1", "True")
    if fragment:
        return problems  # transport fields only for unfragmented packets
    proto = f.transport
    if proto is None:
        return problems
    if int(r["proto"]) != proto:
        return problems + [f"transport: tshark {proto}, ours {r['proto']}"]
    if proto == 6:
        theirs = (int(f.fields["tcp.srcport"]), int(f.fields["tcp.dstport"]), int(f.fields["tcp.flags"], 16) & 0xFF,
                  int(f.fields["tcp.len"]))
        ours = (int(r["sport"]), int(r["dport"]), int(r["tcp_flags"]), int(r["l4_len"]))
    elif proto == 17:
        theirs = (int(f.fields["udp.srcport"]), int(f.fields["udp.dstport"]), int(f.fields["udp.length"]) - 8)
        ours = (int(r["sport"]), int(r["dport"]), int(r["l4_len"]))
    else:
        return problems
    if theirs != ours:
        problems.append(f"transport fields: tshark {theirs}, ours {ours}")
    return problems
