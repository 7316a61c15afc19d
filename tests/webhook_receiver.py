"""A real webhook receiver for the sink tests, and the handle tests use to run it.

Run as a script it serves HTTP (or HTTPS) on 127.0.0.1, checks each
request's ``X-Sensor-Signature`` against the shared secret, and appends
one JSON line per request (headers, body, whether the signature
verified, the status it answered, when) to ``--out``.  It can answer 500
to the first K requests (``--fail-first``, with ``--retry-after``), a
chosen status to the first request for a chosen alert id (``--status
ID=CODE``), and take ``--delay`` seconds per request.  A request whose
signature does not verify gets 401.  It prints ``listening PORT`` when
ready.

It is a separate process so that tests can kill it like a real server.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(args: argparse.Namespace) -> None:
    secret = Path(args.secret_file).read_bytes().rstrip(b"\r\n") if args.secret_file else None
    statuses = dict(item.rsplit("=", 1) for item in args.status)
    lock = threading.Lock()
    state = {"requests": 0}
    answered: set[str] = set()
    out = open(args.out, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if args.delay:
                time.sleep(args.delay)
            sig = self.headers.get("X-Sensor-Signature")
            sig_ok = None
            if secret is not None:
                expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
                sig_ok = sig is not None and hmac.compare_digest(sig, expected)
            with lock:
                state["requests"] += 1
                n = state["requests"]
                status = 200
                if n <= args.fail_first:
                    status = 500
                elif self.headers.get("X-Sensor-Alert-Id") in statuses.keys() - answered:
                    answered.add(self.headers["X-Sensor-Alert-Id"])
                    status = int(statuses[self.headers["X-Sensor-Alert-Id"]])
                elif secret is not None and not sig_ok:
                    status = 401
                out.write(json.dumps({
                    "n": n, "t": time.time(), "path": self.path, "status": status, "sig_ok": sig_ok,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8"),
                }) + "\n")
                out.flush()
            reply = b'{"ok":true}' if status < 300 else b'{"error":"refused"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            if status >= 500 and args.retry_after is not None:
                self.send_header("Retry-After", str(args.retry_after))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *a: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


class Receiver:
    """Runs this file as a subprocess; start, kill, and read what it received."""

    def __init__(self, out: Path, *, port: int | None = None, secret_file: Path | None = None,
                 fail_first: int = 0, statuses: dict[str, int] | None = None,
                 cert: Path | None = None, key: Path | None = None, retry_after: int | None = None,
                 delay: float = 0.0) -> None:
        self.out = out
        self.port = port or free_port()
        self.args = ["--port", str(self.port), "--out", str(out), "--fail-first", str(fail_first)]
        if secret_file:
            self.args += ["--secret-file", str(secret_file)]
        for alert_id, code in (statuses or {}).items():
            self.args += ["--status", f"{alert_id}={code}"]
        if cert:
            self.args += ["--cert", str(cert), "--key", str(key)]
        if retry_after is not None:
            self.args += ["--retry-after", str(retry_after)]
        if delay:
            self.args += ["--delay", str(delay)]
        self.proc: subprocess.Popen[str] | None = None
        self.url = f"{'https' if cert else 'http'}://127.0.0.1:{self.port}/alerts"

    def start(self) -> Receiver:
        self.proc = subprocess.Popen([sys.executable, __file__, *self.args], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening"):
            self.proc.kill()
            raise RuntimeError(f"webhook receiver did not start: {line!r}")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def records(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]

    def accepted(self) -> list[dict]:
        """Bodies answered 2xx, parsed, in arrival order."""
        return [json.loads(r["body"]) for r in self.records() if 200 <= r["status"] < 300]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.accepted()
            if len(got) >= count:
                return got
            time.sleep(0.02)
        return self.accepted()


def dedupe(alerts: list[dict]) -> list[dict]:
    """What a receiver keeps: the first copy of each (id, update)."""
    seen, kept = set(), []
    for alert in alerts:
        key = (alert["id"], alert.get("update", 0))
        if key not in seen:
            seen.add(key)
            kept.append(alert)
    return kept


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--secret-file")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--status", action="append", default=[])
    parser.add_argument("--retry-after", type=int)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    _serve(parser.parse_args())
