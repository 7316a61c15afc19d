"""Detection end to end: rules and models over real captures, episodes, alerts.

The shared captures are real traffic (scans, floods, password guessing,
normal sessions); what each must raise is what an analyst would expect
from its README description, not what the rules happened to produce.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import jsonschema
import numpy as np
import pytest

from conftest import ROOT, SHARED
from sensor.alerts.detector import Detector
from sensor.alerts.episodes import NS, UID_SAMPLE, Matches, Pacing, RuleEpisodes
from sensor.alerts.setup import load_models, load_ruleset
from sensor.alerts.values import address_text, uid_text
from sensor.config import SensorConfig
from sensor.replay import replay
from sensor.rules.fields import address_int

CAPTURES = SHARED / "pcaps"
ALERT_SCHEMA = json.loads((ROOT / "docs" / "schemas" / "alert.schema.json").read_text())
RECORD_SCHEMA = json.loads((ROOT / "docs" / "schemas" / "record.schema.json").read_text())

SCANS = [
    "chrissanders__synscan.pcapng", "esnet__masscan_tcp_0_1000.pcap", "evilfingers__nmap_ACK_SCAN.pcap",
    "evilfingers__nmap_FIN_SCAN.pcap", "evilfingers__nmap_UDP_SCAN.pcap", "evilfingers__nmap_XMAS_TREE_SCAN.pcap",
    "evilfingers__xprobe_icmp_udp_scan.pcap", "evilfingers__xprobe_tcp_scan.pcap",
    "favilli__hs-tcp_ackPingSweepRand.pcapng", "kdd99sparkml__nmap.pcap", "zeek__nmap-vsn.pcap",
]
SYN_FLOODS = ["nsl-kdd-examine__synflood.pcapng", "ppa__dosattack.pcap",
              "stopddos__pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng", "mlqos__ddos_synthetic.pcap"]
NORMAL = ["ppa__dns.cap", "zeek__http-bro.org.pcap", "zeek__wikipedia.pcap", "zeek__smtp.pcap",
          "zeek__pop3.pcap", "ppa__telnet.pcap"]


@pytest.fixture(scope="module")
def rules():
    return load_ruleset([])


@pytest.fixture(scope="module")
def models(rules):
    return load_models(None, required=True)


class Collect:
    """An alert sink that keeps every emission (the sinks have their own tests)."""

    def __init__(self):
        self.alerts = []
        self.closed = False

    def send(self, alerts):
        self.alerts.extend(json.loads(json.dumps(a)) for a in alerts)

    def flush(self, timeout=None):
        return True

    def close(self):
        self.closed = True


def detect(capture: str, rules, models) -> tuple[Detector, Collect]:
    sink = Collect()
    detector = Detector(rules, models, [sink], "test-sensor")
    replay([CAPTURES / capture], SensorConfig(), [detector])
    assert sink.closed
    return detector, sink


def medium_or_above(detector: Detector) -> list[dict]:
    return [a for a in detector.alerts.values() if a["severity"] in ("medium", "high", "critical")]


# -- the shared captures ---------------------------------------------------------


@pytest.mark.parametrize("capture", SCANS)
def test_every_scan_raises_a_probe_alert(capture, rules, models):
    detector, _ = detect(capture, rules, models)
    probes = [a for a in medium_or_above(detector) if a["category"] == "probe"]
    assert probes, f"{capture}: {[(a['rule'], a['severity']) for a in detector.alerts.values()]}"


@pytest.mark.parametrize("capture", SYN_FLOODS)
def test_every_syn_flood_raises_a_dos_alert(capture, rules, models):
    detector, _ = detect(capture, rules, models)
    floods = [a for a in detector.alerts.values() if a["category"] == "dos" and a["severity"] == "high"]
    assert floods
    assert all(a["proto"] in ("tcp", "icmp") for a in floods)


def test_ftp_bruteforce_raises_password_guessing_with_its_evidence(rules, models):
    detector, sink = detect("zeek__ftp-bruteforce.pcap", rules, models)
    (alert,) = [a for a in detector.alerts.values() if a["rule"] == "password-guessing"]
    assert alert["category"] == "r2l" and alert["severity"] == "high"
    assert alert["dst_port"] == 21 and alert["service"] == "ftp"
    assert alert["observed"]["num_failed_logins"] >= 1
    assert alert["thresholds"] == {"num_failed_logins": ">= 1"}
    # the episode counts every failed login after the third: the capture has 30
    records = _records("zeek__ftp-bruteforce.pcap")
    failed = [r for r in records if r["kdd"]["num_failed_logins"] >= 1]
    assert alert["count"] == len(failed) - 2
    assert set(alert["uids"]) <= {r["uid"] for r in failed}
    # one episode, emitted when it opened and once more with its final count
    emissions = [a for a in sink.alerts if a["id"] == alert["id"]]
    assert [e["update"] for e in emissions] == list(range(len(emissions)))
    assert emissions[-1]["count"] == alert["count"] and emissions[0]["count"] < alert["count"]


@pytest.mark.parametrize("capture", NORMAL)
def test_normal_captures_raise_nothing_at_medium_or_above(capture, rules, models):
    detector, _ = detect(capture, rules, models)
    assert detector.stats, "the rules ran"
    assert medium_or_above(detector) == []


def test_a_flood_is_one_episode_not_thousands(rules, models):
    detector, sink = detect("stopddos__pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng", rules, models)
    floods = [a for a in detector.alerts.values() if a["rule"] == "syn-flood"]
    assert len(floods) == 1
    (flood,) = floods
    assert flood["count"] == detector.stats["syn-flood"].matches > 1000
    assert flood["distinct"]["src"] > 1000 and flood["distinct"]["dst"] == 1
    assert len({a["id"] for a in sink.alerts if a["rule"] == "syn-flood"}) == 1


def test_alerts_follow_the_published_schema_and_carry_model_evidence(rules, models):
    detector, sink = detect("evilfingers__nmap_UDP_SCAN.pcap", rules, models)
    assert sink.alerts
    for alert in sink.alerts:
        jsonschema.validate(alert, ALERT_SCHEMA)
        scores = alert["scores"]
        assert abs(sum(scores["classifier"]["probabilities"].values()) - 1) < 1e-3
        assert scores["autoencoder"]["threshold"] == pytest.approx(models.autoencoder.threshold, rel=1e-5)
        top = scores["autoencoder"]["top_features"]
        assert len(top) == 5 and top == sorted(top, key=lambda t: -t["share"])
        assert alert["sensor"] == "test-sensor" and alert["schema"] == "kdd99-41/1"


def test_records_follow_the_published_schema():
    for record in _records("zeek__wikipedia.pcap") + _records("evilfingers__xprobe_icmp_udp_scan.pcap"):
        jsonschema.validate(record, RECORD_SCHEMA)
    names = list(RECORD_SCHEMA["properties"]["kdd"]["properties"])
    from sensor.features.kdd import KDD_FEATURES

    assert names == list(KDD_FEATURES)


def test_a_suppression_silences_its_source_only(tmp_path, models):
    records = _records("evilfingers__nmap_FIN_SCAN.pcap")
    scanner, probes = Counter(r["id.orig_h"] for r in records).most_common(1)[0]
    assert probes >= 1000
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text((ROOT / "rules" / "default.yaml").read_text() + f"""
suppress:
  - {{rule: port-scan, track: by_src, ip: {scanner}, reason: the vulnerability scanner}}
