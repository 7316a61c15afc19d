"""``sensor evaluate`` as the command line runs it."""

from __future__ import annotations

import argparse
import json
import sys



def evaluate_command(args: argparse.Namespace) -> int:
    from sensor.evaluation.evaluate import evaluate
    from sensor.models.modelset import ModelSet

    try:
        models = ModelSet.load(args.models)
        result = evaluate(args.data, models)
        if args.baselines:
            _baselines(result, args.baselines)
    except ImportError as exc:
        sys.stderr.write(f"sensor evaluate: {exc.name} is missing; install the training extra: pip install 'sensor[train]'\n")
        return 2
    except (OSError, ValueError) as exc:  # ModelError, DatasetError, UnknownLabelError among them
        sys.stderr.write(f"sensor evaluate: {exc}\n")
        return 1
    if args.report:
        from sensor.evaluation.report import write_report

        path = write_report(result, args.report)
        sys.stderr.write(f"report: {path}\n")
    if args.json:
        sys.stdout.write(json.dumps(result.summary, indent=1) + "\n")
    else:
        from sensor.evaluation.report import summary_text

        sys.stdout.write(summary_text(result.summary))
    return 0


def _baselines(result, train_files: list[str]) -> None:
    from sensor.evaluation.baselines import add_baselines
    from sensor.training.train import TrainingData

    add_baselines(result, TrainingData.load(train_files))
