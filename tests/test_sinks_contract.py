"""The contract every sink keeps, checked against real receivers.

Each sink kind gets the same three alerts full of hostile text (CR/LF,
ESC sequences, NUL, the RFC 5424 SD specials ``"]\\``, C1, LINE
SEPARATOR, a lone surrogate), is flushed and closed; whatever received
them (a file, a UDP/TCP/unix socket, an HTTP server) must hold each alert
exactly once, in order, escaped, with no raw control character.  A send
after close raises SinkClosedError for every kind.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import stat
import threading
import time

import pytest
from webhook_receiver import Receiver, dedupe

from sensor.sinks import SinkClosedError, SinkError, SinkOptions, escape_alert, escape_text, open_sink, open_sinks

HOSTILE = 'evil\r\nFAKE 10.0.0.1 login ok\x1b[2J\x1b]0;pwned\x07\x00 "]\\ \x85\u2028\ud800 \u202e'
SGR = re.compile(r"\x1b\[[0-9;]*m")  # the stdout sink's own colour codes, on a TTY only
RAW_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def hostile_alerts() -> list[dict]:
    return [
        {
            "id": f"a-{i}\r\nX-Injected: 1", "ts": f"2026-11-23T10:00:0{i}.123456Z", "rule": 'syn"]\\flood',
            "model": None, "category": "dos", "severity": ["low", "high", "critical"][i],
            "summary": f"#{i} {HOSTILE}", "src": "10.0.0.5", "dst": "10.0.0.9", "src_port": None,
            "dst_port": 80, "proto": "tcp", "count": 100 + i, "uids": ["C1\n", "C2"],
            "observed": {"user\x1b[31m": "root\r\n"}, "scores": {}, "sensor": "s", "update": 0,
        }
        for i in range(3)
    ]


def check_no_raw_controls(text: str) -> None:
    found = RAW_CONTROL.findall(text)
    assert not found, f"raw control characters reached the receiver: {found!r}"


def check_alerts(received: list[dict], sent: list[dict]) -> None:
    """Exactly the sent alerts, once each, in order, escaped."""
    assert [a["id"] for a in received] == [escape_text(a["id"]) for a in sent]
    for got, want in zip(received, sent, strict=True):
        assert got["summary"] == escape_text(want["summary"])
        assert got["rule"] == escape_text(want["rule"])
        assert got["observed"] == escape_alert(want["observed"])
        assert got["uids"] == ["C1\\n", "C2"]


# -- receivers -----------------------------------------------------------

class UdpReceiver:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.url = f"syslog://127.0.0.1:{self.sock.getsockname()[1]}"

    def messages(self, n: int) -> list[bytes]:
        return [self.sock.recv(65536) for _ in range(n)]

    def close(self) -> None:
        self.sock.close()


class UnixReceiver(UdpReceiver):
    def __init__(self, path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(5)
        self.url = f"syslog://{path}"  # path is absolute: syslog:///abs/path


class TcpReceiver:
    """Accepts connections and splits RFC 6587 octet-counted frames."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"syslog+tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.data = b""
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            while chunk := conn.recv(65536):
                with self.lock:
                    self.data += chunk

    def messages(self, n: int) -> list[bytes]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self.lock:
                data = self.data
            frames = []
            while data:
                length, sep, rest = data.partition(b" ")
                assert sep and length.isdigit(), f"bad octet-counting frame: {data[:40]!r}"
                if len(rest) < int(length):
                    break
                frames.append(rest[:int(length)])
                data = rest[int(length):]
            if len(frames) >= n:
                return frames
            time.sleep(0.01)
        raise AssertionError(f"TCP receiver got {len(frames)} of {n} frames")

    def close(self) -> None:
        self.server.close()


def syslog_json(message: bytes) -> dict:
    """The alert JSON of an RFC 5424 message (checked strictly in test_sinks_syslog)."""
    head, bom, body = message.partition(b"\xef\xbb\xbf")
    assert bom and head.startswith(b"<") and b"[sensor@32473 " in head
    check_no_raw_controls(message.decode("utf-8"))
    return json.loads(body)


# -- the contract, per kind ----------------------------------------------

KINDS = ["stdout-pipe", "stdout-tty", "file", "syslog-udp", "syslog-tcp", "syslog-unix", "webhook"]


