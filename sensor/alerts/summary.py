"""End-of-run tables: the alerts a replay raised, and what each rule did.

Both go to standard error (standard output carries records), as a rich
table on a terminal and as plain aligned text otherwise, so logs and CI
read them too.
"""

from __future__ import annotations

import sys
from typing import TextIO

from sensor.alerts.detector import Detector

_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def alert_rows(detector: Detector) -> list[tuple[str, ...]]:
    """One row per episode (its latest emission), most severe first."""
    alerts = sorted(detector.alerts.values(),
                    key=lambda a: (_SEVERITY_ORDER.get(a["severity"], 9), a["first_seen"]))
    return [(a["severity"], a["category"], a["rule"], f"{a['count']:,}", _endpoints(a),
             a["first_seen"][:19].replace("T", " "), a["last_seen"][:19].replace("T", " ")) for a in alerts]


ALERT_HEADER = ("severity", "category", "rule", "connections", "source -> destination", "first seen", "last seen")


def rule_rows(detector: Detector, include_silent: bool = True) -> list[tuple[str, ...]]:
    rows = []
    for rule in detector.rules:
        s = detector.stats[rule.id]
        if s.matches or include_silent:
            rows.append((rule.id, rule.category, rule.severity, f"{s.matches:,}", f"{s.episodes:,}",
                         f"{s.alerts:,}", f"{s.seconds * 1000:.1f}"))
    return rows


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
