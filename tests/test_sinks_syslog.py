"""The syslog sink against a real rsyslog.

Each test runs ``rsyslogd -n`` with a configuration written to tmp_path:
imudp, imtcp (both on free loopback ports) and imuxsock (a socket in
tmp_path) write, per input, the raw message (``%rawmsg%``) and rsyslog's
own parse of it (JSON: PRI, facility, severity, hostname, app-name,
procid, msgid, structured data, msg) to files.  The raw lines are parsed
by the strict RFC 5424 parser below; rsyslog's parse must agree (rsyslog
falls back to RFC 3164 on a malformed message, which would show as a
wrong app-name or an empty msgid).

rsyslog comes from ``scripts/bootstrap --dev``; without it these tests fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from webhook_receiver import free_port

from sensor.sinks import SinkOptions, open_sink
from sensor.sinks.base import prepare_alert

PEN_SD_ID = "sensor@32473"
SEVERITY = {"low": 5, "medium": 4, "high": 3, "critical": 2}
LOCAL0 = 16


def rsyslogd() -> str:
    path = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)
    if path is None:
        pytest.fail("rsyslogd is not installed: run scripts/bootstrap --dev (it installs rsyslog)")
    return path


CONFIG = """
global(workDirectory="{dir}/work" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
module(load="imuxsock" SysSock.Use="off")
template(name="raw" type="string" string="%rawmsg%\\n")
template(name="fields" type="list" option.jsonf="on") {{
  property(outname="pri" name="pri" format="jsonf")
  property(outname="facility" name="syslogfacility-text" format="jsonf")
  property(outname="severity" name="syslogseverity" format="jsonf")
  property(outname="version" name="protocol-version" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}}
ruleset(name="udp") {{
  action(type="omfile" file="{dir}/udp.raw" template="raw")
  action(type="omfile" file="{dir}/udp.fields" template="fields")
}}
ruleset(name="tcp") {{
  action(type="omfile" file="{dir}/tcp.raw" template="raw")
  action(type="omfile" file="{dir}/tcp.fields" template="fields")
}}
ruleset(name="unix") {{
  action(type="omfile" file="{dir}/unix.raw" template="raw")
}}
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tcp")
input(type="imuxsock" socket="{dir}/log.sock" ruleset="unix" useSpecialParser="off" ratelimit.interval="0")
"""


class Rsyslog:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        (directory / "work").mkdir(exist_ok=True)
        self.udp, self.tcp = free_port(), free_port()
        self.conf = directory / "rsyslog.conf"
        self.conf.write_text(CONFIG.format(dir=directory, udp=self.udp, tcp=self.tcp))
        self.proc: subprocess.Popen | None = None

    def start(self) -> Rsyslog:
        pidfile = self.dir / "rsyslogd.pid"
        pidfile.unlink(missing_ok=True)
        self.proc = subprocess.Popen([rsyslogd(), "-n", "-f", str(self.conf), "-i", str(pidfile)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"rsyslogd exited: {self.proc.stdout.read().decode(errors='replace')}")
            try:
                # imtcp listens after imudp and imuxsock have bound: TCP up means all are
                socket.create_connection(("127.0.0.1", self.tcp), timeout=0.2).close()
                if (self.dir / "log.sock").exists():
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        pytest.fail("rsyslogd did not open its ports within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def lines(self, name: str, count: int, match: str = "", timeout: float = 10.0) -> list[str]:
        """The lines of output file *name* containing *match*, once there are *count*."""
        path = self.dir / name
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while time.monotonic() < deadline:
            if path.exists():
                lines = [line for line in path.read_text(encoding="utf-8").splitlines() if match in line]
                if len(lines) >= count:
                    return lines
            time.sleep(0.02)
        raise AssertionError(f"rsyslog wrote {len(lines)} of {count} lines to {name}")


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory):
    server = Rsyslog(tmp_path_factory.mktemp("rsyslog")).start()
    yield server
    server.stop()


# -- a strict RFC 5424 parser ---------------------------------------------

HEADER = re.compile(r"<(0|[1-9]\d{0,2})>(1) (\S+) (\S+) (\S+) (\S+) (\S+) ")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
SD_NAME = re.compile(r'[!#-<>-\\^-~]{1,32}')  # PRINTUSASCII except '=', SP, ']', '"'


def _sd_name(text: str, i: int) -> tuple[str, int]:
    m = SD_NAME.match(text, i)
    assert m and "=" not in m.group(), f"bad SD-NAME at {text[i:i + 20]!r}"
    return m.group(), m.end()


def parse_rfc5424(raw: str) -> dict:
    """Parse one message; any deviation from RFC 5424 fails the test."""
    m = HEADER.match(raw)
    assert m, f"not an RFC 5424 header: {raw[:80]!r}"
    pri, _, ts, host, app, procid, msgid = m.groups()
    assert int(pri) <= 191
    assert TIMESTAMP.fullmatch(ts), ts
    for value, limit in ((host, 255), (app, 48), (procid, 128), (msgid, 32)):
        assert 1 <= len(value) <= limit and all(33 <= ord(c) <= 126 for c in value), value
    i = m.end()
    elements: dict[str, dict[str, str]] = {}
    if raw.startswith("-", i):
        i += 1
    else:
        assert raw.startswith("[", i), "SD must be '-' or elements"
        while raw.startswith("[", i):
            sd_id, i = _sd_name(raw, i + 1)
            params: dict[str, str] = {}
            while raw.startswith(" ", i):
                name, i = _sd_name(raw, i + 1)
                assert raw.startswith('="', i), f"expected =\" at {raw[i:i + 10]!r}"
                i += 2
                value = []
                while raw[i] != '"':
                    assert raw[i] != "]", "unescaped ']' in PARAM-VALUE"
                    if raw[i] == "\\" and raw[i + 1] in '"\\]':
                        value.append(raw[i + 1])
                        i += 2
                    else:
                        value.append(raw[i])
                        i += 1
                params[name] = "".join(value)
                i += 1
            assert raw.startswith("]", i), f"SD element not closed at {raw[i:i + 10]!r}"
            i += 1
            elements[sd_id] = params
    msg = None
    if i < len(raw):
        assert raw[i] == " ", "SP before MSG"
        msg = raw[i + 1:]
    return {"pri": int(pri), "ts": ts, "host": host, "app": app, "procid": procid, "msgid": msgid,
            "sd": elements, "sd_raw": raw[m.end():i], "msg": msg}


def alert(i: int, severity: str, **extra) -> dict:
    base = {
        "id": f"a-{i}", "ts": "2026-11-23T10:00:00.123456Z", "rule": 'syn"]\\flood', "model": None,
        "category": "dos", "severity": severity, "summary": f"SYN flood\r\n#{i}\x1b[0m \u00e9\u2603",
        "src": "10.0.0.5", "dst": "2001:db8::9", "src_port": None, "dst_port": 80, "proto": "tcp",
        "count": 1000 + i, "uids": ["C1", "C2"], "observed": {"serror_rate": 1.0}, "scores": {},
        "sensor": "s1", "schema": "kdd99-41/1", "update": 0,
    }
    base.update(extra)
    return base


def check_message(raw: str, fields: dict | None, sent: dict, options: SinkOptions) -> None:
    msg = parse_rfc5424(raw)
    want = prepare_alert(sent)
    assert msg["pri"] == options.syslog_facility * 8 + SEVERITY[sent["severity"]]
    sent_at = datetime.strptime(msg["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - sent_at).total_seconds()) < 60
    assert (msg["host"], msg["app"], msg["procid"], msg["msgid"]) == \
        (options.hostname, options.app_name, str(os.getpid()), "alert")
    assert msg["sd"] == {PEN_SD_ID: {
        "id": want["id"], "rule": want["rule"], "category": want["category"], "severity": want["severity"],
        "src": want["src"], "dst": want["dst"], "count": str(want["count"]),
    }}
    assert msg["msg"].startswith("\ufeff"), "MSG is BOM + UTF-8"
    assert json.loads(msg["msg"][1:]) == want
    if fields is not None:  # rsyslog's own RFC 5424 parse agrees
        assert fields["version"] == "1"
        assert int(fields["pri"]) == msg["pri"]
        assert int(fields["severity"]) == SEVERITY[sent["severity"]]
        assert (fields["hostname"], fields["app"], fields["procid"], fields["msgid"]) == \
            (msg["host"], msg["app"], msg["procid"], msg["msgid"])
        assert fields["sd"] == msg["sd_raw"]
        assert json.loads(fields["msg"].lstrip("\ufeff")) == want


@pytest.mark.parametrize("transport, facility, facility_name", [("udp", LOCAL0, "local0"), ("tcp", 23, "local7")])
def test_messages_are_rfc5424_as_rsyslog_sees_them(rsyslog, transport, facility, facility_name):
    options = SinkOptions(hostname="sensor-7.example", app_name="sensortest", syslog_facility=facility)
    port = rsyslog.udp if transport == "udp" else rsyslog.tcp
    scheme = "syslog" if transport == "udp" else "syslog+tcp"
    sent = [alert(i, sev, id=f"{transport}-{i}") for i, sev in enumerate(["low", "medium", "high", "critical"])]
    sink = open_sink(f"{scheme}://127.0.0.1:{port}", options)
    sink.send(sent[:2])
    sink.send(sent[2:])
    assert sink.flush(5)
    sink.close()
    raws = rsyslog.lines(f"{transport}.raw", 4, match=f"{transport}-")
    fields = [json.loads(line) for line in rsyslog.lines(f"{transport}.fields", 4, match=f"{transport}-")]
    assert len(raws) == 4, "each alert exactly once"
    for raw, parsed, want in zip(raws, fields, sent, strict=True):
        assert parsed["facility"] == facility_name
        check_message(raw, parsed, want, options)


def test_local_unix_socket(rsyslog):
    options = SinkOptions(hostname="sensor-u", app_name="sensortest")
    sent = [alert(i, "high", id=f"unix-{i}") for i in range(3)]
    sink = open_sink(f"syslog://{rsyslog.dir / 'log.sock'}", options)
    assert sink.target.transport == "unix"
    sink.send(sent)
    assert sink.flush(5)
    sink.close()
    raws = rsyslog.lines("unix.raw", 3, match="unix-")
    for raw, want in zip(raws, sent, strict=True):
        check_message(raw, None, want, options)


def test_oversized_alert_is_trimmed_not_broken(rsyslog):
    options = SinkOptions(hostname="sensor-big", app_name="sensortest")
    uids = [f"C{i:020d}" for i in range(3000)]
    big = alert(0, "critical", id="big-0", uids=uids, summary="S" * 20000, rule="R" * 500,
                observed={f"k{i}": i for i in range(2000)})
    sink = open_sink(f"syslog://127.0.0.1:{rsyslog.udp}", options)
    sink.send([big, alert(1, "low", id="big-1")])
    assert sink.flush(5)
    sink.close()
    raws = rsyslog.lines("udp.raw", 2, match="big-")
    assert len(raws) == 2, "the big alert arrived as one datagram and the next one too"
    raw = raws[0]
    assert len(raw.encode("utf-8")) <= options.syslog_max_bytes
    msg = parse_rfc5424(raw)
    body = json.loads(msg["msg"][1:])
    assert body["truncated"] is True
    assert body["id"] == "big-0" and body["severity"] == "critical" and body["count"] == 1000
    assert 0 < len(body["uids"]) < len(uids) and body["uids"] == uids[:len(body["uids"])]
    assert body["summary"].startswith("SSSS") and len(body["summary"]) < 20000
    assert msg["sd"][PEN_SD_ID]["rule"] == "R" * 64, "SD values are capped at 64 bytes"
    assert "truncated" not in json.loads(parse_rfc5424(raws[1])["msg"][1:])


def test_tcp_survives_rsyslog_restart(tmp_path):
    server = Rsyslog(tmp_path).start()
    options = SinkOptions(hostname="sensor-r", app_name="sensortest", backoff_initial_s=0.02,
                          backoff_max_s=0.2, timeout_s=1)
    sink = open_sink(f"syslog+tcp://127.0.0.1:{server.tcp}", options)
    try:
        sink.send([alert(0, "low", id="r-0"), alert(1, "low", id="r-1")])
        assert sink.flush(5)
        server.lines("tcp.raw", 2)
        server.stop()
        sink.send([alert(2, "low", id="r-2"), alert(3, "low", id="r-3")])  # returns at once, server down
        assert not sink.flush(0.5), "nothing can be delivered while rsyslog is down"
        server.start()
        assert sink.flush(10)
        raws = server.lines("tcp.raw", 4)
        ids = [json.loads(parse_rfc5424(r)["msg"][1:])["id"] for r in raws]
        assert sorted(set(ids)) == ["r-0", "r-1", "r-2", "r-3"]
        assert [i for n, i in enumerate(ids) if i not in ids[:n]] == ["r-0", "r-1", "r-2", "r-3"], "in order"
        assert sink.counters["dropped"] == 0
    finally:
        sink.close()
        server.stop()


def test_udp_send_errors_are_counted_not_raised(tmp_path):
    port = free_port()  # nobody listens: ICMP port unreachable comes back as ECONNREFUSED
    sink = open_sink(f"syslog://127.0.0.1:{port}", SinkOptions(app_name="sensortest"))
    for i in range(5):
        sink.send([alert(i, "low")])
        time.sleep(0.02)
    assert sink.flush(5) is False
    sink.close()
    assert sink.counters["errors"] >= 1
    assert sink.counters["errors"] + sink.counters["sent"] == 5
