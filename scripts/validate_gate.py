#!/usr/bin/env python3
"""Leave-one-attack-out validation of the verdict rule, on training data only.

    python scripts/validate_gate.py --data FILE [--data FILE ...]

For each attack name of the training data, the classifier is fitted
without that name (and without the held-out fold), then scores the
name's rows and the held-out normals: the name plays an attack the
classifier has never seen, as the test sets' 17 new names will.  Three
rules for records the trees call normal but the autoencoder flags are
compared: leave them normal, call them r2l, or call them the likeliest
attack category by the trees' probabilities.  Reports, per category of
the left-out name, the mean accuracy and KDD cost per example, and the
cost the rule adds on held-out normals.  The test sets are not read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sensor.evaluation.metrics import COST_MATRIX  # noqa: E402
from sensor.models.categories import CATEGORIES  # noqa: E402
from sensor.training.export import reconstruction_error  # noqa: E402
from sensor.training.preprocess import Preprocessor  # noqa: E402
from sensor.training.train import (  # noqa: E402
    NORMAL, TrainingData, TrainSettings, autoencoder_for, classifier_for, reconstruction_scale, calibrated_threshold, holdout_mask,
)

RULES = ("leave normal", "r2l", "likeliest attack")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", required=True)
    args = p.parse_args()
    s = TrainSettings()
    data = TrainingData.load(args.data)
    held = holdout_mask(data.features, s.folds, s.seed)
    normal = data.category == NORMAL
    flagged = _autoencoder_flags(data, s, normal & ~held, normal & held)

    pre = Preprocessor().fit(data.features)
    x = pre.transform(data.features)
    names = np.asarray(CATEGORIES)[data.category]
    per_category: dict[str, dict[str, list]] = {}
    normal_cost = {r: [] for r in RULES}
    for name in sorted(set(data.labels[~normal].tolist())):
        left_out = data.labels == name
        model = classifier_for(s).fit(x[~held & ~left_out], names[~held & ~left_out])
        rows = (normal & held) | left_out
        probabilities = model.predict_proba(x[rows])
        classes = [CATEGORIES.index(c) for c in model.classes_]
        for rule in RULES:
            predicted = _verdict(rule, probabilities, classes, flagged[rows])
            truth = data.category[rows]
            cost = COST_MATRIX[truth, predicted]
            attack = truth != NORMAL
            entry = per_category.setdefault(CATEGORIES[data.category[left_out][0]], {}).setdefault(rule, [])
            entry.append((cost[attack].mean(), (predicted[attack] == truth[attack]).mean()))
            normal_cost[rule].append(cost[~attack].mean())
    print("| rule | " + " | ".join(f"{c} left out: accuracy / cost" for c in per_category)
          + " | mean over categories | cost added on normals |")
    print("|---|" + "---:|" * (len(per_category) + 2))
    for rule in RULES:
        cells = [np.mean(per_category[c][rule], axis=0) for c in per_category]
        mean = np.mean(cells, axis=0)
        print(f"| {rule} | " + " | ".join(f"{a:.3f} / {c:.3f}" for c, a in cells)
              + f" | {mean[1]:.3f} / {mean[0]:.3f} | {np.mean(normal_cost[rule]):.4f} |")
    return 0


def _autoencoder_flags(data: TrainingData, s: TrainSettings, fitting: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    pre = Preprocessor(clip=s.clip, grouped=True).fit(data.features[fitting])
    x = pre.transform(data.features)
    model = autoencoder_for(s).fit(x[fitting], x[fitting])
    score = reconstruction_error(model, x, reconstruction_scale(model, x[fitting]))
    return score > calibrated_threshold(score[calibration], s.false_positive_rate)


def _verdict(rule: str, probabilities: np.ndarray, classes: list[int], flagged: np.ndarray) -> np.ndarray:
    full = np.zeros((len(probabilities), len(CATEGORIES)))
    full[:, classes] = probabilities
    predicted = full.argmax(axis=1)
    novel = (predicted == NORMAL) & flagged
    if rule == "r2l":
        predicted[novel] = CATEGORIES.index("r2l")
    elif rule == "likeliest attack":
        attacks = [k for k in range(len(CATEGORIES)) if k != NORMAL]
        predicted[novel] = np.asarray(attacks)[full[novel][:, attacks].argmax(axis=1)]
    return predicted


if __name__ == "__main__":
    sys.exit(main())
