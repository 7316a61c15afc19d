"""Build the detection stage from the configuration and the command line.

Rules come from ``alerts.rules`` (default: the shipped ``rules/``),
models from ``alerts.models`` (default: the shipped ``models/``), sinks
from ``alerts.to`` plus every ``--alert-to``.  With no sink named, alerts
go to the terminal: standard output when the records go to a file,
standard error when standard output carries the records.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Sequence

from sensor.config import SensorConfig


class SetupError(ValueError):
    """Detection cannot start: a rule file, a model or a sink is wrong."""


def default_rules_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "rules"


def default_spool_dir() -> Path:
    """The unit's StateDirectory under systemd, /var/lib/sensor as root,
    else the user's state directory."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0]) / "spool"
    if os.geteuid() == 0:
        return Path("/var/lib/sensor/spool")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "sensor" / "spool"


def load_ruleset(paths: Sequence[str]):
    from sensor.rules import RuleError, load_rules

    try:
        return load_rules([Path(p) for p in paths] or [default_rules_dir()])
    except RuleError as exc:
        raise SetupError(str(exc)) from None


def load_models(directory: str | None, required: bool):
    """The model set, or None when the rules need none and the directory has none."""
    from sensor.models.modelset import ModelSet, default_models_dir
    from sensor.models.scorer import ModelError

    path = Path(directory) if directory else default_models_dir()
    try:
        return ModelSet.load(path)
    except ModelError as exc:
        if required or directory:
            raise SetupError(str(exc)) from None
        return None


def sink_options(config: SensorConfig, records_on_stdout: bool):
    from sensor.sinks import SinkOptions

    a = config.alerts
    return SinkOptions(
        hostname=socket.gethostname(),
        secret_file=Path(a.webhook_secret_file) if a.webhook_secret_file else None,
        secret_env=a.webhook_secret_env,
        spool_dir=Path(a.spool_dir) if a.spool_dir else default_spool_dir(),
        ca_file=Path(a.ca_file) if a.ca_file else None,
        stdout=sys.stderr if records_on_stdout else sys.stdout,
    )


def build_detector(config: SensorConfig, alert_to: Sequence[str], records_on_stdout: bool,
                   rules: Sequence[str] = (), models: str | None = None):
    """The Detector for a run; raises SetupError naming what is wrong."""
    from sensor.alerts.detector import Detector
    from sensor.sinks import SinkError, open_sinks

    ruleset = load_ruleset(list(rules) or list(config.alerts.rules))
    model_set = load_models(models or config.alerts.models, required=ruleset.uses_models)
    urls = list(config.alerts.to) + list(alert_to) or ["-"]
    try:
        sinks = open_sinks(urls, sink_options(config, records_on_stdout))
    except SinkError as exc:
        raise SetupError(str(exc)) from None
    try:
        return Detector(ruleset, model_set, sinks, socket.gethostname(), config.alerts.idle_seconds)
    except ValueError as exc:
        for sink in sinks:
            sink.close()
        raise SetupError(str(exc)) from None
