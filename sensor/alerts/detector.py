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
from sensor.alerts.scoring import RuleScorer, feature_value, model_evidence, needed_models
from sensor.alerts.values import address_text, iso_time, uid_text
from sensor.models.modelset import ModelSet
from sensor.models.schema import SCHEMA_VERSION
from sensor.rules import Rule, RuleSet, Threshold, batch_columns

#: the track key's columns in the connection rows
_TRACK_COLUMNS = {
    "by_src": ("orig_hi", "orig_lo"),
    "by_dst": ("resp_hi", "resp_lo"),
    "by_pair": ("orig_hi", "orig_lo", "resp_hi", "resp_lo"),
    "by_rule": (),
}
DEFAULT_THRESHOLD = Threshold("limit", "by_pair", 1, 60.0)  # a rule without one
EXAMPLES = 3  # opening records kept per rule for `sensor rules test`
FLUSH_SECONDS = 10.0  # how long the end of a run waits for sinks to deliver


@dataclass(frozen=True)
class _Plan:
    """What the detector works out once per rule."""

    rule: Rule
    threshold: Threshold          # the rule's, or DEFAULT_THRESHOLD
    thresholds: dict[str, str]    # field -> what the condition asks of it
    evidence: list[str]           # fields whose values an alert shows
    model: str | None             # model kinds the condition reads, for the alert

    @classmethod
    def of(cls, rule: Rule) -> "_Plan":
        asked = thresholds(rule)
        names = [f for f in dict.fromkeys([*asked, *rule.fields]) if f not in ("src", "dst")]
        return cls(rule, rule.threshold or DEFAULT_THRESHOLD, asked, names,
                   ",".join(sorted(needed_models(rule.condition.fields))) or None)


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
        self.sinks = list(sinks)
        self.sensor = sensor
        self.idle_ns = int(idle_seconds * NS)
        self.stats: dict[str, RuleStats] = {}
        self.alerts: dict[str, dict] = {}           # id -> latest emission, for the summary
        self._outbox: list[dict] = []
        self._openings: list[tuple[int, dict]] = []  # (row, scores to fill) of this batch's new episodes
        self._plans: dict[str, _Plan] = {}
        self._episodes: dict[str, RuleEpisodes] = {}
        self._batch = None
        self._use(rules, models)

    def reload(self, rules: RuleSet, models: ModelSet | None) -> list[str]:
        """Swap rules and models between batches (a daemon's SIGHUP).  A
        rule whose threshold is unchanged keeps its episodes, so an attack
        in progress stays one alert; the episodes of removed or re-paced
        rules close with their final emission.  Returns the changes."""
        old = dict(self._plans)
        self._use(rules, models)
        changes = [f"removed {rid}" for rid in old if rid not in self._plans]
        changes += [f"added {rid}" for rid in self._plans if rid not in old]
        changes += [f"changed {rid}" for rid, plan in self._plans.items()
                    if rid in old and _definition(old[rid].rule) != _definition(plan.rule)]
        self._deliver()
        return changes

    def _use(self, rules: RuleSet, models: ModelSet | None) -> None:
        kinds = needed_models(rules.fields)
        if kinds and models is None:
            raise ValueError(f"the rules read {', '.join(sorted(kinds))} output, and no models are loaded")
        scorer = RuleScorer(models, kinds) if kinds else None   # raises before anything is swapped
        plans = {r.id: _Plan.of(r) for r in rules.enabled}
        episodes = {}
        for rid, plan in plans.items():
            kept = self._episodes.get(rid)
            if kept is not None and self._plans[rid].threshold == plan.threshold:
                episodes[rid] = kept
            else:
                episodes[rid] = RuleEpisodes(rid, _pacing(plan.threshold), self.idle_ns, self.sensor, self._emitted)
        for rid, gone in self._episodes.items():
            if episodes.get(rid) is not gone:
                gone.finish()
        self.rules, self.suppress, self.models, self.scorer = rules.enabled, rules.suppress, models, scorer
        self._plans, self._episodes = plans, episodes
        self.stats = {rid: self.stats.get(rid, RuleStats()) for rid in plans}

    # -- RecordSink ----------------------------------------------------------

    def write(self, conns: np.ndarray, features: np.ndarray) -> None:
        scores = self.scorer.columns(features) if self.scorer else None
        view = batch_columns(conns, features, scores)
        self._batch = (conns, features, view)
        ts = conns["ts_first"]
        hosts = None
        conditions: dict[str, np.ndarray] = {}  # rules that share a condition evaluate it once
        suppressed: dict[int, np.ndarray] = {}  # and each suppression is matched once
        for rule in self.rules:
            start = time.perf_counter()
            mask = rule.matches(view, conditions)
            for i, entry in enumerate(self.suppress):
                if entry.applies_to(rule.id) and mask.any():
                    if i not in suppressed:
                        suppressed[i] = entry.matches(view)
                    mask = mask & ~suppressed[i]
            rows = np.flatnonzero(mask)
            if len(rows):
                self.stats[rule.id].matches += len(rows)
                hosts = hosts or _hosts(conns)
                keys, bounds, ordered = _groups(conns, rows, self._plans[rule.id].threshold.track)
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
        plan = self._plans[episode.rule]
        rule = plan.rule
        if reason == "open":
            episode.evidence = self._evidence(plan, episode.trigger)
            self.stats[rule.id].episodes += 1
            if len(self.stats[rule.id].examples) < EXAMPLES:
                self.stats[rule.id].examples.append(episode.evidence["record"])
        alert = self._alert(plan, episode)
        self.stats[rule.id].alerts += 1
        self.alerts[alert["id"]] = alert
        self._outbox.append(alert)

    def _evidence(self, plan: _Plan, row: int) -> dict:
        conns, features, view = self._batch
        c = conns[row]
        proto = feature_value(features[row], "protocol_type")
        ported = proto in ("tcp", "udp")
        record = {
            "uid": uid_text(int(c["uid"])),
            "src": address_text(int(c["orig_hi"]), int(c["orig_lo"])),
            "dst": address_text(int(c["resp_hi"]), int(c["resp_lo"])),
            "src_port": int(c["orig_p"]) if ported else None,
            "dst_port": int(c["resp_p"]) if ported else None,
            "proto": proto,
            "service": feature_value(features[row], "service"),
            "flag": feature_value(features[row], "flag"),
        }
        evidence = {"record": record, "observed": observed(view, row, plan.evidence), "scores": {}}
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

    def _alert(self, plan: _Plan, episode: Episode) -> dict:
        rule, record = plan.rule, episode.evidence["record"]
        return {
            "id": episode.id,
            "update": episode.update,
            "ts": iso_time(episode.last_ns),
            "first_seen": iso_time(episode.first_ns),
            "last_seen": iso_time(episode.last_ns),
            "rule": rule.id,
            "model": plan.model,
            "category": rule.category,
            "severity": rule.severity,
            "summary": _summary(rule, episode),
            "src": record["src"],
            "dst": record["dst"],
            "src_port": record["src_port"],
            "dst_port": record["dst_port"],
            "proto": record["proto"],
            "service": record["service"],
            "track": plan.threshold.track,
            "count": episode.count,
            "distinct": {"src": len(episode.src), "dst": len(episode.dst), "dst_port": len(episode.dst_port)},
            "uids": list(episode.uids),
            "observed": episode.evidence["observed"],
            "thresholds": plan.thresholds,
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


def _definition(rule: Rule) -> tuple:
    """What a rule says, whatever file and line it came from."""
    return (rule.description, rule.category, rule.severity, rule.condition.text, rule.scope, rule.threshold,
            rule.evidence)


def _pacing(t: Threshold) -> Pacing:
    return Pacing(t.type, t.count, int(t.seconds * NS), t.distinct)


def _groups(conns: np.ndarray, rows: np.ndarray, track: str) -> tuple[list[tuple], list[int], np.ndarray]:
    """The matched rows grouped by track key: (keys, group bounds, rows in
    group order, record order within a group)."""
    names = _TRACK_COLUMNS[track]
    if not names:
        return [()], [0, len(rows)], rows
    columns = [conns[name][rows] for name in names]
    order = np.lexsort(columns[::-1])   # by key (first column major), record order within a key (stable)
    ordered = [c[order] for c in columns]
    change = np.zeros(len(rows) - 1, dtype=bool)
    for c in ordered:
        change |= c[1:] != c[:-1]
    starts = np.concatenate([[0], np.flatnonzero(change) + 1])
    group_keys = list(zip(*(c[starts].tolist() for c in ordered)))
    return group_keys, starts.tolist() + [len(rows)], rows[order]


def _hosts(conns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source and destination identities (one integer per address, for
    counting distinct hosts) and the destination ports."""
    mix = np.uint64(0x9E3779B97F4A7C15)
    return (conns["orig_lo"] ^ (conns["orig_hi"] * mix), conns["resp_lo"] ^ (conns["resp_hi"] * mix),
            conns["resp_p"])


def _summary(rule: Rule, episode: Episode) -> str:
    parts = [f"{episode.count} connection{'s' if episode.count != 1 else ''}"]
    if len(episode.src) > 1:
        parts.append(f"{len(episode.src)} sources")
    if len(episode.dst) > 1:
        parts.append(f"{len(episode.dst)} hosts")
    if len(episode.dst_port) > 1:
        parts.append(f"{len(episode.dst_port)} ports")
    return f"{rule.description} ({', '.join(parts)})"
