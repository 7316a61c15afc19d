"""Feature preprocessing, fitted in numpy and emitted as ONNX nodes.

One definition serves both sides: :meth:`Preprocessor.transform` is what
the scikit-learn estimators are trained on, :meth:`Preprocessor.emit`
writes the same arithmetic, in the same float32 order, into a model's
graph, so the shipped model takes raw features and gives the scores the
estimator would.

Steps, in column order of the output matrix:

1. the 38 numeric features; counts and byte counts log-scaled
   (log(x + 1): a 40-byte and a 40-megabyte transfer should not be 10^6
   apart), then standard-scaled on the fitting rows, optionally clipped
   (one extreme value must not dominate an autoencoder's error);
2. optionally the same numeric features standardised within their
   (protocol, service) group: "unusual for an SNMP exchange" rather than
   "unusual for any connection" (rows of a group smaller than
   ``min_group`` use the global statistics);
3. one-hot blocks for protocol_type, service and flag, over the values
   seen when fitting; an unseen value gives an all-zero block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sensor.features.kdd import KDD_FEATURES, SYMBOLIC

#: Unbounded counts: scaled by log(x + 1).  Rates and 0/1 flags are not.
LOG_SCALED: tuple[str, ...] = (
    "duration", "src_bytes", "dst_bytes", "wrong_fragment", "urgent", "hot", "num_failed_logins",
    "num_compromised", "num_root", "num_file_creations", "num_shells", "num_access_files",
    "count", "srv_count", "dst_host_count", "dst_host_srv_count",
)
#: The numeric block's column order: the log-scaled counts first, then the rest.
NUMERIC: tuple[str, ...] = LOG_SCALED + tuple(
    n for n in KDD_FEATURES if n not in SYMBOLIC and n not in LOG_SCALED
)
_NO_GROUP = 3 * 256  # group key of a row whose protocol or service our tables lack


@dataclass
class Preprocessor:
    clip: float | None = None
    grouped: bool = False
    min_group: int = 20
    std_floor: float = 0.1  # group std >= this fraction of the global std
    mean: np.ndarray = field(default=None, repr=False)
    scale: np.ndarray = field(default=None, repr=False)
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)
    group_keys: np.ndarray = field(default=None, repr=False)   # int64 protocol*256 + service
    group_mean: np.ndarray = field(default=None, repr=False)   # [groups + 1, numeric], last = global
    group_scale: np.ndarray = field(default=None, repr=False)

    # -- fitting and numpy transform ---------------------------------------

    def fit(self, features: np.ndarray) -> "Preprocessor":
        values = _logged(features)
        self.mean = values.mean(axis=0, dtype=np.float64).astype(np.float32)
        std = values.std(axis=0, dtype=np.float64)
        self.scale = np.where(std > 0, std, 1.0).astype(np.float32)
        self.categories = {
            name: tuple(SYMBOLIC[name][c] for c in np.unique(features[name]) if c < len(SYMBOLIC[name]))
            for name in SYMBOLIC
        }
        if self.grouped:
            self._fit_groups(features, values)
        return self

    def _fit_groups(self, features: np.ndarray, values: np.ndarray) -> None:
        keys = _group_key(features)
        uniq, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        big = (counts >= self.min_group) & (uniq != _NO_GROUP)
        means, scales = [], []
        for g in np.flatnonzero(big):
            rows = values[inverse == g]
            means.append(rows.mean(axis=0, dtype=np.float64))
            scales.append(np.maximum(rows.std(axis=0, dtype=np.float64), self.std_floor * self.scale))
        self.group_keys = uniq[big].astype(np.int64)
        self.group_mean = np.vstack(means + [self.mean]).astype(np.float32)
        self.group_scale = np.vstack(scales + [self.scale]).astype(np.float32)

    @property
    def width(self) -> int:
        return len(NUMERIC) * (2 if self.grouped else 1) + sum(len(v) for v in self.categories.values())

    def column_names(self) -> list[str]:
        names = list(NUMERIC)
        if self.grouped:
            names += [f"{n}|group" for n in NUMERIC]
        for feature, values in self.categories.items():
            names += [f"{feature}={v}" for v in values]
        return names

    def column_features(self) -> np.ndarray:
        """The KDD feature (index into KDD_FEATURES) each output column comes from."""
        return np.array([KDD_FEATURES.index(n.split("|")[0].split("=")[0]) for n in self.column_names()])

    def transform(self, features: np.ndarray) -> np.ndarray:
        values = _logged(features)
        blocks = [self._clipped((values - self.mean) / self.scale)]
        if self.grouped:
            row = self._group_rows(_group_key(features))
            blocks.append(self._clipped((values - self.group_mean[row]) / self.group_scale[row]))
        for name, seen in self.categories.items():
            index = {SYMBOLIC[name].index(v): i for i, v in enumerate(seen)}
            lookup = np.full(256, len(seen), dtype=np.int64)
            for code, i in index.items():
                lookup[code] = i
            onehot = np.zeros((len(features), len(seen) + 1), dtype=np.float32)
            onehot[np.arange(len(features)), lookup[features[name]]] = 1
            blocks.append(onehot[:, :-1])
        return np.hstack(blocks)

    def _clipped(self, z: np.ndarray) -> np.ndarray:
        if self.clip is None:
            return z
        return np.clip(z, np.float32(-self.clip), np.float32(self.clip))

    def _group_rows(self, keys: np.ndarray) -> np.ndarray:
        """Row of group_mean/group_scale for each key; the last row (global) if unfitted."""
        last = len(self.group_keys)
        if last == 0:
            return np.zeros(len(keys), dtype=np.int64)
        at = np.minimum(np.searchsorted(self.group_keys, keys), last - 1)
        return np.where(self.group_keys[at] == keys, at, last)

    def parameters(self) -> dict:
        return {"clip": self.clip, "grouped": self.grouped, "min_group": self.min_group,
                "std_floor": self.std_floor, "log_scaled": list(LOG_SCALED),
                "groups": 0 if self.group_keys is None else int(len(self.group_keys))}

    # -- ONNX ----------------------------------------------------------------
    # The contract's [N, 1] numeric inputs are stacked feature-major,
    # [38, N] (contiguous copies; a row-wise Concat of [N, 1] pieces copies 4
    # bytes at a time), log-scaled there, and transposed once.  Everything
    # after works row-major: group statistics and one-hot blocks are row
    # gathers from small tables, which cost a memcpy per row.

    def emit(self, g: "GraphBuilder") -> str:  # noqa: F821  (sensor.training.onnx_graph)
        """Append the preprocessing nodes to ``g``; return the [N, width] output tensor."""
        n = len(LOG_SCALED)
        logged = g.node("Log", [g.node("Add", [self._rows(g, LOG_SCALED), g.const(np.float32(1))])])
        values = g.node("Transpose", [g.node("Concat", [logged, self._rows(g, NUMERIC[n:])], axis=0)], perm=[1, 0])
        blocks = [self._emit_clip(g, g.node("Div", [g.node("Sub", [values, g.const(self.mean)]), g.const(self.scale)]))]
        if self.grouped:
            blocks.append(self._emit_group(g, values))
        for name, seen in self.categories.items():
            index = _flat(g, g.node("LabelEncoder", [name], domain="ai.onnx.ml", keys_strings=list(seen),
                                    values_int64s=list(range(len(seen))), default_int64=len(seen)))
            table = np.eye(len(seen) + 1, len(seen), dtype=np.float32)  # last row: unseen value, all zeros
            blocks.append(g.node("Gather", [g.const(table), index], axis=0))
        return g.node("Concat", blocks, axis=1)

    @staticmethod
    def _rows(g, names: tuple[str, ...]) -> str:
        """[len(names), N] from the [N, 1] inputs."""
        stacked = g.node("Concat", list(names), axis=0)
        return g.node("Reshape", [stacked, g.const(np.array([len(names), -1], np.int64))])

    def _emit_clip(self, g, tensor: str) -> str:
        if self.clip is None:
            return tensor
        return g.node("Clip", [tensor, g.const(np.float32(-self.clip)), g.const(np.float32(self.clip))])

    def _emit_group(self, g, values: str) -> str:
        codes = []
        for name in ("protocol_type", "service"):
            codes.append(g.node("LabelEncoder", [name], domain="ai.onnx.ml", keys_strings=list(SYMBOLIC[name]),
                                values_int64s=list(range(len(SYMBOLIC[name]))), default_int64=-1))
        key = g.node("Add", [g.node("Mul", [codes[0], g.const(np.int64(256))]), codes[1]])
        # unknown protocol or service -> _NO_GROUP, which no fitted group has
        unknown = g.node("Or", [g.node("Less", [codes[0], g.const(np.int64(0))]),
                                g.node("Less", [codes[1], g.const(np.int64(0))])])
        key = g.node("Where", [unknown, g.const(np.int64(_NO_GROUP)), key])
        row = _flat(g, g.node("LabelEncoder", [key], domain="ai.onnx.ml", keys_int64s=[int(k) for k in self.group_keys],
                              values_int64s=list(range(len(self.group_keys))), default_int64=len(self.group_keys)))
        mean = g.node("Gather", [g.const(self.group_mean), row], axis=0)
        scale = g.node("Gather", [g.const(self.group_scale), row], axis=0)
        return self._emit_clip(g, g.node("Div", [g.node("Sub", [values, mean]), scale]))


def _flat(g, tensor: str) -> str:
    return g.node("Reshape", [tensor, g.const(np.array([-1], np.int64))])


def _logged(features: np.ndarray) -> np.ndarray:
    """[N, 38] float32: the numeric features, log(x + 1) where LOG_SCALED."""
    out = np.empty((len(features), len(NUMERIC)), dtype=np.float32)
    one = np.float32(1)
    for j, name in enumerate(NUMERIC):
        column = features[name].astype(np.float32)
        out[:, j] = np.log(column + one) if name in LOG_SCALED else column
    return out


def _group_key(features: np.ndarray) -> np.ndarray:
    protocol = features["protocol_type"].astype(np.int64)
    service = features["service"].astype(np.int64)
    unknown = (protocol >= len(SYMBOLIC["protocol_type"])) | (service >= len(SYMBOLIC["service"]))
    return np.where(unknown, _NO_GROUP, protocol * 256 + service)
