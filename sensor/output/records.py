"""Connection records as Zeek-style JSON lines or CSV.

Each JSON object carries the Zeek conn.log fields for the connection and
the KDD features in a nested ``kdd`` object keyed by their
``kddcup.names`` names.  CSV has the same columns, flattened
(``kdd.duration``), under a header row.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from sensor.features import RATES, SYMBOLIC
from sensor.features.basic import PROTOCOL_NAMES, duration_ns
from sensor.output.columns import (
    ADDR, CHARS, CLOSE, ENUM, FIXED, INT, NS_SECONDS, OPEN, UID, Column, csv_header, format_rows,
)
from sensor.rows import CONN_STATES

RECORD_FORMATS = ("jsonl", "csv", "kdd")
ROWS_PER_CALL = 4096  # bounds the formatter's buffer to a few MB



def kdd_columns(features: np.ndarray) -> list[Column]:
    """The 41 features, formatted as the KDD files are: symbols, integers,
    rates with two decimals."""
    out = []
    for name in features.dtype.names:
        if name in SYMBOLIC:
            out.append(Column(name, ENUM, features[name], names=SYMBOLIC[name]))
        elif name in RATES:
            out.append(Column(name, FIXED, features[name], decimals=2))
        else:
            out.append(Column(name, INT, features[name]))
    return out


def record_columns(conns: np.ndarray, features: np.ndarray) -> list[Column]:
    """The output columns of a batch of records and their features."""
    return [
        Column("ts", NS_SECONDS, conns["ts_first"]),
        Column("uid", UID, conns["uid"]),
        Column("id.orig_h", ADDR, conns["orig_hi"], conns["orig_lo"]),
        Column("id.orig_p", INT, conns["orig_p"]),
        Column("id.resp_h", ADDR, conns["resp_hi"], conns["resp_lo"]),
        Column("id.resp_p", INT, conns["resp_p"]),
        Column("proto", ENUM, features["protocol_type"], names=PROTOCOL_NAMES),
        Column("duration", NS_SECONDS, duration_ns(conns)),
        Column("orig_bytes", INT, conns["orig_bytes"]),
        Column("resp_bytes", INT, conns["resp_bytes"]),
        Column("conn_state", ENUM, conns["conn_state"], names=CONN_STATES),
        Column("history", CHARS, conns["history"], conns["hist_len"]),
        Column("orig_pkts", INT, conns["orig_pkts"]),
        Column("resp_pkts", INT, conns["resp_pkts"]),
        Column("orig_ip_bytes", INT, conns["orig_ip_bytes"]),
        Column("resp_ip_bytes", INT, conns["resp_ip_bytes"]),
        Column("kdd", OPEN),
        *kdd_columns(features),
        Column("kdd", CLOSE),
    ]


class RecordWriter:
    """Writes record batches to a binary stream.

    ``jsonl``: one object per connection; ``csv``: the same columns under a
    header; ``kdd``: exactly the 41 features in kddcup.names order, no
    header, formatted as the KDD files are.
    """

    def __init__(self, stream: BinaryIO, fmt: str = "jsonl") -> None:
        if fmt not in RECORD_FORMATS:
            raise ValueError(f"unknown record format {fmt!r}; expected one of {RECORD_FORMATS}")
        self.stream = stream
        self.kdd = fmt == "kdd"
        self.csv = fmt in ("csv", "kdd")
        self.records = 0
        self._header_written = False
        self._buffer = bytearray()  # reused: the formatter writes into it

    def _columns(self, conns: np.ndarray, features: np.ndarray) -> list[Column]:
        return kdd_columns(features) if self.kdd else record_columns(conns, features)

    def write(self, conns: np.ndarray, features: np.ndarray) -> None:
        if self.csv and not self.kdd and not self._header_written:
            self.stream.write(csv_header(record_columns(conns[:0], features[:0])).encode())
            self._header_written = True
        for start in range(0, len(conns), ROWS_PER_CALL):
            part = slice(start, start + ROWS_PER_CALL)
            rows = len(conns[part])
            n = format_rows(self._columns(conns[part], features[part]), rows, self.csv, self._buffer)
            self.stream.write(memoryview(self._buffer)[:n])
        self.records += len(conns)

    def close(self) -> None:
        self.stream.flush()
