"""The ``sensor`` command: a thin shell around the pipeline and the model tools.

    sensor replay FILE... [-o OUT] [--format jsonl|csv|kdd] [--alert-to URL]... [--rules FILE]...
    sensor run [-c FILE] [-i IFACE]... [-o PATH] [--alert-to URL]...
    sensor config check FILE
    sensor rules check FILE...
    sensor rules test RULES CAPTURE...
    sensor train [--data FILE]... [--records RECORDS LABELS]... [-o DIR]
    sensor learn INPUT... -o DIR [--fpr RATE]
    sensor evaluate --data FILE [--models DIR] [--json] [--report DIR]
    sensor model info FILE
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from contextlib import ExitStack
from typing import Sequence

from sensor import __version__
from sensor._logging import configure as configure_logging
from sensor.config import ConfigError, Learning, SensorConfig, load_config
from sensor.background import BackgroundSink
from sensor.output import RECORD_FORMATS, RecordWriter
from sensor.report import ProgressBar, render_summary
from sensor.replay import replay

EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sensor", description="Network intrusion sensor.")
    p.add_argument("--version", action="version", version=f"sensor {__version__}")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("replay", help="read capture files, print one record per connection")
    r.add_argument("files", nargs="+", metavar="FILE", help="pcap or pcapng, optionally gzip-compressed")
    r.add_argument("-o", "--output", default="-", metavar="OUT", help="record file (default: standard output)")
    r.add_argument("--format", default="jsonl", choices=RECORD_FORMATS,
                   help="jsonl (default), csv, or kdd: the 41 features as the KDD files have them")
    r.add_argument("-c", "--config", metavar="FILE", help="YAML configuration (timeouts, feature definitions, limits)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    r.add_argument("-q", "--quiet", action="store_true", help="no summary at the end")
    r.add_argument("--alert-to", action="append", default=[], metavar="URL",
                   help="alert sink (repeatable): -, file:PATH, syslog://HOST:PORT, syslog+tcp://HOST:PORT, "
                        "syslog:///dev/log, http(s)://... (default: the terminal)")
    r.add_argument("--rules", action="append", default=[], metavar="FILE",
                   help="rule file or directory (repeatable; default: the shipped rules/)")
    r.add_argument("--models", metavar="DIR", help="model directory (default: the shipped models/)")
    r.add_argument("--no-alerts", action="store_true", help="records only: no rules, no models, no alerts")

    run = sub.add_parser("run", help="capture live on interfaces: records and alerts until stopped (the daemon)")
    run.add_argument("-c", "--config", metavar="FILE", help="YAML configuration (e.g. /etc/sensor/sensor.yaml)")
    run.add_argument("-i", "--interface", action="append", default=[], metavar="IFACE",
                     help="interface to capture on (repeatable; default: capture.interfaces)")
    run.add_argument("-o", "--output", metavar="PATH", help="append connection records to PATH as JSONL")
    run.add_argument("--alert-to", action="append", default=[], metavar="URL",
                     help="alert sink (repeatable), besides alerts.to; see replay")

    cf = sub.add_parser("config", help="check a configuration file")
    cfsub = cf.add_subparsers(dest="config_command", required=True)
    cfc = cfsub.add_parser("check", help="validate a configuration file (errors name file, line and field)")
    cfc.add_argument("file", metavar="FILE")

    ru = sub.add_parser("rules", help="check rule files, or test them on captures")
    rsub = ru.add_subparsers(dest="rules_command", required=True)
    rc = rsub.add_parser("check", help="validate rule files (errors name file, line and column)")
    rt = rsub.add_parser("test", help="replay captures through a rule set: hits, examples, silent rules, cost")
    _rules_arguments(rc, rt)

    t = sub.add_parser("train", help="fit the classifier, autoencoder and isolation forest; export ONNX (needs sensor[train])")
    t.add_argument("--data", action="append", default=[], metavar="FILE", help="labelled KDD-format file (repeatable)")
    t.add_argument("--records", action="append", nargs=2, default=[], metavar=("RECORDS", "LABELS"),
                   help="records of sensor replay with their labels (repeatable): JSONL records and a traffic-lab "
                        "labels file, or --format kdd records and one label a line")
    t.add_argument("-o", "--out", default=str(_models_dir()), metavar="DIR", help="where the .onnx files go (default: %(default)s)")
    t.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same models")
    t.add_argument("--classifier", choices=["extra_trees", "random_forest"], default="extra_trees")
    t.add_argument("--trees", type=int, default=20, help="trees in the classifier")
    t.add_argument("--fpr", type=float, default=0.02, metavar="RATE",
                   help="share of held-out training normals the anomaly thresholds let through (default %(default)s)")
    t.add_argument("--jobs", type=int, default=2, help="CPU cores for fitting the forests")
    t.add_argument("--evaluate", action="append", default=[], metavar="TEST_FILE",
                   help="after training, record the models' figures on this labelled file in their metadata (repeatable)")
    t.add_argument("--compare", action="store_true",
                   help="cross-validate the candidate tree ensembles and print a table instead of training")

    le = sub.add_parser("learn", help="fit the anomaly models to a site's own normal traffic (needs sensor[train])")
    le.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="captures of the site, or JSONL records written by sensor run -o / sensor replay -o")
    le.add_argument("-o", "--out", required=True, metavar="DIR", help="where the site's model set goes")
    le.add_argument("--fpr", type=float, default=Learning().false_positive_rate, metavar="RATE",
                    help="share of the site's normal connections the thresholds let through (default %(default)g: "
                         "1 alert per 10,000)")
    le.add_argument("--base", metavar="DIR", help="model set whose classifier is kept (default: the shipped models/)")
    le.add_argument("-c", "--config", metavar="FILE", help="YAML configuration for replaying captures")
    le.add_argument("--seed", type=int, default=0)
    le.add_argument("--jobs", type=int, default=2)

    e = sub.add_parser("evaluate", help="score a labelled KDD-format file; accuracy, cost, ROC AUC, report")
    e.add_argument("--data", required=True, metavar="FILE", help="labelled KDD Cup 1999 or NSL-KDD file")
    e.add_argument("--models", default=str(_models_dir()), metavar="DIR", help="model set (default: %(default)s)")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    e.add_argument("--report", metavar="DIR", help="write report.md and PNG plots there")
    e.add_argument("--baselines", action="append", default=[], metavar="TRAIN_FILE",
                   help="also fit the baselines (1-NN, 10-feature isolation forest) on TRAIN_FILE (repeatable) and score them")

    m = sub.add_parser("model", help="inspect model files")
    msub = m.add_subparsers(dest="model_command", required=True)
    info = msub.add_parser("info", help="print a model's metadata, inputs and outputs")
    info.add_argument("file", metavar="FILE")
    info.add_argument("--json", action="store_true")
    return p


def _models_dir():
    from sensor.models.modelset import default_models_dir

    return default_models_dir()


def _replay(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config) if args.config else SensorConfig()
        detector = None if args.no_alerts or not config.alerts.enabled else _detector(args, config)
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"sensor: {exc}\n")
        return EXIT_USAGE
    with ExitStack() as stack:
        if args.output == "-":
            stream = sys.stdout.buffer
        else:
            stream = stack.enter_context(open(args.output, "wb"))
        sinks = [RecordWriter(stream, args.format)] + ([BackgroundSink(detector)] if detector else [])
        bar = None
        if not args.no_progress and sys.stderr.isatty():
            bar = stack.enter_context(ProgressBar())
        summary = replay(args.files, config, sinks, progress=bar.update if bar else None)
    if not args.quiet:
        render_summary(summary)
        if detector:
            from sensor.alerts.summary import render_alert_summary

            render_alert_summary(detector)
    return EXIT_UNREADABLE if summary.unreadable else EXIT_OK


def _detector(args: argparse.Namespace, config: SensorConfig):
    from sensor.alerts.setup import build_detector

    return build_detector(config, args.alert_to, records_on_stdout=args.output == "-",
                          rules=args.rules, models=args.models)


def _run(args: argparse.Namespace) -> int:
    from sensor.daemon import Daemon, RunOptions

    try:
        config = load_config(args.config) if args.config else SensorConfig()
    except ConfigError as exc:
        sys.stderr.write(f"sensor: {exc}\n")
        return EXIT_USAGE
    configure_logging(args.log_level, json=config.daemon.log_format == "json")
    options = RunOptions(args.config, tuple(args.interface), args.output, tuple(args.alert_to))
    return Daemon(options, config).run()


def _config_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        sys.stderr.write(f"sensor: {exc}\n")
        return EXIT_USAGE
    interfaces = ", ".join(config.capture.interfaces) or "none (name them with -i)"
    sys.stdout.write(f"{args.file}: valid; interfaces: {interfaces}\n")
    return EXIT_OK


def _rules_arguments(check: argparse.ArgumentParser, test: argparse.ArgumentParser) -> None:
    # written here rather than taken from sensor.rules.check: importing the
    # rules package would add 60 ms to every command's start-up
    check.add_argument("files", nargs="+", metavar="FILE", help="rule files (YAML) or directories of them")
    test.add_argument("rules", metavar="RULES", help="rule file or directory")
    test.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap or pcapng files, replayed as one capture")
    test.add_argument("--models", metavar="DIR", help="model directory (default: the shipped models/)")
    test.add_argument("-c", "--config", metavar="FILE", help="YAML configuration (timeouts, feature definitions)")
    test.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def _rules(args: argparse.Namespace) -> int:
    if args.rules_command == "check":
        from sensor.rules.check import check_command

        return check_command(args)
    from sensor.alerts.rules_test import rules_test_command

    return rules_test_command(args)


def _train(args: argparse.Namespace) -> int:
    from sensor.training.cli import train_command

    return train_command(args)


def _learn(args: argparse.Namespace) -> int:
    try:
        from sensor.training.learn import learn_command
    except ImportError as exc:
        sys.stderr.write(f"sensor learn: {exc.name} is missing; install the training extra: pip install 'sensor[train]'\n")
        return EXIT_USAGE
    return learn_command(args)


def _evaluate(args: argparse.Namespace) -> int:
    from sensor.evaluation.cli import evaluate_command

    return evaluate_command(args)


def _model_info(args: argparse.Namespace) -> int:
    import json

    from sensor.models.info import info_text, model_info
    from sensor.models.scorer import ModelError, load_model

    try:
        info = model_info(load_model(args.file))
    except ModelError as exc:
        sys.stderr.write(f"sensor: {exc}\n")
        return EXIT_UNREADABLE
    sys.stdout.write(json.dumps(info, indent=2) + "\n" if args.json else info_text(info))
    return EXIT_OK


_COMMANDS = {"replay": _replay, "run": _run, "config": _config_check, "rules": _rules, "train": _train,
             "learn": _learn, "evaluate": _evaluate, "model": _model_info}


def main(argv: Sequence[str] | None = None) -> int:
    # Everything imported so far lives for the whole run: keep the garbage
    # collector from walking it again and again while packets flow.
    gc.freeze()
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        return _COMMANDS[args.command](args)
    except BrokenPipeError:  # e.g. piped into head: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
