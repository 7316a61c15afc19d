"""Describe numpy columns to the compiled formatter.

A :class:`Column` names a JSON key and where its values live; the column
may be a plain array or a field of a structured array (a strided view).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensor import _fastpath

_FMT = {
    ("i", 1): "b", ("u", 1): "B", ("i", 2): "h", ("u", 2): "H", ("i", 4): "i", ("u", 4): "I",
    ("i", 8): "q", ("u", 8): "Q", ("f", 4): "f", ("f", 8): "d", ("b", 1): "?",
}

INT = _fastpath.COL_INT
FIXED = _fastpath.COL_FIXED
NS_SECONDS = _fastpath.COL_NS_SECONDS
ENUM = _fastpath.COL_ENUM
ADDR = _fastpath.COL_ADDR
CHARS = _fastpath.COL_CHARS
UID = _fastpath.COL_UID
OPEN = _fastpath.COL_OPEN
CLOSE = _fastpath.COL_CLOSE


@dataclass(frozen=True)
class Column:
    key: str
    kind: int
    values: np.ndarray | None = None
    values2: np.ndarray | None = None  # ADDR: low half; CHARS: lengths
    decimals: int = 0
    names: tuple[str, ...] = ()        # ENUM

    def spec(self) -> tuple:
        width = self.values.dtype.itemsize if self.kind == CHARS else 0
        names = tuple(n.encode() for n in self.names) if self.kind == ENUM else ()
        values, fmt = _source(self.values)
        values2, fmt2 = _source(self.values2)
        return (self.kind, self.key, values, fmt, values2, fmt2, self.decimals, width, names)


_EMPTY = np.zeros(1, dtype=np.uint8)


def _source(values: np.ndarray | None) -> tuple[np.ndarray, str]:
    """The column and its type code.  A field of a record array is passed
    as its strided view: the formatter reads it in place."""
    if values is None:
        return _EMPTY, "B"
    if values.dtype.kind == "S":
        return values, "B"
    return values, _FMT[(values.dtype.kind, values.dtype.itemsize)]


def format_rows(columns: list[Column], n_rows: int, csv: bool, out: bytearray) -> int:
    """Write JSON lines (one object per row) or CSV lines (no header) at the
    start of ``out``, growing it as needed; return the number of bytes."""
    return _fastpath.format([c.spec() for c in columns], n_rows, csv, out)


def csv_header(columns: list[Column]) -> str:
    keys, prefix = [], []
    for c in columns:
        if c.kind == OPEN:
            prefix.append(c.key)
        elif c.kind == CLOSE:
            prefix.pop()
        else:
            keys.append(".".join(prefix + [c.key]))
    return ",".join(keys) + "\n"
