"""``sensor evaluate``: score a labelled KDD-format file with a model set.

Every figure is computed from the ONNX models through onnxruntime, the
same path the running sensor takes, so what is reported is what ships.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sensor.datasets import file_sha256, load_kdd
from sensor.evaluation.metrics import NORMAL, anomaly_summary, classification_summary, roc_auc
from sensor.models.categories import CATEGORIES, categories_of
from sensor.models.modelset import ModelSet

BATCH = 65536


@dataclass
class Evaluation:
    """The JSON summary, plus the per-row arrays the report plots."""

    summary: dict
    features: np.ndarray                                # the evaluated rows, KDD_DTYPE
    truth: np.ndarray                                   # category index per row
    labels: np.ndarray                                  # attack name per row
    predicted: dict[str, np.ndarray] = field(default_factory=dict)   # "verdict"/"classifier"/baselines -> index
    scores: dict[str, np.ndarray] = field(default_factory=dict)      # anomaly scores, P(attack)
    thresholds: dict[str, float] = field(default_factory=dict)


def evaluate(path: str | Path, models: ModelSet) -> Evaluation:
    data = load_kdd(path)
    if len(data.features) and (data.labels == "").all():
        raise ValueError(f"{path}: no labels to evaluate against (41 fields a row)")
    truth = categories_of(data.labels)
    classes = list(models.classifier.classes)
    verdict, label = np.zeros(len(truth), np.int64), np.zeros(len(truth), np.int64)
    p_attack = np.zeros(len(truth), np.float32)
    anomaly = {k: np.zeros(len(truth), np.float32) for k in models.anomaly_models()}
    novel = 0
    for start in range(0, len(truth), BATCH):
        rows = slice(start, start + BATCH)
        scores = models.score(data.features[rows])
        verdict[rows] = _indices(scores.category)
        label[rows] = _indices(scores.label)
        p_attack[rows] = 1 - scores.probabilities[:, classes.index("normal")]
        for kind, score in scores.anomaly.items():
            anomaly[kind][rows] = score
        novel += int(scores.novel.sum())

    attack = truth != NORMAL
    result = Evaluation(
        summary={},
        features=data.features,
        truth=truth,
        labels=data.labels,
        predicted={"verdict": verdict, "classifier": label},
        scores={"classifier": p_attack, **anomaly},
        thresholds={k: m.threshold for k, m in models.anomaly_models().items()},
    )
    verdict_summary = classification_summary(truth, verdict)
    s = result.summary
    s["data"] = {
        "file": str(path),
        "sha256": file_sha256(path),
        "rows": int(len(truth)),
        "categories": {c: int((truth == k).sum()) for k, c in enumerate(CATEGORIES)},
    }
    s["models"] = {kind: str(m.path) for kind, m in (("classifier", models.classifier), *models.anomaly_models().items())}
    s.update({k: verdict_summary[k] for k in ("accuracy", "cost_per_example", "per_class", "confusion")})
    s["classifier"] = classification_summary(truth, label)
    s["binary_accuracy"] = {"verdict": verdict_summary["binary_accuracy"],
                            "classifier": s["classifier"]["binary_accuracy"]}
    s["roc_auc"] = {"classifier": roc_auc(attack, p_attack)}
    s["verdict"] = {**verdict_summary, "changed_by_autoencoder": novel}
    for kind, score in anomaly.items():
        s[kind] = anomaly_summary(attack, score, result.thresholds[kind])
        s["binary_accuracy"][kind] = s[kind]["binary_accuracy"]
        s["roc_auc"][kind] = s[kind]["roc_auc"]
    s["by_attack"] = by_attack(result)
    return result


def by_attack(result: Evaluation) -> dict[str, dict]:
    """Per attack name: rows, share the verdict got right, share flagged as
    any attack, share over each anomaly model's threshold."""
    out = {}
    for name in sorted(set(result.labels.tolist()), key=lambda n: (-int((result.labels == n).sum()), n)):
        rows = result.labels == name
        entry = {
            "category": CATEGORIES[int(result.truth[rows][0])],
            "rows": int(rows.sum()),
            "verdict_correct": float((result.predicted["verdict"][rows] == result.truth[rows]).mean()),
            "called_attack": float((result.predicted["verdict"][rows] != NORMAL).mean()),
        }
        for kind, threshold in result.thresholds.items():
            entry[f"{kind}_flagged"] = float((result.scores[kind][rows] > threshold).mean())
        out[name] = entry
    return out


def _indices(names: np.ndarray) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(CATEGORIES)}
    uniq, inverse = np.unique(names, return_inverse=True)
    return np.array([lookup[u] for u in uniq], dtype=np.int64)[inverse.reshape(-1)]
