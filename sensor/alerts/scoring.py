"""Model outputs for rules and for alert evidence.

Every record is scored only by the models the enabled rules read
(``model.*`` fields); an alert's evidence then scores its one opening
record with every loaded model, so each alert carries all the scores with
their thresholds at the cost of one tiny run per episode.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from sensor.features import SYMBOLIC
from sensor.features.kdd import KDD_FEATURES
from sensor.alerts.values import plain, symbol
from sensor.models.modelset import ModelSet
from sensor.models.scorer import feeds

TOP_FEATURES = 5  # autoencoder contributions shown in an alert


def needed_models(fields: Iterable[str]) -> frozenset[str]:
    """The model kinds whose outputs the given rule fields read."""
    kinds: set[str] = set()
    for name in fields:
        if name == "model.verdict":
            kinds |= {"classifier", "autoencoder"}
        elif name.startswith("model."):
            kinds.add(name.split(".")[1])
    return frozenset(kinds)


class RuleScorer:
    """Runs the needed models on a batch and names their outputs as rule fields."""

    def __init__(self, models: ModelSet, kinds: frozenset[str]) -> None:
        missing = sorted(k for k in kinds if getattr(models, k, None) is None)
        if missing:
            raise ValueError(f"the rules read {', '.join(missing)} output, and no such model is loaded")
        self.models = models
        self.kinds = kinds

    def columns(self, features: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        models = self.models
        inputs = feeds(features)
        label = probabilities = flags = None
        if "classifier" in self.kinds:
            label, probabilities = models.classifier.predict(features, inputs)
            out["model.classifier.label"] = label
            out["model.classifier.probability"] = probabilities.max(axis=1)
            for i, name in enumerate(models.classifier.classes):
                out[f"model.classifier.p.{name}"] = probabilities[:, i]
        for kind in ("autoencoder", "isolation_forest"):
            if kind in self.kinds:
                model = getattr(models, kind)
                score = model.score(features, inputs)
                out[f"model.{kind}.score"] = score
                out[f"model.{kind}.threshold"] = np.float32(model.threshold)
                if kind == "autoencoder":
                    flags = score > model.threshold
        if label is not None and flags is not None:
            out["model.verdict"], _ = models.verdict(label, probabilities, flags)
        return out


def model_evidence(models: ModelSet, records: np.ndarray) -> list[dict]:
    """Every loaded model's view of each record (KDD_DTYPE rows: the
    opening records of a batch's new episodes, scored in one run per model)."""
    scores = models.score(records)
    anomalies = models.anomaly_models()
    shares = {kind: model.contributions(records) for kind, model in anomalies.items() if model.explains}
    out = []
    for i in range(len(records)):
        evidence: dict = {
            "verdict": str(scores.category[i]),
            "classifier": {
                "label": str(scores.label[i]),
                "probabilities": {c: round(float(p), 4) for c, p in zip(models.classifier.classes, scores.probabilities[i])},
            },
        }
        for kind, model in anomalies.items():
            entry = {"score": round(float(scores.anomaly[kind][i]), 6), "threshold": round(model.threshold, 6),
                     "anomalous": bool(scores.flagged[kind][i])}
            if kind in shares:
                entry["top_features"] = _top_features(shares[kind][i], records[i])
            evidence[kind] = entry
        out.append(evidence)
    return out


def _top_features(shares: np.ndarray, record: np.void) -> list[dict]:
    """The features with the largest share of the reconstruction error."""
    total = float(shares.sum()) or 1.0
    top = np.argsort(shares)[::-1][:TOP_FEATURES]
    return [{"feature": KDD_FEATURES[i], "share": round(float(shares[i]) / total, 4),
             "value": feature_value(record, KDD_FEATURES[i])} for i in top]


def feature_value(record: np.void, name: str):
    """One feature of a KDD_DTYPE record as the records print it."""
    value = record[name]
    if name in SYMBOLIC:
        return symbol(SYMBOLIC[name], value)
    return plain(value)
