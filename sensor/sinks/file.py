"""``file:PATH`` and ``file:///abs/path``: alerts appended to a JSON lines file.

Each ``send`` is written with one ``write`` on an ``O_APPEND`` descriptor,
so concurrent writers (another sensor, logrotate's copytruncate) never
interleave inside a line, and it reaches the kernel before ``send``
returns: a crash of the sensor loses nothing already sent.  ``flush``
also fsyncs, for callers that want the disk to have it.

The file is created with mode 0640 (alerts name hosts and can quote
payload; not for every local user).  Its directory must already exist:
creating directories from a URL is how typos end up as stray trees.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sensor._logging import get_logger
from sensor.sinks.base import SinkClosedError, SinkError, SinkOptions, encode_alert, redact_url

__all__ = ["FileSink", "parse_file_url"]

log = get_logger("sensor.sinks.file")

MODE = 0o640


def parse_file_url(url: str) -> Path:
    """The path named by a ``file:`` URL; ``file://`` forms are percent-decoded."""
    shown = redact_url(url)
    if url[:7].lower() == "file://":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise SinkError(f"alert sink {shown!r}: file URLs cannot name a remote host ({parts.hostname!r})")
        if parts.query or parts.fragment:
            raise SinkError(f"alert sink {shown!r}: a file URL takes no query or fragment")
        raw = unquote(parts.path)
    else:
        raw = url[len("file:"):]
    if not raw:
        raise SinkError(f"alert sink {shown!r}: no file path (use file:PATH or file:///abs/path)")
    if "\x00" in raw:
        raise SinkError(f"alert sink {shown!r}: bad path (NUL byte)")
    return Path(raw)


class FileSink:
    """Appends one compact JSON object per line."""

    def __init__(self, url: str, options: SinkOptions) -> None:
        self.url = url
        self.path = parse_file_url(url)
        parent = self.path.parent
        if not parent.is_dir():
            raise SinkError(f"alert sink {url!r}: directory {str(parent)!r} does not exist")
        if self.path.exists() and not self.path.is_file():
            # a FIFO would block the open, a device is not a log: use ``-`` for stdout
            raise SinkError(f"alert sink {url!r}: {str(self.path)!r} is not a regular file")
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, MODE)
        except OSError as exc:
            raise SinkError(f"alert sink {url!r}: cannot open {str(self.path)!r}: {exc.strerror}") from None
        self._lock = threading.Lock()
        self._closed = False
        self._failed = False
        self.counters = {"sent": 0, "errors": 0}

    def __repr__(self) -> str:
        return f"FileSink({str(self.path)!r})"

    def send(self, alerts: Sequence[dict[str, Any]]) -> None:
        data = "".join(encode_alert(a) + "\n" for a in alerts).encode("utf-8")
        with self._lock:
            if self._closed:
                raise SinkClosedError(f"alert sink {self.url!r}: send after close")
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
            except OSError as exc:  # disk full, I/O error: logged, not raised into the pipeline
                self.counters["errors"] += len(alerts)
                self._failed = True
                log.error("alert file write failed", sink=self.url, error=exc.strerror, alerts=len(alerts))
                return
            self.counters["sent"] += len(alerts)

    def flush(self, timeout: float | None = None) -> bool:
        with self._lock:
            if not self._closed:
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    log.error("alert file fsync failed", sink=self.url, error=exc.strerror)
                    self._failed = True
            ok = not self._failed
            self._failed = False
            return ok

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                os.fsync(self._fd)
            except OSError:
                pass
            os.close(self._fd)
