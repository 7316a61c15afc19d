"""The webhook sink against a real HTTP(S) server, including crashes of both ends.

The server is tests/webhook_receiver.py in a subprocess (it verifies the
HMAC and records every request); the sender is the sink in this process
or tests/sink_driver.py in a subprocess when it must be SIGKILLed.
Backoff is shortened through SinkOptions so that outages cost tenths of
a second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sink_driver import make_alert
from webhook_receiver import Receiver, dedupe, free_port

from sensor import _logging
from sensor.sinks import SinkError, SinkOptions, open_sink
from sensor.sinks.base import encode_alert
from sensor.sinks.webhook import spool_path

TESTS = Path(__file__).resolve().parent
SECRET = "s3cr3t-Wh00k-7f1e9c"


@pytest.fixture
def logs(capsys):
    """The structlog output (JSON lines) of this test, sink threads included."""
    _logging.configure(level="debug", json=True)

    def read() -> list[dict]:
        return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]

    yield read
    _logging.configure()


def options(tmp_path: Path, **kw) -> SinkOptions:
    base = dict(hostname="t", spool_dir=tmp_path / "spool", timeout_s=2.0, backoff_initial_s=0.02,
                backoff_max_s=0.2)
    base.update(kw)
    return SinkOptions(**base)


def alerts(n: int, start: int = 0, prefix: str = "a-") -> list[dict]:
    return [make_alert(f"{prefix}{i:06d}", i) for i in range(start, start + n)]


def ids(items: list[dict]) -> list[str]:
    return [a["id"] for a in items]


def test_signed_bodies_and_the_secret_stays_secret(tmp_path, logs, monkeypatch):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    server = Receiver(tmp_path / "got.jsonl", secret_file=secret_file).start()
    try:
        opts = options(tmp_path, secret_file=secret_file)
        sink = open_sink(server.url, opts)
        sent = alerts(3)
        sink.send(sent)
        assert sink.flush(10)
        sink.close()
        records = server.records()
        assert [r["sig_ok"] for r in records] == [True, True, True]
        for record, alert in zip(records, sent, strict=True):
            assert record["body"] == encode_alert(alert), "the body is the compact JSON that was signed"
            assert record["headers"]["content-type"] == "application/json"
            assert record["headers"]["x-sensor-alert-id"] == alert["id"]
            assert record["headers"]["x-sensor-alert-update"] == "0"
            assert record["headers"]["x-sensor-signature"].startswith("sha256=")

        # a wrong secret (from the environment) fails the receiver's check: 401, a permanent refusal
        monkeypatch.setenv("TEST_WEBHOOK_SECRET", "wrong-" + SECRET + "\n")
        wrong = open_sink(server.url + "?second", options(tmp_path, secret_env="TEST_WEBHOOK_SECRET"))
        wrong.send(alerts(1, start=10))
        assert wrong.flush(10) is False
        wrong.close()
        assert server.records()[-1]["sig_ok"] is False and server.records()[-1]["status"] == 401

        monkeypatch.delenv("TEST_WEBHOOK_SECRET")
        with pytest.raises(SinkError, match="TEST_WEBHOOK_SECRET") as err:
            open_sink(server.url, options(tmp_path, secret_env="TEST_WEBHOOK_SECRET"))
        shown = [repr(sink), repr(wrong), repr(opts), str(err.value)]
    finally:
        server.kill()
    events = logs()
    text = json.dumps(events) + "".join(shown)
    assert any(e["event"] == "webhook alert delivered" for e in events), "the log capture works"
    assert any(e["event"].startswith("webhook receiver refused") and e["status"] == 401 for e in events)
    assert SECRET not in text
    assert "s3cr3t" not in text


def test_outages_before_and_during_delivery(tmp_path, logs):
    port = free_port()
    out = tmp_path / "got.jsonl"
    sink = open_sink(f"http://127.0.0.1:{port}/alerts", options(tmp_path))
    try:
        sink.send(alerts(3))  # nobody listening yet
        time.sleep(0.3)
        assert sink.flush(0.1) is False
        server = Receiver(out, port=port, fail_first=1, retry_after=1).start()  # then one 500 + Retry-After
        assert sink.flush(10)
        records = server.records()
        assert [r["status"] for r in records[:2]] == [500, 200]
        assert records[1]["t"] - records[0]["t"] >= 0.9, "Retry-After: 1 was honoured"
        server.kill()
        sink.send(alerts(3, start=3))  # server gone again
        time.sleep(0.2)
        assert sink.flush(0.1) is False
        server = Receiver(out, port=port).start()
        assert sink.flush(10)
        server.kill()
    finally:
        sink.close()
    assert ids(dedupe(server.accepted())) == ids(alerts(6))
    events = [e["event"] for e in logs()]
    assert "webhook delivery failed, will retry" in events
    assert "webhook delivery resumed" in events


def run_driver(url: str, spool: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(TESTS / "sink_driver.py"), url, "--spool-dir", str(spool), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sender_killed_with_sigkill_loses_nothing(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/alerts"
    spool = tmp_path / "spool"
    out = tmp_path / "got.jsonl"

    # 1. server down: the sender spools 20 alerts, retries, and is killed
    driver = run_driver(url, spool, "--count", "20", "--batch", "3", "--flush-timeout", "60")
    assert driver.stdout.readline().strip() == "sent 20"
    time.sleep(0.3)
    driver.send_signal(signal.SIGKILL)
    driver.wait(5)

    # 2. server up but slow: killed again in the middle of delivering 30 more
    server = Receiver(out, port=port, delay=0.03).start()
    driver = run_driver(url, spool, "--count", "30", "--start", "20", "--flush-timeout", "60")
    assert driver.stdout.readline().strip() == "sent 30"
    server.wait_for(25)
    driver.send_signal(signal.SIGKILL)
    driver.wait(5)
    assert 25 <= len(server.accepted()) < 50, "killed mid-delivery"
    server.kill()

    # 3. restart both: everything spooled arrives, in order, at least once
    server = Receiver(out, port=port).start()
    try:
        driver = run_driver(url, spool, "--count", "2", "--start", "50", "--flush-timeout", "20")
        stdout, stderr = driver.communicate(timeout=30)
        assert driver.returncode == 0, stderr
    finally:
        server.kill()
    received = server.accepted()
    assert ids(dedupe(received)) == ids(alerts(52))
    assert len(received) - 52 <= 2, "at most the in-flight alerts are sent twice"


def test_permanent_refusals_go_to_rejected_and_delivery_goes_on(tmp_path, logs):
    server = Receiver(tmp_path / "got.jsonl",
                      statuses={"a-000001": 400, "a-000003": 404, "a-000002": 429, "a-000004": 408}).start()
    try:
        opts = options(tmp_path)
        sink = open_sink(server.url, opts)
        sent = alerts(6)
        sent[1]["summary"] = "BODY-MARKER must not be logged"
        sink.send(sent)
        assert sink.flush(10) is False, "not everything was delivered"
        assert not sink.pending()
        assert sink.counters["rejected"] == 2 and sink.counters["delivered"] == 4
        sink.close()
        # retries give up after max_retries when configured
        failing = Receiver(tmp_path / "failing.jsonl", fail_first=100).start()
        try:
            capped = open_sink(failing.url, options(tmp_path, max_retries=2))
            capped.send(alerts(1, start=9))
            assert capped.flush(10) is False
            capped.close()
            assert len(failing.records()) == 3, "one try and two retries"
        finally:
            failing.kill()
    finally:
        server.kill()
    assert ids(server.accepted()) == ["a-000000", "a-000002", "a-000004", "a-000005"]
    assert [r["status"] for r in server.records() if r["headers"]["x-sensor-alert-id"] == "a-000002"] == [429, 200]
    rejected_file = spool_path(server.url, opts) / "rejected" / "rejected.jsonl"
    rejected = [json.loads(line) for line in rejected_file.read_text().splitlines()]
    assert [(r["alert"]["id"], r["status"]) for r in rejected] == [("a-000001", 400), ("a-000003", 404)]
    gave_up = [json.loads(line) for line in (spool_path(failing.url, opts) / "rejected" / "rejected.jsonl")
               .read_text().splitlines()]
    assert gave_up[0]["alert"]["id"] == "a-000009" and "gave up after 2 retries" in gave_up[0]["reason"]
    events = logs()
    refused = [e for e in events if e["event"].startswith("webhook receiver refused")]
    assert [e["status"] for e in refused[:2]] == [400, 404]
    assert "BODY-MARKER" not in json.dumps(events)


def test_spool_bound_drops_oldest_and_says_so(tmp_path, logs):
    port = free_port()
    opts = options(tmp_path, spool_max_bytes=4000)
    sink = open_sink(f"http://127.0.0.1:{port}/alerts", opts)
    sent = alerts(40)
    line_bytes = len(encode_alert(sent[0])) + 1
    for alert in sent:
        sink.send([alert])
    dropped = sink.counters["dropped"]
    assert dropped >= 40 - 4000 // line_bytes
    segments = list(spool_path(sink._url, opts).glob("seg-*.jsonl"))
    assert sum(p.stat().st_size for p in segments) <= 4000 + 4096, "disk use stays bounded"
    server = Receiver(tmp_path / "got.jsonl", port=port).start()
    try:
        assert sink.flush(10) is False, "some alerts were dropped"
        assert not sink.pending()
    finally:
        sink.close()
        server.kill()
    got = ids(server.accepted())
    assert got == ids(sent)[dropped:], "the newest survive, in order"
    full = [e for e in logs() if e["event"].startswith("webhook spool full")]
    assert full and full[0]["oldest_dropped"] == "a-000000"
    assert sum(e["dropped"] for e in full) == dropped


def test_restart_resumes_at_the_cursor_and_one_spool_one_sender(tmp_path):
    server = Receiver(tmp_path / "got.jsonl").start()
    try:
        first = open_sink(server.url, options(tmp_path))
        with pytest.raises(SinkError, match="in use"):
            open_sink(server.url, options(tmp_path))
        first.send(alerts(3))
        assert first.flush(10)
        first.close()
        second = open_sink(server.url, options(tmp_path))
        second.send(alerts(1, start=3))
        assert second.flush(10)
        second.close()
    finally:
        server.kill()
    assert ids(server.accepted()) == ids(alerts(4)), "nothing delivered before the restart is sent again"


def test_torn_spool_tail_is_cut(tmp_path, logs):
    port = free_port()
    opts = options(tmp_path)
    url = f"http://127.0.0.1:{port}/alerts"
    sink = open_sink(url, opts)
    sink.send(alerts(2))
    sink.close()
    segment = sorted(spool_path(url, opts).glob("seg-*.jsonl"))[-1]
    with open(segment, "ab") as f:
        f.write(b'{"id":"torn-half-writ')  # a power cut in the middle of a write
    server = Receiver(tmp_path / "got.jsonl", port=port).start()
    try:
        sink = open_sink(url, opts)
        sink.send(alerts(1, start=2))
        assert sink.flush(10)
        sink.close()
    finally:
        server.kill()
    assert ids(server.accepted()) == ids(alerts(3))
    assert any(e["event"] == "webhook spool: cut a torn last line" for e in logs())


def make_cert(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def test_https_verifies_against_ca_file(tmp_path, logs):
    cert, key = make_cert(tmp_path)
    server = Receiver(tmp_path / "got.jsonl", cert=cert, key=key).start()
    try:
        untrusting = open_sink(server.url, options(tmp_path))
        untrusting.send(alerts(1))
        assert untrusting.flush(1.0) is False
        assert untrusting.pending(), "the alert stays spooled"
        untrusting.close()
        assert server.records() == []
        failures = [e for e in logs() if e["event"] == "webhook delivery failed, will retry"]
        assert "TLS certificate verification failed" in failures[0]["reason"]
        assert "ca_file" in failures[0]["reason"]

        trusting = open_sink(server.url, options(tmp_path, ca_file=cert))
        assert trusting.flush(10), "the spooled alert goes out once the CA is trusted"
        trusting.close()
    finally:
        server.kill()
    assert ids(server.accepted()) == ["a-000000"]
    with pytest.raises(SinkError, match="ca_file"):
        open_sink(server.url, options(tmp_path, ca_file=tmp_path / "nope.pem"))


def test_spool_files_are_private(tmp_path):
    opts = options(tmp_path)
    url = f"http://127.0.0.1:{free_port()}/x?token=abc"
    sink = open_sink(url, opts)
    sink.send(alerts(1))
    sink.close()
    directory = spool_path(url, opts)
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    assert all(p.stat().st_mode & 0o077 == 0 for p in directory.iterdir() if p.is_file())
    assert "token" not in (directory / "url").read_text() and "abc" not in (directory / "url").read_text()
    assert os.path.basename(directory) == __import__("hashlib").sha256(url.encode()).hexdigest()[:16]
