"""Rule files: YAML read into typed, validated rules, with errors at file:line:column.

A file holds ``rules:`` and optionally ``suppress:``::

    rules:
      - id: ftp.bruteforce
        description: repeated failed FTP logins
        category: r2l                 # dos | probe | r2l | u2r | anomaly
        severity: high                # low | medium | high | critical
        condition: service == ftp and num_failed_logins >= 1
        enabled: true                 # default
        scope: {protocols: [tcp], dst: [10.0.0.0/8, '!10.9.0.0/16'], dst_ports: [21, "1024-2048"]}
        threshold: {type: threshold, track: by_src, count: 5, seconds: 60}
        # count distinct destination ports (or dst, src) instead of matches: a scan
        #   threshold: {type: both, track: by_src, count: 20, seconds: 60, distinct: dst_port}
        evidence: [orig_bytes, duration_s]
    suppress:
      - {rule: ftp.bruteforce, track: by_src, ip: 10.1.2.3, reason: the backup robot}

Validation is by hand over PyYAML's node tree rather than with msgspec:
every node carries its start mark, so each error points at the exact
key or value, and all the errors of all the files are collected (a rule
author fixes a file in one pass).  Errors inside a condition are mapped
from the condition's own column to the file by aligning the parsed
text with its source, character by character: exact for plain, quoted
and block (``|``, ``>``) scalars on one line or several, including
``''`` in single quotes and escapes in double quotes (an escape points
at its backslash).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensor._logging import get_logger
from sensor.features.basic import PROTOCOL_NAMES
from sensor.features.kdd import SYMBOLIC
from sensor.rules.condition import Condition, RuleError, RuleErrors, parse_condition
from sensor.rules.fields import address_parts, all_names, resolve
from sensor.rules.scope import AddressSet, PortSet, Scope, parse_address_item, parse_port_item

log = get_logger("sensor.rules")

RULE_CATEGORIES = ("dos", "probe", "r2l", "u2r", "anomaly")
SEVERITIES = ("low", "medium", "high", "critical")
THRESHOLD_TYPES = ("limit", "threshold", "both")
THRESHOLD_TRACKS = ("by_src", "by_dst", "by_rule", "by_pair")
SUPPRESS_TRACKS = ("by_src", "by_dst", "by_either")

TOP_KEYS = ("rules", "suppress")
RULE_KEYS = ("id", "description", "category", "severity", "condition", "enabled", "scope", "threshold", "evidence")
RULE_REQUIRED = ("id", "description", "category", "severity", "condition")
SCOPE_KEYS = ("protocols", "services", "src", "dst", "src_ports", "dst_ports")
THRESHOLD_KEYS = ("type", "track", "count", "seconds")
THRESHOLD_OPTIONAL = ("distinct",)
#: what a threshold may count instead of matches: distinct values of these
THRESHOLD_DISTINCT = ("src", "dst", "dst_port")
SUPPRESS_KEYS = ("rule", "track", "ip", "reason")
RULE_ID = re.compile(r"[a-z0-9_.-]+")


@dataclass(frozen=True)
class Threshold:
    """Suricata-style rate control, applied by the alert router."""

    type: str  # limit | threshold | both
    track: str  # by_src | by_dst | by_rule | by_pair
    count: int
    seconds: float
    distinct: str | None = None  # src | dst | dst_port: count distinct values, not matches


@dataclass(frozen=True, eq=False)
class Rule:
    id: str
    description: str
    category: str
    severity: str
    condition: Condition
    scope: Scope | None = None
    threshold: Threshold | None = None
    evidence: tuple[str, ...] = ()
    source: tuple[str, int] = ("", 0)
    enabled: bool = True

    @property
    def fields(self) -> frozenset[str]:
        """Canonical names of every column the rule reads or shows (condition, scope, evidence)."""
        evidence = {resolve(name).name for name in self.evidence}  # type: ignore[union-attr]
        scope = self.scope.fields if self.scope else frozenset()
        return self.condition.fields | scope | evidence

    def matches(self, batch: Mapping[str, Any], conditions: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """One bool per record: inside the scope and the condition holds.
        ``conditions`` caches masks by condition text across the rules of
        one batch (several rules often share a condition); never mutated."""
        if self.scope is None:
            return self._condition(batch, conditions)
        mask = self.scope.matches(batch)
        if not mask.any():
            return mask
        return mask & self._condition(batch, conditions)

    def _condition(self, batch: Mapping[str, Any], conditions: dict[str, np.ndarray] | None) -> np.ndarray:
        if conditions is None:
            return self.condition.evaluate(batch)
        mask = conditions.get(self.condition.text)
        if mask is None:
            mask = conditions[self.condition.text] = self.condition.evaluate(batch)
        return mask


@dataclass(frozen=True)
class Suppress:
    """Alerts of ``rule`` ('*': every rule) involving ``networks`` are dropped."""

    rule: str
    track: str  # by_src | by_dst | by_either
    networks: AddressSet
    reason: str = ""
    source: tuple[str, int] = ("", 0)

    def applies_to(self, rule_id: str) -> bool:
        return self.rule == "*" or self.rule == rule_id

    def matches(self, batch: Mapping[str, Any]) -> np.ndarray:
        """One bool per record: the record's tracked address is in the suppressed networks."""
        if self.track == "by_src":
            return self.networks.matches(*address_parts(batch["src"]))
        if self.track == "by_dst":
            return self.networks.matches(*address_parts(batch["dst"]))
        return self.networks.matches(*address_parts(batch["src"])) | self.networks.matches(
            *address_parts(batch["dst"])
        )


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    suppress: tuple[Suppress, ...] = ()

    @property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)

    @property
    def fields(self) -> frozenset[str]:
        """Every column the enabled rules and the suppressions read."""
        used: set[str] = set()
        for rule in self.enabled:
            used |= rule.fields
        for entry in self.suppress:
            used |= {"src", "dst"} if entry.track == "by_either" else {entry.track[3:]}
        return frozenset(used)

    @property
    def uses_models(self) -> bool:
        return any(name.startswith("model.") for name in self.fields)

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


