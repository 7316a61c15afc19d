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
        src, off, stride, fmt = _source(self.values)
        src2, off2, stride2, fmt2 = _source(self.values2)
        width = self.values.dtype.itemsize if self.kind == CHARS else 0
        names = tuple(n.encode() for n in self.names) if self.kind == ENUM else ()
        return (self.kind, self.key, src, off, stride, fmt, src2, off2, stride2, fmt2,
                self.decimals, width, names)


_EMPTY = np.zeros(1, dtype=np.uint8)


def _source(values: np.ndarray | None) -> tuple[np.ndarray, int, int, str]:
    """(contiguous buffer, byte offset, stride, type code) of a 1-D column."""
    if values is None:
        return _EMPTY, 0, 0, "B"
    root = values
    while isinstance(root.base, np.ndarray):
        root = root.base
    if not root.flags.c_contiguous or values.ndim != 1 or (len(values) and values.strides[0] < 0):
        values = root = np.ascontiguousarray(values)
    offset = values.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    stride = values.strides[0] if len(values) > 1 else values.dtype.itemsize
    fmt = "B" if values.dtype.kind == "S" else _FMT[(values.dtype.kind, values.dtype.itemsize)]
    return root.view(np.uint8).reshape(-1) if root.ndim == 1 else root, offset, stride, fmt


def format_rows(columns: list[Column], n_rows: int, csv: bool) -> bytes:
    """JSON lines (one object per row) or CSV lines (no header)."""
    return _fastpath.format([c.spec() for c in columns], n_rows, csv)


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
