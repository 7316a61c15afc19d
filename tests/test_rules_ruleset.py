"""Rule files: loading, validation errors at file:line:column, the check command,
and rules evaluated over records replayed from real captures."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import FIXTURES, KeepRecords, ROOT, SHARED
from craft import records

from sensor.config import SensorConfig
from sensor.replay import replay
from sensor.rules import RuleError, RuleErrors, batch_columns, load_rules, parse_condition
from sensor.rules.check import main

RULES = FIXTURES / "rules"
GOOD = RULES / "good.yaml"
# the FTP password guessing fixture, and a capture with IPv6, DNS and web traffic
CAPTURES = [FIXTURES / "ftp-bruteforce.pcap", SHARED / "pcaps" / "zeek__wikipedia.pcap"]


def position(path, marker: str, occurrence: int = 0) -> tuple[int, int]:
    """Line and column (1-based) of the n-th occurrence of ``marker`` in a file."""
    seen = 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        start = line.find(marker)
        while start >= 0:
            if seen == occurrence:
                return number, start + 1
            seen += 1
            start = line.find(marker, start + 1)
    raise AssertionError(f"{marker!r} not in {path}")


# ---- a valid file ---------------------------------------------------------------


def test_a_valid_file_loads_into_typed_rules():
    ruleset = load_rules([GOOD])
    ids = [r.id for r in ruleset.rules]
    assert ids == ["ftp.failed-login", "dos.syn-flood", "model.classifier-attack", "model.autoencoder", "web.outside"]
    ftp = ruleset.rule("ftp.failed-login")
    assert (ftp.category, ftp.severity, ftp.enabled) == ("r2l", "medium", True)
    assert ftp.source == (str(GOOD), position(GOOD, "id: ftp.failed-login")[0])
    assert ftp.condition.text == "service == ftp and num_failed_logins >= 1"
    assert ftp.scope.protocols == ("tcp",) and ftp.scope.dst_ports.ranges == ((21, 21), (1024, 1030))
    assert [n.text for n in ftp.scope.dst.include] == ["192.168.56.0/24"]
    assert (ftp.threshold.type, ftp.threshold.track, ftp.threshold.count, ftp.threshold.seconds) == (
        "threshold", "by_src", 5, 60.0)
    assert ftp.evidence == ("orig_bytes", "duration_s", "src_port")
    assert ftp.fields == {"service", "num_failed_logins", "proto", "dst", "resp_p", "orig_bytes", "duration_s", "orig_p"}
    assert ruleset.rule("dos.syn-flood").threshold.type == "limit"
    assert ruleset.rule("model.autoencoder").enabled is False
    assert "model.autoencoder" not in [r.id for r in ruleset.enabled]
    web = ruleset.rule("web.outside")
    assert [n.text for n in web.scope.src.exclude] == ["172.16.0.0/12"]
    assert web.scope.services == ("http", "http_443")


def test_rule_set_fields_and_suppressions():
    ruleset = load_rules([GOOD])
    # the disabled autoencoder rule does not make its fields needed
    assert "model.autoencoder.score" not in ruleset.fields
    assert {"model.classifier.label", "model.classifier.probability", "count", "serror_rate"} <= ruleset.fields
    assert ruleset.uses_models
    first, everything = ruleset.suppress
    assert (first.rule, first.track, first.reason) == ("dos.syn-flood", "by_src", "the load tester")
    assert first.applies_to("dos.syn-flood") and not first.applies_to("web.outside")
    assert everything.rule == "*" and everything.track == "by_either" and everything.applies_to("web.outside")
    assert [n.text for n in everything.networks.include] == ["192.0.2.0/24", "2001:db8::/32"]


def test_a_directory_stands_for_its_rule_files(tmp_path):
    shutil.copy(GOOD, tmp_path / "a.yaml")
    (tmp_path / "b.yml").write_text(
        "rules:\n  - {id: b.one, description: d, category: u2r, severity: low, condition: root_shell == 1}\n"
    )
    (tmp_path / "notes.txt").write_text("not a rule file")
    ruleset = load_rules([tmp_path])
    assert len(ruleset.rules) == 6 and ruleset.rules[-1].id == "b.one"


# ---- rules over real records --------------------------------------------------------




@pytest.fixture(scope="module")
def replayed():
    """Records of the captures, as arrays (the API) and as the JSON the CLI prints."""
    sink = KeepRecords()
    replay(CAPTURES, SensorConfig(), [sink])
    conns, features = np.concatenate(sink.conns), np.concatenate(sink.features)
    decoded = records(*CAPTURES)
    assert len(decoded) == len(conns) > 40
    # the same records in the same order
    assert [r["id.orig_p"] for r in decoded] == conns["orig_p"].tolist()
    assert [r["id.resp_p"] for r in decoded] == conns["resp_p"].tolist()
    return conns, features, decoded


def test_a_condition_selects_the_rows_a_loop_over_the_records_selects(replayed):
    conns, features, decoded = replayed
    mask = parse_condition("service == ftp and num_failed_logins >= 1").evaluate(batch_columns(conns, features))
    want = [r["kdd"]["service"] == "ftp" and r["kdd"]["num_failed_logins"] >= 1 for r in decoded]
    assert mask.tolist() == want
    assert 0 < sum(want) < len(want)


@pytest.mark.parametrize(
    "condition, predicate",
    [
        ("proto == udp and resp_p == 53", lambda r: r["proto"] == "udp" and r["id.resp_p"] == 53),
        ("conn_state in [S0, S1] or flag == OTH", lambda r: r["conn_state"] in ("S0", "S1") or r["kdd"]["flag"] == "OTH"),
        ("duration_s > 1.5 and orig_pkts >= 5", lambda r: r["duration"] > 1.5 and r["orig_pkts"] >= 5),
        ("resp_bytes > 2 * orig_bytes", lambda r: r["resp_bytes"] > 2 * r["orig_bytes"]),
        ("service =~ '^(http|domain)' and src_port > 40000",
         lambda r: r["kdd"]["service"].startswith(("http", "domain")) and r["id.orig_p"] > 40000),
        ("history =~ '^ShAdDaFf$'", lambda r: r["history"] == "ShAdDaFf"),
    ],
)
def test_conditions_over_connection_fields_agree_with_the_json_records(replayed, condition, predicate):
    conns, features, decoded = replayed
    mask = parse_condition(condition).evaluate(batch_columns(conns, features)).tolist()
    want = [bool(predicate(r)) for r in decoded]
    assert mask == want and any(want)


def _in(address: str, cidrs: list[str]) -> bool:
    addr = ipaddress.ip_address(address)
    return any(addr.version == (n := ipaddress.ip_network(c)).version and addr in n for c in cidrs)


@pytest.mark.parametrize(
    "cidrs",
    [["208.80.152.0/24"], ["ff02::/16"], ["192.168.56.101/32", "ff02::1:3"], ["141.142.0.0/16", "fe80::/10"]],
)
def test_address_conditions_and_scopes_agree_with_the_textual_addresses(tmp_path, replayed, cidrs):
    conns, features, decoded = replayed
    view = batch_columns(conns, features)
    listed = ", ".join(f"'{c}'" for c in cidrs)
    want_dst = [_in(r["id.resp_h"], cidrs) for r in decoded]
    assert parse_condition(f"dst in [{listed}]").evaluate(view).tolist() == want_dst
    assert any(want_dst) and not all(want_dst)
    path = tmp_path / "scoped.yaml"
    path.write_text(
        "rules:\n  - id: scoped\n    description: d\n    category: probe\n    severity: low\n"
        f"    condition: orig_pkts >= 1\n    scope:\n      dst: [{listed}]\n      src: ['!141.142.220.118']\n"
    )
    rule = load_rules([path]).rules[0]
    want = [w and r["id.orig_h"] != "141.142.220.118" for w, r in zip(want_dst, decoded)]
    assert rule.matches(view).tolist() == want


def test_the_ftp_rule_of_the_valid_file_on_the_capture(replayed):
    conns, features, decoded = replayed
    rule = load_rules([GOOD]).rule("ftp.failed-login")
    mask = rule.matches(batch_columns(conns, features))
    want = [
        r["proto"] == "tcp" and r["id.resp_h"].startswith("192.168.56.") and r["id.resp_p"] == 21
        and r["kdd"]["service"] == "ftp" and r["kdd"]["num_failed_logins"] >= 1
        for r in decoded
    ]
    assert mask.tolist() == want and sum(want) == 30


def test_port_scopes_never_match_icmp(tmp_path):
    from sensor.rows import CONN_DTYPE, PROTO_ICMP, PROTO_TCP

    conns = np.zeros(3, dtype=CONN_DTYPE)
    conns["proto"] = [PROTO_TCP, PROTO_ICMP, PROTO_TCP]
    conns["resp_p"] = [3, 3, 4]  # ICMP keeps the code in resp_p
    path = tmp_path / "ports.yaml"
    path.write_text(
        "rules:\n  - {id: p, description: d, category: probe, severity: low, condition: resp_p >= 0,\n"
        "     scope: {dst_ports: ['1-3']}}\n"
    )
    assert load_rules([path]).rules[0].matches(batch_columns(conns)).tolist() == [True, False, False]


# ---- malformed files -------------------------------------------------------------


@pytest.mark.parametrize(
    "name, marker, message, expected",
    [
        ("bad-yaml.yaml", "severity", "invalid YAML", "valid YAML"),
        ("unknown-top-key.yaml", "supress", "unknown key 'supress' in the file (did you mean 'suppress'?)", "one of rules, suppress"),
        ("unknown-rule-key.yaml", "threshhold", "unknown key 'threshhold' in rule 'ok' (did you mean 'threshold'?)", "one of id,"),
        ("unknown-field.yaml", "serorr_rate", "unknown field 'serorr_rate' (did you mean 'serror_rate'?)", "a field name"),
        ("enum-order.yaml", "<", "'<' is not defined for enum field flag", "==, !=, in, not in, =~ or !~"),
        ("count-not-int.yaml", "ten", "'count' must be an integer >= 1, found a string 'ten'", "an integer >= 1"),
        ("bad-regex.yaml", "(ftp", "bad regular expression for service", "a Python regular expression"),
        ("bad-cidr.yaml", "192.168.1.1/16", "host bits set (did you mean 192.168.0.0/16?)", "CIDR"),
        ("bad-severity.yaml", "urgent", "bad severity 'urgent' (expected one of low, medium, high, critical)", "one of low,"),
        ("bad-port-range.yaml", '"2000-1000"', "bad port range '2000-1000'", "a port 0-65535"),
        ("unknown-suppress-rule.yaml", "scan.port\n", "unknown rule 'scan.port' (did you mean 'scan.ports'?)", "a rule id"),
        ("not-a-mapping.yaml", "- id", "the file must be a mapping", "a mapping"),
    ],
)
def test_each_malformed_file_gives_one_located_error(name, marker, message, expected):
    path = RULES / name
    with pytest.raises(RuleError) as caught:
        load_rules([path])
    error = caught.value
    assert not isinstance(error, RuleErrors)
    line, column = position(path, marker.rstrip("\n")) if not marker.endswith("\n") else _last(path, marker.strip())
    assert (error.file, error.line, error.column) == (str(path), line, column)
    assert message in error.message
    assert expected in error.expected
    assert str(error) == f"{path}:{line}:{column}: {error.message}"


def _last(path, marker):
    text = path.read_text()
    return position(path, marker, text.count(marker) - 1)


def test_an_empty_file_has_no_rules():
    with pytest.raises(RuleError) as caught:
        load_rules([RULES / "empty.yaml"])
    assert str(caught.value) == f"{RULES / 'empty.yaml'}:1:1: no rules: the file is empty"


def test_duplicate_ids_name_both_places(tmp_path):
    path = RULES / "duplicate-id.yaml"
    with pytest.raises(RuleError) as caught:
        load_rules([path])
    first, second = position(path, "twice", 0), position(path, "twice", 1)
    assert (caught.value.line, caught.value.column) == second
    assert f"duplicate rule id 'twice' (first defined at {path}:{first[0]}:{first[1]})" in caught.value.message
    # across files too
    copy = tmp_path / "copy.yaml"
    shutil.copy(GOOD, copy)
    with pytest.raises(RuleErrors) as caught:
        load_rules([GOOD, copy])
    assert len(caught.value.errors) == 5 and all(e.file == str(copy) for e in caught.value.errors)
    assert f"first defined at {GOOD}:" in caught.value.errors[0].message


def test_every_error_of_a_file_is_reported_in_file_order():
    path = RULES / "many-errors.yaml"
    with pytest.raises(RuleErrors) as caught:
        load_rules([path])
    errors = caught.value.errors
    assert [(e.line, e.column) for e in errors] == [
        position(path, "id: one"), position(path, "dso"), position(path, "srv_cuont")
    ]
    assert "rule 'one' is missing 'condition'" in errors[0].message
    assert "bad category 'dso'" in errors[1].message and "did you mean 'dos'?" in errors[1].message
    assert "unknown field 'srv_cuont' in evidence (did you mean 'srv_count'?)" in errors[2].message
    assert str(caught.value).splitlines() == [str(e) for e in errors]
    assert caught.value.line == errors[0].line  # the combined error is placed at the first


@pytest.mark.parametrize(
    "yaml_condition, marker",
    [
        ("count > 1 and serorr_rate > 0", "serorr_rate"),
        ("'count > 1 and serorr_rate > 0'", "serorr_rate"),
        ('"count > 1 and \\"SF\\" == flag or serorr_rate > 0"', "serorr_rate"),
        ('"flag == \\"SF\\" and\\tserorr_rate > 0"', "serorr_rate"),
        ("|\n      count > 1\n      and serorr_rate > 0", "serorr_rate"),
        (">\n      count > 1 and\n        (land == 1 or\n      serorr_rate > 0)", "serorr_rate"),
        ("count > 1 and\n      serorr_rate > 0", "serorr_rate"),
        ("'flag == ''SF'' and serorr_rate > 0'", "serorr_rate"),
        ("'flag == ''SF'' and service == ''ftpp'''", "''ftpp"),
    ],
)
def test_condition_errors_point_into_the_file_for_every_scalar_style(tmp_path, yaml_condition, marker):
    path = tmp_path / "styles.yaml"
    path.write_text(
        "rules:\n  - id: s\n    description: d\n    category: dos\n    severity: low\n"
        f"    condition: {yaml_condition}\n"
    )
    with pytest.raises(RuleError) as caught:
        load_rules([path])
    assert (caught.value.line, caught.value.column) == position(path, marker), str(caught.value)


@pytest.mark.parametrize(
    "body, message",
    [
        ("    enabled: yes please\n", "'enabled' must be true or false"),
        ("    enabled: 1\n", "found an integer (1)"),
        ("    scope: {protocols: [tcp, sctp]}\n", "bad protocol 'sctp'"),
        ("    scope: {services: [ftpp]}\n", "did you mean 'ftp'?"),
        ("    scope: {src: []}\n", "empty list"),
        ("    scope: {dst_ports: [70000]}\n", "ports are 0-65535"),
        ("    scope: {colour: [red]}\n", "unknown key 'colour' in scope"),
        ("    threshold: {type: limit, track: by_host, count: 1, seconds: 1}\n", "bad track 'by_host'"),
        ("    threshold: {type: limit, track: by_src, count: 0, seconds: 1}\n", "'count' must be an integer >= 1"),
        ("    threshold: {type: limit, track: by_src, count: 1, seconds: -1}\n", "'seconds' must be a number > 0"),
        ("    threshold: {type: limit, track: by_src, count: 1}\n", "threshold is missing 'seconds'"),
        ("    threshold: {type: sometimes, track: by_src, count: 1, seconds: 1}\n", "bad threshold type 'sometimes'"),
        ("    threshold: {type: both, track: by_src, count: 5, seconds: 1, distinct: dst_prt}\n",
         "bad distinct 'dst_prt' (expected one of src, dst, dst_port; did you mean 'dst_port'?)"),
        ("    description: [a, list]\n", "duplicate key 'description'"),
    ],
)
def test_other_validation_errors(tmp_path, body, message):
    path = tmp_path / "r.yaml"
    path.write_text(
        "rules:\n  - id: r\n    description: d\n    category: dos\n    severity: low\n    condition: count > 1\n" + body
    )
    with pytest.raises(RuleError) as caught:
        load_rules([path])
    assert message in str(caught.value)
    assert caught.value.line == 7 and caught.value.file == str(path)


def test_bad_ids_and_repeated_keys(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "rules:\n  - id: Upper Case\n    description: d\n    category: dos\n    severity: low\n"
        "    condition: count > 1\n    evidence: [orig_bytes]\n    evidence: [resp_bytes]\n"
    )
    with pytest.raises(RuleErrors) as caught:
        load_rules([path])
    first, second = caught.value.errors
    assert (first.line, first.column) == (2, 9) and "bad rule id 'Upper Case'" in first.message
    assert (second.line, second.column) == (8, 5)
    assert "duplicate key 'evidence' in rule 'Upper Case' (first at line 7)" in second.message


def test_an_unquoted_negation_is_a_yaml_tag_and_gets_a_hint(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "rules:\n  - id: r\n    description: d\n    category: dos\n    severity: low\n    condition: count > 1\n"
        "    scope:\n      dst:\n        - !10.0.0.0/8\n"
    )
    with pytest.raises(RuleError) as caught:
        load_rules([path])
    assert "quote the value, e.g. '!10.0.0.0/8'" in caught.value.message
    assert (caught.value.line, caught.value.column) == (9, 11)


def test_a_missing_file_is_an_error_not_a_traceback(tmp_path):
    with pytest.raises(RuleError, match="cannot read rule file"):
        load_rules([tmp_path / "absent.yaml"])


# ---- the check command ------------------------------------------------------------------

BAD_FILES = sorted(p for p in RULES.glob("*.yaml") if p.name != "good.yaml")


def test_check_reports_a_good_file(capsys):
    assert main([str(GOOD)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{GOOD}: 5 rules OK\n" and err == ""


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.name)
def test_check_prints_one_line_per_error_and_fails(capsys, path):
    assert main([str(path)]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == ""
    assert lines and all(line.startswith(f"{path}:") for line in lines)
    assert len(lines) == (3 if path.name == "many-errors.yaml" else 1)
    assert "Traceback" not in err


def test_check_goes_on_past_a_bad_file(capsys):
    bad = RULES / "bad-severity.yaml"
    assert main([str(bad), str(GOOD)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{GOOD}: 5 rules OK\n"
    assert err.startswith(f"{bad}:5:")


# each file checked on its own (checked together, ids would clash across the files)
CHECK_EACH = "import sys; from sensor.rules.check import main; sys.exit(max(main([f]) for f in sys.argv[1:]))"


def test_check_as_a_process_has_no_traceback():
    bad = [str(p) for p in BAD_FILES]
    result = subprocess.run(
        [sys.executable, "-c", CHECK_EACH, *bad],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    # many-errors.yaml gives three; every other bad file one
    assert len(lines) == len(bad) + 2
    assert {line.split(":")[0] for line in lines} == set(bad)