def load_rules(paths: Sequence[str | Path]) -> RuleSet:
    """Read and validate rule files (a directory stands for its *.yaml/*.yml files).

    Raises RuleError, or RuleErrors listing every problem found, one per line.
    """
    ruleset, errors = check_rules(paths)
    if errors:
        raise errors[0] if len(errors) == 1 else RuleErrors(errors)
    log.debug("rules loaded", rules=len(ruleset.rules), suppress=len(ruleset.suppress))
    return ruleset


def check_rules(paths: Sequence[str | Path]) -> tuple[RuleSet, list[RuleError]]:
    """The valid rules and suppressions of the files, and every error found in them."""
    files, errors = expand_paths(paths)
    checked = [_FileChecker.run(path) for path in files]
    for c in checked:
        errors.extend(c.errors)
    rules: list[Rule] = []
    first: dict[str, RuleError] = {}
    for c in checked:
        for rule, node in c.rules:
            where = c.error_at(node, "")
            if rule.id in first:
                seen = first[rule.id]
                errors.append(
                    c.error_at(node, f"duplicate rule id '{rule.id}' (first defined at {seen.file}:{seen.line}:{seen.column})",
                               expected="a unique id")
                )
                continue
            first[rule.id] = where
            rules.append(rule)
    suppress: list[Suppress] = []
    for c in checked:
        for entry, node in c.suppress:
            if entry.rule != "*" and entry.rule not in first:
                hint = _hint(entry.rule, list(first))
                errors.append(c.error_at(node, f"suppress names unknown rule '{entry.rule}'{hint}", expected="a rule id or '*'"))
                continue
            suppress.append(entry)
    order = {path: i for i, path in enumerate(files)}
    errors.sort(key=lambda e: (order.get(e.file or "", -1), e.line or 0, e.column or 0))
    return RuleSet(tuple(rules), tuple(suppress)), errors


