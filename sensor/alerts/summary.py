"""End-of-run tables: the alerts a replay raised, and what each rule did.

Both go to standard error (standard output carries records), as a rich
table on a terminal and as plain aligned text otherwise, so logs and CI
read them too.
"""

from __future__ import annotations

import sys
from typing import TextIO

from sensor.alerts.detector import Detector
from sensor.rules.ruleset import SEVERITIES

#: most severe first
SEVERITY_RANK = {name: rank for rank, name in enumerate(reversed(SEVERITIES))}


def alert_rows(detector: Detector) -> list[tuple[str, ...]]:
    """One row per episode (its latest emission), most severe first."""
    alerts = sorted(detector.alerts.values(),
                    key=lambda a: (SEVERITY_RANK[a["severity"]], a["first_seen"]))
    return [(a["severity"], a["category"], a["rule"], f"{a['count']:,}", _endpoints(a),
             a["first_seen"][:19].replace("T", " "), a["last_seen"][:19].replace("T", " ")) for a in alerts]


ALERT_HEADER = ("severity", "category", "rule", "connections", "source -> destination", "first seen", "last seen")


def rule_rows(detector: Detector) -> list[tuple[str, ...]]:
    return [(rule.id, rule.category, rule.severity, f"{s.matches:,}", f"{s.episodes:,}", f"{s.alerts:,}",
             f"{s.seconds * 1000:.1f}") for rule in detector.rules for s in (detector.stats[rule.id],)]


RULE_HEADER = ("rule", "category", "severity", "matches", "episodes", "alerts", "ms")


def render_table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]],
                 stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    if stream.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for name in header:
            table.add_column(name)
        for row in rows:
            table.add_row(*row)
        Console(file=stream).print(table)
        return
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = [title] + ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()
                       for row in (header, *rows)]
    stream.write("\n".join(lines) + "\n")


def render_alert_summary(detector: Detector, stream: TextIO | None = None) -> None:
    rows = alert_rows(detector)
    if not rows:
        (stream or sys.stderr).write("alerts: none\n")
        return
    render_table(f"alerts: {len(rows)}", ALERT_HEADER, rows, stream)


def _endpoints(alert: dict) -> str:
    """``src -> dst:port``, with counts where the episode saw several."""
    distinct = alert["distinct"]
    src = alert["src"] if distinct["src"] <= 1 else f"{distinct['src']:,} sources"
    dst = alert["dst"] if distinct["dst"] <= 1 else f"{distinct['dst']:,} hosts"
    if distinct["dst_port"] > 1:
        return f"{src} -> {dst} ({distinct['dst_port']:,} ports)"
    port = f":{alert['dst_port']}" if alert["dst_port"] is not None else ""
    return f"{src} -> {dst}{port}"
