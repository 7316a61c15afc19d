#!/usr/bin/env python3
"""Run the traffic lab: real servers and real attack tools in network
namespaces, captured on a mirror port into a labelled pcap.

    sudo python tests/lab/run.py OUT_DIR [--short] [--live] [--phases web,neptune,...]

Writes OUT_DIR/capture.pcap and OUT_DIR/labels.jsonl (one line per phase:
its window, parties, KDD label and category); with --live, also the
alerts of a live sensor on the mirror port, stamped with the time each
appeared (OUT_DIR/live-alerts.jsonl).  --short is the variant
the tests run (under three minutes).  Needs root and the packages
tests/lab/install.sh installs.  Everything stays inside the lab's
namespaces, and teardown runs on success, error and interrupt.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_sensor import LiveSensor  # noqa: E402
from phases import DECOYS, phases, run_phase  # noqa: E402
from services import start_servers  # noqa: E402
from topology import Topology  # noqa: E402
from workday import Workday  # noqa: E402

TOOLS = ["ip", "tc", "ethtool", "tcpdump", "ping", "nginx", "vsftpd", "/usr/sbin/sshd", "/usr/sbin/inetd",
         "/usr/sbin/telnetd", "dnsmasq", "curl", "sshpass", "telnet", "expect", "dig", "nmap", "hping3", "hydra",
         "iptables"]
SHORT_DECOYS = 6


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None and not Path(t).exists()]


def build(prefix: str, work: Path, short: bool) -> Topology:
    lab = Topology(prefix)
    lab.create_bridge()
    lab.add_host("server", 10)
    for name, octet in [*dict.fromkeys(phase.actor for phase in phases()), *Workday.hosts()]:
        lab.add_host(name, octet)
    for octet in list(DECOYS)[: SHORT_DECOYS if short else None]:
        decoy = lab.add_host(f"decoy{octet}", octet)
        # reflectors answer broadcast echo requests; nobody else does (pitfall 6)
        lab.ns_run(decoy.ns, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_broadcasts=0")
    start_servers(lab, work)
    return lab


def run(out: Path, short: bool, only: set[str] | None = None, prefix: str | None = None,
        live: bool = False) -> list[dict]:
    """Run the lab into ``out``; returns the phase labels.  ``live`` also
    runs ``sensor run`` on the mirror port (live_sensor.py)."""
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root (network namespaces)")
    if missing_tools():
        raise SystemExit(f"missing lab tools {missing_tools()}: run tests/lab/install.sh")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sensor-lab-"))
    lab = Topology(prefix or f"slab{os.getpid()}")
    labels = []

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupted) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        lab = build(lab.prefix, work, short)
        capture = out / "capture.pcap"
        tcpdump = lab.start(lab.bridge_ns, "tcpdump", "-i", "span1", "-w", str(capture), "-U", "-s", "0", "-Z", "root",
                            "--time-stamp-precision=nano", log=work / "tcpdump.log")
        sensor = LiveSensor(lab, work, out) if live else None
        if sensor:
            sensor.start()
        time.sleep(1.5)
        workday = Workday(lab, work)
        workday.start()
        try:
            for phase in phases():
                if only and phase.name not in only:
                    continue
                labels.append(run_phase(lab, phase, work, short))
                print(f"lab: {phase.name:14} {labels[-1]['end'] - labels[-1]['start']:6.1f} s", file=sys.stderr)
        finally:
            labels.append(workday.stop())
        print(f"lab: workday        {sum(workday.actions)} actions by {len(workday.actions)} users", file=sys.stderr)
        time.sleep(1.0)
        tcpdump.send_signal(signal.SIGTERM)
        tcpdump.wait(10)
        if sensor and sensor.stop():
            raise RuntimeError(f"the lab's live sensor failed; see {sensor.log}")
        (out / "labels.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in labels))
    finally:
        lab.teardown()
        shutil.rmtree(work, ignore_errors=True)
        for s, handler in previous.items():
            signal.signal(s, handler)
    return labels


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--short", action="store_true", help="the test variant: fewer repetitions and decoys")
    ap.add_argument("--phases", help="comma-separated phase names (default: all)")
    ap.add_argument("--live", action="store_true",
                    help="also run `sensor run` on the mirror port: OUT/live-alerts.jsonl, stamped with arrival times")
    args = ap.parse_args()
    started = time.monotonic()
    labels = run(args.out, args.short, set(args.phases.split(",")) if args.phases else None, live=args.live)
    print(f"lab: {len(labels)} phases in {time.monotonic() - started:.0f} s -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        sys.exit(f"lab: {' '.join(exc.cmd)} failed: {exc.stderr}")