def expand_paths(paths: Sequence[str | Path]) -> tuple[list[str], list[RuleError]]:
    files, errors = [], []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            if not found:
                errors.append(RuleError("no rule files (*.yaml, *.yml) in this directory", file=str(path)))
            files.extend(str(p) for p in found)
        else:
            files.append(str(path))
    return files, errors


def _hint(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


_ESCAPE_WIDTH = {"x": 2, "u": 4, "U": 8}


def _source_units(raw: str, first: int, double_quoted: bool) -> list[tuple[int, str | None]]:
    """(position, character) of each source unit that can produce a value character.

    In a double-quoted scalar an escape sequence is one unit producing one
    unknown character (None), and an escaped line break produces nothing.
    """
    units: list[tuple[int, str | None]] = []
    k = first
    while k < len(raw):
        if double_quoted and raw[k] == "\\" and k + 1 < len(raw):
            nxt = raw[k + 1]
            if nxt in "\r\n":
                k += 2
                continue
            units.append((k, None))
            k += 2 + _ESCAPE_WIDTH.get(nxt, 0)
            continue
        units.append((k, raw[k]))
        k += 1
    return units


def _aligns(value_char: str, source: str | None) -> bool:
    """A value character comes from this source unit (folding turns line breaks into spaces)."""
    return source is None or source == value_char or (value_char.isspace() and source.isspace())


_STR, _INT, _FLOAT, _BOOL, _NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))


