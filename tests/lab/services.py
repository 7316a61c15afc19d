"""Real servers inside the server namespace: nginx (web), vsftpd (FTP,
active and passive), OpenSSH, telnetd under inetd, dnsmasq (DNS).  Each
runs in the foreground from a configuration written to the lab's work
directory (lab notes, pitfall 11); nothing is installed as a service."""

from __future__ import annotations

import time
from pathlib import Path

from topology import Topology, sh

USER, PASSWORD = "labuser", "lab-Secret-42"
# the site the workday's users browse: pages of a few hundred bytes to ~60 KB
PAGES = [f"/site/page{i:02d}.html" for i in range(30)]


def start_servers(lab: Topology, work: Path) -> None:
    ns, ip = lab.hosts["server"].ns, lab.hosts["server"].ip
    home = work / "ftp"
    home.mkdir(parents=True, exist_ok=True)
    lab.add_account(USER, PASSWORD, home)
    _web(lab, ns, ip, work)
    _ftp(lab, ns, ip, work)
    _ssh(lab, ns, ip, work)
    _telnet(lab, ns, work)
    _dns(lab, ns, ip, work)
    _wait_listening(lab, ns, [21, 22, 23, 53, 80])


def _web(lab: Topology, ns: str, ip: str, work: Path) -> None:
    root = work / "www"
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text("<html><body>lab web server</body></html>\n" * 20)
    (root / "big.bin").write_bytes(bytes(range(256)) * 400)
    (root / "site").mkdir(exist_ok=True)
    for i, page in enumerate(PAGES):
        size = 300 + (i * 7919) % 60000          # spread over the range, the same every run
        (root / page.lstrip("/")).write_text(("<p>lab page %02d</p>\n" % i) * (size // 19))
    conf = work / "nginx.conf"
    conf.write_text(f"""daemon off;
user nobody nogroup;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 512; }}
http {{
    access_log off;
    large_client_header_buffers 4 64k;
    server {{ listen {ip}:80; root {root}; }}
}}
""")
    root.chmod(0o755)
    work.chmod(0o755)
    lab.start(ns, "nginx", "-c", str(conf), "-p", str(work), log=work / "nginx.log")


def _ftp(lab: Topology, ns: str, ip: str, work: Path) -> None:
    empty = Path("/var/run/vsftpd/empty")
    empty.mkdir(parents=True, exist_ok=True)
    home = work / "ftp"
    home.mkdir(exist_ok=True)
    (home / "readme.txt").write_text("lab ftp file\n" * 200)
    home.chmod(0o755)
    conf = work / "vsftpd.conf"
    conf.write_text(f"""listen=YES
listen_ipv6=NO
listen_address={ip}
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=NO
local_root={home}
pasv_enable=YES
pasv_min_port=40000
pasv_max_port=40100
port_enable=YES
connect_from_port_20=YES
secure_chroot_dir={empty}
pam_service_name=vsftpd
seccomp_sandbox=NO
max_login_fails=1
delay_failed_login=0
xferlog_enable=NO
""")
    lab.start(ns, "vsftpd", str(conf), log=work / "vsftpd.log")


def _ssh(lab: Topology, ns: str, ip: str, work: Path) -> None:
    Path("/run/sshd").mkdir(exist_ok=True)
    key = work / "ssh_host_ed25519_key"
    if not key.exists():
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    conf = work / "sshd_config"
    conf.write_text(f"""ListenAddress {ip}
Port 22
HostKey {key}
PidFile {work}/sshd.pid
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
PermitRootLogin no
MaxAuthTries 1
MaxStartups 200
LoginGraceTime 20
""")
    lab.start(ns, "/usr/sbin/sshd", "-D", "-e", "-f", str(conf), log=work / "sshd.log")


def _telnet(lab: Topology, ns: str, work: Path) -> None:
    conf = work / "inetd.conf"
    # nowait.1000: brute force must not trip inetd's spawn limit (pitfall 8)
    conf.write_text("telnet stream tcp nowait.1000 root /usr/sbin/telnetd telnetd\n")
    lab.start(ns, "/usr/sbin/inetd", "-i", "-R", "100000", str(conf), log=work / "inetd.log")


def _dns(lab: Topology, ns: str, ip: str, work: Path) -> None:
    lab.start(ns, "dnsmasq", "-k", "--no-resolv", "--no-hosts", "--bind-interfaces", f"--listen-address={ip}",
              "--address=/lab.test/10.77.0.10", "--address=/www.lab.test/10.77.0.10", "--user=root",
              f"--pid-file={work}/dnsmasq.pid", "--log-facility=-", log=work / "dnsmasq.log")


def _wait_listening(lab: Topology, ns: str, ports: list[int], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while True:
        out = lab.ns_run(ns, "ss", "-lntu", check=False).stdout
        missing = [p for p in ports if f":{p} " not in out]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"lab servers not listening on {missing}; see the logs in the lab's work directory")
        time.sleep(0.1)
