"""The rule condition language: parsing, type errors with columns, vectorised evaluation.

Every expected mask is computed independently, by a plain Python loop
over the same rows, so the tests check the compiler against the
language's meaning rather than against itself.
"""

from __future__ import annotations

import ipaddress
import math
import operator
import warnings

import numpy as np
import pytest

from sensor.features import SYMBOLIC
from sensor.models.categories import CATEGORIES
from sensor.rules import (
    BatchView, MissingFieldError, RuleError, address_column, batch_columns, parse_condition,
)
from sensor.rows import CONN_DTYPE

SERVICES, FLAGS = SYMBOLIC["service"], SYMBOLIC["flag"]
NAN, INF = float("nan"), float("inf")

# one row per record; "service" None stands for a code the tables do not know (255)
ROWS = [
    dict(count=0, serror_rate=0.0, service="ftp", flag="SF", src_bytes=0, dst_bytes=0, land=0,
         num_failed_logins=0, src="10.0.0.1", dst="192.168.1.10", label="normal", p=0.99, ae=0.1, ae_t=0.5),
    dict(count=150, serror_rate=0.9, service="http", flag="S0", src_bytes=5000, dst_bytes=100, land=0,
         num_failed_logins=0, src="10.200.3.4", dst="8.8.8.8", label="dos", p=0.95, ae=0.7, ae_t=0.5),
    dict(count=99, serror_rate=NAN, service="telnet", flag="REJ", src_bytes=2000, dst_bytes=200, land=1,
         num_failed_logins=3, src="2001:db8::1", dst="fe80::1", label="r2l", p=0.5, ae=NAN, ae_t=0.5),
    dict(count=100, serror_rate=INF, service="ftp_data", flag="S0", src_bytes=1001, dst_bytes=0, land=0,
         num_failed_logins=1, src="172.16.5.5", dst="10.9.9.9", label="normal", p=0.2, ae=0.5, ae_t=0.5),
    dict(count=3, serror_rate=0.8, service=None, flag="RSTO", src_bytes=7, dst_bytes=3, land=1,
         num_failed_logins=0, src="::ffff:192.168.0.7", dst="2001:db8:1::5", label="probe", p=0.91, ae=1.0, ae_t=0.5),
    dict(count=500, serror_rate=0.79, service="ftp", flag="SF", src_bytes=12000, dst_bytes=1000, land=0,
         num_failed_logins=2, src="fe80::abcd", dst="192.168.255.255", label="u2r", p=0.9, ae=0.2, ae_t=0.5),
]


def _batch(rows=ROWS) -> dict[str, np.ndarray]:
    """Columns as the feature stage stores them (uint8 codes, unsigned counts)."""
    return {
        "count": np.array([r["count"] for r in rows], dtype=np.uint16),
        "serror_rate": np.array([r["serror_rate"] for r in rows], dtype=np.float64),
        "service": np.array([SERVICES.index(r["service"]) if r["service"] else 255 for r in rows], dtype=np.uint8),
        "flag": np.array([FLAGS.index(r["flag"]) for r in rows], dtype=np.uint8),
        "src_bytes": np.array([r["src_bytes"] for r in rows], dtype=np.uint64),
        "dst_bytes": np.array([r["dst_bytes"] for r in rows], dtype=np.uint64),
        "land": np.array([r["land"] for r in rows], dtype=np.uint8),
        "num_failed_logins": np.array([r["num_failed_logins"] for r in rows], dtype=np.uint8),
        "src": address_column([r["src"] for r in rows]),
        "dst": address_column([r["dst"] for r in rows]),
        "model.classifier.label": np.array([CATEGORIES.index(r["label"]) for r in rows], dtype=np.int64),
        "model.classifier.probability": np.array([r["p"] for r in rows]),
        "model.autoencoder.score": np.array([r["ae"] for r in rows]),
        "model.autoencoder.threshold": np.array([r["ae_t"] for r in rows]),
    }


def expected(predicate) -> list[bool]:
    return [bool(predicate(r)) for r in ROWS]


def evaluate(text: str, batch=None) -> list[bool]:
    mask = parse_condition(text).evaluate(_batch() if batch is None else batch)
    assert mask.dtype == bool and mask.shape == (len(ROWS),)
    return mask.tolist()