class _FileChecker:
    """Validates one file's node tree, collecting errors and the rules that passed."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.errors: list[RuleError] = []
        self.rules: list[tuple[Rule, Any]] = []  # (rule, its id node)
        self.suppress: list[tuple[Suppress, Any]] = []  # (entry, its rule node)
        from yaml.constructor import SafeConstructor

        self._constructor = SafeConstructor()

    @classmethod
    def run(cls, path: str) -> "_FileChecker":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            checker = cls(path, "")
            checker.errors.append(RuleError(f"cannot read rule file: {exc.strerror}", file=path))
            return checker
        except UnicodeDecodeError as exc:
            checker = cls(path, "")
            checker.errors.append(RuleError(f"not UTF-8 text (byte {exc.start})", file=path))
            return checker
        checker = cls(path, text)
        checker.check()
        return checker

    # -- errors

    def error_at(self, node: Any, message: str, expected: str | None = None) -> RuleError:
        mark = node.start_mark
        return RuleError(message, file=self.path, line=mark.line + 1, column=mark.column + 1, expected=expected)

    def error(self, node: Any, message: str, expected: str | None = None) -> None:
        self.errors.append(self.error_at(node, message, expected))

    # -- the file

    def check(self) -> None:
        import yaml

        try:
            root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            context = f" ({exc.context})" if exc.context else ""
            if "block" in str(exc.problem):
                context += "; check the indentation"
            self.errors.append(
                RuleError(
                    f"invalid YAML: {exc.problem}{context}",
                    file=self.path,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                    expected="valid YAML",
                )
            )
            return
        except yaml.YAMLError as exc:
            self.errors.append(RuleError(f"invalid YAML: {exc}", file=self.path, expected="valid YAML"))
            return
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _NULL):
            self.errors.append(
                RuleError("no rules: the file is empty", file=self.path, line=1, column=1, expected="'rules:' with a list of rules")
            )
            return
        top = self.mapping(root, "the file", TOP_KEYS, ())
        if top is None:
            return
        if "rules" not in top and "suppress" not in top:
            self.error(root, "no rules: the file has neither 'rules:' nor 'suppress:'", expected="'rules:' with a list of rules")
        if "rules" in top:
            key, value = top["rules"]
            items = self.sequence(value, "rules", allow_scalar=False)
            if items is not None and not items and "suppress" not in top:
                self.error(value if value.tag != _NULL else key, "no rules: 'rules:' is empty", expected="a list of rules")
            for index, node in enumerate(items or ()):
                rule = self.rule(node, index)
                if rule is not None:
                    self.rules.append(rule)
        if "suppress" in top:
            _, value = top["suppress"]
            for node in self.sequence(value, "suppress", allow_scalar=False) or ():
                entry = self.suppress_entry(node)
                if entry is not None:
                    self.suppress.append(entry)

    # -- node helpers

    def describe(self, node: Any) -> str:
        import yaml

        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        kinds = {_STR: "a string", _INT: "an integer", _FLOAT: "a number", _BOOL: "a boolean", _NULL: "nothing"}
        kind = kinds.get(node.tag, f"a value tagged {node.tag}")
        if node.tag == _NULL:
            return kind
        return f"{kind} '{node.value}'" if node.tag == _STR else f"{kind} ({node.value})"

    def mapping(self, node: Any, what: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict[str, tuple[Any, Any]] | None:
        import yaml

        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{what} must be a mapping of keys ({', '.join(allowed)}), found {self.describe(node)}",
                       expected="a mapping")
            return None
        out: dict[str, tuple[Any, Any]] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag not in (_STR, _INT, _BOOL, _FLOAT, _NULL):
                self.error(key, f"keys in {what} must be names, found {self.describe(key)}", expected="a key name")
                continue
            name = key.value
            if name in out:
                first = out[name][0].start_mark
                self.error(key, f"duplicate key '{name}' in {what} (first at line {first.line + 1})", expected="each key once")
                continue
            if name not in allowed:
                hint = _hint(name, allowed)
                if name == "<<":
                    hint = " (YAML merge keys are not supported)"
                self.error(key, f"unknown key '{name}' in {what}{hint}", expected="one of " + ", ".join(allowed))
                continue
            out[name] = (key, value)
        for name in required:
            if name not in out:
                self.error(node, f"{what} is missing '{name}'", expected=name)
        return out

    def sequence(self, node: Any, key: str, allow_scalar: bool = True) -> list[Any] | None:
        import yaml

        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if allow_scalar and isinstance(node, yaml.ScalarNode) and node.tag != _NULL:
            return [node]
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL and not allow_scalar:
            return []
        self.error(node, f"'{key}' must be a list, found {self.describe(node)}", expected="a list")
        return None

    def scalar(self, node: Any) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def text_value(self, node: Any, key: str) -> str | None:
        import yaml

        if isinstance(node, yaml.ScalarNode) and node.tag == _STR:
            return node.value
        if isinstance(node, yaml.ScalarNode) and node.tag.startswith("!"):
            self.error(node, f"'{key}': '!' starts a YAML tag here; quote the value, e.g. '{node.tag}{node.value}'",
                       expected="a quoted string")
            return None
        self.error(node, f"'{key}' must be a string, found {self.describe(node)}", expected="a string")
        return None

    def choice(self, node: Any, key: str, options: tuple[str, ...]) -> str | None:
        value = self.text_value(node, key)
        if value is None:
            return None
        if value not in options:
            close = difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            shown = ", ".join(options) if len(options) <= 10 else ", ".join(options[:8]) + ", ..."
            self.error(node, f"bad {key} '{value}' (expected one of {shown}{hint})",
                       expected="one of " + ", ".join(options))
            return None
        return value

    def names(self, node: Any, key: str, options: tuple[str, ...]) -> tuple[str, ...] | None:
        items = self.nonempty(node, key)
        if items is None:
            return None
        out = [self.choice(item, key[:-1] if key.endswith("s") else key, options) for item in items]
        return None if None in out else tuple(out)  # type: ignore[arg-type]

    def nonempty(self, node: Any, key: str) -> list[Any] | None:
        items = self.sequence(node, key)
        if items is not None and not items:
            self.error(node, f"'{key}' is an empty list, which matches nothing; leave '{key}' out to match everything",
                       expected="at least one entry")
            return None
        return items

    # -- rules

    def rule(self, node: Any, index: int) -> tuple[Rule, Any] | None:
        import yaml

        what = f"rule #{index + 1}"
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == "id" and isinstance(value, yaml.ScalarNode):
                    what = f"rule '{value.value}'"
        keys = self.mapping(node, what, RULE_KEYS, RULE_REQUIRED)
        if keys is None:
            return None
        before = len(self.errors)
        values: dict[str, Any] = {}
        if "id" in keys:
            rid = self.text_value(keys["id"][1], "id")
            if rid is not None and not RULE_ID.fullmatch(rid):
                self.error(keys["id"][1], f"bad rule id '{rid}': use lower-case letters, digits, '_', '.', '-'",
                           expected="[a-z0-9_.-]+")
            values["id"] = rid
        if "description" in keys:
            values["description"] = self.text_value(keys["description"][1], "description")
        if "category" in keys:
            values["category"] = self.choice(keys["category"][1], "category", RULE_CATEGORIES)
        if "severity" in keys:
            values["severity"] = self.choice(keys["severity"][1], "severity", SEVERITIES)
        if "condition" in keys:
            values["condition"] = self.condition(keys["condition"][1])
        if "enabled" in keys:
            node_ = keys["enabled"][1]
            if node_.tag != _BOOL:
                self.error(node_, f"'enabled' must be true or false, found {self.describe(node_)}", expected="true or false")
            else:
                values["enabled"] = self.scalar(node_)
        if "scope" in keys:
            values["scope"] = self.scope(keys["scope"][1])
        if "threshold" in keys:
            values["threshold"] = self.threshold(keys["threshold"][1])
        if "evidence" in keys:
            values["evidence"] = self.evidence(keys["evidence"][1])
        if len(self.errors) > before or any(k not in values for k in RULE_REQUIRED):
            return None
        mark = node.start_mark
        return Rule(source=(self.path, mark.line + 1), **values), keys["id"][1]

    def condition(self, node: Any) -> Condition | None:
        text = self.text_value(node, "condition")
        if text is None:
            return None
        try:
            return parse_condition(text)
        except RuleError as exc:
            line, column = self.locate(node, exc.offset or 0)
            self.errors.append(exc.at(self.path, line, column))
            return None

    def locate(self, node: Any, offset: int) -> tuple[int, int]:
        """The file line and column (1-based) of character ``offset`` of a scalar's value.

        The parsed value is aligned with its source text character by
        character (whitespace matches whitespace, so folded lines align),
        after skipping the opening quote or the block scalar's header line.
        """
        start, end = node.start_mark.index, node.end_mark.index
        raw = self.text[start:end]
        if node.style in ("'", '"'):
            first = 1
        elif node.style in ("|", ">"):
            first = raw.find("\n") + 1
        else:
            first = 0
        units = _source_units(raw, first, node.style == '"')
        j, target = 0, None
        for i, ch in enumerate(node.value):
            k = j
            while k < len(units) and not _aligns(ch, units[k][1]):
                k += 1
            if k >= len(units):
                break
            if i == offset:
                target = units[k][0]
                break
            j = k + 1
        if target is None:
            target = units[j][0] if j < len(units) else len(raw)
        index = start + target
        line = self.text.count("\n", 0, index)
        column = index - (self.text.rfind("\n", 0, index) + 1)
        return line + 1, column + 1

    def scope(self, node: Any) -> Scope | None:
        keys = self.mapping(node, "scope", SCOPE_KEYS, ())
        if keys is None:
            return None
        values: dict[str, Any] = {}
        if "protocols" in keys:
            values["protocols"] = self.names(keys["protocols"][1], "protocols", PROTOCOL_NAMES)
        if "services" in keys:
            values["services"] = self.names(keys["services"][1], "services", SYMBOLIC["service"])
        for key in ("src", "dst"):
            if key in keys:
                values[key] = self.address_set(keys[key][1], key)
        for key in ("src_ports", "dst_ports"):
            if key in keys:
                values[key] = self.ports(keys[key][1], key)
        if any(v is None for v in values.values()):
            return None
        return Scope(**values) if values else None

    def address_set(self, node: Any, key: str) -> AddressSet | None:
        items = self.nonempty(node, key)
        if items is None:
            return None
        include, exclude, ok = [], [], True
        for item in items:
            text = self.text_value(item, key)
            if text is None:
                ok = False
                continue
            try:
                net, negated = parse_address_item(text)
            except ValueError as exc:
                self.error(item, str(exc), expected="an IPv4 or IPv6 CIDR such as 10.0.0.0/8, '!' to exclude")
                ok = False
                continue
            (exclude if negated else include).append(net)
        return AddressSet(tuple(include), tuple(exclude)) if ok else None

    def ports(self, node: Any, key: str) -> PortSet | None:
        import yaml

        items = self.nonempty(node, key)
        if items is None:
            return None
        ranges, ok = [], True
        for item in items:
            value = self.scalar(item) if isinstance(item, yaml.ScalarNode) and not item.tag.startswith("!") else None
            try:
                if value is None:
                    raise ValueError(f"expected a port or 'lo-hi' range, found {self.describe(item)}")
                ranges.append(parse_port_item(value))
            except ValueError as exc:
                self.error(item, str(exc), expected="a port 0-65535 or a range such as 1024-65535")
                ok = False
        return PortSet(tuple(ranges)) if ok else None

    def threshold(self, node: Any) -> Threshold | None:
        keys = self.mapping(node, "threshold", THRESHOLD_KEYS + THRESHOLD_OPTIONAL, THRESHOLD_KEYS)
        if keys is None or any(k not in keys for k in THRESHOLD_KEYS):
            return None
        distinct = self.choice(keys["distinct"][1], "distinct", THRESHOLD_DISTINCT) if "distinct" in keys else None
        if "distinct" in keys and distinct is None:
            return None
        kind = self.choice(keys["type"][1], "threshold type", THRESHOLD_TYPES)
        track = self.choice(keys["track"][1], "track", THRESHOLD_TRACKS)
        count_node, seconds_node = keys["count"][1], keys["seconds"][1]
        count = self.scalar(count_node) if count_node.tag == _INT else None
        if count is None or count < 1:
            self.error(count_node, f"'count' must be an integer >= 1, found {self.describe(count_node)}",
                       expected="an integer >= 1")
        seconds = self.scalar(seconds_node) if seconds_node.tag in (_INT, _FLOAT) else None
        if seconds is None or not seconds > 0 or seconds == float("inf"):
            self.error(seconds_node, f"'seconds' must be a number > 0, found {self.describe(seconds_node)}",
                       expected="a number > 0")
            seconds = None
        if kind is None or track is None or count is None or count < 1 or seconds is None:
            return None
        return Threshold(kind, track, int(count), float(seconds), distinct)

    def evidence(self, node: Any) -> tuple[str, ...] | None:
        items = self.sequence(node, "evidence")
        if items is None:
            return None
        out = []
        for item in items:
            name = self.text_value(item, "evidence")
            if name is None:
                return None
            if resolve(name) is None:
                hint = _hint(name, all_names())
                self.error(item, f"unknown field '{name}' in evidence{hint}", expected="a field name")
                return None
            out.append(name)
        return tuple(out)

    # -- suppressions

    def suppress_entry(self, node: Any) -> tuple[Suppress, Any] | None:
        keys = self.mapping(node, "suppress entry", SUPPRESS_KEYS, ("rule", "ip"))
        if keys is None or "rule" not in keys or "ip" not in keys:
            return None
        rule_node = keys["rule"][1]
        rule = self.text_value(rule_node, "rule")
        track = self.choice(keys["track"][1], "track", SUPPRESS_TRACKS) if "track" in keys else "by_either"
        networks = self.address_set(keys["ip"][1], "ip")
        reason = self.text_value(keys["reason"][1], "reason") if "reason" in keys else ""
        if rule is None or track is None or networks is None or reason is None:
            return None
        mark = node.start_mark
        return Suppress(rule, track, networks, reason, (self.path, mark.line + 1)), rule_node
