"""What the command line shows a person: a progress bar and a summary.

Both go to standard error, so standard output carries only records.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sensor.pipeline import Summary, passed_over
from sensor.rows import FIRST_MALFORMED, STATUS_NAMES

#: files smaller than this finish too fast to need a bar
PROGRESS_MIN_BYTES = 32 << 20


class ProgressBar:
    """A per-file progress bar for long files, on a terminal only."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True,
        )
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "ProgressBar":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, path: str, done: int, total: int) -> None:
        if total < PROGRESS_MIN_BYTES:
            return
        if path not in self._tasks:
            self._tasks[path] = self._progress.add_task(Path(path).name, total=total)
        self._progress.update(self._tasks[path], completed=done)


def summary_rows(summary: Summary) -> list[tuple[str, str]]:
    rows = [
        ("files", str(summary.files)),
        ("packets", f"{summary.packets:,}"),
        ("captured bytes", f"{summary.captured_bytes:,}"),
        ("connections", f"{summary.connections:,}"),
    ]
    for name, frames in passed_over(summary).items():
        rows.append((f"skipped: {name.replace('_', ' ')}", f"{frames:,}"))
    for name in STATUS_NAMES[FIRST_MALFORMED:]:
        if summary.frames[name]:
            rows.append((f"malformed: {name.replace('_', ' ')}", f"{summary.frames[name]:,}"))
    if summary.fragments_reassembled or summary.fragments_incomplete:
        rows.append(("fragmented datagrams", f"{summary.fragments_reassembled:,} reassembled, "
                                             f"{summary.fragments_incomplete:,} incomplete"))
    if summary.damage:
        rows.append(("damaged stretches", str(len(summary.damage))))
    if summary.unreadable:
        rows.append(("unreadable files", str(len(summary.unreadable))))
    if summary.released_late:
        rows.append(("records released out of start order", f"{summary.released_late:,}"))
    if summary.evicted:
        rows.append(("connections evicted (table full: limits.connections)", f"{summary.evicted:,}"))
    return rows


def render_summary(summary: Summary) -> None:
    """A table on a terminal; plain ``key: value`` lines otherwise (logs, CI)."""
    rows = summary_rows(summary)
    if not sys.stderr.isatty():
        sys.stderr.write("".join(f"{key}: {value}\n" for key, value in rows))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="replay summary", show_header=False, title_justify="left", box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows:
        table.add_row(key, value)
    Console(stderr=True).print(table)
