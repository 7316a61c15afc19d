"""``sensor rules check FILE...``: validate rule files before deploying them.

Prints ``FILE: N rules OK`` on standard output for each good file and
every error, one per line as ``FILE:LINE:COLUMN: message``, on standard
error; the exit status is 1 when any file has an error.  Ids must be
unique across all the files given, so check a rule set as it will be
loaded, all files at once.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence

from sensor.rules.ruleset import expand_paths, check_rules


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommand's arguments, for the CLI to attach to its own parser."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="rule files (YAML) or directories of them")


def check_command(args: argparse.Namespace) -> int:
    """Run the check for ``args.files``; 0 when every file is valid, else 1."""
    ruleset, errors = check_rules(args.files)
    for error in errors:
        sys.stderr.write(f"{error}\n")
    failed = {e.file for e in errors}
    counts = Counter(rule.source[0] for rule in ruleset.rules)
    files, _ = expand_paths(args.files)
    for path in files:
        if path not in failed:
            n = counts[path]
            sys.stdout.write(f"{path}: {n} rule{'s' if n != 1 else ''} OK\n")
    return 1 if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sensor rules check", description="Validate detection rule files.")
    add_arguments(parser)
    return check_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
