"""``syslog://``, ``syslog+tcp://``, ``syslog:///socket``: alerts as RFC 5424 messages.

URLs:

* ``syslog://HOST:PORT`` (alias ``syslog+udp://``): UDP, fire and forget;
  send errors are counted, nothing is retried (a datagram has no ack).
* ``syslog+tcp://HOST:PORT``: TCP with RFC 6587 octet counting
  (``LEN SP MSG``), reconnecting with backoff; what could not be sent yet
  waits in a bounded in-memory queue (``queue_max``; the oldest is
  dropped, logged and counted when it is full).
* ``syslog:///dev/log`` or ``syslog:///path/to/socket``: the local
  daemon's unix datagram socket, retried like TCP; a stream socket
  (EPROTOTYPE on a datagram connect) gets LF-terminated messages, which
  is safe because a message never contains a raw LF.

HOST may be a name, an IPv4 address or a bracketed IPv6 literal; the
port is required (no silent 514).

Each alert becomes::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID alert [sensor@32473 id="..." ...] BOM{json}

PRI is the facility (local0 unless configured) times 8 plus the
severity mapped from the alert's (low notice, medium warning, high err,
critical crit).  The whole message is kept within ``syslog_max_bytes``
(8000 by default, under rsyslog's 8 KiB default and common UDP limits):
an alert too big has its evidence trimmed, then dropped, and carries
``"truncated": true``; a broken datagram is never sent.  32473 is the
enterprise number RFC 5612 reserves for examples; replace it if the
project registers one.

All sending happens on one background thread, so ``send`` never waits
on the network.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import select
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from sensor._logging import get_logger
from sensor.sinks.base import Backoff, SinkClosedError, SinkError, SinkOptions, prepare_alert, redact_url

__all__ = ["SEVERITY", "SD_ID", "SyslogSink", "SyslogTarget", "format_message", "parse_syslog_url"]

log = get_logger("sensor.sinks.syslog")

SD_ID = "sensor@32473"
SD_PARAMS = ("id", "rule", "model", "category", "severity", "src", "dst", "count")
SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
DEFAULT_SEVERITY = 4  # warning: an alert of unknown severity is still worth a look
BOM = "\ufeff".encode()
# Kept whole when an alert must be trimmed: who, what, when, how bad.
CORE_KEYS = frozenset({
    "id", "ts", "first_seen", "last_seen", "rule", "model", "category", "severity",
    "src", "dst", "src_port", "dst_port", "proto", "count", "sensor", "schema", "update",
})
SD_VALUE_MAX_BYTES = 64
LOG_EVERY_S = 60.0


@dataclass(frozen=True)
class SyslogTarget:
    transport: str  # "udp", "tcp" or "unix"
    host: str | None = None
    port: int | None = None
    path: str | None = None


def parse_syslog_url(url: str) -> SyslogTarget:
    """Check a syslog URL and say where it points."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SinkError(f"alert sink {shown!r}: bad syslog URL ({exc})") from None
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment or parts.username or parts.password:
        raise SinkError(f"alert sink {shown!r}: a syslog URL takes no user, query or fragment")
    if scheme == "syslog" and not parts.netloc:
        if not parts.path.startswith("/") or parts.path.endswith("/"):
            raise SinkError(f"alert sink {shown!r}: bad path: syslog:///ABSOLUTE/PATH names a local socket")
        parent = os.path.dirname(parts.path)
        if not os.path.isdir(parent):
            raise SinkError(f"alert sink {shown!r}: bad path: directory {parent!r} does not exist")
        if len(os.fsencode(parts.path)) > 107:
            raise SinkError(f"alert sink {shown!r}: bad path: unix socket paths are limited to 107 bytes")
        return SyslogTarget("unix", path=parts.path)
    transport = {"syslog": "udp", "syslog+udp": "udp", "syslog+tcp": "tcp"}.get(scheme)
    if transport is None:
        raise SinkError(f"alert sink {shown!r}: unknown syslog scheme {scheme!r}")
    if not parts.hostname:
        raise SinkError(f"alert sink {shown!r}: missing host (syslog://HOST:PORT, [IPv6]:PORT)")
    if port is None or port == 0:
        raise SinkError(f"alert sink {shown!r}: missing port (syslog://HOST:PORT; the usual one is 514)")
    if parts.path not in ("", "/"):
        raise SinkError(f"alert sink {shown!r}: a network syslog URL takes no path")
    return SyslogTarget(transport, host=parts.hostname, port=port)


