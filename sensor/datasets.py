"""Reading KDD-format files: the KDD Cup 1999 and NSL-KDD data sets, and
what ``sensor replay --format kdd`` writes.

One loader for all of them: 41 features, optionally the label (with KDD's
trailing full stop, or without as in NSL-KDD) and NSL-KDD's difficulty
column; gzip-compressed or plain.  Rows come back as a structured array
with the same layout the feature stage produces (KDD_DTYPE), plus
``label`` and ``difficulty``.

pandas parses the text (2 s for the 494,021 rows of the 10% file; a
Python loop took 19 s); it is a training and test dependency, never
imported by the sensor itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensor.features.kdd import KDD_DTYPE, KDD_FEATURES, SYMBOLIC


class DatasetError(ValueError):
    """A row that does not look like a KDD record (file and line given)."""


@dataclass
class KddData:
    features: np.ndarray        # KDD_DTYPE rows
    labels: np.ndarray          # str, "" when the file has none
    difficulty: np.ndarray      # int, -1 when the file has none
    unknown_symbols: dict       # feature -> set of values not in our tables (coded as 255)


def load_kdd(path: str | Path) -> KddData:
    """Read a KDD-format file (see the module docstring)."""
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(path, header=None, keep_default_na=False, compression="infer",
                            dtype={i: str for i, n in enumerate(KDD_FEATURES) if n in SYMBOLIC} | {41: str})
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a KDD-format file ({exc})") from None
    if frame.empty:
        return KddData(np.zeros(0, dtype=KDD_DTYPE), np.array([], dtype=str), np.array([], dtype=int), {})
    width = frame.shape[1]
    if width not in (41, 42, 43):
        raise DatasetError(f"{path}: {width} fields a row; a KDD row has 41 features (+ label, + difficulty)")
    out = np.zeros(len(frame), dtype=KDD_DTYPE)
    unknown: dict[str, set] = {}
    for i, name in enumerate(KDD_FEATURES):
        column = frame[i]
        if name in SYMBOLIC:
            table = {v: c for c, v in enumerate(SYMBOLIC[name])}
            codes = column.map(table)
            missing = set(column[codes.isna()].unique())
            if missing:
                unknown[name] = missing
            out[name] = codes.fillna(255).to_numpy(dtype=np.uint8)
            continue
        values = column if column.dtype.kind in "iuf" else pd.to_numeric(column, errors="coerce")
        if values.isna().any():
            row = int(values.isna().to_numpy().argmax())
            raise DatasetError(f"{path}:{row + 1}: column {i + 1} ({name}) is {column.iloc[row]!r}, not a number")
        out[name] = values.to_numpy(dtype=np.float64)
    labels = frame[41].str.rstrip(".").to_numpy(dtype=str) if width > 41 else np.full(len(frame), "")
    difficulty = frame[42].astype(np.int64).to_numpy() if width > 42 else np.full(len(frame), -1)
    return KddData(out, labels, difficulty, unknown)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes: names exactly which data a model saw."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_records(path: str | Path) -> bool:
    """Whether a file holds the JSONL records of ``sensor replay``/``run``
    (rather than a capture or a KDD-format file)."""
    with open(path, "rb") as f:
        return f.read(1) == b"{"


def load_records(path: str | Path) -> tuple[np.ndarray, list[dict]]:
    """The 41 features (KDD_DTYPE rows) of ``sensor replay``'s JSONL
    records, with the records themselves (for joining with labels)."""
    import json

    path = Path(path)
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
                record["kdd"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DatasetError(f"{path}:{number}: not a sensor record (JSON with a 'kdd' object)") from None
            records.append(record)
    out = np.zeros(len(records), dtype=KDD_DTYPE)
    for name in KDD_FEATURES:
        try:
            values = [r["kdd"][name] for r in records]
        except KeyError:
            raise DatasetError(f"{path}: a record lacks the feature {name!r}") from None
        if name in SYMBOLIC:
            table = {v: c for c, v in enumerate(SYMBOLIC[name])}
            out[name] = [table.get(v, 255) for v in values]
        else:
            out[name] = values
    return out, records


def load_row_labels(path: str | Path, rows: int) -> np.ndarray:
    """One KDD label a line (for a ``--format kdd`` file, row by row)."""
    path = Path(path)
    labels = np.array([line.strip().rstrip(".") for line in path.read_text().splitlines() if line.strip()], dtype=str)
    if len(labels) != rows:
        raise DatasetError(f"{path}: {len(labels)} labels for {rows} rows")
    return labels
