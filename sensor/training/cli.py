"""``sensor train`` as the command line runs it."""

from __future__ import annotations

import argparse
import sys

from sensor.datasets import DatasetError
from sensor.models.categories import UnknownLabelError

PARITY_ROWS = 10_000


def train_command(args: argparse.Namespace) -> int:
    try:
        from sensor.training.train import TrainingData, TrainSettings, check_parity, export_models, fit
    except ImportError as exc:
        sys.stderr.write(f"sensor train: {exc.name} is missing; install the training extra: pip install 'sensor[train]'\n")
        return 2
    if not args.data and not args.records:
        sys.stderr.write("sensor train: give training data: --data FILE and/or --records RECORDS LABELS\n")
        return 2
    settings = TrainSettings(seed=args.seed, classifier=args.classifier, trees=args.trees,
                             false_positive_rate=args.fpr, jobs=args.jobs)
    try:
        data = TrainingData.load(args.data, [tuple(pair) for pair in args.records])
    except (OSError, DatasetError, UnknownLabelError, ValueError) as exc:
        sys.stderr.write(f"sensor train: {exc}\n")
        return 1
    if args.compare:
        from sensor.training.selection import compare, comparison_table

        sys.stdout.write(comparison_table(compare(data, seed=args.seed, jobs=args.jobs)))
        return 0
    trained = fit(data, settings)
    paths = export_models(trained, data, args.out)
    sample = data.features[:: max(1, len(data.features) // PARITY_ROWS)][:PARITY_ROWS]
    parity = check_parity(trained, paths, sample)
    if args.evaluate:
        _record_evaluations(paths, args.evaluate, args.out)
    for kind, path in paths.items():
        m = trained.metrics[kind]
        figures = (f"validation accuracy {m['accuracy']:.4f}, cost {m['cost_per_example']:.4f}" if kind == "classifier"
                   else f"threshold {trained.thresholds[kind]:.6g}, validation ROC AUC {m['roc_auc']:.4f}")
        sys.stdout.write(f"{path}  {kind}: {figures}; ONNX parity on {len(sample):,} rows: max difference {parity[kind]:.1e}\n")
    return 0


def _record_evaluations(paths, files: list[str], out_dir: str) -> None:
    from pathlib import Path

    from sensor.evaluation.evaluate import evaluate
    from sensor.models.modelset import ModelSet
    from sensor.training.train import record_test_metrics

    models = ModelSet.load(out_dir)
    record_test_metrics(paths, {Path(f).name: evaluate(f, models).summary for f in files})
