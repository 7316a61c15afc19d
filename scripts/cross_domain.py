#!/usr/bin/env python3
"""Cross-domain evaluation: KDD-trained, lab-trained and jointly trained
models, each tested on the other's data (the model card's section).

    python scripts/cross_domain.py --lab-train DIR --lab-test DIR --out DIR [--jobs N] [--fpr F]

DIRs are traffic-lab runs (tests/lab/run.py: capture.pcap, labels.jsonl);
the test run must not be the training run.  Each is replayed with the
sensor, and its records are labelled and also written as a labelled
KDD-format file for ``sensor evaluate``.  The script trains two sets
with ``sensor train``: lab only, and KDD plus lab (the KDD files are the
shipped set's).  A third is what a site gets from learning mode: the
KDD-plus-lab classifier with anomaly models that ``sensor learn`` fitted
to the training run's normal connections, calibrated at ``--fpr``.  It
evaluates those three and the shipped KDD-only set on KDD ``corrected``,
NSL-KDD ``KDDTest+`` and both lab runs, and prints per-category recall
and the false-positive rates (normal connections given an attack
verdict, and over each anomaly model's threshold) as Markdown.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sensor.labels import label_records, read_labels  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
KDD_TRAIN = [DATASETS / "kddcup99" / "kddcup.data_10_percent.gz", DATASETS / "nsl-kdd" / "KDDTrain+.txt.gz"]
TESTS = {"KDD corrected": DATASETS / "kddcup99" / "corrected.gz", "NSL KDDTest+": DATASETS / "nsl-kdd" / "KDDTest+.txt.gz"}
CATEGORIES = ["probe", "dos", "r2l", "u2r"]
ANOMALY = ["autoencoder", "isolation_forest"]


def sensor(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "sensor", *args], capture_output=True, text=True, cwd=ROOT,
                         env={"SOURCE_DATE_EPOCH": "1795392000", "PATH": "/usr/bin:/bin"})
    if out.returncode:
        raise SystemExit(f"sensor {' '.join(args)} failed:\n{out.stderr}")
    return out


def prepare(run: Path) -> tuple[Path, Path]:
    """Replay a lab run: (JSONL records, labelled KDD-format file); its
    normal connections alone go to ``normal.jsonl``, for ``sensor learn``."""
    records, kdd = run / "records.jsonl", run / "records.kdd"
    sensor("replay", str(run / "capture.pcap"), "--no-alerts", "-q", "-o", str(records))
    sensor("replay", str(run / "capture.pcap"), "--no-alerts", "-q", "-o", str(kdd), "--format", "kdd")
    lines = records.read_text().splitlines()
    labels = [label for label, _ in label_records([json.loads(line) for line in lines], read_labels(run / "labels.jsonl"))]
    rows = kdd.read_text().splitlines()
    labelled = run / "labelled.kdd"
    labelled.write_text("".join(f"{row},{label}.\n" for row, label in zip(rows, labels, strict=True)))
    (run / "normal.jsonl").write_text("".join(line + "\n" for line, label in zip(lines, labels) if label == "normal"))
    return records, labelled


def figures(models: Path, data: Path) -> dict:
    summary = json.loads(sensor("evaluate", "--data", str(data), "--models", str(models), "--json").stdout)
    verdict = summary["verdict"]
    recall = {c: verdict["per_class"][c]["recall"] for c in CATEGORIES if c in verdict["per_class"]
              and summary["data"]["categories"].get(c)}
    normal = verdict["per_class"].get("normal", {})
    has_normal = bool(summary["data"]["categories"].get("normal"))
    return {"rows": summary["data"]["rows"], "recall": recall,
            "fpr": round(1 - normal["recall"], 4) if has_normal else None,
            "anomaly_fpr": {kind: round(summary[kind]["false_positive_rate"], 4) if has_normal else None
                            for kind in ANOMALY}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab-train", type=Path, required=True)
    ap.add_argument("--lab-test", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--jobs", default="2")
    ap.add_argument("--fpr", default="0.01", help="learning mode's false-positive rate (default 0.01: a lab run's "
                                                  "normal share is too small to calibrate 1e-4)")
    args = ap.parse_args()
    train_records, train_kdd = prepare(args.lab_train)
    _, test_kdd = prepare(args.lab_test)
    sets = {"KDD only (shipped)": ROOT / "models"}
    lab_only, both = args.out / "lab-only", args.out / "kdd-lab"
    sensor("train", "--records", str(train_records), str(args.lab_train / "labels.jsonl"), "-o", str(lab_only),
           "--jobs", args.jobs)
    sets["lab only"] = lab_only
    sensor("train", *[a for f in KDD_TRAIN for a in ("--data", str(f))],
           "--records", str(train_records), str(args.lab_train / "labels.jsonl"), "-o", str(both), "--jobs", args.jobs)
    sets["KDD + lab"] = both
    site = args.out / "kdd-lab-site"
    sensor("learn", str(args.lab_train / "normal.jsonl"), "-o", str(site), "--base", str(both), "--fpr", args.fpr,
           "--jobs", args.jobs)
    sets[f"KDD + lab, learned on the lab's normals (fpr {args.fpr})"] = site
    tests = {**TESTS, "lab (training run)": train_kdd, "lab (held-out run)": test_kdd}
    results = {(name, test): figures(path, data) for name, path in sets.items() for test, data in tests.items()}
    (args.out / "cross_domain.json").write_text(json.dumps({f"{k[0]} | {k[1]}": v for k, v in results.items()}, indent=1))
    print("| trained on | tested on | rows | " + " | ".join(f"{c} recall" for c in CATEGORIES)
          + " | FPR | autoencoder FPR | forest FPR |")
    print("|---|---|---:|" + "---:|" * (len(CATEGORIES) + 3))
    for (name, test), r in results.items():
        cells = [f"{r['recall'][c]:.3f}" if c in r["recall"] else "-" for c in CATEGORIES]
        cells += ["-" if v is None else f"{v:.4f}" for v in (r["fpr"], *r["anomaly_fpr"].values())]
        print(f"| {name} | {test} | {r['rows']:,} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
