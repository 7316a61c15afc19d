"""Baselines the report sets beside the shipped models (scikit-learn only).

- 1-nearest-neighbour: the classic KDD Cup 1999 reference point.  Rows
  are standardised and one-hot encoded as for the classifier; each
  distinct training vector votes with its majority category.
- Isolation forest on 10 features: the small-feature anomaly detector
  the literature reports, trained on training normals, its threshold
  calibrated exactly as the shipped anomaly models' are.
"""

from __future__ import annotations

import numpy as np

from sensor.evaluation.evaluate import Evaluation
from sensor.evaluation.metrics import NORMAL, anomaly_summary, classification_summary
from sensor.training.preprocess import Preprocessor
from sensor.training.train import TrainingData, calibrated_threshold, holdout_mask

IF_FEATURES = (
    "duration", "src_bytes", "dst_bytes", "count", "srv_count", "serror_rate", "rerror_rate",
    "same_srv_rate", "dst_host_count", "dst_host_srv_count",
)
LOG_SCALED = ("duration", "src_bytes", "dst_bytes", "count", "srv_count", "dst_host_count", "dst_host_srv_count")


def add_baselines(result: Evaluation, train: TrainingData, *, seed: int = 0,
                  false_positive_rate: float = 0.02, jobs: int = 2) -> None:
    """Score the evaluated rows with both baselines; add them to ``result``."""
    features = result.features
    nn = one_nearest_neighbour(train, features, jobs=jobs)
    result.predicted["1-NN"] = nn
    score, threshold = isolation_forest_10(train, features, seed=seed, false_positive_rate=false_positive_rate)
    result.scores["isolation_forest_10"] = score
    result.thresholds["isolation_forest_10"] = threshold
    result.summary["baselines"] = {
        "1-NN": classification_summary(result.truth, nn),
        "isolation_forest_10": {"features": list(IF_FEATURES),
                                **anomaly_summary(result.truth != NORMAL, score, threshold)},
    }


def one_nearest_neighbour(train: TrainingData, features: np.ndarray, *, jobs: int = 2) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    pre = Preprocessor().fit(train.features)
    vectors, category = _distinct_majority(pre.transform(train.features), train.category)
    queries, back = np.unique(pre.transform(features), axis=0, return_inverse=True)
    index = NearestNeighbors(n_neighbors=1, algorithm="brute", n_jobs=jobs).fit(vectors)
    nearest = index.kneighbors(queries, return_distance=False)[:, 0]
    return category[nearest][back.reshape(-1)]


def isolation_forest_10(train: TrainingData, features: np.ndarray, *, seed: int,
                        false_positive_rate: float) -> tuple[np.ndarray, float]:
    from sklearn.ensemble import IsolationForest

    held = holdout_mask(train.features, 5, seed)
    normal = train.category == NORMAL
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(_ten(train.features[normal & ~held]))
    threshold = calibrated_threshold(-forest.score_samples(_ten(train.features[normal & held])), false_positive_rate)
    return -forest.score_samples(_ten(features)), threshold


def _ten(features: np.ndarray) -> np.ndarray:
    return np.column_stack([
        np.log1p(features[n].astype(np.float64)) if n in LOG_SCALED else features[n].astype(np.float64)
        for n in IF_FEATURES
    ])


def _distinct_majority(x: np.ndarray, category: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of x, each with the category most of its copies carry."""
    vectors, group = np.unique(x, axis=0, return_inverse=True)
    votes = np.zeros((len(vectors), category.max() + 1), dtype=np.int64)
    np.add.at(votes, (group.reshape(-1), category), 1)
    return vectors, votes.argmax(axis=1)