@pytest.mark.parametrize("kind", KINDS)
def test_contract(kind, tmp_path):
    sent = hostile_alerts()
    stream = io.StringIO()
    options = SinkOptions(hostname="sensor-1", stdout=stream, stdout_is_tty=(kind == "stdout-tty"),
                          spool_dir=tmp_path / "spool", backoff_initial_s=0.02, backoff_max_s=0.2, timeout_s=2)
    receiver = None
    if kind.startswith("stdout"):
        url = "-"
    elif kind == "file":
        url = f"file:{tmp_path / 'alerts.jsonl'}"
    elif kind == "syslog-udp":
        receiver = UdpReceiver()
    elif kind == "syslog-tcp":
        receiver = TcpReceiver()
    elif kind == "syslog-unix":
        receiver = UnixReceiver(tmp_path / "log.sock")
    else:
        receiver = Receiver(tmp_path / "received.jsonl").start()
    if receiver is not None:
        url = receiver.url
    try:
        sink = open_sink(url, options)
        sink.send(sent[:1])
        sink.send(sent[1:])
        assert sink.flush(5) is True
        sink.close()
        sink.close()  # idempotent

        if kind == "stdout-pipe":
            lines = stream.getvalue().splitlines()
            check_no_raw_controls(stream.getvalue().replace("\n", ""))
            check_alerts([json.loads(line) for line in lines], sent)
        elif kind == "stdout-tty":
            text = stream.getvalue()
            assert SGR.search(text), "a TTY gets colour"
            lines = SGR.sub("", text).splitlines()
            check_no_raw_controls("".join(lines))
            assert len(lines) == 3
            for i, line in enumerate(lines):
                assert line.startswith(sent[i]["ts"] + " " + sent[i]["severity"].upper())
                assert escape_text(sent[i]["summary"]) in line
                assert "10.0.0.5 -> 10.0.0.9:80 tcp" in line
        elif kind == "file":
            path = tmp_path / "alerts.jsonl"
            raw = path.read_text(encoding="utf-8")
            check_no_raw_controls(raw.replace("\n", ""))
            check_alerts([json.loads(line) for line in raw.splitlines()], sent)
            assert stat.S_IMODE(path.stat().st_mode) & 0o137 == 0, "alerts file is not world-readable"
        elif kind == "webhook":
            records = receiver.records()
            for r in records:
                check_no_raw_controls(r["body"])
                assert "\n" not in r["headers"]["x-sensor-alert-id"]
            check_alerts(dedupe(receiver.accepted()), sent)
            assert len(records) == 3
        else:
            check_alerts([syslog_json(m) for m in receiver.messages(3)], sent)

        with pytest.raises(SinkClosedError):
            sink.send(sent[:1])
    finally:
        if receiver is not None:
            (receiver.kill if isinstance(receiver, Receiver) else receiver.close)()


def test_file_sink_appends_and_needs_existing_directory(tmp_path):
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"id":"old"}\n')
    options = SinkOptions(spool_dir=tmp_path)
    for url in (f"file:{path}", f"file://{path}"):
        sink = open_sink(url, options)
        sink.send(hostile_alerts()[:1])
        sink.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["old", "a-0\\r\\nX-Injected: 1",
                                                                                  "a-0\\r\\nX-Injected: 1"]
    new = tmp_path / "new.jsonl"
    old_umask = os.umask(0o022)
    try:
        open_sink(f"file:{new}", options).close()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o640
    with pytest.raises(SinkError, match="does not exist") as err:
        open_sink(f"file:{tmp_path / 'missing' / 'a.jsonl'}", options)
    assert str(tmp_path / "missing") in str(err.value)
    with pytest.raises(SinkError, match="not a regular file"):
        open_sink(f"file:{tmp_path}", options)


@pytest.mark.parametrize("url, problem", [
    ("ftp://host/x", "unknown scheme 'ftp'"),
    ("syslog://127.0.0.1", "missing port"),
    ("syslog+tcp://[::1]", "missing port"),
    ("syslog://127.0.0.1:70000", "bad syslog URL"),
    ("syslog+tcp://:514", "missing host"),
    ("syslog://relative/path", "missing port"),
    ("syslog:///no/such/dir/log", "bad path"),
    ("syslog:relative", "bad path"),
    ("http://", "missing host"),
    ("https://user:hunter2@/x", "missing host"),
    ("file:", "no file path"),
    ("file://otherhost/x", "remote host"),
    ("", "empty URL"),
    ("alerts.jsonl", "not a URL"),
])
def test_bad_urls_are_named_and_explained(url, problem, tmp_path):
    with pytest.raises(SinkError) as err:
        open_sink(url, SinkOptions(spool_dir=tmp_path))
    message = str(err.value)
    assert problem in message
    assert "hunter2" not in message, "credentials in a URL never reach an error message"
    if url and "hunter2" not in url:
        assert repr(url) in message or url in message


def test_ipv6_literal_and_duplicates(tmp_path):
    receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    receiver.bind(("::1", 0))
    receiver.settimeout(5)
    url = f"syslog://[::1]:{receiver.getsockname()[1]}"
    sinks = open_sinks([url, "-"], SinkOptions(stdout=io.StringIO(), stdout_is_tty=False))
    try:
        sinks[0].send(hostile_alerts()[:1])
        assert syslog_json(receiver.recv(65536))["count"] == 100
    finally:
        for sink in sinks:
            sink.close()
        receiver.close()
    with pytest.raises(SinkError, match="given twice"):
        open_sinks(["-", "-"], SinkOptions(stdout=io.StringIO()))


def test_escape_text():
    assert escape_text("plain é ✓") == "plain é ✓"
    assert escape_text("a\r\n\t\\") == "a\\r\\n\\t\\\\"
    assert escape_text("\x00\x1b\x7f\x85\x9f") == "\\x00\\x1b\\x7f\\u0085\\u009f"
    assert escape_text("\ud800x\u2028\u202e") == "\\ud800x\\u2028\\u202e"
    nested = escape_alert({"k\n": ["v\x1b", ("t\r",), {"x": 1}], "n": None})
    assert nested == {"k\\n": ["v\\x1b", ["t\\r"], {"x": 1}], "n": None}
    # escaping is reversible: decoding the escapes gives back the original
    for s in (HOSTILE, "\\x1b literal", "\\\\"):
        assert escape_text(s).encode("ascii", "backslashreplace").decode("unicode_escape") == s
