"""The shipped model set and the sensor's verdict on a batch of records.

The verdict is the classifier's label, with one correction: a record the
trees call normal but that the autoencoder finds unlike any training
normal (score above its calibrated threshold) gets the most probable
*attack* category instead.  Trees only know the attacks they were shown;
the autoencoder only knows normal traffic.  Leave-one-attack-out
validation on the training data (models/README.md) is what chose this
rule: on attacks the trees never saw it halves the cost per example, at
the price of the autoencoder's false-positive rate on normal traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensor.models.schema import ANOMALY_KINDS
from sensor.models.scorer import AnomalyModel, Classifier, ModelError, feeds, load_model

MODEL_FILES = {
    "classifier": "classifier.onnx",
    "autoencoder": "autoencoder.onnx",
    "isolation_forest": "isolation_forest.onnx",
}


def default_models_dir() -> Path:
    """``models/`` of the source tree the package runs from."""
    return Path(__file__).resolve().parents[2] / "models"


@dataclass
class Scores:
    """Model outputs for a batch, one entry per record."""

    category: np.ndarray                 # the verdict (str)
    label: np.ndarray                    # the classifier's own label (str)
    probabilities: np.ndarray            # [N, classes], classifier.classes order
    novel: np.ndarray                    # bool: verdict changed by the autoencoder
    anomaly: dict[str, np.ndarray]       # model kind -> score
    flagged: dict[str, np.ndarray]       # model kind -> score above threshold


@dataclass
class ModelSet:
    classifier: Classifier
    autoencoder: AnomalyModel | None = None
    isolation_forest: AnomalyModel | None = None

    @classmethod
    def load(cls, directory: str | Path) -> "ModelSet":
        directory = Path(directory)
        found = {}
        for kind, filename in MODEL_FILES.items():
            path = directory / filename
            if path.exists():
                model = load_model(path)
                if model.kind != kind:
                    raise ModelError(f"{path}: metadata says {model.kind}, the file name says {kind}")
                found[kind] = model
        if "classifier" not in found:
            raise ModelError(f"{directory}: no {MODEL_FILES['classifier']}")
        return cls(**found)

    def anomaly_models(self) -> dict[str, AnomalyModel]:
        return {kind: getattr(self, kind) for kind in ANOMALY_KINDS if getattr(self, kind) is not None}

    def score(self, features: np.ndarray) -> Scores:
        inputs = feeds(features)
        label, probabilities = self.classifier.predict(features, inputs)
        anomalies = self.anomaly_models()
        anomaly = {kind: model.score(features, inputs) for kind, model in anomalies.items()}
        flagged = {kind: anomaly[kind] > model.threshold for kind, model in anomalies.items()}
        category, novel = self.verdict(label, probabilities, flagged.get("autoencoder"))
        return Scores(category, label, probabilities, novel, anomaly, flagged)

    def verdict(self, label: np.ndarray, probabilities: np.ndarray,
                autoencoder_flags: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(verdict category, whether the autoencoder changed it) per record."""
        if autoencoder_flags is None:
            return label, np.zeros(len(label), dtype=bool)
        novel = (label == "normal") & autoencoder_flags
        return np.where(novel, self._likeliest_attack(probabilities), label), novel

    def _likeliest_attack(self, probabilities: np.ndarray) -> np.ndarray:
        classes = np.asarray(self.classifier.classes)
        attacks = np.flatnonzero(classes != "normal")
        return classes[attacks][probabilities[:, attacks].argmax(axis=1)]
