"""KDD traffic features 23-41, computed by the compiled window engine
(``_native/windows.c``) over records in start order."""

from __future__ import annotations

import secrets

import numpy as np

from sensor import _fastpath
from sensor.config import NS, Traffic
from sensor.rows import layout_dtype

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

    def write(self, conns: np.ndarray, features: np.ndarray, winfeat_at: int) -> None:
        """Compute the traffic features of a batch of records in place: each
        row of ``features`` already holds the record's ``service`` and
        ``flag``, and receives the WINFEAT fields at byte ``winfeat_at``."""
        fields = features.dtype.fields
        self._core.process(conns, features, features.dtype.itemsize, fields["service"][1], fields["flag"][1],
                           winfeat_at)

    @property
    def memory(self) -> int:
        return self._core.memory
