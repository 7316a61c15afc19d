#!/usr/bin/env python3
"""What capturing costs per packet: the sensor's AF_PACKET ring against
libpcap with a per-packet Python callback (the measurement behind the
choice in docs/design.md, "Live capture").

    sudo python benchmarks/capture_cost.py [--packets 500000] [--pps 250000]

The first N packets of the standard capture are replayed with tcpreplay
into a veth pair in a private namespace, twice.  The first time, the
sensor's ``LiveCapture`` drains its ring a block at a time and walks the
records in C.  The second time, libpcap (ctypes, ``pcap_dispatch``)
calls a Python function per packet, which copies the frame out, as a
batch builder would have to.  Each reader runs pinned to CPU 1, and the
script prints the CPU seconds each one spent and the kernel's drops.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

import netlab  # noqa: E402
from replay import DEFAULT_CAPTURE, ensure_capture  # noqa: E402

RING_READER = """
import resource, sys, time
sys.path.insert(0, {root!r})
from sensor.capture.live import LiveCapture
cap = LiveCapture([sys.argv[1]])
before = resource.getrusage(resource.RUSAGE_SELF)
n, deadline = 0, time.time() + float(sys.argv[2])
while time.time() < deadline:
    for _, batch in cap.batches(0.05):
        n += len(batch.rows)
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
print(n, cap.stats()[sys.argv[1]].drops, cpu)
"""

PCAP_READER = """
import ctypes, ctypes.util, resource, sys, time
pcap = ctypes.CDLL(ctypes.util.find_library("pcap"))
err = ctypes.create_string_buffer(256)
pcap.pcap_create.restype = ctypes.c_void_p
h = ctypes.c_void_p(pcap.pcap_create(sys.argv[1].encode(), err))
pcap.pcap_set_snaplen(h, 65535)
pcap.pcap_set_buffer_size(h, 64 << 20)
pcap.pcap_set_timeout(h, 100)
assert pcap.pcap_activate(h) >= 0
pcap.pcap_setnonblock(h, 1, err)
class Header(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long), ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]
class Stats(ctypes.Structure):
    _fields_ = [("recv", ctypes.c_uint), ("drop", ctypes.c_uint), ("ifdrop", ctypes.c_uint)]
Callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(Header), ctypes.POINTER(ctypes.c_ubyte))
batch, n = bytearray(), [0]
def on_packet(user, header, data):
    n[0] += 1
    batch.extend(ctypes.string_at(data, header.contents.caplen))
    if len(batch) > 1 << 24:
        batch.clear()
callback = Callback(on_packet)
before = resource.getrusage(resource.RUSAGE_SELF)
deadline = time.time() + float(sys.argv[2])
while time.time() < deadline:
    if pcap.pcap_dispatch(h, -1, callback, None) == 0:
        time.sleep(0.001)
after = resource.getrusage(resource.RUSAGE_SELF)
stats = Stats()
pcap.pcap_stats(h, ctypes.byref(stats))
print(n[0], stats.drop, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
"""


def measure(reader: str, capture: Path, pps: int, seconds: float) -> tuple[int, int, float]:
    with netlab.VethLab("sensor-capcost") as lab:
        proc = lab.start(sys.executable, "-c", reader, lab.sniff, str(seconds), stdout=subprocess.PIPE, text=True)
        netlab.sh("taskset", "-a", "-p", "-c", "1", str(proc.pid))
        time.sleep(1.0)
        lab.replay(capture, pps=pps)
        out, _ = proc.communicate(timeout=seconds + 60)
    packets, drops, cpu = out.split()
    return int(packets), int(drops), float(cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=500_000)
    ap.add_argument("--pps", type=int, default=250_000)
    args = ap.parse_args()
    why = netlab.available()
    if why:
        raise SystemExit(f"cannot run: {why}")
    part = HERE / ".data" / f"bench-first-{args.packets}.pcap"
    if not part.exists():
        subprocess.run(["editcap", "-r", str(ensure_capture(DEFAULT_CAPTURE)), str(part), f"1-{args.packets}"],
                       check=True)
    seconds = args.packets / args.pps + 4
    for name, reader in (("AF_PACKET ring, block drain, C walk", RING_READER.format(root=str(HERE.parent))),
                         ("libpcap, Python callback per packet", PCAP_READER)):
        packets, drops, cpu = measure(reader, part, args.pps, seconds)
        rate = packets / cpu if cpu else float("inf")
        print(f"{name:38} {packets:>9,} packets, kernel drops {drops}, CPU {cpu:.2f} s "
              f"= {rate:,.0f} packets per CPU-second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
