"""``-``: alerts on standard output.

A person at a terminal wants one readable line per alert; a pipe wants
machine-readable JSON lines.  The choice follows whether the stream is a
terminal (overridable in :class:`SinkOptions` for tests and for
``--alert-to -`` under a pager).  Colour marks severity only, only on a
terminal, and not when ``NO_COLOR`` is set (https://no-color.org).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from sensor._logging import get_logger
from sensor.sinks.base import SinkClosedError, SinkOptions, encode_alert, prepare_alert

__all__ = ["StdoutSink", "format_human"]

log = get_logger("sensor.sinks.stdout")

_COLOURS = {
    "low": "\x1b[36m",       # cyan
    "medium": "\x1b[33m",    # yellow
    "high": "\x1b[31m",      # red
    "critical": "\x1b[1;41;97m",  # bold white on red
}
_RESET = "\x1b[0m"


def _endpoint(addr: Any, port: Any) -> str:
    host = "-" if addr is None else str(addr)
    if ":" in host:  # IPv6: brackets keep the port readable
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def format_human(alert: dict[str, Any], colour: bool = False) -> str:
    """One line for a person: time, severity, category, rule/model, flow, count, summary.

    *alert* must already be escaped; the result has no newline.
    """
    severity = str(alert.get("severity") or "-")
    sev_text = severity.upper().ljust(8)
    if colour and severity in _COLOURS:
        sev_text = f"{_COLOURS[severity]}{sev_text}{_RESET}"
    detector = alert.get("rule") or alert.get("model") or "-"
    parts = [
        str(alert.get("ts") or "-"),
        sev_text,
        str(alert.get("category") or "-"),
        str(detector),
        f"{_endpoint(alert.get('src'), alert.get('src_port'))} -> "
        f"{_endpoint(alert.get('dst'), alert.get('dst_port'))}",
        str(alert.get("proto") or "-"),
        f"x{alert.get('count')}" if alert.get("count") is not None else "x-",
        str(alert.get("summary") or ""),
    ]
    if alert.get("update"):
        parts.append(f"(update {alert['update']})")
    return " ".join(parts)


class StdoutSink:
    """Writes each batch to a text stream and flushes it."""

    def __init__(self, url: str, options: SinkOptions) -> None:
        self.url = url
        self._stream, self._human = options.resolved_stdout()
        self._colour = self._human and "NO_COLOR" not in os.environ
        self._lock = threading.Lock()
        self._closed = False
        self._failed = False
        self.counters = {"sent": 0, "errors": 0}

    def __repr__(self) -> str:
        return f"StdoutSink({'human' if self._human else 'jsonl'})"

    def send(self, alerts: Sequence[dict[str, Any]]) -> None:
        if self._human:
            lines = [format_human(prepare_alert(a), self._colour) for a in alerts]
        else:
            lines = [encode_alert(a) for a in alerts]
        text = "".join(line + "\n" for line in lines)
        with self._lock:
            if self._closed:
                raise SinkClosedError(f"alert sink {self.url!r}: send after close")
            try:
                self._stream.write(text)
                self._stream.flush()
            except (OSError, ValueError) as exc:  # closed pipe, closed stream
                self.counters["errors"] += len(alerts)
                self._failed = True
                log.error("alert sink write failed", sink=self.url, error=str(exc), alerts=len(alerts))
                return
            self.counters["sent"] += len(alerts)

    def flush(self, timeout: float | None = None) -> bool:
        with self._lock:
            ok = not self._failed
            self._failed = False
            return ok

    def close(self) -> None:
        # The stream belongs to the caller (usually sys.stdout): not closed here.
        with self._lock:
            self._closed = True