def in_net(address: str, *cidrs: str) -> bool:
    """Reference membership with the ipaddress module; IPv4-mapped IPv6 counts as IPv4."""
    addr = ipaddress.ip_address(address)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return any(addr.version == ipaddress.ip_network(c).version and addr in ipaddress.ip_network(c) for c in cidrs)


# ---- the examples of the rule language ---------------------------------------


def test_the_documented_examples():
    assert evaluate("count >= 100 and serror_rate >= 0.8") == expected(
        lambda r: r["count"] >= 100 and r["serror_rate"] >= 0.8
    )
    assert evaluate("service in [ftp, telnet] and num_failed_logins >= 1") == expected(
        lambda r: r["service"] in ("ftp", "telnet") and r["num_failed_logins"] >= 1
    )
    assert evaluate("model.classifier.label != 'normal' and model.classifier.probability >= 0.9") == expected(
        lambda r: r["label"] != "normal" and r["p"] >= 0.9
    )
    assert evaluate("model.autoencoder.score > model.autoencoder.threshold") == expected(lambda r: r["ae"] > r["ae_t"])
    assert evaluate("not (flag == SF) or land == 1") == expected(lambda r: r["flag"] != "SF" or r["land"] == 1)
    assert evaluate("flag in [S0, REJ]") == expected(lambda r: r["flag"] in ("S0", "REJ"))
    assert evaluate("src_bytes > 10 * dst_bytes + 1000") == expected(
        lambda r: r["src_bytes"] > 10 * r["dst_bytes"] + 1000
    )
    assert evaluate("dst in [10.0.0.0/8, '192.168.0.0/16']") == expected(
        lambda r: in_net(r["dst"], "10.0.0.0/8", "192.168.0.0/16")
    )
    assert evaluate("service not in [http]") == expected(lambda r: r["service"] != "http")
    assert evaluate("service =~ '^(ftp|ftp_data)$'") == expected(lambda r: r["service"] in ("ftp", "ftp_data"))


def test_the_examples_select_some_rows_but_not_all():
    """Guard on the data: a condition true or false everywhere would prove little."""
    for text in ("count >= 100 and serror_rate >= 0.8", "flag in [S0, REJ]", "src_bytes > 10 * dst_bytes + 1000"):
        mask = evaluate(text)
        assert any(mask) and not all(mask), text


# ---- precedence --------------------------------------------------------------


def test_and_binds_tighter_than_or():
    got = evaluate("count > 200 or land == 1 and flag == REJ")
    assert got == expected(lambda r: r["count"] > 200 or (r["land"] == 1 and r["flag"] == "REJ"))
    # the other grouping gives a different answer on these rows
    assert got != expected(lambda r: (r["count"] > 200 or r["land"] == 1) and r["flag"] == "REJ")
    assert evaluate("(count > 200 or land == 1) and flag == REJ") == expected(
        lambda r: (r["count"] > 200 or r["land"] == 1) and r["flag"] == "REJ"
    )


def test_not_binds_tighter_than_and():
    got = evaluate("not land == 1 and count > 50")
    assert got == expected(lambda r: (not r["land"] == 1) and r["count"] > 50)
    assert got != expected(lambda r: not (r["land"] == 1 and r["count"] > 50))
    assert evaluate("not not land == 1") == expected(lambda r: r["land"] == 1)


@pytest.mark.parametrize(
    "text, value",
    [
        ("2 + 3 * 4", 14), ("(2 + 3) * 4", 20), ("10 - 4 - 3", 3), ("100 / 10 / 2", 5),
        ("-2 * 3", -6), ("- -2", 2), ("2 - -3", 5), ("1.5e2 + .5", 150.5), ("7 / 2", 3.5),
    ],
)
def test_arithmetic_precedence_and_associativity(text, value):
    assert evaluate(f"{text} == {value}") == [True] * len(ROWS)
    assert evaluate(f"{text} == {value} + 1") == [False] * len(ROWS)


def test_unsigned_columns_do_not_wrap_on_subtraction():
    # dst_bytes - src_bytes is negative for most rows; uint64 arithmetic would wrap to ~1.8e19
    assert evaluate("dst_bytes - src_bytes < 0") == expected(lambda r: r["dst_bytes"] - r["src_bytes"] < 0)
    assert evaluate("-src_bytes < -1000") == expected(lambda r: -r["src_bytes"] < -1000)


