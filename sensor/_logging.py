"""Logging through structlog: one line per event on stderr.

Library modules take a logger from :func:`get_logger`.  structlog itself
is imported on the first event, not at start-up: importing it (and the
rich tracebacks it pulls in) costs about 0.15 s, a quarter of a
million-packet replay, and a clean replay logs nothing.  Values from
packets never reach a log line unescaped: key-value pairs are rendered
as reprs.
"""

from __future__ import annotations

import sys
from typing import Any

_settings = {"level": "info", "json": False}
_configured = False


def configure(level: str = "info", json: bool = False) -> None:
    """Choose the level and format; applied when the first event is logged."""
    global _configured
    _settings.update(level=level, json=json)
    _configured = False


def _structlog() -> Any:
    global _configured
    import logging

    import structlog

    if not _configured:
        renderer = (
            structlog.processors.JSONRenderer()
            if _settings["json"]
            else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), pad_event_to=0)
        )
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(
                getattr(logging, str(_settings["level"]).upper())
            ),
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
            cache_logger_on_first_use=False,
        )
        _configured = True
    return structlog


class _LazyLogger:
    """A structlog logger created on first use."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        return getattr(_structlog().get_logger(self._name), method)


def get_logger(name: str) -> Any:
    return _LazyLogger(name)
