#!/usr/bin/env python3
"""The per-phase table of a lab run: connections, the alerts of the
sensor's replay of the capture, and, for a ``--live`` run, those of the
live sensor with the latency from the phase's first packet to the first
alert of the phase's category as it appeared on disk.

    python tests/lab/report.py OUT_DIR        (after tests/lab/run.py OUT_DIR [--live])

Replays OUT_DIR/capture.pcap with the default rules and shipped models
into OUT_DIR/records.jsonl and OUT_DIR/alerts.jsonl unless they exist.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sensor import labels as lab_labels


@dataclass
class PhaseRow:
    phase: str
    category: str
    connections: int
    replay: list[dict]                      # first emission of each episode, replayed capture
    live: list[dict] | None                 # the same, from the live sensor (None: not a --live run)
    seconds: float = 0.0                    # the phase's length
    first_live: dict | None = None          # the live sensor's first alert of the phase's category
    latency: float | None = None            # its arrival - the phase's first packet, seconds
    rules: list[str] = field(default_factory=list)

    def caught(self, alerts: list[dict]) -> bool:
        return any(a["category"] == self.category for a in alerts)

    def loud(self, alerts: list[dict]) -> bool:
        """An alert above low severity, the normal phases' limit."""
        return any(a["severity"] != "low" for a in alerts)


def replay(out: Path) -> None:
    if (out / "records.jsonl").exists() and (out / "alerts.jsonl").exists():
        return
    done = subprocess.run([sys.executable, "-m", "sensor", "replay", str(out / "capture.pcap"),
                           "-o", str(out / "records.jsonl"), "--alert-to", f"file:{out / 'alerts.jsonl'}", "-q"],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"sensor replay failed: {done.stderr}")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def phase_rows(out: Path) -> list[PhaseRow]:
    labels = lab_labels.read_labels(out / "labels.jsonl")
    records = _lines(out / "records.jsonl")
    tags = lab_labels.label_records(records, labels)
    connections = Counter(phase for _, phase in tags)
    first_packet: dict[str, float] = {}
    for record, (_, phase) in zip(records, tags):
        first_packet[phase] = min(first_packet.get(phase, record["ts"]), record["ts"])
    replayed = lab_labels.alerts_by_phase(_lines(out / "alerts.jsonl"), labels)
    live = lab_labels.alerts_by_phase(_lines(out / "live-alerts.jsonl"), labels) \
        if (out / "live-alerts.jsonl").exists() else None
    rows = []
    for entry in labels:
        row = PhaseRow(entry.phase, entry.category, connections[entry.phase], replayed[entry.phase],
                       live[entry.phase] if live else None, entry.end - entry.start)
        row.rules = sorted({f"{a['rule']} ({a['severity']})" for a in row.replay + (row.live or [])})
        right = sorted((a for a in row.live or [] if a["category"] == entry.category), key=lambda a: a["arrived"])
        if right and entry.phase in first_packet:
            row.first_live = right[0]
            row.latency = right[0]["arrived"] - first_packet[entry.phase]
        rows.append(row)
    return rows


def markdown(rows: list[PhaseRow]) -> str:
    out = ["| phase | category | connections | alerts (replay) | alerts (live) | first alert, live | rules |",
           "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        live = "-" if r.live is None else str(len(r.live))
        latency = "-" if r.latency is None else f"{r.latency:.1f} s"
        out.append(f"| {r.phase} | {r.category} | {r.connections:,} | {len(r.replay)} | {live} | {latency} | "
                   f"{', '.join(r.rules)} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    replay(args.out)
    sys.stdout.write(markdown(phase_rows(args.out)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