# ---- each operator ---------------------------------------------------------------


def _nan_safe(op):
    """The language's comparisons: false whenever a side is nan, != included."""
    return lambda a, b: not (math.isnan(a) or math.isnan(b)) and op(a, b)


@pytest.mark.parametrize(
    "symbol, op",
    [("==", operator.eq), ("!=", operator.ne), ("<", operator.lt), ("<=", operator.le),
     (">", operator.gt), (">=", operator.ge)],
)
@pytest.mark.parametrize("constant", [0.8, 0, INF])
def test_each_comparison_on_a_column_with_nan_and_inf(symbol, op, constant):
    text = f"serror_rate {symbol} {constant if constant != INF else '1 / 0'}"
    assert evaluate(text) == expected(lambda r: _nan_safe(op)(r["serror_rate"], constant))


@pytest.mark.parametrize("symbol, op", [("==", operator.eq), ("!=", operator.ne), ("<", operator.lt), (">=", operator.ge)])
def test_comparisons_between_two_columns(symbol, op):
    assert evaluate(f"model.autoencoder.score {symbol} model.autoencoder.threshold") == expected(
        lambda r: _nan_safe(op)(r["ae"], r["ae_t"])
    )


def test_division_by_zero_in_data_is_false_and_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning would fail the test
        got = evaluate("src_bytes / dst_bytes > 5")
        ratio = evaluate("src_bytes / dst_bytes != 0")
    # x/0 is inf (>5 holds) and 0/0 is nan (false); both as in the reference
    assert got == expected(lambda r: _nan_safe(operator.gt)(_div(r["src_bytes"], r["dst_bytes"]), 5))
    assert ratio == expected(lambda r: _nan_safe(operator.ne)(_div(r["src_bytes"], r["dst_bytes"]), 0))
    assert got[3] is True and ratio[0] is False  # 1001/0 = inf; 0/0 = nan


def _div(a: float, b: float) -> float:
    if b == 0:
        return NAN if a == 0 else INF
    return a / b


def test_number_lists():
    assert evaluate("count in [0, 3, 99]") == expected(lambda r: r["count"] in (0, 3, 99))
    assert evaluate("count not in [0, 3, 99,]") == expected(lambda r: r["count"] not in (0, 3, 99))
    assert evaluate("count - 100 in [-1, -97]") == expected(lambda r: r["count"] - 100 in (-1, -97))
    assert evaluate("serror_rate in [0.8, 0.9]") == expected(lambda r: r["serror_rate"] in (0.8, 0.9))


# ---- enums ---------------------------------------------------------------------


def test_enum_literals_are_coded_against_the_fields_vocabulary():
    assert evaluate("flag == S0") == expected(lambda r: r["flag"] == "S0")
    assert evaluate("flag == 'S0'") == evaluate("flag == S0") == evaluate('"S0" == flag')
    assert evaluate("S0 == flag") == expected(lambda r: r["flag"] == "S0")
    # a service the tables do not know (code 255) is none of the names
    assert evaluate("service != ftp") == expected(lambda r: r["service"] != "ftp")
    assert evaluate("service in [ftp, http, telnet, ftp_data]") == expected(
        lambda r: r["service"] in ("ftp", "http", "telnet", "ftp_data")
    )
    assert evaluate("service not in ['ftp']")[4] is True


def test_enum_columns_of_other_integer_types():
    batch = _batch()
    batch["flag"] = batch["flag"].astype(np.int64)
    batch["service"] = batch["service"].astype(np.int32)
    assert evaluate("flag in [S0, REJ]", batch) == expected(lambda r: r["flag"] in ("S0", "REJ"))
    assert evaluate("service =~ '^ftp'", batch) == expected(lambda r: (r["service"] or "").startswith("ftp"))


def test_regex_on_an_enum_field():
    assert evaluate("service =~ 'ftp'") == expected(lambda r: "ftp" in (r["service"] or ""))
    assert evaluate("service !~ '^ftp'") == expected(lambda r: not (r["service"] or "").startswith("ftp"))
    assert evaluate(r"service =~ '^\w+_data$'") == expected(lambda r: r["service"] == "ftp_data")
    assert evaluate("flag =~ '^(S0|REJ)$' and not flag =~ 'x'") == expected(lambda r: r["flag"] in ("S0", "REJ"))
    assert evaluate("service =~ 'no such service'") == [False] * len(ROWS)


