"""The lab's network: one namespace per host on a bridge of its own, and
a mirror port that sees every frame exactly once.

Every host namespace has one veth, ``eth0``, whose peer is a port of
``br0`` in the bridge namespace.  The root namespace gets no lab
interface and no route, and no namespace has a default route, so traffic
can only go between lab hosts.  Each bridge port's ingress is mirrored
(``tc`` u32 match-all, ``mirred egress mirror``) to ``span0``, whose peer
``span1`` is captured: a frame enters the bridge once, through its
sender's port (lab notes, pitfall 1).  Offloads are off everywhere
(pitfall 2), IPv6 is off everywhere (pitfall 12).

Teardown kills every process in every lab namespace before deleting it
(pitfall 10), and removes the lab's accounts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.77.0"


def sh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


@dataclass
class Host:
    name: str
    ns: str
    ip: str


@dataclass
class Topology:
    """Namespaces named ``<prefix>-<host>``; ``prefix`` keeps concurrent labs apart."""

    prefix: str
    hosts: dict[str, Host] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}-br"

    def namespaces(self) -> list[str]:
        return [self.bridge_ns, *(h.ns for h in self.hosts.values())]

    # -- building ---------------------------------------------------------------

    def create_bridge(self) -> None:
        ns = self.bridge_ns
        sh("ip", "netns", "add", ns)
        self._quiet(ns)
        self.ns_run(ns, "ip", "link", "add", "br0", "type", "bridge")
        self.ns_run(ns, "ip", "link", "set", "br0", "up")
        self.ns_run(ns, "ip", "link", "add", "span0", "type", "veth", "peer", "name", "span1")
        for dev in ("span0", "span1"):
            self._no_offloads(ns, dev)
            self.ns_run(ns, "ip", "link", "set", dev, "up")

    def add_host(self, name: str, last_octet: int) -> Host:
        host = Host(name, f"{self.prefix}-{name}", f"{SUBNET}.{last_octet}")
        port = f"p{last_octet}"
        sh("ip", "netns", "add", host.ns)
        self.hosts[name] = host
        self._quiet(host.ns)
        # create the pair in the bridge namespace, then move one end to the host
        self.ns_run(self.bridge_ns, "ip", "link", "add", port, "type", "veth", "peer", "name", f"h{last_octet}")
        self.ns_run(self.bridge_ns, "ip", "link", "set", f"h{last_octet}", "netns", host.ns)
        self.ns_run(host.ns, "ip", "link", "set", f"h{last_octet}", "name", "eth0")
        for ns, dev in ((self.bridge_ns, port), (host.ns, "eth0")):
            self._no_offloads(ns, dev)
        self.ns_run(self.bridge_ns, "ip", "link", "set", port, "master", "br0")
        self.ns_run(self.bridge_ns, "ip", "link", "set", port, "up")
        self.ns_run(self.bridge_ns, "tc", "qdisc", "add", "dev", port, "ingress")
        self.ns_run(self.bridge_ns, "tc", "filter", "add", "dev", port, "parent", "ffff:", "protocol", "all",
                    "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev", "span0")
        self.ns_run(host.ns, "ip", "addr", "add", f"{host.ip}/24", "brd", "+", "dev", "eth0")
        self.ns_run(host.ns, "ip", "link", "set", "eth0", "up")
        self.ns_run(host.ns, "ip", "link", "set", "lo", "up")
        return host

    def _quiet(self, ns: str) -> None:
        self.ns_run(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")

    def _no_offloads(self, ns: str, dev: str) -> None:
        self.ns_run(ns, "ethtool", "-K", dev, "rx", "off", "tx", "off", "tso", "off", "gso", "off", "gro", "off",
                    check=False)

    # -- running ------------------------------------------------------------------

    def ns_run(self, ns: str, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", ns, *args, check=check, timeout=timeout)

    def run(self, host: str, *args: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess:
        """A bounded command on a host; many tools exit non-zero by design (pitfall 14)."""
        return self.ns_run(self.hosts[host].ns, "timeout", "-s", "KILL", str(int(timeout)), *args,
                           check=check, timeout=timeout + 10)

    def start(self, ns: str, *args: str, log: Path | None = None) -> subprocess.Popen:
        """A daemon in a namespace; ``ip netns exec`` execs, so the pid is the daemon's."""
        out = open(log, "ab") if log else subprocess.DEVNULL
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def add_account(self, user: str, password: str, home: Path) -> None:
        sh("useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/bash", user)
        self.accounts.append(user)
        subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True)

    # -- teardown -------------------------------------------------------------------

    def teardown(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for ns in self.namespaces():
            for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        time.sleep(0.1)
        for ns in self.namespaces():
            sh("ip", "netns", "del", ns, check=False)
        for user in self.accounts:
            sh("userdel", "--force", user, check=False)
        self.accounts.clear()


def leftovers(prefix: str) -> dict[str, list[str]]:
    """What a lab with this prefix left behind: namespaces, processes, accounts."""
    namespaces = [line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines()
                  if line.startswith(prefix + "-")]
    accounts = [line.split(":")[0] for line in Path("/etc/passwd").read_text().splitlines()
                if line.startswith("lab")]
    processes = []
    for ns in namespaces:
        processes += sh("ip", "netns", "pids", ns, check=False).stdout.split()
    return {"namespaces": namespaces, "processes": processes, "accounts": accounts}
