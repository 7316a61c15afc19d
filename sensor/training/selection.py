"""``sensor train --compare``: which tree ensemble, and how many trees.

Cross-validation over folds of distinct feature vectors (a fold never
holds a copy of a training row), pooled over the folds: accuracy, the
KDD cost per example and the recall of every category, since the rare
ones (u2r: 52 rows in the 10% file) are where ensembles differ.  Each
candidate is also exported and timed through onnxruntime on one core,
because the sensor must score at line rate (issue target: 500,000
records/s).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from sensor.evaluation.metrics import classification_summary
from sensor.models.categories import CATEGORIES
from sensor.training.preprocess import Preprocessor
from sensor.training.train import TrainingData, make_classifier, predicted_categories, vector_folds

#: (estimator, trees) pairs compared by default.
CANDIDATES = (("random_forest", 20), ("random_forest", 30), ("random_forest", 60),
              ("extra_trees", 20), ("extra_trees", 30), ("extra_trees", 60),
              ("gradient_boosting", 100))


@dataclass
class Comparison:
    estimator: str
    trees: int
    accuracy: float
    cost_per_example: float
    recall: dict[str, float]
    fit_seconds: float
    records_per_second: float | None     # None: the export failed
    note: str = ""


def compare(data: TrainingData, candidates=CANDIDATES, folds: int = 5, seed: int = 0, jobs: int = 2) -> list[Comparison]:
    fold = vector_folds(data.features, folds, seed)
    names = np.asarray(CATEGORIES)[data.category]
    pre = Preprocessor().fit(data.features)
    x = pre.transform(data.features)
    results = []
    for kind, trees in candidates:
        predicted = np.zeros(len(names), dtype=np.int64)
        fit_seconds = 0.0
        for k in range(folds):
            start = time.monotonic()
            model = make_classifier(kind, trees, seed, jobs).fit(x[fold != k], names[fold != k])
            fit_seconds += time.monotonic() - start
            predicted[fold == k] = predicted_categories(model, x[fold == k])
        summary = classification_summary(data.category, predicted)
        rate, note = _onnx_rate(pre, model, data.features)
        results.append(Comparison(kind, trees, summary["accuracy"], summary["cost_per_example"],
                                  {c: m["recall"] for c, m in summary["per_class"].items()},
                                  fit_seconds / folds, rate, note))
    return results


def comparison_table(results: list[Comparison]) -> str:
    head = ("| estimator | trees | accuracy | cost per example | " + " | ".join(f"{c} recall" for c in CATEGORIES)
            + " | fit s | records/s (ONNX, 1 core) |")
    lines = [head, "|---|---:|---:|---:|" + "---:|" * len(CATEGORIES) + "---:|---:|"]
    for r in results:
        rate = f"{r.records_per_second:,.0f}" if r.records_per_second else f"n/a ({r.note})"
        lines.append(f"| {r.estimator} | {r.trees} | {r.accuracy:.5f} | {r.cost_per_example:.5f} | "
                     + " | ".join(f"{r.recall[c]:.4f}" for c in CATEGORIES) + f" | {r.fit_seconds:.1f} | {rate} |")
    return "\n".join(lines) + "\n"


def _onnx_rate(pre: Preprocessor, model, features: np.ndarray) -> tuple[float | None, str]:
    """Records/s of the exported classifier on 65,536 rows, one thread."""
    from sensor.models.schema import FEATURES, SCHEMA_VERSION, Meta
    from sensor.models.scorer import feeds, session_from_bytes
    from sensor.training.export import classifier_model

    try:
        onnx_model = classifier_model(pre, model, {
            Meta.KIND: "classifier", Meta.SCHEMA: SCHEMA_VERSION, Meta.FEATURES: ",".join(FEATURES),
            Meta.CLASSES: ",".join(model.classes_), Meta.DECISION: "argmax"})
    except Exception as exc:  # a converter bug is a finding of the comparison, not a crash
        return None, f"export failed: {str(exc).splitlines()[0][:80]}"
    session = session_from_bytes(onnx_model.SerializeToString(), f"{type(model).__name__} export")
    batch = feeds(np.resize(features, 65536))
    session.run(None, batch)
    start = time.perf_counter()
    session.run(None, batch)
    return 65536 / (time.perf_counter() - start), ""