def test_enum_against_an_enum_of_the_same_vocabulary():
    batch = _batch()
    batch["model.verdict"] = batch["model.classifier.label"].copy()
    batch["model.verdict"][1] = CATEGORIES.index("normal")
    got = evaluate("model.verdict != model.classifier.label", batch)
    assert got == [i == 1 for i in range(len(ROWS))]


def test_quoted_strings_escape_only_their_quote():
    condition = parse_condition(r"""service =~ 'it\'s' or service =~ "a\"b" or service =~ '\d'""")
    assert condition.evaluate(_batch()).tolist() == [False] * len(ROWS)  # none of those names exist


# ---- addresses --------------------------------------------------------------------


@pytest.mark.parametrize(
    "cidrs",
    [
        ["10.0.0.0/8"], ["192.168.0.0/16", "8.8.8.8"], ["fe80::/10"], ["2001:db8::/32"],
        ["2001:db8:1::/48", "10.9.9.9/32"], ["0.0.0.0/0"], ["::/0"], ["192.168.255.255"],
    ],
)
def test_address_membership_ipv4_and_ipv6(cidrs):
    listed = ", ".join(cidrs)
    quoted = ", ".join(f"'{c}'" for c in cidrs)
    for side, key in (("src", "src"), ("dst", "dst")):
        reference = expected(lambda r: in_net(r[key], *cidrs) if "::/0" not in cidrs else True)
        assert evaluate(f"{side} in [{listed}]") == reference
        assert evaluate(f"{side} in [{quoted}]") == reference
        assert evaluate(f"{side} not in [{listed}]") == [not x for x in reference]


def test_ipv4_mapped_addresses_match_ipv4_networks():
    assert evaluate("src in [192.168.0.0/16]")[4] is True  # ::ffff:192.168.0.7
    assert evaluate("src in [::ffff:0:0/96]") == expected(lambda r: "." in r["src"])


def test_address_equality():
    assert evaluate("dst == 8.8.8.8") == expected(lambda r: r["dst"] == "8.8.8.8")
    assert evaluate("src != 2001:db8::1") == expected(lambda r: r["src"] != "2001:db8::1")


def test_address_columns_in_the_layout_of_the_connection_rows():
    conns = np.zeros(len(ROWS), dtype=CONN_DTYPE)
    for i, r in enumerate(ROWS):
        value = int(ipaddress.ip_address(r["dst"]))
        if "." in r["dst"] and ":" not in r["dst"]:
            value |= 0xFFFF << 32
        conns["resp_hi"][i], conns["resp_lo"][i] = value >> 64, value & (2**64 - 1)
    got = parse_condition("dst in [10.0.0.0/8, fe80::/10]").evaluate(batch_columns(conns))
    assert got.tolist() == expected(lambda r: in_net(r["dst"], "10.0.0.0/8", "fe80::/10"))


# ---- fields and the lazy batch view --------------------------------------------------


def test_fields_are_reported_by_canonical_name():
    assert parse_condition("src_port == 21 or dst_port in [80]").fields == {"orig_p", "resp_p"}
    condition = parse_condition("model.classifier.p.dos > 0.5 and service == ftp and dst in [10.0.0.0/8]")
    assert condition.fields == {"model.classifier.p.dos", "service", "dst"}
    assert condition.uses_models and not parse_condition("count > 1").uses_models


def test_batch_view_derives_only_what_is_asked():
    conns = np.zeros(3, dtype=CONN_DTYPE)
    conns["ts_first"] = [0, 0, 10**9]
    conns["ts_last"] = [2_500_000_000, 10**9, 10**9]
    conns["orig_p"] = [21, 80, 21]
    view = batch_columns(conns)  # no features, no models
    assert parse_condition("duration_s > 1.5 and src_port == 21").evaluate(view).tolist() == [True, False, False]
    with pytest.raises(MissingFieldError, match="KDD features"):
        parse_condition("count > 1").evaluate(view)
    with pytest.raises(MissingFieldError, match="model output"):
        parse_condition("model.autoencoder.score > 1").evaluate(view)