""")
    detector, _ = detect("evilfingers__nmap_FIN_SCAN.pcap", load_ruleset([str(rules_file)]), models)
    assert "port-scan" not in {a["rule"] for a in detector.alerts.values()}
    assert "slow-scan" in {a["rule"] for a in detector.alerts.values()}


# -- episodes --------------------------------------------------------------------


def _feed(pacing: Pacing, times_s: list[float], ports: list[int] | None = None, idle_s: float = 60,
          one_batch: bool = True):
    emitted = []
    episodes = RuleEpisodes("r", pacing, int(idle_s * NS), "s", lambda e, why: emitted.append((why, e.count, e.id, e.first_ns // NS)))
    ts = (np.asarray(times_s) * NS).astype(np.int64)
    n = len(ts)
    ports = np.asarray(ports if ports is not None else [80] * n, dtype=np.uint16)
    zeros = np.zeros(n, np.uint64)
    for rows in [np.arange(n)] if one_batch else np.split(np.arange(n), n):
        episodes.observe(Matches.of([(1,)], [0, len(rows)], rows, ts, np.arange(n, dtype=np.uint64), zeros, zeros, ports))
    episodes.finish()
    return emitted


def test_threshold_opens_at_the_nth_match_within_the_window():
    spread = _feed(Pacing("threshold", 3, 10 * NS), [0, 20, 40, 60])          # never 3 within 10 s
    assert spread == []
    burst = _feed(Pacing("threshold", 3, 10 * NS), [0, 20, 21, 22, 23, 24, 25, 26])
    # opened by the match at 22 s; one batch, so the opening emission already
    # counts the 5 matches from there on, and nothing is left for a closing one
    assert [(why, count, first) for why, count, _, first in burst] == [("open", 5, 22)]


def test_limit_opens_on_the_first_match_and_reemits_at_most_n_per_window():
    emitted = _feed(Pacing("limit", 2, 10 * NS), [0, 1, 2, 3, 4, 11, 12], one_batch=False)
    # two emissions in the window from 0 s, two in the one from 11 s
    assert [(e[0], e[1]) for e in emitted] == [("open", 1), ("update", 2), ("update", 6), ("update", 7)]
    assert len({e[2] for e in emitted}) == 1


def test_idle_gap_splits_episodes_with_different_ids():
    emitted = _feed(Pacing("limit", 1, 10 * NS), [0, 1, 500, 501], idle_s=60)
    assert [(e[1], e[3]) for e in emitted] == [(2, 0), (2, 500)]
    assert len({e[2] for e in emitted}) == 2


def test_distinct_threshold_counts_ports_not_connections():
    same_port = _feed(Pacing("both", 5, 60 * NS, "dst_port"), [0, 1, 2, 3, 4, 5, 6], ports=[80] * 7)
    assert same_port == []
    scan = _feed(Pacing("both", 5, 60 * NS, "dst_port"), [0, 1, 2, 3, 4, 5, 6], ports=[80, 81, 82, 80, 83, 84, 85])
    assert [(e[0], e[3]) for e in scan] == [("open", 5)]   # the 5th distinct port is the record at 5 s


# -- values ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["10.1.2.3", "2001:db8::1", "::1", "0.0.0.0"])
def test_addresses_read_back_as_the_records_print_them(text):
    value = address_int(text)
    assert address_text(value >> 64, value & (2**64 - 1)) == text


def test_uids_read_back_as_the_records_print_them(rules, models):
    sink = Collect()
    detector = Detector(rules, models, [sink], "t")
    replay([CAPTURES / "zeek__ftp-bruteforce.pcap"], SensorConfig(), [detector])
    printed = {r["uid"] for r in _records("zeek__ftp-bruteforce.pcap")}
    assert {u for a in sink.alerts for u in a["uids"]} <= printed
    assert uid_text(0) == "C00000000000"


def test_an_episodes_uid_sample_holds_its_own_connections_only(rules, models):
    """The sample is the episode's first connections, never a neighbour
    group's (a one-connection episode lists one uid)."""
    _, sink = detect("zeek__ssh.pcap", rules, models)
    records = {r["uid"]: r for r in _records("zeek__ssh.pcap")}
    assert any(a["count"] < UID_SAMPLE for a in sink.alerts)
    for alert in sink.alerts:
        assert len(set(alert["uids"])) == len(alert["uids"]) == min(alert["count"], UID_SAMPLE), alert["rule"]
        if alert["track"] == "by_pair":
            assert {(records[u]["id.orig_h"], records[u]["id.resp_h"]) for u in alert["uids"]} == {(alert["src"], alert["dst"])}


