"""The KDD ``service`` table (kdd-features.md section 4), as data.

TCP and UDP services are named by the responder's port; ICMP services by
type and code.  Unnamed ports are ``private`` below a threshold (1024 by
default: the snmpgetattack rows, udp/161, are ``private`` in KDD) and
``other`` above it.  The tables compile to 65,536-entry numpy lookup
arrays so a whole batch of records is classified in a few vector
operations.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# (service, ports) for TCP.  Corrections to the AIIDS table are marked.
TCP_SERVICES: dict[str, tuple[int, ...]] = {
    "echo": (7,), "discard": (9,), "systat": (11,), "daytime": (13,), "netstat": (15,),
    "ftp_data": (20,), "ftp": (21,), "ssh": (22,), "telnet": (23,), "smtp": (25,),
    "time": (37,), "name": (42,), "whois": (43, 4321), "domain": (53,), "gopher": (70,),
    "remote_job": (71, 72, 73, 74), "rje": (5, 77), "finger": (79,),
    "http": (80, 8080), "ctf": (84,), "supdup": (95,), "hostnames": (101,),
    "iso_tsap": (102, 309), "csnet_ns": (105,), "pop_2": (109,), "pop_3": (110,),
    "sunrpc": (111,), "auth": (113,),  # fix: ident only, not 30 unrelated "auth" ports
    "uucp_path": (117,), "nntp": (119, 563), "netbios_ns": (137,), "netbios_dgm": (138,),
    "netbios_ssn": (139,), "imap4": (143, 993), "sql_net": (66, 150), "vmnet": (175,),
    "bgp": (179,), "Z39_50": (210,), "link": (245,), "ldap": (389, 636), "nnsp": (433,),
    "http_443": (443,), "exec": (512,), "login": (513,), "shell": (514,), "printer": (515,),
    "efs": (520,), "courier": (165, 530), "uucp": (540, 4031), "klogin": (543,),
    "kshell": (544,), "mtp": (1911,), "http_2784": (2784,), "aol": (531, 5190, 5191, 5192, 5193),
    "X11": tuple(range(6000, 6064)),
    "IRC": (194, 6665, 6666, 6667, 6668, 6669),  # fix: 6667, the usual IRC port, was missing
    "http_8001": (8001,),
}
UDP_SERVICES: dict[str, tuple[int, ...]] = {"domain_u": (53,), "tftp_u": (69,), "ntp_u": (123,)}

# Services KDD names without a known port; listed so every KDD value has a code.
PORTLESS = ("harvest", "pm_dump")

ICMP_SERVICES = ("eco_i", "ecr_i", "urh_i", "urp_i", "red_i", "tim_i", "oth_i")

#: Every service name, indexed by the ``service`` code column.
SERVICE_NAMES: tuple[str, ...] = (
    ("private", "other")
    + tuple(TCP_SERVICES)
    + tuple(UDP_SERVICES)
    + PORTLESS
    + ICMP_SERVICES
)
SERVICE_CODE = {name: code for code, name in enumerate(SERVICE_NAMES)}

# Ports a server is likely to listen on: Zeek's heuristic for which side
# of a connection caught mid-stream is the responder.  The KDD named ports,
# plus common modern services KDD predates.
MODERN_SERVER_PORTS_TCP = (
    135, 161, 389, 443, 445, 465, 587, 636, 873, 993, 995, 1433, 1521, 1723, 1883, 2049,
    3128, 3306, 3389, 4840, 5060, 5222, 5223, 5432, 5900, 5985, 6379, 8000, 8008, 8443,
    8888, 9000, 9200, 11211, 27017,
)
MODERN_SERVER_PORTS_UDP = (
    53, 67, 69, 88, 111, 123, 137, 138, 161, 162, 389, 443, 500, 514, 520, 1194, 1812,
    1813, 1900, 3478, 4500, 5060, 5353, 11211,
)


def _table(services: dict[str, tuple[int, ...]], private_below: int) -> np.ndarray:
    table = np.full(65536, SERVICE_CODE["other"], dtype=np.uint8)
    table[:private_below] = SERVICE_CODE["private"]
    for name, ports in services.items():
        table[list(ports)] = SERVICE_CODE[name]
    return table


@lru_cache(maxsize=8)
def port_tables(private_below: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(tcp, udp) responder-port -> service code lookup arrays."""
    return _table(TCP_SERVICES, private_below), _table(UDP_SERVICES, private_below)


def likely_server_ports() -> tuple[bytes, bytes]:
    """(tcp, udp) 65,536-byte tables: 1 where a server likely listens."""
    tcp = np.zeros(65536, dtype=np.uint8)
    udp = np.zeros(65536, dtype=np.uint8)
    for ports in TCP_SERVICES.values():
        tcp[list(ports)] = 1
    tcp[list(MODERN_SERVER_PORTS_TCP)] = 1
    for ports in UDP_SERVICES.values():
        udp[list(ports)] = 1
    udp[list(MODERN_SERVER_PORTS_UDP)] = 1
    return tcp.tobytes(), udp.tobytes()


def icmp_services(ip_ver: np.ndarray, icmp_type: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Service codes for ICMP (v4 types) and ICMPv6 (their v6 counterparts)."""
    v6 = ip_ver == 6
    out = np.full(len(icmp_type), SERVICE_CODE["oth_i"], dtype=np.uint8)
    rules = (
        ("eco_i", np.where(v6, icmp_type == 128, icmp_type == 8)),
        ("ecr_i", np.where(v6, icmp_type == 129, icmp_type == 0)),
        ("urh_i", np.where(v6, (icmp_type == 1) & (code == 3), (icmp_type == 3) & (code == 1))),
        ("urp_i", np.where(v6, (icmp_type == 1) & (code == 4), (icmp_type == 3) & (code == 3))),
        ("red_i", np.where(v6, icmp_type == 137, icmp_type == 5)),
        ("tim_i", np.where(v6, icmp_type == 3, icmp_type == 11)),
    )
    for name, mask in rules:
        out[mask] = SERVICE_CODE[name]
    return out