def _header_field(value: str, max_len: int) -> str:
    """An RFC 5424 header field: PRINTUSASCII, bounded, '-' when empty."""
    cleaned = "".join(ch if 33 <= ord(ch) <= 126 else "_" for ch in value)[:max_len]
    return cleaned or "-"


def _sd_value(value: Any) -> str:
    """A PARAM-VALUE: at most 64 bytes of UTF-8, with '"', '\\' and ']' escaped."""
    text = value if isinstance(value, str) else json.dumps(value)
    raw = text.encode("utf-8")
    if len(raw) > SD_VALUE_MAX_BYTES:
        text = raw[:SD_VALUE_MAX_BYTES].decode("utf-8", "ignore")
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _trim(value: Any, max_items: int, max_chars: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= max_chars else value[:max_chars] + "..."
    if isinstance(value, list):
        return [_trim(v, max_items, max_chars) for v in value[:max_items]]
    if isinstance(value, dict):
        return {k: _trim(v, max_items, max_chars) for k, v in list(value.items())[:max_items]}
    return value


def fit_alert(alert: dict[str, Any], budget: int) -> bytes:
    """The escaped *alert* as compact JSON of at most *budget* bytes.

    Evidence (everything outside :data:`CORE_KEYS`) is trimmed in steps:
    long lists and strings shortened, then removed; core strings are cut
    last.  A trimmed alert says so with ``"truncated": true``.
    """
    body = _dumps(alert)
    if len(body) <= budget:
        return body
    for max_items, max_chars in ((1024, 1024), (256, 1024), (64, 512), (16, 256), (4, 64)):
        trimmed = {k: (v if k in CORE_KEYS else _trim(v, max_items, max_chars)) for k, v in alert.items()}
        trimmed["truncated"] = True
        body = _dumps(trimmed)
        if len(body) <= budget:
            return body
    core = {k: _trim(v, 0, 64) for k, v in alert.items() if k in CORE_KEYS}
    core["truncated"] = True
    body = _dumps(core)
    if len(body) <= budget:
        return body
    return _dumps({"id": _trim(alert.get("id"), 0, 16), "truncated": True})


def _timestamp(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_message(
    alert: dict[str, Any], options: SinkOptions, *, pid: int | None = None, now: float | None = None
) -> bytes:
    """One RFC 5424 message (without transport framing) for *alert*."""
    safe = prepare_alert(alert)
    severity = SEVERITY.get(str(safe.get("severity", "")).lower(), DEFAULT_SEVERITY)
    pri = options.syslog_facility * 8 + severity
    header = " ".join((
        f"<{pri}>1",
        _timestamp(time.time() if now is None else now),
        _header_field(options.hostname, 255),
        _header_field(options.app_name, 48),
        str(os.getpid() if pid is None else pid),
        "alert",
    ))
    params = " ".join(
        f'{name}="{_sd_value(safe[name])}"' for name in SD_PARAMS if safe.get(name) is not None
    )
    sd = f"[{SD_ID} {params}]" if params else f"[{SD_ID}]"
    head = f"{header} {sd} ".encode() + BOM
    return head + fit_alert(safe, options.syslog_max_bytes - len(head))


class _Transport:
    """One connection to the receiver, made on first use and after a failure."""

    def __init__(self, target: SyslogTarget, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.reliable = target.transport != "udp"
        self._sock: socket.socket | None = None
        self._framing = "octet" if target.transport == "tcp" else "none"

    def _connect(self) -> socket.socket:
        t = self.target
        if t.transport == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(t.path)
                self._framing = "none"
                return sock
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EPROTOTYPE:
                    raise
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(t.path)
            except OSError:
                sock.close()
                raise
            self._framing = "lf"
            return sock
        if t.transport == "tcp":
            return socket.create_connection((t.host, t.port), timeout=self.timeout)
        family, kind, proto, _, addr = socket.getaddrinfo(t.host, t.port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.settimeout(self.timeout)
        try:
            sock.connect(addr)
        except OSError:
            sock.close()
            raise
        return sock

    def _peer_closed(self, sock: socket.socket) -> bool:
        """True when a stream peer has hung up, so that we reconnect before
        writing into a dead connection (whose first write would 'succeed')."""
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def send(self, message: bytes) -> None:
        if self._sock is not None and self._framing != "none" and self._peer_closed(self._sock):
            self.reset()
        if self._sock is None:
            self._sock = self._connect()
        if self._framing == "octet":
            self._sock.sendall(b"%d " % len(message) + message)
        elif self._framing == "lf":
            self._sock.sendall(message + b"\n")
        else:
            self._sock.send(message)

    def reset(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


class SyslogSink:
    """Formats alerts in the caller's thread, sends them from a background thread."""

    def __init__(self, url: str, options: SinkOptions) -> None:
        self.url = url
        self.target = parse_syslog_url(url)
        self._options = options
        self._transport = _Transport(self.target, options.timeout_s)
        self._backoff = Backoff(options)
        self._queue: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._busy = False
        self._closed = False
        self._lost = False  # something dropped or failed since the last flush
        self._last_drop_log = 0.0
        self._unlogged_drops = 0
        self.counters = {"sent": 0, "errors": 0, "dropped": 0}
        self._thread = threading.Thread(target=self._run, name=f"sensor-sink-{self.target.transport}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"SyslogSink({self.url!r})"

    def send(self, alerts: Sequence[dict[str, Any]]) -> None:
        messages = [format_message(a, self._options) for a in alerts]
        with self._cond:
            if self._closed:
                raise SinkClosedError(f"alert sink {self.url!r}: send after close")
            for message in messages:
                if len(self._queue) >= self._options.queue_max:
                    self._queue.popleft()
                    self.counters["dropped"] += 1
                    self._unlogged_drops += 1
                    self._lost = True
                self._queue.append(message)
            self._cond.notify_all()
            if self._unlogged_drops and time.monotonic() - self._last_drop_log >= LOG_EVERY_S:
                log.error("syslog queue full: dropped oldest alerts", sink=self.url,
                          dropped=self._unlogged_drops, queue_max=self._options.queue_max)
                self._unlogged_drops = 0
                self._last_drop_log = time.monotonic()

    def flush(self, timeout: float | None = None) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: (not self._queue and not self._busy) or not self._thread.is_alive(), timeout)
            ok = not self._queue and not self._busy and not self._lost
            self._lost = False
            return ok

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self.flush(self._options.timeout_s)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(self._options.timeout_s)
        with self._cond:
            left = len(self._queue)
            dropped = self._unlogged_drops
        if left or dropped:
            log.error("syslog sink closed with undelivered alerts", sink=self.url, undelivered=left, dropped=dropped)
        self._transport.reset()

    def _run(self) -> None:
        failures = 0
        last_log = 0.0
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
                message = self._queue[0]
                self._busy = True
            try:
                self._transport.send(message)
            except OSError as exc:
                self._transport.reset()
                failures += 1
                now = time.monotonic()
                if failures == 1 or now - last_log >= LOG_EVERY_S:
                    log.warning("syslog send failed", sink=self.url, error=str(exc), failures=failures,
                                will_retry=self._transport.reliable)
                    last_log = now
                if self._transport.reliable:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()
                    self._stop.wait(self._backoff.delay(failures))
                    continue
                with self._cond:
                    self.counters["errors"] += 1
                    self._lost = True
                    self._pop(message)
                continue
            if failures and self._transport.reliable:
                log.info("syslog delivery resumed", sink=self.url, after_failures=failures)
            failures = 0 if self._transport.reliable else failures
            with self._cond:
                self.counters["sent"] += 1
                self._pop(message)

    def _pop(self, message: bytes) -> None:
        """Remove the message just handled (unless dropped meanwhile); caller holds the lock."""
        if self._queue and self._queue[0] is message:
            self._queue.popleft()
        self._busy = False
        self._cond.notify_all()
