"""Phase labels -> per-connection labels and per-phase alert tables.

The labels file is what the traffic lab (tests/lab) writes: one JSON line
per phase with its wall-clock window, its parties, its KDD label and
category.  ``sensor train --records`` joins it with the records of
``sensor replay`` to train on features computed by our own extractor.

A connection takes a phase's label when its first packet falls inside the
phase's window, ``[start, end + SLACK]``, and both its endpoints are among
the phase's parties (the attacker and its target; for spoofed attacks,
the addresses the packets really carry: smurf's reflectors and victim,
land's victim alone); every other connection is normal (lab notes,
"Labelling").  Phases are separated by a quiet gap longer than SLACK.  An alert belongs to the
phase whose window holds its first_seen and whose parties it names.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

SLACK = 2.0   # seconds after a phase's end that still count as the phase


@dataclass(frozen=True)
class PhaseLabel:
    phase: str
    label: str
    category: str
    start: float
    end: float
    parties: tuple[str, ...]       # addresses or networks; both ends of a connection must be among them

    def holds(self, ts: float, a: str, b: str) -> bool:
        return self.start <= ts <= self.end + SLACK and _among(a, self.parties) and _among(b, self.parties)


def _among(address: str, parties: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(p if "/" in p else f"{p}/32") for p in parties)


def read_labels(path: Path) -> list[PhaseLabel]:
    out = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        entry["parties"] = tuple(entry["parties"])
        out.append(PhaseLabel(**entry))
    return out


def phase_of(labels: list[PhaseLabel], ts: float, a: str, b: str) -> PhaseLabel | None:
    for entry in labels:
        if entry.holds(ts, a, b):
            return entry
    return None


def label_records(records: list[dict], labels: list[PhaseLabel]) -> list[tuple[str, str]]:
    """(KDD label, phase or 'background') for each record (JSONL record dicts)."""
    out = []
    for r in records:
        entry = phase_of(labels, r["ts"], r["id.orig_h"], r["id.resp_h"])
        if entry is not None and entry.label != "normal":
            out.append((entry.label, entry.phase))
        else:
            out.append(("normal", entry.phase if entry else "background"))
    return out


def alerts_by_phase(alerts: list[dict], labels: list[PhaseLabel]) -> dict[str, list[dict]]:
    """Each episode's first emission, filed under the phase it belongs to."""
    first: dict[str, dict] = {}
    for a in alerts:
        first.setdefault(a["id"], a)
    table: dict[str, list[dict]] = {entry.phase: [] for entry in labels}
    table["background"] = []
    for a in first.values():
        ts = datetime.fromisoformat(a["first_seen"].replace("Z", "+00:00")).timestamp()
        entry = phase_of(labels, ts, a["src"], a["dst"])
        table[entry.phase if entry else "background"].append(a)
    return table
