"""``http://`` and ``https://``: each alert POSTed as JSON, through a disk spool.

A webhook receiver is somebody else's service: it restarts, it is slow,
it is down for an afternoon.  Alerts must survive all of that and a
crash of the sensor itself, without the pipeline ever waiting on the
network.  So ``send`` only appends the alerts to an on-disk spool and
fsyncs it; one background thread delivers from the spool head, strictly
in order, and moves a persisted cursor past an alert only after a 2xx.
After a restart delivery resumes at the cursor.  The guarantee is
at-least-once: an alert delivered just before a crash, whose cursor
update was lost, is sent again, and the receiver de-duplicates on
``(X-Sensor-Alert-Id, X-Sensor-Alert-Update)``.

Spool layout, under ``spool_dir/<first 16 hex of sha256(URL)>/``::

    lock                    flock'd by the one process using this spool
    url                     the URL without credentials or query, for people
    seg-000000000001.jsonl  segments: one compact JSON alert per line
    cursor                  {"segment": N, "offset": BYTES}: the next alert to deliver
    rejected/rejected.jsonl alerts the receiver refused for good (+ .1, the previous file)

Bound: when the undelivered bytes exceed ``spool_max_bytes`` the oldest
undelivered alerts are dropped (logged at error, counted in
``counters["dropped"]``).  Dropping the oldest keeps the alerts about
what is happening now, which is what an operator coming back to a long
outage needs; the alternative, refusing new alerts, would hide the
current attack behind a stale one.

Responses: 2xx delivered; 408, 429, 5xx, connection errors, timeouts
and TLS errors are retried with exponential backoff and full jitter
(``Retry-After`` honoured, up to 15 minutes); redirects are not followed
and are retried (the URL needs fixing, the alerts wait).  Any other 4xx
is permanent: the alert goes to ``rejected/`` and delivery moves on.
With ``max_retries`` set, an alert that failed that many retries is
rejected too; by default retries never stop (the spool bound applies).

The body is exactly the spooled line.  With a secret configured,
``X-Sensor-Signature: sha256=<hex HMAC-SHA256(secret, body)>``.  The
secret is read once at open from a file or an environment variable and
never appears in a log line, an error message or a repr.
"""

from __future__ import annotations

import email.utils
import errno
import fcntl
import hashlib
import hmac
import json
import os
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from sensor import __version__
from sensor._logging import get_logger
from sensor.sinks.base import Backoff, SinkClosedError, SinkError, SinkOptions, encode_alert, redact_url

__all__ = ["Spool", "WebhookSink", "spool_path"]

log = get_logger("sensor.sinks.webhook")

RETRY_AFTER_MAX_S = 900.0
LOG_EVERY_S = 60.0
RESPONSE_READ_MAX = 64 * 1024
_SEGMENT_PREFIX, _SEGMENT_SUFFIX = "seg-", ".jsonl"


def spool_path(url: str, options: SinkOptions) -> Path:
    """The spool directory of the webhook *url*."""
    return options.spool_dir / hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


