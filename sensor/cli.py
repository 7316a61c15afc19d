"""The ``sensor`` command: a thin shell around the pipeline.

    sensor replay FILE... [-o OUT] [--format jsonl|csv]
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
from sensor.config import ConfigError, SensorConfig, load_config
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
    return p


def _replay(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config) if args.config else SensorConfig()
    except ConfigError as exc:
        sys.stderr.write(f"sensor: {exc}\n")
        return EXIT_USAGE
    with ExitStack() as stack:
        if args.output == "-":
            stream = sys.stdout.buffer
        else:
            stream = stack.enter_context(open(args.output, "wb"))
        writer = RecordWriter(stream, args.format)
        bar = None
        if not args.no_progress and sys.stderr.isatty():
            bar = stack.enter_context(ProgressBar())
        summary = replay(args.files, config, [writer], progress=bar.update if bar else None)
    if not args.quiet:
        render_summary(summary)
    return EXIT_UNREADABLE if summary.unreadable else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    # Everything imported so far lives for the whole run: keep the garbage
    # collector from walking it again and again while packets flow.
    gc.freeze()
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        if args.command == "replay":
            return _replay(args)
    except BrokenPipeError:  # e.g. piped into head: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
