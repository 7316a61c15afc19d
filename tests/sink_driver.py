"""Test helper: open a sink by URL, send N generated alerts, flush, close.

Run as a subprocess by the webhook tests, so that the sender can be
killed with SIGKILL mid-delivery like a real sensor.  Prints ``sent N``
once every ``send`` has returned (for the webhook: every alert is in the
fsync'd spool) and ``flushed True|False`` after the flush; exits 0 only
when the flush delivered everything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def make_alert(alert_id: str, n: int) -> dict:
    return {
        "id": alert_id, "ts": "2026-11-23T10:00:00.123456Z", "rule": "syn-flood", "model": None,
        "category": "dos", "severity": "high", "summary": f"SYN flood #{n}", "src": "10.0.0.5",
        "dst": "10.0.0.9", "src_port": None, "dst_port": 80, "proto": "tcp", "count": n,
        "uids": [f"C{n:08d}"], "observed": {"serror_rate": 1.0}, "thresholds": {"serror_rate": 0.8},
        "scores": {}, "sensor": "driver", "schema": "kdd99-41/1", "update": 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--spool-dir", required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--prefix", default="a-")
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--flush-timeout", type=float, default=20.0)
    parser.add_argument("--secret-file")
    args = parser.parse_args()

    from sensor.sinks import SinkOptions, open_sink

    options = SinkOptions(
        hostname="driver", spool_dir=Path(args.spool_dir), timeout_s=2.0,
        backoff_initial_s=0.02, backoff_max_s=0.2,
        secret_file=Path(args.secret_file) if args.secret_file else None,
    )
    sink = open_sink(args.url, options)
    alerts = [make_alert(f"{args.prefix}{i:06d}", i) for i in range(args.start, args.start + args.count)]
    for i in range(0, len(alerts), args.batch):
        sink.send(alerts[i:i + args.batch])
    print(f"sent {len(alerts)}", flush=True)
    ok = sink.flush(args.flush_timeout)
    print(f"flushed {ok}", flush=True)
    sink.close()
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
