"""The detection stages as one record sink: scorer -> rules -> episodes -> alert sinks.

The pipeline hands every batch of finished records to :class:`Detector`
as to any other record sink; it scores the batch with the models the
rules read, evaluates each enabled rule (scope, condition, suppressions)
over the whole batch, groups the matches into episodes by the rule's
track key, and hands the alerts the episodes emit to the alert sinks.
Nothing flows back to the pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sensor.alerts.episodes import NS, Episode, Matches, Pacing, RuleEpisodes
from sensor.alerts.evidence import observed, thresholds
from sensor.alerts.scoring import RuleScorer, model_evidence, needed_models
from sensor.alerts.values import address_text, iso_time, symbol, uid_text
from sensor.features import SYMBOLIC
from sensor.models.modelset import ModelSet
from sensor.models.schema import SCHEMA_VERSION
from sensor.rules import Rule, RuleSet, batch_columns

#: the track key's columns in the connection rows
_TRACK_COLUMNS = {
    "by_src": ("orig_hi", "orig_lo"),
    "by_dst": ("resp_hi", "resp_lo"),
    "by_pair": ("orig_hi", "orig_lo", "resp_hi", "resp_lo"),
    "by_rule": (),
}
DEFAULT_PACING = ("limit", "by_pair", 1, 60.0)  # a rule without a threshold
EXAMPLES = 3  # opening records kept per rule for `sensor rules test`
FLUSH_SECONDS = 10.0  # how long the end of a run waits for sinks to deliver


@dataclass
class RuleStats:
    """What one rule did in a run."""

    matches: int = 0
    episodes: int = 0
    alerts: int = 0
    seconds: float = 0.0
    examples: list[dict] = field(default_factory=list)


class Detector:
    """Scores records, applies the rules and delivers alerts (a ``RecordSink``)."""

    def __init__(self, rules: RuleSet, models: ModelSet | None, sinks: Sequence, sensor: str,
                 idle_seconds: float = 60.0) -> None:
        self.rules = rules.enabled
        self.suppress = rules.suppress
        self.models = models
        self.sinks = list(sinks)
        self.sensor = sensor
        kinds = needed_models(rules.fields)
        if kinds and models is None:
            raise ValueError(f"the rules read {', '.join(sorted(kinds))} output, and no models are loaded")
        self.scorer = RuleScorer(models, kinds) if kinds else None
        self.stats = {r.id: RuleStats() for r in self.rules}
        self.alerts: dict[str, dict] = {}           # id -> latest emission, for the summary
        self._outbox: list[dict] = []
        self._openings: list[tuple[int, dict]] = []  # (row, scores to fill) of this batch's new episodes
        self._thresholds = {r.id: thresholds(r) for r in self.rules}
        self._episodes = {r.id: RuleEpisodes(r.id, _pacing(r), int(idle_seconds * NS), sensor, self._emitted)
                          for r in self.rules}
        self._by_id = {r.id: r for r in self.rules}
        self._batch = None

    # -- RecordSink ----------------------------------------------------------

    def write(self, conns: np.ndarray, features: np.ndarray) -> None:
        scores = self.scorer.columns(features) if self.scorer else None
        view = batch_columns(conns, features, scores)
        self._batch = (conns, features, view)
        ts = conns["ts_first"]
        hosts = None
        conditions: dict[str, np.ndarray] = {}  # rules that share a condition evaluate it once
        for rule in self.rules:
            start = time.perf_counter()
            mask = rule.matches(view, conditions)
            for entry in self.suppress:
                if entry.applies_to(rule.id) and mask.any():
                    mask = mask & ~entry.matches(view)
            rows = np.flatnonzero(mask)
            if len(rows):
                self.stats[rule.id].matches += len(rows)
                hosts = hosts or _hosts(conns)
                keys, bounds, ordered = _groups(conns, rows, _pacing_track(rule))
                self._episodes[rule.id].observe(Matches.of(keys, bounds, ordered, ts, conns["uid"], *hosts))
            self.stats[rule.id].seconds += time.perf_counter() - start
        self._score_openings(features)
        now = int(ts.max())
        for episodes in self._episodes.values():
            episodes.expire(now)
        self._batch = None
        self._deliver()

    def close(self) -> None:
        for episodes in self._episodes.values():
            episodes.finish()
        self._deliver()
        for sink in self.sinks:
            sink.flush(FLUSH_SECONDS)   # a dead endpoint must not hold the run: the spool keeps its alerts
            sink.close()

    # -- episodes -> alerts --------------------------------------------------

    def _emitted(self, episode: Episode, reason: str) -> None:
        rule = self._by_id[episode.rule]
        if reason == "open":
            episode.evidence = self._evidence(rule, episode.trigger)
            self.stats[rule.id].episodes += 1
            if len(self.stats[rule.id].examples) < EXAMPLES:
                self.stats[rule.id].examples.append(episode.evidence["record"])
        alert = self._alert(rule, episode)
        self.stats[rule.id].alerts += 1
        self.alerts[alert["id"]] = alert
        self._outbox.append(alert)

    def _evidence(self, rule: Rule, row: int) -> dict:
        conns, features, view = self._batch
        c = conns[row]
        proto = _symbol(features, "protocol_type", row)
        ported = proto in ("tcp", "udp")
        record = {
            "uid": uid_text(int(c["uid"])),
            "src": address_text(int(c["orig_hi"]), int(c["orig_lo"])),
            "dst": address_text(int(c["resp_hi"]), int(c["resp_lo"])),
            "src_port": int(c["orig_p"]) if ported else None,
            "dst_port": int(c["resp_p"]) if ported else None,
            "proto": proto,
            "service": _symbol(features, "service", row),
            "flag": _symbol(features, "flag", row),
        }
        names = [f for f in dict.fromkeys([*self._thresholds[rule.id], *rule.fields]) if f not in ("src", "dst")]
        evidence = {"record": record, "observed": observed(view, row, names), "scores": {}}
        if self.models is not None:
            self._openings.append((row, evidence["scores"]))
        return evidence

    def _score_openings(self, features: np.ndarray) -> None:
        """Fill in the model evidence of the batch's new episodes: one run
        per model for all of them (their alerts hold the same dicts)."""
        if not self._openings:
            return
        rows = np.array([row for row, _ in self._openings])
        for (_, scores), evidence in zip(self._openings, model_evidence(self.models, features[rows])):
            scores.update(evidence)
        self._openings = []

    def _alert(self, rule: Rule, episode: Episode) -> dict:
        record = episode.evidence["record"]
        model_kinds = sorted(needed_models(rule.condition.fields))
        return {
            "id": episode.id,
            "update": episode.update,
            "ts": iso_time(episode.last_ns),
            "first_seen": iso_time(episode.first_ns),
            "last_seen": iso_time(episode.last_ns),
            "rule": rule.id,
            "model": ",".join(model_kinds) or None,
            "category": rule.category,
            "severity": rule.severity,
            "summary": _summary(rule, episode),
            "src": record["src"],
            "dst": record["dst"],
            "src_port": record["src_port"],
            "dst_port": record["dst_port"],
            "proto": record["proto"],
            "service": record["service"],
            "track": _pacing_track(rule),
            "count": episode.count,
            "distinct": {"src": len(episode.src), "dst": len(episode.dst), "dst_port": len(episode.dst_port)},
            "uids": [uid_text(u) for u in episode.uids],
            "observed": episode.evidence["observed"],
            "thresholds": self._thresholds[rule.id],
            "scores": episode.evidence["scores"],
            "sensor": self.sensor,
            "schema": SCHEMA_VERSION,
        }

    def _deliver(self) -> None:
        if not self._outbox:
            return
        for sink in self.sinks:
            sink.send(self._outbox)
        self._outbox = []


def _pacing(rule: Rule) -> Pacing:
    if rule.threshold is None:
        kind, _, count, seconds = DEFAULT_PACING
        return Pacing(kind, count, int(seconds * NS))
    t = rule.threshold
    return Pacing(t.type, t.count, int(t.seconds * NS), t.distinct)


def _pacing_track(rule: Rule) -> str:
    return rule.threshold.track if rule.threshold else DEFAULT_PACING[1]


def _groups(conns: np.ndarray, rows: np.ndarray, track: str) -> tuple[list[tuple], list[int], np.ndarray]:
    """The matched rows grouped by track key: (keys, group bounds, rows in
    group order, record order within a group)."""
    names = _TRACK_COLUMNS[track]
    if not names:
        return [()], [0, len(rows)], rows
    keys = np.stack([conns[name][rows] for name in names], axis=1)
    packed = np.ascontiguousarray(keys).view(np.dtype((np.void, keys.itemsize * len(names)))).ravel()
    _, inverse = np.unique(packed, return_inverse=True)
    order = np.argsort(inverse.reshape(-1), kind="stable")
    starts = np.concatenate([[0], np.flatnonzero(np.diff(inverse.reshape(-1)[order])) + 1])
    group_keys = [tuple(k) for k in keys[order[starts]].tolist()]
    return group_keys, starts.tolist() + [len(rows)], rows[order]


def _hosts(conns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source and destination identities (one integer per address, for
    counting distinct hosts) and the destination ports."""
    mix = np.uint64(0x9E3779B97F4A7C15)
    return (conns["orig_lo"] ^ (conns["orig_hi"] * mix), conns["resp_lo"] ^ (conns["resp_hi"] * mix),
            conns["resp_p"])


def _symbol(features: np.ndarray, name: str, row: int) -> str:
    return symbol(SYMBOLIC[name], features[name][row])


def _summary(rule: Rule, episode: Episode) -> str:
    parts = [f"{episode.count} connection{'s' if episode.count != 1 else ''}"]
    if len(episode.src) > 1:
        parts.append(f"{len(episode.src)} sources")
    if len(episode.dst) > 1:
        parts.append(f"{len(episode.dst)} hosts")
    if len(episode.dst_port) > 1:
        parts.append(f"{len(episode.dst_port)} ports")
    return f"{rule.description} ({', '.join(parts)})"
