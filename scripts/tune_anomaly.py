#!/usr/bin/env python3
"""Choose the anomaly models' settings on training data only.

    python scripts/tune_anomaly.py --data FILE [--data FILE ...] [--model autoencoder|isolation_forest]

Each candidate is fitted on 4 of 5 folds of the distinct normal vectors
and judged on the held-out fold against every attack of the training
data, one attack name at a time: the mean over names of the ROC AUC
(name vs held-out normals).  For the isolation forest, the binary
accuracy on the training rows at the calibrated threshold is shown too.  Weighing names equally, rather
than rows, is the closest the training data comes to attacks the model
has never seen: smurf's 280,790 rows would otherwise decide everything.
The test sets are not read.  Prints a Markdown table (models/README.md
keeps the one the shipped settings were chosen from).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sensor.evaluation.metrics import roc_auc  # noqa: E402
from sensor.training.export import reconstruction_error  # noqa: E402
from sensor.training.preprocess import Preprocessor  # noqa: E402
from sensor.training.train import (  # noqa: E402
    NORMAL, TrainingData, TrainSettings, autoencoder_for, reconstruction_scale, isolation_forest_for, calibrated_threshold, holdout_mask,
)

AUTOENCODER_GRID = {"clip": (5.0, 10.0), "grouped": (False, True), "autoencoder_epochs": (20, 40, 80)}
ISOLATION_GRID = {"isolation_samples": (256, 2048, 8192), "isolation_trees": (100, 200)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--model", choices=["autoencoder", "isolation_forest"], default="autoencoder")
    args = p.parse_args()
    data = TrainingData.load(args.data)
    base = TrainSettings()
    held = holdout_mask(data.features, base.folds, base.seed)
    normal = data.category == NORMAL
    split = (normal & ~held, normal & held)
    if args.model == "autoencoder":
        _autoencoders(data, base, *split)
    else:
        _isolation_forests(data, base, *split)
    return 0


def _autoencoders(data: TrainingData, base: TrainSettings, fitting: np.ndarray, calibration: np.ndarray) -> None:
    print("| clip | group statistics | epochs | mean AUC over attack names | worst name (AUC) | fit s |")
    print("|---:|---|---:|---:|---|---:|")
    for clip, grouped, epochs in itertools.product(*AUTOENCODER_GRID.values()):
        start = time.monotonic()
        pre = Preprocessor(clip=clip, grouped=grouped).fit(data.features[fitting])
        x = pre.transform(data.features)
        model = autoencoder_for(replace(base, autoencoder_epochs=epochs)).fit(x[fitting], x[fitting])
        aucs = _aucs_by_name(data, reconstruction_error(model, x, reconstruction_scale(model, x[fitting])), calibration)
        worst = min(aucs, key=aucs.get)
        print(f"| {clip:g} | {'yes' if grouped else 'no'} | {epochs} | {np.mean(list(aucs.values())):.4f} "
              f"| {worst} ({aucs[worst]:.3f}) | {time.monotonic() - start:.0f} |", flush=True)


def _isolation_forests(data: TrainingData, base: TrainSettings, fitting: np.ndarray, calibration: np.ndarray) -> None:
    print("| rows per tree | trees | mean AUC over attack names | binary accuracy (training rows) | smurf flagged | fit s |")
    print("|---:|---:|---:|---:|---:|---:|")
    pre = Preprocessor(clip=base.clip, grouped=True).fit(data.features[fitting])
    x = pre.transform(data.features)
    for samples, trees in itertools.product(*ISOLATION_GRID.values()):
        start = time.monotonic()
        model = isolation_forest_for(replace(base, isolation_samples=samples, isolation_trees=trees)).fit(x[fitting])
        score = -model.score_samples(x)
        flagged = score > calibrated_threshold(score[calibration], base.false_positive_rate)
        rows = calibration | (data.category != NORMAL)
        accuracy = np.mean(flagged[rows] == (data.category[rows] != NORMAL))
        aucs = _aucs_by_name(data, score, calibration)
        print(f"| {samples} | {trees} | {np.mean(list(aucs.values())):.4f} | {accuracy:.4f} "
              f"| {flagged[data.labels == 'smurf'].mean():.3f} | {time.monotonic() - start:.0f} |", flush=True)


def _aucs_by_name(data: TrainingData, score: np.ndarray, calibration: np.ndarray) -> dict[str, float]:
    aucs = {}
    for name in sorted(set(data.labels[data.category != NORMAL].tolist())):
        rows = calibration | (data.labels == name)
        aucs[name] = roc_auc(data.labels[rows] == name, score[rows])
    return aucs


if __name__ == "__main__":
    sys.exit(main())
