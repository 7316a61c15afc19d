#!/usr/bin/env python3
"""Batch scoring throughput of the shipped models, on one core.

    python benchmarks/scoring.py [--models DIR] [--rows N] [--batch N] [--runs N]

Scores KDD records (the rows of ../shared/datasets/kddcup99/corrected.gz,
repeated to --rows) in batches, the way the pipeline hands them over:
KDD_DTYPE arrays in, one onnxruntime session per model on one thread.
The time covers building the 41 named inputs and running the session.
Prints records/s of the median run for each model; the target is for
the classifier.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "kddcup99" / "corrected.gz"
TARGET_RECORDS_PER_S = 500_000


def main() -> int:
    sys.path.insert(0, str(ROOT))
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    import numpy as np

    from sensor.datasets import load_kdd
    from sensor.models.modelset import MODEL_FILES, default_models_dir
    from sensor.models.scorer import load_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, default=default_models_dir())
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=65536)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()

    rows = load_kdd(DATA).features
    rows = np.resize(rows, args.rows)
    print(f"{args.rows:,} records in batches of {args.batch:,}, {args.runs} runs, one core")
    status = 0
    for kind, filename in MODEL_FILES.items():
        model = load_model(args.models / filename)
        score = model.predict if kind == "classifier" else model.score
        score(rows[: args.batch])  # warm-up
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            for at in range(0, len(rows), args.batch):
                score(rows[at: at + args.batch])
            times.append(time.perf_counter() - start)
        rate = args.rows / statistics.median(times)
        line = f"{kind:17} {rate:12,.0f} records/s (median {statistics.median(times):.3f} s, best {min(times):.3f} s)"
        if kind == "classifier":
            met = rate >= TARGET_RECORDS_PER_S
            line += f"   target {TARGET_RECORDS_PER_S:,}: {'met' if met else 'NOT met'}"
            status = 0 if met else 1
        print(line)
    return status


if __name__ == "__main__":
    sys.exit(main())
