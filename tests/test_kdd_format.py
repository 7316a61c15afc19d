"""KDD-format output, the dataset loader, and the evidence in docs/features.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, SHARED
from craft import replay

from sensor.datasets import DatasetError, load_kdd
from sensor.features import KDD_FEATURES, RATES, SYMBOLIC

CAPTURES = [SHARED / "pcaps" / n for n in ("zeek__ftp-bruteforce.pcap", "nsl-kdd-examine__synflood.pcapng",
                                            "evilfingers__nmap_UDP_SCAN.pcap", "ppa__telnet.pcap")]


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_kdd_output_is_the_jsonl_kdd_object_in_kdd_file_form(tmp_path, capture):
    out = tmp_path / "records.kdd"
    result = replay(capture, fmt="kdd", extra=("-o", str(out)))
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    jsonl = [json.loads(line)["kdd"] for line in replay(capture).stdout.splitlines()]
    assert len(lines) == len(jsonl) > 0
    for line, rec in zip(lines, jsonl):
        fields = line.split(",")
        assert len(fields) == 41
        for name, value in zip(KDD_FEATURES, fields):
            if name in RATES:
                assert re.fullmatch(r"[01]\.\d\d", value) and float(value) == rec[name]
            elif name in SYMBOLIC:
                assert value == rec[name] and value in SYMBOLIC[name]
            else:
                assert value == str(rec[name])
    loaded = load_kdd(out)
    assert len(loaded.features) == len(lines) and loaded.unknown_symbols == {}
    assert (loaded.labels == "").all()


def test_loader_reads_the_shared_datasets():
    counts = {"kddcup99/kddcup.data_10_percent.gz": 494_021, "nsl-kdd/KDDTest+.txt.gz": 22_544}
    for name, rows in counts.items():
        data = load_kdd(SHARED / "datasets" / name)
        assert len(data.features) == rows
        assert set(data.labels[:1000]) <= {"normal", "neptune", "smurf", "back", "satan", "ipsweep", "portsweep",
                                           "teardrop", "warezclient", "guess_passwd", "pod", "nmap",
                                           "buffer_overflow", "land", "imap", "warezmaster", "rootkit",
                                           "loadmodule", "ftp_write", "multihop", "phf", "perl", "spy", "mscan",
                                           "apache2", "processtable", "snmpgetattack", "saint", "httptunnel",
                                           "mailbomb", "snmpguess", "xterm", "ps", "named", "sendmail", "xlock",
                                           "xsnoop", "worm", "udpstorm", "sqlattack"}
    nsl = load_kdd(SHARED / "datasets" / "nsl-kdd" / "KDDTest+.txt.gz")
    assert nsl.difficulty.min() >= 0 and nsl.difficulty.max() <= 21
    assert int(np.sum(nsl.labels == "normal")) == 9_711  # the datasets README's count


def test_loader_names_the_bad_line(tmp_path):
    good = "0,tcp,http,SF,181,5450" + ",0" * 16 + ",8,8" + ",0.00" * 7 + ",9,9" + ",1.00" * 8 + ",normal."
    path = tmp_path / "bad.csv"
    path.write_text(good + "\n" + good.replace("181", "lots") + "\n")
    with pytest.raises(DatasetError, match=r"bad.csv:2: column 5 \(src_bytes\)"):
        load_kdd(path)
    path.write_text("1,2,3\n")
    with pytest.raises(DatasetError, match="3 fields"):
        load_kdd(path)


def test_docs_evidence_matches_the_data():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "kdd_evidence.py"), "--check"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