def test_model_columns_as_names_or_scalars():
    conns = np.zeros(4, dtype=CONN_DTYPE)
    scores = {
        "model.classifier.label": np.array(["normal", "dos", "r2l", "dos"]),
        "model.autoencoder.score": np.array([0.1, 0.9, 0.4, 0.6]),
        "model.autoencoder.threshold": 0.5,
    }
    view = BatchView(conns, None, scores)
    got = parse_condition("model.classifier.label == dos and model.autoencoder.score > model.autoencoder.threshold")
    assert got.evaluate(view).tolist() == [False, True, False, True]


def test_constant_conditions_cover_the_whole_batch():
    assert evaluate("1 < 2") == [True] * len(ROWS)
    assert evaluate("1 > 2 or count > 499") == expected(lambda r: r["count"] > 499)


# ---- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, column, message",
    [
        ("count >= 100 and serorr_rate >= 0.8", 18, "unknown field 'serorr_rate' (did you mean 'serror_rate'?)"),
        ("flag < 3", 6, "'<' is not defined for enum field flag"),
        ("flag == SFF", 9, "unknown flag 'SFF' (expected one of SF, S0, S1"),
        ("service in [ftp, fpt]", 18, "did you mean 'ftp'?"),
        ("service == 3", 12, "service is an enum field"),
        ("flag == conn_state", 9, "different values"),
        ("service =~ '^(ftp|ftp_data$'", 14, "bad regular expression for service"),
        ("count =~ 'x'", 7, "need an enum or string field"),
        ("(count > 1 and land == 1", 25, "expected ')' or an operator, found end of condition"),
        ("(count > 1 land == 1)", 12, "expected ')' or an operator, found 'land'"),
        ("count > 1 and", 14, "expected a field, number, string or '('"),
        ("count > 1 > 2", 11, "expected 'and', 'or' or the end of the condition, found '>'"),
        ("count = 1", 7, "did you mean '=='?"),
        ("count > 1 && land == 1", 11, "use 'and'"),
        ("count", 1, "not a condition"),
        ("count + flag > 1", 9, "'+' needs numbers"),
        ("count in [ftp]", 11, "a list of numbers"),
        ("dst in [10.0.0.1/8]", 9, "host bits set (did you mean 10.0.0.0/8?)"),
        ("dst in [10.0.0.256/8]", 9, "bad CIDR"),
        ("dst > 10.0.0.1", 5, "not defined for addresses"),
        ("service == 'ftp", 12, "unterminated string"),
        ("service not [ftp]", 9, "expected 'in' after 'not'"),
        ("", 1, "empty condition"),
        ("(count > 1) == 1", 13, "compares values, not conditions"),
    ],
)
def test_errors_name_the_column_and_what_was_expected(text, column, message):
    with pytest.raises(RuleError) as caught:
        parse_condition(text)
    error = caught.value
    assert message in error.message
    assert (error.line, error.column) == (1, column)
    assert str(error) == f"1:{column}: {error.message}"
    assert error.file is None


@pytest.mark.parametrize("text", ["(" * 5000 + "count > 1" + ")" * 5000, "count > " + " + ".join(["1"] * 20000)])
def test_absurdly_nested_conditions_are_an_error_not_a_crash(text):
    with pytest.raises(RuleError, match="nested too deeply"):
        parse_condition(text)
    assert parse_condition("(" * 50 + "count > 1" + ")" * 50).evaluate(_batch()).tolist() == expected(
        lambda r: r["count"] > 1
    )


def test_errors_carry_what_was_expected():
    with pytest.raises(RuleError) as caught:
        parse_condition("flag == SFF")
    assert caught.value.expected.split(", ") == list(FLAGS)
    with pytest.raises(RuleError) as caught:
        parse_condition("(count > 1")
    assert caught.value.expected == "')' or an operator"


def test_rule_error_is_a_value_error_with_a_file_position():
    error = RuleError("unknown field 'x'", file="rules/default.yaml", line=12, column=25, expected="a field name")
    assert isinstance(error, ValueError)
    assert str(error) == "rules/default.yaml:12:25: unknown field 'x'"
