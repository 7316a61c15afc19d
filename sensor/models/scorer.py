"""Scoring connection records with the shipped ONNX models (onnxruntime only).

A model is checked against the contract in :mod:`sensor.models.schema`
when it is loaded: a file that is not ONNX, declares another feature
schema, lacks an input or output, or carries an unreadable threshold is
refused with a :class:`ModelError` naming the file and the mismatch, so
a wrong model can never produce plausible-looking wrong scores.

Batches are KDD_DTYPE arrays, as the feature stage and the dataset
loader produce them.  Sessions run on one thread: the sensor gives each
stage its own core rather than letting onnxruntime spin a pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sensor.models.schema import FEATURES, OUTPUTS, REQUIRED_META, SCHEMA_VERSION, Meta, input_type
from sensor.features.kdd import SYMBOLIC
from sensor.models.categories import CATEGORIES


#: rows per onnxruntime call: bounds its buffers (the autoencoder's grow with the batch)
RUN_ROWS = 4096


class ModelError(ValueError):
    """A model file the sensor cannot use; the message names the file and why."""


# code -> string for each symbolic input; codes outside the table (255 =
# a value the sensor's tables do not know) become "", which every model
# encodes as "unknown" (all zeros in its one-hot block)
_STRINGS = {
    name: np.array(list(values) + [""] * (256 - len(values)), dtype=object)
    for name, values in SYMBOLIC.items()
}


def feeds(features: np.ndarray) -> dict[str, np.ndarray]:
    """The 41 named [N, 1] inputs of a model, from a KDD_DTYPE batch."""
    out: dict[str, np.ndarray] = {}
    for name in FEATURES:
        column = features[name]
        if name in _STRINGS:
            out[name] = _STRINGS[name][column].reshape(-1, 1)
        else:
            out[name] = column.astype(np.float32).reshape(-1, 1)
    return out


@dataclass
class OnnxModel:
    """One loaded, checked model."""

    path: Path
    kind: str
    metadata: dict[str, str]
    session: object = field(repr=False)
    output_names: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: str | Path) -> "OnnxModel":
        path = Path(path)
        session = _session(path)
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        kind = metadata.get(Meta.KIND, "")
        if kind not in OUTPUTS:
            raise ModelError(f"{path}: metadata kind is {kind!r}; expected one of {', '.join(OUTPUTS)}")
        _check_metadata(path, kind, metadata)
        _check_inputs(path, session)
        names = tuple(o.name for o in session.get_outputs())
        missing = [o for o in OUTPUTS[kind] if o not in names]
        if missing:
            raise ModelError(f"{path}: a {kind} must output {', '.join(missing)}; the model outputs {', '.join(names)}")
        model_cls = Classifier if kind == "classifier" else AnomalyModel
        model = model_cls(path, kind, metadata, session, OUTPUTS[kind])
        model._validate()
        return model

    def run(self, features: np.ndarray, inputs: dict[str, np.ndarray] | None = None,
            outputs: tuple[str, ...] | None = None) -> list[np.ndarray]:
        """The contract outputs; ``inputs`` (from :func:`feeds`) saves
        rebuilding them when several models score the same batch.  Rows go
        through in slices of RUN_ROWS, so onnxruntime's buffers stay small
        whatever the batch size."""
        inputs = inputs or feeds(features)
        names = list(outputs or self.output_names)
        rows = len(features)
        if rows <= RUN_ROWS:
            return self.session.run(names, inputs)
        parts = [self.session.run(names, {k: v[start:start + RUN_ROWS] for k, v in inputs.items()})
                 for start in range(0, rows, RUN_ROWS)]
        return [np.concatenate([p[i] for p in parts]) for i in range(len(names))]

    def _validate(self) -> None:
        """Kind-specific metadata checks."""


@dataclass
class Classifier(OnnxModel):
    """The category classifier: ``label`` and per-class ``probabilities``."""

    classes: tuple[str, ...] = ()
    _names: np.ndarray = field(default=None, repr=False)

    def _validate(self) -> None:
        self.classes = tuple(self.metadata[Meta.CLASSES].split(","))
        self._names = np.array(self.classes)
        unknown = [c for c in self.classes if c not in CATEGORIES]
        if unknown or "normal" not in self.classes:
            raise ModelError(f"{self.path}: classes {', '.join(self.classes)} are not KDD categories "
                             f"({', '.join(CATEGORIES)}), or lack normal")
        probabilities = next(o for o in self.session.get_outputs() if o.name == "probabilities")
        width = probabilities.shape[-1] if probabilities.shape else None
        if isinstance(width, int) and width != len(self.classes):
            raise ModelError(
                f"{self.path}: metadata lists {len(self.classes)} classes, the probabilities output has {width} columns"
            )

    def predict(self, features: np.ndarray, inputs: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(labels as str, probabilities [N, classes] in ``classes`` order).

        The label is the likeliest class, first in ``classes`` order on a
        tie, which is how the graph's own ``label`` output is defined;
        reading it from the probabilities spares onnxruntime building a
        Python string per record (a test holds the two equal)."""
        (probabilities,) = self.run(features, inputs, ("probabilities",))
        probabilities = np.asarray(probabilities, dtype=np.float32)
        return self._names[probabilities.argmax(axis=1)], probabilities


