"""KDD basic features 1-9 (kdd-features.md section 2), vectorised.

duration is truncated to whole seconds; src/dst bytes are payload bytes
(TCP from sequence space); flag is the Zeek state with the two states
newer than KDD (RSTRH, SHR) folded into OTH, and SF for every UDP/ICMP
record as in the KDD data; land compares addresses and ports (addresses
only for ICMP).  IPv6 records use the same definitions.
"""

from __future__ import annotations

import numpy as np

from sensor.config import Services
from sensor.features.services import SERVICE_CODE, icmp_services, port_tables
from sensor.rows import CONN_STATES, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP

PROTOCOL_NAMES = ("tcp", "udp", "icmp")
FLAG_NAMES = ("SF", "S0", "S1", "S2", "S3", "REJ", "RSTO", "RSTOS0", "RSTR", "SH", "OTH")

# conn_state code -> KDD flag code
_FLAG_OF_STATE = np.array(
    [FLAG_NAMES.index(s if s in FLAG_NAMES else "OTH") for s in CONN_STATES], dtype=np.uint8
)
FTP_DATA_PORT = 20


def duration_ns(conns: np.ndarray) -> np.ndarray:
    """Last packet time minus first; never negative (captures can run backwards)."""
    return np.maximum(conns["ts_last"] - conns["ts_first"], 0)


def protocol_codes(conns: np.ndarray) -> np.ndarray:
    proto = conns["proto"]
    out = np.full(len(conns), PROTOCOL_NAMES.index("icmp"), dtype=np.uint8)
    out[proto == PROTO_TCP] = PROTOCOL_NAMES.index("tcp")
    out[proto == PROTO_UDP] = PROTOCOL_NAMES.index("udp")
    return out


def service_codes(conns: np.ndarray, services: Services) -> np.ndarray:
    tcp_table, udp_table = port_tables(services.private_below)
    proto, resp_p, orig_p = conns["proto"], conns["resp_p"], conns["orig_p"]
    out = np.full(len(conns), SERVICE_CODE["other"], dtype=np.uint8)
    tcp = proto == PROTO_TCP
    out[tcp] = tcp_table[resp_p[tcp]]
    # FTP data: active mode comes from port 20; passive mode was announced
    # on the control connection (PASV/EPSV/PORT, seen by the content analyzer)
    out[tcp & ((orig_p == FTP_DATA_PORT) | (conns["ftp_data"] != 0))] = SERVICE_CODE["ftp_data"]
    udp = proto == PROTO_UDP
    out[udp] = udp_table[resp_p[udp]]
    icmp = (proto == PROTO_ICMP) | (proto == PROTO_ICMPV6)
    # ICMP records keep the type in orig_p and the code in resp_p
    out[icmp] = icmp_services(conns["ip_ver"][icmp], orig_p[icmp], resp_p[icmp])
    return out


def fill_basic(conns: np.ndarray, out: np.ndarray, services: Services) -> None:
    """Write KDD features 1-9 of a batch of records into ``out``."""
    out["duration"] = duration_ns(conns) // 1_000_000_000
    out["protocol_type"] = protocol_codes(conns)
    out["service"] = service_codes(conns, services)
    tcp = conns["proto"] == PROTO_TCP
    out["flag"] = np.where(tcp, _FLAG_OF_STATE[conns["conn_state"]], FLAG_NAMES.index("SF"))
    out["src_bytes"] = conns["orig_bytes"]
    out["dst_bytes"] = conns["resp_bytes"]
    same_host = (conns["orig_hi"] == conns["resp_hi"]) & (conns["orig_lo"] == conns["resp_lo"])
    icmp = (conns["proto"] == PROTO_ICMP) | (conns["proto"] == PROTO_ICMPV6)
    out["land"] = same_host & (icmp | (conns["orig_p"] == conns["resp_p"]))
    out["wrong_fragment"] = conns["wrong_fragment"]
    out["urgent"] = conns["urgent"]
