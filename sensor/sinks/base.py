"""The contract every alert sink keeps, and what the sinks share.

A sink is where alerts leave the sensor: the terminal, a file, syslog, a
webhook.  The pipeline hands each sink the same batches and must never
wait on a slow receiver, so:

* ``send`` returns quickly.  Local sinks write directly; network sinks
  hand the batch to a background thread (syslog, bounded memory queue)
  or an on-disk spool (webhook).  ``send`` never raises for a delivery
  problem: those are logged and counted in ``counters``.  The one error
  it raises is :class:`SinkClosedError`, for a send after ``close``: that
  is a bug in the caller, and silently dropping alerts would hide it.
* ``flush(timeout)`` waits until what was sent is delivered (or, for
  the webhook, delivered, rejected or dropped) and says whether all of
  it was delivered since the last flush.  ``None`` waits without limit.
* ``close`` is idempotent.

Every sink passes alerts through :func:`prepare_alert` (which starts
with :func:`sensor.sinks.escape.escape_alert`) before writing them,
whatever the producer did.
"""

from __future__ import annotations

import json
import math
import random
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from sensor.sinks.escape import escape_alert, escape_text

__all__ = [
    "Backoff",
    "Sink",
    "SinkClosedError",
    "SinkError",
    "SinkOptions",
    "encode_alert",
    "prepare_alert",
    "redact_url",
]

MiB = 1024 * 1024


class SinkError(ValueError):
    """A sink URL or option is wrong; the message names the URL and the problem."""


class SinkClosedError(SinkError):
    """``send`` was called on a sink that has been closed."""


@runtime_checkable
class Sink(Protocol):
    """Where alerts go.  See the module docstring for the guarantees."""

    url: str  # the URL it was opened with, credentials and query removed

    def send(self, alerts: Sequence[dict[str, Any]]) -> None:
        """Queue *alerts* for delivery, in order, without blocking for long."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until sent alerts are delivered; True if all were."""
        ...

    def close(self) -> None:
        """Deliver what can be delivered quickly, then release resources."""
        ...


@dataclass(frozen=True, kw_only=True)
class SinkOptions:
    """Settings shared by all sinks; each sink reads the ones it needs.

    The webhook secret is given by where to read it (``secret_file`` or
    the environment variable named by ``secret_env``), never by value, so
    that this object can be logged and repr'd safely.
    """

    hostname: str = field(default_factory=socket.gethostname)
    app_name: str = "sensor"
    # webhook
    secret_file: Path | None = None
    secret_env: str | None = None
    spool_dir: Path = Path("/var/lib/sensor/spool")
    spool_max_bytes: int = 64 * MiB
    tls_verify: bool = True
    ca_file: Path | None = None
    # network behaviour
    timeout_s: float = 5.0
    max_retries: int | None = None  # per alert; None retries until delivered
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 60.0
    backoff_jitter: bool = True  # "full jitter": uniform(0, capped exponential)
    # syslog
    syslog_facility: int = 16  # local0
    syslog_max_bytes: int = 8000  # whole message; below rsyslog's default 8 KiB limit
    queue_max: int = 10_000  # alerts held in memory by the syslog sender
    # stdout
    stdout: TextIO | None = None  # None: sys.stdout when the sink is opened
    stdout_is_tty: bool | None = None  # None: ask the stream

    def __post_init__(self) -> None:
        if self.secret_file is not None and self.secret_env is not None:
            raise SinkError("sink options: give secret_file or secret_env, not both")
        if self.spool_max_bytes <= 0 or self.syslog_max_bytes < 2048 or self.queue_max <= 0:
            raise SinkError("sink options: spool_max_bytes, queue_max must be > 0 and syslog_max_bytes >= 2048")
        if self.timeout_s <= 0 or self.backoff_initial_s <= 0 or self.backoff_max_s < self.backoff_initial_s:
            raise SinkError("sink options: timeouts and backoff must be > 0, with backoff_max_s >= backoff_initial_s")
        if self.max_retries is not None and self.max_retries < 0:
            raise SinkError("sink options: max_retries must be >= 0 or None")
        if not 0 <= self.syslog_facility <= 23:
            raise SinkError("sink options: syslog_facility must be 0..23 (local0 is 16)")

    def resolved_stdout(self) -> tuple[TextIO, bool]:
        """The stream the stdout sink writes to and whether it is a terminal."""
        stream = self.stdout if self.stdout is not None else sys.stdout
        if self.stdout_is_tty is not None:
            return stream, self.stdout_is_tty
        try:
            return stream, stream.isatty()
        except (AttributeError, ValueError):
            return stream, False


class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog, 2015).

    Full jitter spreads retries of many sensors over the whole window so
    that a receiver coming back is not hit by all of them at once.
    """

    def __init__(self, options: SinkOptions) -> None:
        self._initial = options.backoff_initial_s
        self._max = options.backoff_max_s
        self._jitter = options.backoff_jitter

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number *attempt* (1 for the first)."""
        cap = min(self._max, self._initial * (2 ** min(max(attempt - 1, 0), 62)))
        return random.uniform(0.0, cap) if self._jitter else cap


def redact_url(url: str) -> str:
    """*url* without user info and query, for logs and error messages.

    Webhook URLs often carry a token in either place.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return escape_text(url.split("?", 1)[0].rsplit("@", 1)[-1])
    if "@" not in parts.netloc and not parts.query:
        return escape_text(url)  # nothing secret: show it as written
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "..." if parts.query else ""
    return escape_text(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


def prepare_alert(alert: dict[str, Any]) -> dict[str, Any]:
    """A copy of *alert* that is safe to write anywhere and strictly JSON.

    :func:`escape_alert` first (every string, keys too); then tuples and
    sets become lists, non-finite floats null (strict JSON has no NaN),
    numpy scalars plain numbers, and anything else its escaped ``str``.
    """
    return _jsonable(escape_alert(alert))


def encode_alert(alert: dict[str, Any]) -> str:
    """The prepared alert as one line of compact JSON (no newline)."""
    return json.dumps(prepare_alert(alert), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _jsonable(value: Any) -> Any:
    """Plain JSON types; strings are taken as already escaped."""
    if isinstance(value, str) or value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else escape_text(str(k))): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)
    if callable(item):
        try:
            plain = item()
        except (TypeError, ValueError):
            plain = None
        else:
            if isinstance(plain, str):
                return escape_text(plain)
            if plain is not value and isinstance(plain, (bool, int, float)):
                return _jsonable(plain)
    return escape_text(str(value))
