#!/usr/bin/env python3
"""Which capture raises which alert: the README's table.

    python scripts/capture_alerts.py [--rules DIR] [--models DIR] [CAPTURE ...]

Replays each capture (default: every capture in ../shared/pcaps) alone
through the default rules and shipped models and prints a Markdown table:
connections, and the alerts (episodes) by severity, category and rule.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sensor.alerts.detector import Detector  # noqa: E402
from sensor.alerts.setup import load_models, load_ruleset  # noqa: E402
from sensor.alerts.summary import SEVERITY_RANK  # noqa: E402
from sensor.config import SensorConfig  # noqa: E402
from sensor.replay import replay  # noqa: E402

PCAPS = ROOT.parent / "shared" / "pcaps"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")


def alerts_of(capture: Path, rules, models) -> tuple[int, list[dict]]:
    detector = Detector(rules, models, [], "capture-alerts")
    summary = replay([capture], SensorConfig(), [detector])
    return summary.connections, list(detector.alerts.values())


def cell(alerts: list[dict]) -> str:
    if not alerts:
        return "none"
    counts = Counter((a["severity"], a["category"], a["rule"]) for a in alerts)
    return ", ".join(f"{sev} {cat} `{rule}`" + (f" x{n}" if n > 1 else "")
                     for (sev, cat, rule), n in sorted(counts.items(), key=lambda kv: (SEVERITY_RANK[kv[0][0]], kv[0])))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("captures", nargs="*", type=Path)
    p.add_argument("--rules", default=None)
    p.add_argument("--models", default=None)
    args = p.parse_args()
    captures = args.captures or sorted(f for f in PCAPS.iterdir() if f.suffix in CAPTURE_SUFFIXES)
    rules = load_ruleset([args.rules] if args.rules else [])
    models = load_models(args.models, required=rules.uses_models)
    sys.stdout.write("| capture | connections | alerts (episodes: severity, category, rule) |\n|---|---:|---|\n")
    for capture in captures:
        connections, alerts = alerts_of(capture, rules, models)
        sys.stdout.write(f"| {capture.name} | {connections:,} | {cell(alerts)} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
