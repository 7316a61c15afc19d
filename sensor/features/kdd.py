"""All 41 KDD Cup 1999 features of connection records, in kddcup.names order.

1-9 basic (``basic.py``), 10-22 content (counted by the tracker's content
analyzers, ``_native/content.c``), 23-41 traffic windows (``traffic.py``).
Records must come in start order, as the tracker releases them: the
windows judge each record against the ones that started before it.
"""

from __future__ import annotations

import numpy as np

from sensor.config import SensorConfig
from sensor.features.basic import FLAG_NAMES, PROTOCOL_NAMES, fill_basic
from sensor.features.services import SERVICE_NAMES
from sensor.features.traffic import TRAFFIC_FEATURES, WINFEAT_DTYPE, TrafficWindows

CONTENT_FEATURES = (
    "hot", "num_failed_logins", "logged_in", "num_compromised", "root_shell", "su_attempted",
    "num_root", "num_file_creations", "num_shells", "num_access_files", "num_outbound_cmds",
    "is_host_login", "is_guest_login",
)

_FRONT = np.dtype(
    [
        ("duration", "<i8"), ("src_bytes", "<u8"), ("dst_bytes", "<u8"), ("wrong_fragment", "<u4"),
        ("urgent", "<u4"), ("hot", "<u2"), ("num_compromised", "<u2"), ("num_root", "<u2"),
        ("num_file_creations", "<u2"), ("num_access_files", "<u2"), ("protocol_type", "u1"),
        ("service", "u1"), ("flag", "u1"), ("land", "u1"), ("num_failed_logins", "u1"),
        ("logged_in", "u1"), ("root_shell", "u1"), ("su_attempted", "u1"), ("num_shells", "u1"),
        ("num_outbound_cmds", "u1"), ("is_host_login", "u1"), ("is_guest_login", "u1"),
    ],
    align=True,
)
# the traffic features sit at the end in the compiled core's winfeat layout,
# so the window engine writes them in place
_TRAFFIC_AT = -(-_FRONT.itemsize // 8) * 8
KDD_ORDER = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land", "wrong_fragment",
    "urgent", *CONTENT_FEATURES, *TRAFFIC_FEATURES,
)
KDD_DTYPE = np.dtype(
    {
        "names": list(KDD_ORDER),
        "formats": [(_FRONT if n in _FRONT.names else WINFEAT_DTYPE).fields[n][0] for n in KDD_ORDER],
        "offsets": [
            _FRONT.fields[n][1] if n in _FRONT.names else _TRAFFIC_AT + WINFEAT_DTYPE.fields[n][1]
            for n in KDD_ORDER
        ],
        "itemsize": _TRAFFIC_AT + WINFEAT_DTYPE.itemsize,
    }
)

#: The 41 feature names in kddcup.names order.
KDD_FEATURES: tuple[str, ...] = KDD_DTYPE.names
#: The symbolic features and their values (codes index these tuples).
SYMBOLIC = {"protocol_type": PROTOCOL_NAMES, "service": SERVICE_NAMES, "flag": FLAG_NAMES}
#: Features written with two decimals (the rates).
RATES = tuple(n for n in KDD_FEATURES if n.endswith("_rate"))


class FeatureEngine:
    """Computes the 41 features for record batches, keeping the traffic
    windows from one batch to the next."""

    def __init__(self, config: SensorConfig) -> None:
        self.config = config
        self.windows = TrafficWindows(config.traffic)

    def compute(self, conns: np.ndarray) -> np.ndarray:
        out = np.zeros(len(conns), dtype=KDD_DTYPE)
        fill_basic(conns, out, self.config.services)
        for name in CONTENT_FEATURES:
            if name != "num_outbound_cmds":  # always 0, as in every KDD row
                out[name] = conns[name]
        self.windows.write(conns, out, _TRAFFIC_AT)
        return out
