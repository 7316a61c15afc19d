"""``sensor learn``: fit the anomaly models to a site's own normal traffic.

A model trained on 1998 KDD normals finds most of today's traffic
unusual.  Learning mode refits the autoencoder and the isolation forest
on the traffic the sensor actually watches: captures of the site, or the
records ``sensor run -o`` wrote over a period.  It calibrates their
thresholds so that a chosen share of the site's held-out normal
connections would be flagged (1 in 10,000 by default).  The output
directory is a complete model set with the same contract: the two new
models, plus the classifier copied from the base set.  Point
``alerts.models`` at it and reload the daemon.

Everything given is taken as normal: learn from a period you trust.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from sensor.datasets import file_sha256, is_records, load_records
from sensor.evaluation.metrics import NORMAL
from sensor.features.kdd import KDD_DTYPE
from sensor.models.modelset import MODEL_FILES
from sensor.training.train import (Trained, TrainingData, TrainSettings, write_models, anomaly_models, common_metadata,
                                   fit_anomaly, holdout_mask)

def site_data(inputs: list[str | Path], config=None) -> TrainingData:
    """The 41 features of every connection in the inputs (captures are
    replayed; JSONL records are read), all labelled normal."""
    parts, sources = [], []
    for path in map(Path, inputs):
        rows = load_records(path)[0] if is_records(path) else _replay_features(path, config)
        parts.append(rows)
        sources.append({"name": path.name, "sha256": file_sha256(path), "rows": len(rows)})
    features = np.concatenate(parts) if parts else np.zeros(0, KDD_DTYPE)
    return TrainingData(features, np.full(len(features), NORMAL), np.full(len(features), "normal"), sources)


def _replay_features(path: Path, config) -> np.ndarray:
    from sensor.config import SensorConfig
    from sensor.replay import replay

    kept: list[np.ndarray] = []

    class Keep:
        def write(self, conns: np.ndarray, features: np.ndarray) -> None:
            kept.append(features.copy())

        def close(self) -> None:
            pass

    summary = replay([path], config or SensorConfig(), [Keep()])
    if summary.unreadable:
        raise ValueError(summary.unreadable[0])
    return np.concatenate(kept) if kept else np.zeros(0, KDD_DTYPE)


def learn(data: TrainingData, out_dir: str | Path, base_dir: str | Path, settings: TrainSettings) -> dict[str, Path]:
    """Fit and write the site's anomaly models, and copy the base classifier
    beside them; returns the paths and fills nothing else."""
    if len(data.features) == 0:
        raise ValueError("no connections in the inputs to learn from")
    held = holdout_mask(data.features, settings.folds, settings.seed)
    metrics: dict[str, dict] = {}
    pre, autoencoder, scale, forest, thresholds = fit_anomaly(data, settings, held, metrics)
    trained = Trained(settings, None, None, pre, autoencoder, scale, forest, thresholds, metrics)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_models(anomaly_models(trained, common_metadata(data, settings, "learn")), out_dir)
    classifier = Path(base_dir) / MODEL_FILES["classifier"]
    paths["classifier"] = out_dir / MODEL_FILES["classifier"]
    shutil.copyfile(classifier, paths["classifier"])
    return paths


def learn_command(args) -> int:
    from sensor.config import ConfigError, load_config
    from sensor.datasets import DatasetError
    from sensor.models.modelset import ModelSet, default_models_dir
    from sensor.models.scorer import ModelError

    base = Path(args.base) if args.base else default_models_dir()
    settings = replace(TrainSettings(), seed=args.seed, false_positive_rate=args.fpr, jobs=args.jobs)
    try:
        config = load_config(args.config) if args.config else None
        data = site_data(args.inputs, config)
        calibration = int(holdout_mask(data.features, settings.folds, settings.seed).sum())
        if calibration * args.fpr < 1:
            sys.stderr.write(f"sensor learn: warning: {calibration:,} held-out connections cannot show a false-positive "
                             f"rate of {args.fpr:g}; the threshold is their maximum. Learn from more traffic.\n")
        paths = learn(data, args.out, base, settings)
        ModelSet.load(args.out)   # the written set keeps the contract, or this says why
    except (OSError, ValueError, ConfigError, DatasetError, ModelError) as exc:
        sys.stderr.write(f"sensor learn: {exc}\n")
        return 1
    sys.stdout.write(f"learned from {len(data.features):,} connections ({calibration:,} held out to calibrate)\n")
    for kind in ("autoencoder", "isolation_forest"):
        sys.stdout.write(f"{paths[kind]}  threshold for {args.fpr:g} of the site's normal connections\n")
    sys.stdout.write(f"{paths['classifier']}  copied from {base}\n")
    sys.stdout.write(f"use it: alerts.models: {Path(args.out).resolve()}  (then: systemctl reload sensor)\n")
    return 0
