"""Row layouts shared by the stages, built from the compiled core's structs.

A batch travelling between stages is one numpy structured array: packet
rows from the capture walkers and decoder, connection rows from the
tracker.  The layouts come from ``_fastpath.layouts()`` so Python and C
can never disagree about an offset.
"""

from __future__ import annotations

import numpy as np

from sensor import _fastpath


def layout_dtype(name: str) -> np.dtype:
    """The numpy dtype of one of the compiled core's row layouts."""
    itemsize, fields = _fastpath.layouts()[name]
    return np.dtype(
        {
            "names": [f[0] for f in fields],
            "formats": [f[1] for f in fields],
            "offsets": [f[2] for f in fields],
            "itemsize": itemsize,
        }
    )


PKT_DTYPE = layout_dtype("pkt")
CONN_DTYPE = layout_dtype("conn")
IFACE_DTYPE = layout_dtype("iface")

#: Packet row status names, indexed by the ``status`` column.
STATUS_NAMES: tuple[str, ...] = _fastpath.STATUS_NAMES
STATUS = {name: code for code, name in enumerate(STATUS_NAMES)}
#: Status codes from this one on mean a malformed packet.
FIRST_MALFORMED: int = _fastpath.FIRST_MALFORMED

#: Zeek ``conn_state`` names, indexed by the ``conn_state`` column.
CONN_STATES: tuple[str, ...] = _fastpath.CONN_STATES
END_REASONS: tuple[str, ...] = _fastpath.END_REASONS
EP_STATES: tuple[str, ...] = _fastpath.EP_STATES

PROTO_TCP, PROTO_UDP, PROTO_ICMP, PROTO_ICMPV6 = 6, 17, 1, 58


def empty_packets(n: int) -> np.ndarray:
    """A zeroed packet batch of ``n`` rows."""
    return np.zeros(n, dtype=PKT_DTYPE)


def packet_rows_for_walker(n: int) -> np.ndarray:
    """Uninitialised packet rows: the walkers clear every row they fill."""
    return np.empty(n, dtype=PKT_DTYPE)


def empty_connections() -> np.ndarray:
    return np.zeros(0, dtype=CONN_DTYPE)