@dataclass
class AnomalyModel(OnnxModel):
    """An anomaly model: a ``score`` per record and its calibrated threshold."""

    threshold: float = float("nan")

    def _validate(self) -> None:
        try:
            self.threshold = float(self.metadata[Meta.THRESHOLD])
        except ValueError:
            raise ModelError(f"{self.path}: threshold {self.metadata[Meta.THRESHOLD]!r} is not a number") from None
        if not np.isfinite(self.threshold):
            raise ModelError(f"{self.path}: threshold {self.threshold} is not finite")

    def score(self, features: np.ndarray, inputs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Anomaly scores, float32 [N]; above ``threshold`` = anomalous."""
        (score,) = self.run(features, inputs)
        return np.asarray(score, dtype=np.float32).reshape(-1)

    @property
    def explains(self) -> bool:
        """Whether the graph has a ``contributions`` output (the autoencoder's)."""
        return any(o.name == "contributions" for o in self.session.get_outputs())

    def contributions(self, features: np.ndarray, inputs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """[N, 41] share of each KDD feature in the score (FEATURES order);
        run only for the records an alert explains."""
        if not self.explains:
            raise ModelError(f"{self.path}: this {self.kind} has no contributions output")
        (shares,) = self.run(features, inputs, ("contributions",))
        return np.asarray(shares, dtype=np.float32)


def load_model(path: str | Path) -> Classifier | AnomalyModel:
    """Load and check one model file."""
    return OnnxModel.load(path)  # type: ignore[return-value]


def _session(path: Path):
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror})") from None
    return session_from_bytes(blob, path)


def session_from_bytes(blob: bytes, origin) -> object:
    """A one-thread onnxruntime session; ModelError (naming ``origin``) if the bytes are no usable model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for every kind of bad file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{origin}: not a usable ONNX model ({reason})") from None


def _check_metadata(path: Path, kind: str, metadata: dict[str, str]) -> None:
    missing = [k for k in REQUIRED_META[kind] if k not in metadata]
    if missing:
        raise ModelError(f"{path}: metadata lacks {', '.join(missing)}")
    if metadata[Meta.SCHEMA] != SCHEMA_VERSION:
        raise ModelError(
            f"{path}: trained on feature schema {metadata[Meta.SCHEMA]!r}; this sensor computes {SCHEMA_VERSION!r}"
        )
    declared = tuple(metadata[Meta.FEATURES].split(","))
    if declared != FEATURES:
        extra = [f for f in declared if f not in FEATURES]
        lacking = [f for f in FEATURES if f not in declared]
        detail = (f"unknown {', '.join(extra)}; " if extra else "") + (f"missing {', '.join(lacking)}" if lacking else "order differs")
        raise ModelError(f"{path}: feature list does not match the sensor's 41 KDD features ({detail.rstrip('; ')})")


def _check_inputs(path: Path, session) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    extra = sorted(set(inputs) - set(FEATURES))
    if extra:
        raise ModelError(f"{path}: inputs the sensor does not have: {', '.join(extra)}")
    for name in FEATURES:
        arg = inputs.get(name)
        if arg is None:
            raise ModelError(f"{path}: no input named {name!r}")
        want = f"tensor({input_type(name)})"
        if arg.type != want:
            raise ModelError(f"{path}: input {name!r} is {arg.type}; the contract says {want}")
        if len(arg.shape) != 2 or arg.shape[1] != 1:
            raise ModelError(f"{path}: input {name!r} has shape {arg.shape}; the contract says [N, 1]")


__all__ = ["AnomalyModel", "Classifier", "ModelError", "OnnxModel", "feeds", "load_model"]
