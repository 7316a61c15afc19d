#!/usr/bin/env python3
"""Settle the traffic-feature definitions against the KDD rows.

    python scripts/kdd_evidence.py            print the evidence (Markdown)
    python scripts/kdd_evidence.py --check    fail if docs/features.md says otherwise

Reads the four labelled files in ../shared/datasets (KDD'99 10% and
corrected, NSL-KDD train and test: 953,567 rows) and tests, for each
point kdd-features.md marks as a hypothesis, which definition every row is
consistent with.  Rates in the files are printf("%.2f") of k/n, so a
definition fits a row when some whole count k it allows rounds to the
row's value; the checks are exact (the rounding table comes from the same
function the sensor uses).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets"
FILES = ("kddcup99/kddcup.data_10_percent.gz", "kddcup99/corrected.gz", "nsl-kdd/KDDTrain+.txt.gz",
         "nsl-kdd/KDDTest+.txt.gz")
DOC = ROOT / "docs" / "features.md"
BEGIN, END = "<!-- evidence:begin -->", "<!-- evidence:end -->"
SYN_ERRORS = ("S0", "S1", "S2", "S3", "SH")
REJ_ERRORS = ("REJ", "RSTO", "RSTOS0", "RSTR")

sys.path.insert(0, str(ROOT))
from sensor import _fastpath  # noqa: E402
from sensor.datasets import load_kdd  # noqa: E402
from sensor.features import SYMBOLIC  # noqa: E402

N_MAX = 512
# the sensor's rounding (single precision, as the data turns out to be) ...
RATE = np.zeros((N_MAX, N_MAX))
# ... and the same in double precision, for comparison
RATE_DOUBLE = np.zeros((N_MAX, N_MAX))
for _n in range(1, N_MAX):
    RATE[_n, : _n + 1] = [_fastpath.kdd_rate(k, _n) for k in range(_n + 1)]
    RATE_DOUBLE[_n, : _n + 1] = [float(f"{k / _n:.2f}") for k in range(_n + 1)]


def attainable(rate, n, table):
    """Rows whose rate is r2(k/n) for some whole k (rows with n = 0 pass)."""
    n = np.clip(n.astype(int), 0, N_MAX - 1)
    ok = n == 0
    base = np.rint(rate * n).astype(int)
    for d in range(-2, 3):
        k = base + d
        ok |= (k >= 0) & (k <= n) & (table[n, np.clip(k, 0, N_MAX - 1)] == rate)
    return ok


def fits(rate, n, lo, hi):
    """Rows where some whole k in [lo, hi] gives r2(k/n) == rate."""
    ok = np.zeros(len(rate), bool)
    n = np.clip(n.astype(int), 0, N_MAX - 1)
    base = np.rint(rate * n).astype(int)
    for d in range(-2, 3):
        k = base + d
        inside = (k >= lo) & (k <= hi) & (k >= 0) & (k <= n)
        ok |= inside & (RATE[n, np.clip(k, 0, N_MAX - 1)] == rate)
    return ok


def same_counts(rate, n):
    """The whole counts k that a rounded rate k/n can stand for (up to 5 candidates)."""
    n = np.clip(n.astype(int), 0, N_MAX - 1)
    base = np.rint(rate * n).astype(int)
    for d in range(-2, 3):
        k = base + d
        valid = (k >= 0) & (k <= n) & (RATE[n, np.clip(k, 0, N_MAX - 1)] == rate)
        yield k, valid


def diff_hypotheses(diff, same, n):
    """Rows consistent with each definition of a 'diff' rate, given the
    'same' rate over the same n records (X's own value counts as same)."""
    out = {"complement": 0, "distinct others": 0, "distinct, own included, 0 if one": 0}
    ok = {k: np.zeros(len(n), bool) for k in out}
    for k_same, valid in same_counts(same, n):
        others = n - k_same  # records with another value
        only_one = valid & (others == 0) & (diff == 0)
        ok["complement"] |= valid & fits(diff, n, others, others)
        ok["distinct others"] |= only_one | (valid & (others > 0) & fits(diff, n, np.minimum(others, 1), others))
        ok["distinct, own included, 0 if one"] |= only_one | (valid & (others > 0) & fits(diff, n, 2, others + 1))
    rows = n >= 1
    return {k: (int((v & rows).sum()), int((~v & rows).sum())) for k, v in ok.items()}


def evidence() -> str:
    parts = [load_kdd(DATA / f) for f in FILES]
    f = np.concatenate([p.features for p in parts])
    flag = np.array(SYMBOLIC["flag"])[f["flag"]]
    total = len(f)
    lines = [f"Rows: {total:,} ({', '.join(f'{Path(n).name} {len(p.features):,}' for n, p in zip(FILES, parts))}).", ""]
    add = lines.append

    add("**Counts and caps**")
    add("")
    add("| finding | rows |")
    add("|---|---:|")
    add(f"| `count` = 0 (the current record not counted) | {int((f['count'] == 0).sum()):,} |")
    add(f"| largest `count`, `srv_count` | {int(f['count'].max())}, {int(f['srv_count'].max())} |")
    add(f"| `count` = 511 (at the cap) | {int((f['count'] == 511).sum()):,} |")
    add(f"| largest `dst_host_count`, `dst_host_srv_count` | {int(f['dst_host_count'].max())}, "
        f"{int(f['dst_host_srv_count'].max())} |")
    add(f"| `dst_host_count` = 255 | {int((f['dst_host_count'] == 255).sum()):,} |")
    add(f"| `dst_host_count` between 101 and 254 (impossible with N = 100) | "
        f"{int(((f['dst_host_count'] > 100) & (f['dst_host_count'] < 255)).sum()):,} |")
    add(f"| `dst_host_srv_count` > `dst_host_count` (the service slice is not limited to the host) | "
        f"{int((f['dst_host_srv_count'] > f['dst_host_count']).sum()):,} |")
    full = f["dst_host_count"] == 255
    same255 = np.rint(f["dst_host_same_srv_rate"] * 255)
    add(f"| `dst_host_count` = 255 yet `dst_host_srv_count` above the same-service share of 255 "
        f"(a window larger than ~256) | {int((full & (f['dst_host_srv_count'] > same255 + 2)).sum()):,} |")
    add("")

    add("**Which flags are errors.** With `count` = 1 the 2-second set is the record alone, so "
        "`serror_rate`/`rerror_rate` show its own flag's class:")
    add("")
    add("| flag | rows | `serror_rate` values | `rerror_rate` values |")
    add("|---|---:|---|---|")
    one = f["count"] == 1
    for name in SYMBOLIC["flag"]:
        m = one & (flag == name)
        if m.any():
            s = sorted(set(f["serror_rate"][m].tolist()))
            r = sorted(set(f["rerror_rate"][m].tolist()))
            add(f"| {name} | {int(m.sum()):,} | {', '.join(f'{v:.2f}' for v in s)} | {', '.join(f'{v:.2f}' for v in r)} |")
    add("")

    add("**'diff' rates.** Rows consistent with each definition (exact 2-decimal rounding):")
    add("")
    add("| feature | complement (1 - same) | distinct others / n | distinct, own included, 0 if one |")
    add("|---|---|---|---|")
    for feat, same, n in (
        ("diff_srv_rate", "same_srv_rate", "count"),
        ("dst_host_diff_srv_rate", "dst_host_same_srv_rate", "dst_host_count"),
    ):
        h = diff_hypotheses(f[feat], f[same], f[n])
        add(f"| `{feat}` | " + " | ".join(f"{ok:,} fit, {bad:,} not" for ok, bad in h.values()) + " |")
    for feat, n in (("srv_diff_host_rate", "srv_count"), ("dst_host_srv_diff_host_rate", "dst_host_srv_count")):
        rate, cnt = f[feat], f[n]
        rows = cnt >= 1
        distinct = (rate == 0) | fits(rate, cnt, 2, cnt)
        add(f"| `{feat}` | (no 'same' rate to test against) | | {int((distinct & rows).sum()):,} fit, "
            f"{int((~distinct & rows).sum()):,} not |")
    add("")
    add("A distinct count of exactly 1 would show as 1/n. Rows where a diff rate equals 1/n "
        "and 1/n rounds differently from 2/n:")
    add("")
    add("| feature | rows at 1/n |")
    add("|---|---:|")
    for feat, n in (("diff_srv_rate", "count"), ("srv_diff_host_rate", "srv_count"),
                    ("dst_host_diff_srv_rate", "dst_host_count"), ("dst_host_srv_diff_host_rate", "dst_host_srv_count")):
        cnt = np.clip(f[n].astype(int), 0, N_MAX - 1)
        tell = (cnt >= 2) & (RATE[cnt, 1] != RATE[cnt, np.minimum(2, cnt)])
        add(f"| `{feat}` | {int((tell & (f[feat] == RATE[cnt, 1]) & (f[feat] > 0)).sum()):,} |")
    add("")

    add("**Arithmetic.** A rate value in a row is *attainable* when some whole k gives it as k/n "
        "rounded to two decimals. Rows with an unattainable value, computing k/n in double or in single "
        "precision before printf(\"%.2f\"):")
    add("")
    add("| feature | double | single |")
    add("|---|---:|---:|")
    for feat, n in (("serror_rate", "count"), ("same_srv_rate", "count"), ("diff_srv_rate", "count"),
                    ("srv_diff_host_rate", "srv_count"), ("dst_host_same_srv_rate", "dst_host_count"),
                    ("dst_host_same_src_port_rate", "dst_host_count"), ("dst_host_serror_rate", "dst_host_count"),
                    ("dst_host_srv_diff_host_rate", "dst_host_srv_count")):
        add(f"| `{feat}` | {int((~attainable(f[feat], f[n], RATE_DOUBLE)).sum()):,} | "
            f"{int((~attainable(f[feat], f[n], RATE)).sum()):,} |")
    add("")

    add("**Host-window rates include the current record.** With `dst_host_count` = n (earlier records "
        "to the host), if the rates were over those n earlier records only, the current record's own "
        "flag would not matter:")
    add("")
    add("| feature | n = 1: rate equals the record's own class | n <= 100, record not an error, rate 1.00 "
        "| ... rate (n-1)/n | record an error, rate below 1/n |")
    add("|---|---|---:|---:|---:|")
    for feat, n, errs in (("dst_host_serror_rate", "dst_host_count", SYN_ERRORS),
                          ("dst_host_rerror_rate", "dst_host_count", REJ_ERRORS),
                          ("dst_host_srv_serror_rate", "dst_host_srv_count", SYN_ERRORS),
                          ("dst_host_srv_rerror_rate", "dst_host_srv_count", REJ_ERRORS)):
        cnt = f[n].astype(int)
        mine = np.isin(flag, errs)
        rate = f[feat]
        n1 = cnt == 1
        own = int((n1 & (rate == mine.astype(float))).sum())
        small = (cnt >= 1) & (cnt <= 100)
        c = np.clip(cnt, 0, N_MAX - 1)
        add(f"| `{feat}` | {own:,} of {int(n1.sum()):,} | {int((small & ~mine & (rate == 1.0)).sum()):,} | "
            f"{int((small & ~mine & (cnt >= 2) & (rate == RATE[c, np.maximum(c - 1, 0)])).sum()):,} | "
            f"{int((small & mine & (rate < RATE[c, 1])).sum()):,} |")
    for feat in ("dst_host_same_srv_rate", "dst_host_same_src_port_rate"):
        cnt = np.clip(f["dst_host_count"].astype(int), 0, N_MAX - 1)
        rows = cnt >= 1
        add(f"| `{feat}` below 1/`dst_host_count` | | | | {int((rows & (f[feat] < RATE[cnt, 1])).sum()):,} "
            f"of {int(rows.sum()):,} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with docs/features.md")
    args = ap.parse_args()
    text = evidence()
    if not args.check:
        print(text)
        return 0
    doc = DOC.read_text()
    recorded = doc[doc.index(BEGIN) + len(BEGIN): doc.index(END)].strip()
    if recorded != text.strip():
        print("docs/features.md disagrees with the data; regenerate its evidence section:", file=sys.stderr)
        print(text, file=sys.stderr)
        return 1
    print("docs/features.md matches the data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