class _Secret:
    """The webhook secret; it has no readable repr and no str."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self._key, body, hashlib.sha256).hexdigest()


def _read_secret(options: SinkOptions, shown: str) -> _Secret | None:
    if options.secret_file is not None:
        path = options.secret_file
        try:
            raw = path.read_bytes()
            mode = path.stat().st_mode
        except OSError as exc:
            raise SinkError(f"alert sink {shown!r}: cannot read webhook secret file {str(path)!r}: "
                            f"{exc.strerror}") from None
        if mode & 0o004:
            log.warning("webhook secret file is readable by every user", sink=shown, path=str(path))
        key = raw.rstrip(b"\r\n")
        where = f"secret file {str(path)!r}"
    elif options.secret_env is not None:
        value = os.environ.get(options.secret_env)
        if value is None:
            raise SinkError(f"alert sink {shown!r}: environment variable {options.secret_env!r} "
                            "(webhook secret) is not set")
        key = value.rstrip("\r\n").encode("utf-8")
        where = f"environment variable {options.secret_env!r}"
    else:
        return None
    if not key:
        raise SinkError(f"alert sink {shown!r}: webhook secret from {where} is empty")
    return _Secret(key)


@dataclass(frozen=True)
class _Record:
    body: bytes  # the line without its newline
    segment: int
    end: int  # offset just past the newline


class Spool:
    """Append-only JSONL segments, a persisted read cursor and a byte bound.

    Not thread-safe: the sink calls it under its own lock.
    """

    def __init__(self, directory: Path, max_bytes: int, label: str) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.segment_bytes = max(4096, min(max_bytes // 8, 8 * 1024 * 1024))
        self._label = label
        self._closed = False
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise SinkError(f"alert sink {label!r}: cannot use spool {str(directory)!r}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise SinkError(f"alert sink {label!r}: spool {str(directory)!r} is in use by another process") from None
        self._dir_fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
        self._reader: tuple[int, Any] | None = None
        self._tail_fd = -1
        url_file = directory / "url"
        if not url_file.exists():
            fd = os.open(url_file, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, label.encode("utf-8") + b"\n")
            finally:
                os.close(fd)
        self._sizes: dict[int, int] = {}
        for entry in directory.iterdir():
            name = entry.name
            if name.startswith(_SEGMENT_PREFIX) and name.endswith(_SEGMENT_SUFFIX):
                digits = name[len(_SEGMENT_PREFIX):-len(_SEGMENT_SUFFIX)]
                if digits.isdigit():
                    self._sizes[int(digits)] = entry.stat().st_size
        self._segments = sorted(self._sizes)
        self._cursor = self._load_cursor()
        self._repair_tail()
        if self._segments:
            self._tail_fd = os.open(self._segment_file(self._segments[-1]),
                                    os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        else:
            self._new_segment(self._cursor[0])
        self._normalize()

    # -- state on disk -------------------------------------------------

    def _segment_file(self, number: int) -> Path:
        return self.dir / f"{_SEGMENT_PREFIX}{number:012d}{_SEGMENT_SUFFIX}"

    def _load_cursor(self) -> tuple[int, int]:
        first = self._segments[0] if self._segments else 1
        try:
            data = json.loads((self.dir / "cursor").read_text())
            segment, offset = int(data["segment"]), int(data["offset"])
        except FileNotFoundError:
            return (first, 0)
        except (OSError, ValueError, KeyError, TypeError):
            log.error("webhook spool cursor unreadable: resending from the oldest spooled alert",
                      sink=self._label, spool=str(self.dir))
            return (first, 0)
        for old in [s for s in self._segments if s < segment]:  # delivered; deletion was interrupted
            self._unlink_segment(old)
        if not self._segments:
            return (max(segment, 1), 0)
        if segment not in self._sizes:
            return (self._segments[0], 0)
        return (segment, min(offset, self._sizes[segment]))

    def _repair_tail(self) -> None:
        """Cut a torn last line (power loss in the middle of a write)."""
        if not self._segments:
            return
        tail = self._segments[-1]
        size = self._sizes[tail]
        if size == 0:
            return
        with open(self._segment_file(tail), "rb+") as f:
            f.seek(max(0, size - 1))
            if f.read(1) == b"\n":
                return
            f.seek(0)
            keep = f.read().rfind(b"\n") + 1
            f.truncate(keep)
            os.fsync(f.fileno())
        log.error("webhook spool: cut a torn last line", sink=self._label, segment=tail, bytes=size - keep)
        self._sizes[tail] = keep
        if self._cursor[0] == tail:
            self._cursor = (tail, min(self._cursor[1], keep))

    def _new_segment(self, number: int) -> None:
        fd = os.open(self._segment_file(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.fsync(self._dir_fd)
        self._sizes[number] = 0
        self._segments.append(number)
        if self._tail_fd >= 0:
            os.close(self._tail_fd)
        self._tail_fd = fd

    def _unlink_segment(self, number: int) -> None:
        try:
            self._segment_file(number).unlink()
        except FileNotFoundError:
            pass
        self._sizes.pop(number, None)
        if number in self._segments:
            self._segments.remove(number)
        if self._reader is not None and self._reader[0] == number:
            self._reader[1].close()
            self._reader = None

    def _persist_cursor(self) -> None:
        segment, offset = self._cursor
        tmp = self.dir / "cursor.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps({"segment": segment, "offset": offset}).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.dir / "cursor")
        os.fsync(self._dir_fd)

    def _skip_finished(self) -> None:
        """Step the cursor (in memory) over segments it has reached the end of."""
        while self._cursor[0] != self._segments[-1] and self._cursor[1] >= self._sizes[self._cursor[0]]:
            self._cursor = (self._segments[self._segments.index(self._cursor[0]) + 1], 0)

    def _normalize(self) -> None:
        """Persist the cursor, then delete the segments wholly behind it.

        In that order: a crash in between leaves delivered segments that
        the next start deletes, never a cursor into a deleted one.
        """
        self._skip_finished()
        self._persist_cursor()
        for number in [s for s in self._segments if s < self._cursor[0]]:
            self._unlink_segment(number)

    # -- operations ----------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        """Bytes of undelivered alerts (what the bound applies to)."""
        segment, offset = self._cursor
        return sum(size for number, size in self._sizes.items() if number >= segment) - offset

    def empty(self) -> bool:
        return self.pending_bytes <= 0

    def append(self, lines: Sequence[bytes]) -> list[bytes]:
        """Append and fsync *lines*; return the bodies dropped to keep the bound."""
        tail = self._segments[-1]
        if self._sizes[tail] >= self.segment_bytes:
            self._new_segment(tail + 1)
            tail += 1
        data = b"".join(line + b"\n" for line in lines)
        before = self._sizes[tail]
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._tail_fd, view):]
            os.fsync(self._tail_fd)
        except OSError:
            try:
                os.ftruncate(self._tail_fd, before)
            except OSError:
                pass
            raise
        self._sizes[tail] = before + len(data)
        dropped: list[bytes] = []
        while self.pending_bytes > self.max_bytes:
            record = self.peek()
            if record is None:
                break
            dropped.append(record.body)
            self._cursor = (record.segment, record.end)
        if dropped:
            self._normalize()
        return dropped

    def peek(self) -> _Record | None:
        """The oldest undelivered alert, or None."""
        if self._closed or self.empty():
            return None
        self._skip_finished()
        segment, offset = self._cursor
        if self._reader is None or self._reader[0] != segment:
            if self._reader is not None:
                self._reader[1].close()
            self._reader = (segment, open(self._segment_file(segment), "rb"))
        reader = self._reader[1]
        reader.seek(offset)
        line = reader.readline()
        if not line.endswith(b"\n"):  # cannot happen while this process appends whole lines
            raise OSError(errno.EIO, f"incomplete spool line in segment {segment}")
        return _Record(line[:-1], segment, offset + len(line))

    def advance(self, record: _Record) -> None:
        """Mark *record* handled: the cursor moves past it unless it already has."""
        if self._closed or (record.segment, record.end) <= self._cursor:
            return
        self._cursor = (record.segment, record.end)
        self._normalize()

    def reject(self, record: _Record, status: int | None, reason: str) -> None:
        """Keep a refused alert in rejected/ (bounded: one previous file kept)."""
        folder = self.dir / "rejected"
        folder.mkdir(mode=0o700, exist_ok=True)
        path = folder / "rejected.jsonl"
        try:
            if path.stat().st_size > self.max_bytes:
                os.replace(path, folder / "rejected.jsonl.1")
        except FileNotFoundError:
            pass
        try:
            alert: Any = json.loads(record.body)
        except ValueError:
            alert = record.body.decode("utf-8", "backslashreplace")
        entry = {
            "rejected_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "status": status,
            "reason": reason,
            "alert": alert,
        }
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader[1].close()
        os.close(self._tail_fd)
        os.close(self._dir_fd)
        os.close(self._lock_fd)  # releases the flock


def _parse_webhook_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise SinkError(f"alert sink {redact_url(url)!r}: bad URL ({exc})") from None
    if not parts.hostname:
        raise SinkError(f"alert sink {redact_url(url)!r}: missing host")
    if parts.fragment:
        raise SinkError(f"alert sink {redact_url(url)!r}: a webhook URL takes no fragment")
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        raise SinkError(f"alert sink {redact_url(url)!r}: bad URL (spaces or control characters)")
    return parts.scheme.lower()


def _header_value(value: Any) -> str:
    """A header-safe rendering: printable ASCII, percent-encoded otherwise, bounded."""
    return quote(str(value), safe="".join(chr(c) for c in range(33, 127) if chr(c) != "%"))[:256]


def _retry_after(value: str | None) -> float:
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_MAX_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, min((when - datetime.now(timezone.utc)).total_seconds(), RETRY_AFTER_MAX_S))


def _describe(exc: BaseException) -> str:
    """A one-line reason for a transport error, naming TLS verification failures plainly."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return (f"TLS certificate verification failed ({seen.verify_message}); "
                    "set ca_file to trust a private CA")
        seen = seen.__cause__ or seen.__context__
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


@dataclass(frozen=True)
class _Outcome:
    kind: str  # "ok", "retry" or "reject"
    status: int | None
    reason: str
    wait: float = 0.0


class WebhookSink:
    """Spools alerts on disk and POSTs them, one per request, from one thread."""

    def __init__(self, url: str, options: SinkOptions) -> None:
        import httpx  # here, not at module level: only webhook users pay its import time

        self._httpx = httpx
        self._url = url
        self.url = redact_url(url)
        scheme = _parse_webhook_url(url)
        self._options = options
        self._secret = _read_secret(options, self.url)
        verify: ssl.SSLContext | bool = False
        if scheme == "https" and options.tls_verify:
            ca = options.ca_file
            if ca is not None and not ca.is_file():
                raise SinkError(f"alert sink {self.url!r}: ca_file {str(ca)!r} does not exist")
            try:
                verify = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
            except (OSError, ssl.SSLError) as exc:
                raise SinkError(f"alert sink {self.url!r}: cannot load ca_file {str(ca)!r}: {exc}") from None
        elif scheme == "https":
            log.warning("webhook TLS verification is off: anyone on the path can read and forge", sink=self.url)
        self._spool = Spool(spool_path(url, options), options.spool_max_bytes, self.url)
        self._client = httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(options.timeout_s),
            trust_env=False,  # no proxy or CA bundle picked up from the environment behind the operator's back
            follow_redirects=False,
            headers={"User-Agent": f"sensor/{__version__}"},
        )
        self._backoff = Backoff(options)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._closed = False
        self._lost = False
        self._failing = False  # the last delivery attempt failed and will be retried
        self._last_drop_log = 0.0
        self._unlogged_drops = 0
        self.counters = {"spooled": 0, "delivered": 0, "rejected": 0, "dropped": 0, "spool_errors": 0}
        self._thread = threading.Thread(target=self._run, name="sensor-sink-webhook", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"WebhookSink({self.url!r}, signed={self._secret is not None})"

    @property
    def spool_dir(self) -> Path:
        return self._spool.dir

    def pending(self) -> bool:
        """Whether undelivered alerts remain in the spool."""
        with self._cond:
            return not self._spool.empty()

    def spool_bytes(self) -> int:
        """Bytes of undelivered alerts in the spool (a metric)."""
        with self._cond:
            return self._spool.pending_bytes

    # -- Sink ----------------------------------------------------------

    def send(self, alerts: Sequence[dict[str, Any]]) -> None:
        lines = [encode_alert(a).encode("utf-8") for a in alerts]
        with self._cond:
            if self._closed:
                raise SinkClosedError(f"alert sink {self.url!r}: send after close")
            if not lines:
                return
            try:
                dropped = self._spool.append(lines)
            except OSError as exc:
                self.counters["spool_errors"] += len(lines)
                self._lost = True
                log.error("webhook spool write failed: alerts lost", sink=self.url, error=exc.strerror,
                          alerts=len(lines))
                return
            self.counters["spooled"] += len(lines)
            if dropped:
                self.counters["dropped"] += len(dropped)
                self._unlogged_drops += len(dropped)
                self._lost = True
                now = time.monotonic()
                if now - self._last_drop_log >= LOG_EVERY_S:
                    log.error("webhook spool full: dropped oldest undelivered alerts", sink=self.url,
                              dropped=self._unlogged_drops, dropped_total=self.counters["dropped"],
                              spool_max_bytes=self._spool.max_bytes, oldest_dropped=_alert_id(dropped[0]),
                              newest_dropped=_alert_id(dropped[-1]))
                    self._unlogged_drops = 0
                    self._last_drop_log = now
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: self._spool.empty() or not self._thread.is_alive(), timeout)
            ok = self._spool.empty() and not self._lost
            self._lost = False
            return ok

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            # Everything is on disk: wait for delivery only while it is making progress.
            self._cond.wait_for(lambda: self._spool.empty() or self._failing or not self._thread.is_alive(),
                                self._options.timeout_s)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(self._options.timeout_s * 4 + 1)
        with self._cond:
            if self._unlogged_drops:
                log.error("webhook spool full: dropped oldest undelivered alerts", sink=self.url,
                          dropped=self._unlogged_drops, dropped_total=self.counters["dropped"])
            if not self._spool.empty():
                log.warning("webhook sink closed with alerts still spooled; they are sent on the next start",
                            sink=self.url, spool=str(self._spool.dir), pending_bytes=self._spool.pending_bytes)
            self._spool.close()
        self._client.close()

    # -- delivery ------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        last_log = 0.0
        while not self._stop.is_set():
            try:
                with self._cond:
                    record = self._spool.peek()
                    while record is None and not self._stop.is_set():
                        self._cond.wait()
                        record = self._spool.peek()
                if record is None:
                    return
                outcome = self._post(record)
                if outcome.kind == "retry" and self._options.max_retries is not None \
                        and failures >= self._options.max_retries:
                    outcome = _Outcome("reject", outcome.status, f"gave up after {failures} retries: {outcome.reason}")
                if outcome.kind == "retry":
                    failures += 1
                    with self._cond:
                        self._failing = True
                        self._cond.notify_all()
                    now = time.monotonic()
                    if failures == 1 or now - last_log >= LOG_EVERY_S:
                        log.error("webhook delivery failed, will retry", sink=self.url, status=outcome.status,
                                  reason=outcome.reason, failures=failures, alert=_alert_id(record.body))
                        last_log = now
                    self._stop.wait(max(self._backoff.delay(failures), outcome.wait))
                    continue
                if failures and outcome.kind == "ok":
                    log.info("webhook delivery resumed", sink=self.url, after_failures=failures)
                failures = 0
                with self._cond:
                    self._failing = False
                    if outcome.kind == "reject":
                        log.error("webhook receiver refused alert: moved to rejected/", sink=self.url,
                                  status=outcome.status, reason=outcome.reason, alert=_alert_id(record.body))
                        self._spool.reject(record, outcome.status, outcome.reason)
                        self.counters["rejected"] += 1
                        self._lost = True
                    else:
                        log.debug("webhook alert delivered", sink=self.url, alert=_alert_id(record.body),
                                  status=outcome.status)
                        self.counters["delivered"] += 1
                    self._spool.advance(record)
                    self._cond.notify_all()
            except Exception as exc:  # the delivery thread must outlive any surprise
                failures += 1
                log.error("webhook delivery thread error", sink=self.url, error=_describe(exc))
                self._stop.wait(self._backoff.delay(failures))
        with self._cond:
            self._cond.notify_all()

    def _scrub(self, text: str) -> str:
        """*text* without the URL's credentials or query, should an error quote them."""
        text = text.replace(self._url, self.url)
        parts = urlsplit(self._url)
        for secret in (parts.password, parts.query):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _post(self, record: _Record) -> _Outcome:
        httpx = self._httpx
        headers = {"Content-Type": "application/json"}
        try:
            alert = json.loads(record.body)
        except ValueError:
            return _Outcome("reject", None, "corrupt spool record (not JSON)")
        if isinstance(alert, dict):
            if alert.get("id") is not None:
                headers["X-Sensor-Alert-Id"] = _header_value(alert["id"])
            if isinstance(alert.get("update"), int):
                headers["X-Sensor-Alert-Update"] = str(alert["update"])
        if self._secret is not None:
            headers["X-Sensor-Signature"] = self._secret.sign(record.body)
        try:
            with self._client.stream("POST", self._url, content=record.body, headers=headers) as response:
                status = response.status_code
                retry_after = response.headers.get("Retry-After")
                location = response.headers.get("Location")
                read = 0
                for chunk in response.iter_bytes():  # drain small bodies so the connection is reused
                    read += len(chunk)
                    if read > RESPONSE_READ_MAX:
                        break
        except httpx.HTTPError as exc:
            return _Outcome("retry", None, self._scrub(_describe(exc)))
        if 200 <= status < 300:
            return _Outcome("ok", status, "")
        if 300 <= status < 400:
            return _Outcome("retry", status, f"redirect to {redact_url(location or '?')!r} not followed: fix the URL")
        if status in (408, 429) or status >= 500:
            return _Outcome("retry", status, f"HTTP {status}", _retry_after(retry_after))
        return _Outcome("reject", status, f"HTTP {status}")


def _alert_id(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError):
        return None
    return None if value is None else str(value)[:128]
