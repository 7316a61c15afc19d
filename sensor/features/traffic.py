"""KDD traffic features 23-41, computed by the compiled window engine
(``_native/windows.c``) over records in start order."""

from __future__ import annotations

import secrets

import numpy as np

from sensor import _fastpath
from sensor.config import NS, Traffic
from sensor.rows import layout_dtype

WREC_DTYPE = layout_dtype("wrec")
WINFEAT_DTYPE = layout_dtype("winfeat")
TRAFFIC_FEATURES: tuple[str, ...] = WINFEAT_DTYPE.names


def flag_mask(flags: tuple[str, ...]) -> int:
    from sensor.features.basic import FLAG_NAMES

    return sum(1 << FLAG_NAMES.index(f) for f in flags)


class TrafficWindows:
    """The 2-second and last-N windows, kept across batches.

    Records must come in start order; each is judged against the records
    before it (and itself, where the definition says so), then joins the
    windows.  Memory is bounded: the host window holds N records, the time
    window at most ``time_window_records``.
    """

    def __init__(self, config: Traffic) -> None:
        self._core = _fastpath.Windows(
            int(config.time_window * NS), config.host_window, config.time_window_records,
            flag_mask(config.serror_flags), flag_mask(config.rerror_flags), config.count_cap,
            config.host_count_cap, config.diff_rates == "complement", config.host_rates == "earlier_only",
            secrets.randbits(64),
        )

    def write(self, conns: np.ndarray, service: np.ndarray, flag: np.ndarray, out: np.ndarray,
              offset: int) -> None:
        """Compute the traffic features of a batch of records and write them,
        in the WINFEAT layout, at byte ``offset`` of each row of ``out``."""
        recs = np.zeros(len(conns), dtype=WREC_DTYPE)
        recs["ts"] = conns["ts_first"]
        recs["host_hi"] = conns["resp_hi"]
        recs["host_lo"] = conns["resp_lo"]
        recs["sport"] = conns["orig_p"]
        recs["service"] = service
        recs["flag"] = flag
        self._core.process(recs, out, offset, out.dtype.itemsize)

    def features(self, conns: np.ndarray, service: np.ndarray, flag: np.ndarray) -> np.ndarray:
        """Traffic features of a batch of records, as WINFEAT_DTYPE rows."""
        out = np.empty(len(conns), dtype=WINFEAT_DTYPE)
        self.write(conns, service, flag, out, 0)
        return out

    @property
    def memory(self) -> int:
        return self._core.memory