# -- the command line ---------------------------------------------------------------


def _sensor(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sensor", *args], capture_output=True, text=True, cwd=ROOT, **kw)


def _records(capture: str) -> list[dict]:
    out = _sensor("replay", str(CAPTURES / capture), "--no-alerts", "-q")
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_replay_alerts_by_default_and_prints_a_summary_table(tmp_path):
    alerts_file = tmp_path / "alerts.jsonl"
    out = _sensor("replay", str(CAPTURES / "zeek__ftp-bruteforce.pcap"), "-o", str(tmp_path / "records.jsonl"),
                  "--alert-to", f"file:{alerts_file}")
    assert out.returncode == 0, out.stderr
    alerts = [json.loads(line) for line in alerts_file.read_text().splitlines()]
    assert "password-guessing" in {a["rule"] for a in alerts}
    table = out.stderr[out.stderr.index("alerts:"):]
    assert "password-guessing" in table and "192.168.56.1 -> 192.168.56.101:21" in table
    # records still go where they always went
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == 30


def test_no_alerts_means_records_only():
    out = _sensor("replay", str(CAPTURES / "zeek__ftp-bruteforce.pcap"), "--no-alerts")
    assert out.returncode == 0 and "alerts:" not in out.stderr
    assert len(out.stdout.splitlines()) == 30


def test_rules_test_reports_hits_examples_and_silent_rules():
    out = _sensor("rules", "test", "rules/", str(CAPTURES / "zeek__ftp-bruteforce.pcap"), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    guessing = report["rules"]["password-guessing"]
    assert guessing["matches"] == 30 and guessing["episodes"] == 1
    assert guessing["examples"][0]["dst_port"] == 21 and guessing["seconds"] > 0
    assert "syn-flood" in report["never_fired"] and "password-guessing" not in report["never_fired"]


def test_a_bad_rule_file_stops_replay_with_its_position(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: x\n    description: d\n    category: dos\n    severity: high\n"
                   "    condition: serorr_rate >= 1\n")
    out = _sensor("replay", str(CAPTURES / "zeek__ftp-bruteforce.pcap"), "--rules", str(bad))
    assert out.returncode == 2
    assert f"{bad}:6:16" in out.stderr and "serror_rate" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_a_bad_sink_url_is_refused_before_reading(tmp_path):
    out = _sensor("replay", str(CAPTURES / "zeek__ftp-bruteforce.pcap"), "--alert-to", "syslog://nohost")
    assert out.returncode == 2 and "syslog://nohost" in out.stderr and out.stdout == ""


def test_alert_sinks_and_rules_come_from_the_configuration_too(tmp_path):
    alerts_file = tmp_path / "from-config.jsonl"
    config = tmp_path / "sensor.yaml"
    config.write_text(f"alerts:\n  to: ['file:{alerts_file}']\n  rules: ['{ROOT / 'rules'}']\n")
    out = _sensor("replay", str(CAPTURES / "zeek__ftp-bruteforce.pcap"), "-c", str(config), "-o", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr
    assert "password-guessing" in {json.loads(line)["rule"] for line in alerts_file.read_text().splitlines()}
    assert out.stdout == ""  # a sink was named, so the terminal gets none


def test_the_shipped_rules_check_clean():
    import yaml

    count = len(yaml.safe_load((ROOT / "rules" / "default.yaml").read_text())["rules"])
    out = _sensor("rules", "check", "rules/")
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout.strip() == f"rules/default.yaml: {count} rules OK"
