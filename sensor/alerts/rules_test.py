"""``sensor rules test RULES CAPTURE...``: what a rule set does on captures.

Replays the captures through the pipeline with the rules (and the
shipped models, when the rules read them), delivering no alerts, and
prints per rule: records matched, episodes, alerts, the time the rule
cost, an example record per episode, and which rules never fired.  A
security engineer tunes a rule here before it reaches a sensor.
"""

from __future__ import annotations

import argparse
import json
import sys

from sensor.alerts.setup import SetupError, load_models, load_ruleset
from sensor.alerts.summary import RULE_HEADER, render_table, rule_rows
from sensor.config import ConfigError, SensorConfig, load_config


def rules_test_command(args: argparse.Namespace) -> int:
    from sensor.alerts.detector import Detector
    from sensor.replay import replay

    try:
        config = load_config(args.config) if args.config else SensorConfig()
        ruleset = load_ruleset([args.rules])
        models = load_models(args.models, required=ruleset.uses_models)
        detector = Detector(ruleset, models, [], "rules-test", config.alerts.idle_seconds)
    except (ConfigError, SetupError, ValueError) as exc:
        sys.stderr.write(f"sensor: {exc}\n")
        return 2
    summary = replay(args.captures, config, [detector])
    if args.json:
        sys.stdout.write(json.dumps(_report(detector), indent=2) + "\n")
    else:
        _print(detector)
    return 1 if summary.unreadable else 0


def _report(detector) -> dict:
    rules = {}
    for rule in detector.rules:
        s = detector.stats[rule.id]
        rules[rule.id] = {"category": rule.category, "severity": rule.severity, "matches": s.matches,
                          "episodes": s.episodes, "alerts": s.alerts, "seconds": round(s.seconds, 6),
                          "examples": s.examples}
    return {"rules": rules, "never_fired": [r for r, v in rules.items() if not v["episodes"]]}


def _print(detector) -> None:
    render_table("rules", RULE_HEADER, rule_rows(detector), sys.stdout)
    for rule in detector.rules:
        for example in detector.stats[rule.id].examples:
            port = f":{example['dst_port']}" if example["dst_port"] is not None else ""
            sys.stdout.write(f"  {rule.id}: {example['uid']} {example['src']} -> {example['dst']}{port} "
                             f"{example['proto']}/{example['service']} {example['flag']}\n")
    silent = [r.id for r in detector.rules if not detector.stats[r.id].episodes]
    sys.stdout.write(f"never fired: {', '.join(silent) if silent else 'none'}\n")
