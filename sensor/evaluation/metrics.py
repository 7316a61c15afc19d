"""Evaluation measures, in numpy (no scikit-learn needed to evaluate).

The cost matrix is the KDD Cup 1999 one (Elkan, *Results of the KDD'99
Classifier Learning Contest*, 1999): rows are the true category, columns
the predicted one, in :data:`~sensor.models.categories.CATEGORIES` order.
Missing an R2L or U2R attack (calling it normal) is the dearest mistake.
"""

from __future__ import annotations

import numpy as np

from sensor.models.categories import CATEGORIES

COST_MATRIX = np.array(
    [
        # normal probe dos u2r r2l   (predicted)
        [0, 1, 2, 2, 2],  # normal
        [1, 0, 2, 2, 2],  # probe
        [2, 1, 0, 2, 2],  # dos
        [3, 2, 2, 0, 2],  # u2r
        [4, 2, 2, 2, 0],  # r2l
    ],
    dtype=np.float64,
)
NORMAL = CATEGORIES.index("normal")


def confusion(truth: np.ndarray, predicted: np.ndarray, classes: int = len(CATEGORIES)) -> np.ndarray:
    """[true, predicted] counts."""
    return np.bincount(truth * classes + predicted, minlength=classes * classes).reshape(classes, classes)


def classification_summary(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy, cost per example, binary accuracy, per-class P/R/F1 and the confusion matrix."""
    cm = confusion(truth, predicted)
    total = cm.sum()
    per_class = {}
    for k, name in enumerate(CATEGORIES):
        tp, predicted_k, actual_k = cm[k, k], cm[:, k].sum(), cm[k, :].sum()
        precision = tp / predicted_k if predicted_k else 0.0
        recall = tp / actual_k if actual_k else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(actual_k)}
    return {
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
        "cost_per_example": float((cm * COST_MATRIX).sum() / total) if total else 0.0,
        "binary_accuracy": binary_accuracy(truth != NORMAL, predicted != NORMAL),
        "per_class": per_class,
        "confusion": {"classes": list(CATEGORIES), "matrix": cm.tolist()},
    }


def binary_accuracy(attack: np.ndarray, flagged: np.ndarray) -> float:
    return float(np.mean(attack == flagged)) if len(attack) else 0.0


def roc_auc(attack: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random attack > score of a random
    normal), ties counting one half (the Mann-Whitney statistic)."""
    attack = np.asarray(attack, bool)
    positives, negatives = int(attack.sum()), int((~attack).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(score, np.float64))
    return float((ranks[attack].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_curve(attack: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate, threshold) at each distinct score, highest first."""
    attack = np.asarray(attack, bool)
    order = np.argsort(-np.asarray(score, np.float64), kind="stable")
    s, a = np.asarray(score)[order], attack[order]
    last_of_run = np.r_[s[1:] != s[:-1], True]
    tp, fp = np.cumsum(a)[last_of_run], np.cumsum(~a)[last_of_run]
    return (
        np.r_[0.0, fp / max(int((~attack).sum()), 1)],
        np.r_[0.0, tp / max(int(attack.sum()), 1)],
        np.r_[np.inf, s[last_of_run]],
    )


def anomaly_summary(attack: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    flagged = score > threshold
    return {
        "roc_auc": roc_auc(attack, score),
        "binary_accuracy": binary_accuracy(attack, flagged),
        "threshold": float(threshold),
        "detection_rate": float(flagged[attack].mean()) if attack.any() else float("nan"),
        "false_positive_rate": float(flagged[~attack].mean()) if (~attack).any() else float("nan"),
    }


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1]
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0  # ranks start+1 .. end, averaged
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks
