"""Alert sinks, chosen by URL (``--alert-to URL``, repeatable, and config).

=====================================  ==========================================
URL                                    sink
=====================================  ==========================================
``-``                                  standard output (human on a TTY, else JSONL)
``file:PATH``, ``file:///abs/path``    JSON lines appended to a file
``syslog://HOST:PORT``                 RFC 5424 over UDP
``syslog+tcp://HOST:PORT``             RFC 5424 over TCP, octet counting
``syslog:///dev/log``                  RFC 5424 to a local unix socket
``http://...``, ``https://...``        one POST per alert, through a disk spool
=====================================  ==========================================

The contract they share is :class:`sensor.sinks.base.Sink`; see
``docs/sinks.md`` for formats and delivery guarantees.  Each sink module
is imported only when a URL needs it (httpx, for one, costs start-up time).
"""

from __future__ import annotations

from collections.abc import Iterable

from sensor.sinks.base import Sink, SinkClosedError, SinkError, SinkOptions, redact_url
from sensor.sinks.escape import escape_alert, escape_text

__all__ = [
    "Sink",
    "SinkClosedError",
    "SinkError",
    "SinkOptions",
    "escape_alert",
    "escape_text",
    "open_sink",
    "open_sinks",
]

_EXPECTED = "-, file:PATH, syslog://HOST:PORT, syslog+tcp://HOST:PORT, syslog:///SOCKET, http(s)://..."


def open_sink(url: str, options: SinkOptions) -> Sink:
    """Open the sink *url* names; :class:`SinkError` says what is wrong with it."""
    if not isinstance(url, str) or not url.strip():
        raise SinkError(f"alert sink {url!r}: empty URL (expected {_EXPECTED})")
    if url == "-":
        from sensor.sinks.stdout import StdoutSink

        return StdoutSink(url, options)
    scheme, colon, _ = url.partition(":")
    scheme = scheme.lower()
    if not colon:
        raise SinkError(f"alert sink {redact_url(url)!r}: not a URL (expected {_EXPECTED})")
    if scheme == "file":
        from sensor.sinks.file import FileSink

        return FileSink(url, options)
    if scheme in ("syslog", "syslog+udp", "syslog+tcp"):
        from sensor.sinks.syslog import SyslogSink

        return SyslogSink(url, options)
    if scheme in ("http", "https"):
        from sensor.sinks.webhook import WebhookSink

        return WebhookSink(url, options)
    raise SinkError(f"alert sink {redact_url(url)!r}: unknown scheme {scheme!r} (expected {_EXPECTED})")


def open_sinks(urls: Iterable[str], options: SinkOptions) -> list[Sink]:
    """Open every sink in *urls*, or none: on an error those opened are closed.

    The same URL twice is an error (two webhook senders would fight over
    one spool, two file sinks would double every line).
    """
    sinks: list[Sink] = []
    seen: set[str] = set()
    try:
        for url in urls:
            if url in seen:
                raise SinkError(f"alert sink {redact_url(url)!r}: given twice")
            seen.add(url)
            sinks.append(open_sink(url, options))
    except BaseException:
        for sink in reversed(sinks):
            sink.close()
        raise
    return sinks
