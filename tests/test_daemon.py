"""The daemon's behaviour around the pipeline: signals, reload, wall-clock
expiry, dropping root, capture filters, and its configuration errors.
Live traffic runs in a private namespace (see netlab.py)."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import time

import pytest

import netlab
from conftest import ROOT, SHARED
from test_live import replay_records, untimed

CAPTURES = SHARED / "pcaps"
FTP = CAPTURES / "zeek__ftp-bruteforce.pcap"

live = pytest.mark.skipif(netlab.available() is not None, reason=str(netlab.available()))



def first_packets(capture, n: int, out):
    subprocess.run(["editcap", "-r", str(capture), str(out), f"1-{n}"], check=True, capture_output=True)
    return out


def last_packets(capture, n: int, out):
    subprocess.run(["editcap", str(capture), str(out), f"1-{n}"], check=True, capture_output=True)
    return out


@live
def test_sigterm_flushes_every_open_connection(lab, tmp_path):
    """Half of a brute-force run, cut mid-connections: every connection
    open at SIGTERM is flushed as a record, as the end of a file is."""
    half = first_packets(FTP, 300, tmp_path / "half.pcap")
    sensor = netlab.Sensor(lab)
    lab.replay(half)
    time.sleep(0.3)
    assert sensor.stop(signal.SIGTERM) == 0
    live_records = sensor.record_lines()
    expected = replay_records(half, "--no-alerts")
    assert {r["conn_state"] for r in live_records} >= {"SF", "S1"}   # some were still open
    assert untimed(live_records) == untimed(expected)
    assert sensor.wait_for("stopped")["connections"] == len(expected)


@live
def test_sigint_stops_cleanly_too(lab, tmp_path):
    sensor = netlab.Sensor(lab)
    lab.replay(first_packets(FTP, 100, tmp_path / "a.pcap"))
    time.sleep(0.3)
    assert sensor.stop(signal.SIGINT) == 0
    assert sensor.record_lines()


@live
def test_connections_expire_on_the_wall_clock_when_traffic_stops(lab, tmp_path):
    # udp only: records leave in start order, and an older TCP connection
    # still open would rightly hold the UDP records back
    sensor = netlab.Sensor(lab, "timeouts:\n  udp_inactivity: 1.0\ncapture:\n  expire_seconds: 0.2\n"
                                          "  filter: udp\n")
    dns = first_packets(CAPTURES / "ppa__dns.cap", 40, tmp_path / "dns.pcap")
    lab.replay(dns)
    expected = [r for r in replay_records(dns, "--no-alerts") if r["proto"] == "udp"]
    udp = lambda: [r for r in sensor.record_lines() if r["proto"] == "udp"]  # noqa: E731
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(udp()) < len(expected):
        time.sleep(0.1)
    # no packet and no signal since the replay: only the clock ended them
    assert [(r["id.orig_p"], r["history"]) for r in udp()] == [(r["id.orig_p"], r["history"]) for r in expected]
    assert sensor.proc.poll() is None
    assert sensor.stop() == 0


@live
def test_root_is_dropped_once_the_capture_is_open(lab, tmp_path):
    sensor = netlab.Sensor(lab)
    status = open(f"/proc/{sensor.proc.pid}/status").read()
    nobody = pwd.getpwnam("nobody").pw_uid
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert uids == [str(nobody)] * 4
    caps = next(line for line in status.splitlines() if line.startswith("CapEff:")).split()[1]
    assert int(caps, 16) == 0
    lab.replay(first_packets(FTP, 50, tmp_path / "a.pcap"))   # the socket still delivers
    time.sleep(0.3)
    assert sensor.stop() == 0
    assert sensor.record_lines()


@live
def test_a_records_only_daemon_logs_and_captures_after_dropping_root(lab, tmp_path):
    """With alerts off nothing imports logging before the drop; the
    daemon must still log (and capture) as nobody."""
    sensor = netlab.Sensor(lab, "alerts:\n  enabled: false\n")
    lab.replay(first_packets(FTP, 100, tmp_path / "a.pcap"))
    time.sleep(0.3)
    assert sensor.stop() == 0
    assert sensor.record_lines() and not sensor.alerts.exists()
    assert sensor.wait_for("stopped")["packets"] == 100


@live
def test_capture_filter_is_applied_in_the_kernel(lab, tmp_path):
    capture = CAPTURES / "zeek__wikipedia.pcap"
    sensor = netlab.Sensor(lab, "capture:\n  filter: udp port 53\n")
    lab.replay(capture)
    time.sleep(0.3)
    assert sensor.stop() == 0
    got = sensor.record_lines()
    everything = replay_records(capture, "--no-alerts")
    dns = [r for r in everything if r["proto"] == "udp" and 53 in (r["id.orig_p"], r["id.resp_p"])]
    assert len(everything) > len(dns) > 0
    assert [(r["id.orig_h"], r["id.resp_h"], r["history"]) for r in got] == \
           [(r["id.orig_h"], r["id.resp_h"], r["history"]) for r in dns]
    assert sensor.wait_for("stopped")["kernel_drops"] == {lab.sniff: 0}


@live
def test_sighup_keeps_the_old_rules_on_a_broken_file_and_takes_a_good_one(lab, tmp_path):
    rules = lab.dir / "rules.yaml"
    rules.write_text(_RULE.format(id="ftp-seen", condition="service == ftp"))
    sensor = netlab.Sensor(lab, f"alerts:\n  rules: [{rules}]\n  models: {lab.models}\n"
                                "timeouts:\n  tcp_close: 0.5\ncapture:\n  expire_seconds: 0.1\n")
    first, second = first_packets(FTP, 300, tmp_path / "a.pcap"), last_packets(FTP, 300, tmp_path / "b.pcap")
    lab.replay(first)
    deadline = time.monotonic() + 10
    while "ftp-seen" not in {a["rule"] for a in sensor.alert_lines()} and time.monotonic() < deadline:
        time.sleep(0.1)

    rules.write_text("rules:\n  - id: broken\n    condition: service ==\n")
    mark = len(sensor.events())
    sensor.proc.send_signal(signal.SIGHUP)
    refused = sensor.wait_for("reload refused; the running configuration stays", after=mark)
    assert f"{rules}:3:26: expected a field" in refused["error"]
    assert sensor.proc.poll() is None

    rules.write_text(_RULE.format(id="failed-ftp-login", condition="service == ftp and num_failed_logins >= 1"))
    mark = len(sensor.events())
    sensor.proc.send_signal(signal.SIGHUP)
    reloaded = sensor.wait_for("rules reloaded", after=mark)
    assert sorted(reloaded["changes"]) == ["added failed-ftp-login", "removed ftp-seen"]
    lab.replay(second)
    time.sleep(0.3)
    assert sensor.stop() == 0

    fired = {a["rule"] for a in sensor.alert_lines()}
    assert fired == {"ftp-seen", "failed-ftp-login"}
    # connections open across both reloads are whole: the records equal a
    # replay of the whole run
    whole = replay_records(FTP, "--no-alerts")
    assert [(r["id.orig_p"], r["history"], r["orig_bytes"]) for r in sensor.record_lines()] == \
           [(r["id.orig_p"], r["history"], r["orig_bytes"]) for r in whole]


_RULE = """rules:
  - id: {id}
    description: test rule
    category: r2l
    severity: low
    condition: {condition}
"""


# -- start-up errors: no traffic needed ----------------------------------------


def _run(*args: str, config: str | None = None, tmp_path=None) -> subprocess.CompletedProcess:
    argv = [*netlab.SENSOR, "run"]
    if config is not None:
        path = tmp_path / "sensor.yaml"
        path.write_text(config)
        argv += ["-c", str(path)]
    return subprocess.run(argv + list(args), capture_output=True, text=True, cwd=ROOT, timeout=60)


def _error(out: subprocess.CompletedProcess) -> str:
    events = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    return " ".join(e["event"] for e in events if e.get("level") == "error") or out.stderr


@live
def test_an_unknown_interface_is_a_clear_error(tmp_path):
    out = _run("-i", "nosuch0", "--alert-to", f"file:{tmp_path / 'a.jsonl'}")
    assert out.returncode == 1
    assert "no interface named 'nosuch0'" in _error(out)


@live
def test_a_bad_capture_filter_names_the_filter_and_libpcaps_reason(tmp_path):
    out = _run("-i", "lo", config="capture:\n  filter: tcp port banana\n", tmp_path=tmp_path)
    assert out.returncode == 1
    assert "capture filter 'tcp port banana'" in _error(out)


def test_no_interface_is_a_usage_error():
    out = _run()
    assert out.returncode == 2
    assert "no interface to capture on" in out.stderr


@live
def test_a_missing_user_to_drop_to_stops_start_up(tmp_path):
    out = _run("-i", "lo", "--alert-to", f"file:{tmp_path / 'a.jsonl'}",
               config="daemon:\n  user: no-such-user-here\n", tmp_path=tmp_path)
    assert out.returncode == 1
    assert "user 'no-such-user-here' does not exist" in _error(out)


def test_config_check_accepts_the_documented_example():
    out = subprocess.run([*netlab.SENSOR, "config", "check", str(ROOT / "systemd" / "sensor.yaml")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "valid" in out.stdout


@pytest.mark.parametrize("text, expected", [
    ("capture:\n  interfaces: [eth0]\n  snaplen: -1\n", ":3: Expected `int` >= 0 - at `$.capture.snaplen`"),
    ("daemon:\n  usr: sensor\n", ":2: Object contains unknown field `usr` - at `$.daemon`"),
    ("daemon:\n  log_format: xml\n", "expected one of: json, console"),
    ("capture: [\n", "sensor.yaml:2"),
])
def test_config_check_names_the_line_and_field(tmp_path, text, expected):
    path = tmp_path / "sensor.yaml"
    path.write_text(text)
    out = subprocess.run([*netlab.SENSOR, "config", "check", str(path)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2
    assert expected in out.stderr


@live
def test_systemd_notify_protocol_ready_watchdog_reload_stopping(lab, tmp_path):
    """Type=notify: READY=1 once capture is open, WATCHDOG=1 from the loop,
    RELOADING=1 then READY=1 around a reload, STOPPING=1 at the end."""
    import socket

    address = str(lab.dir / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(10)
    config = lab.dir / "sensor.yaml"
    config.write_text("daemon:\n  log_format: json\n")
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}
    proc = lab.start(*netlab.SENSOR, "run", "-c", str(config), "-i", lab.sniff, "--alert-to",
                     f"file:{lab.dir / 'alerts.jsonl'}", env=env, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)

    def until(message: str) -> list[str]:
        seen = []
        while True:
            seen.append(listener.recv(256).decode())
            if seen[-1] == message:
                return seen

    until("READY=1")
    until("WATCHDOG=1")     # the loop beats at half of 200 ms; recv times out (fails) otherwise
    proc.send_signal(signal.SIGHUP)
    until("RELOADING=1")
    until("READY=1")
    proc.send_signal(signal.SIGTERM)
    until("STOPPING=1")
    assert proc.wait(30) == 0
    listener.close()


@live
def test_learning_mode_records_a_period_then_writes_the_sites_models(lab, tmp_path):
    """learning.seconds: the daemon records the site's connections for the
    period, then fits its anomaly models off the packet loop and says where
    they are; it keeps running on the models it has."""
    from sensor.models.modelset import ModelSet

    out = lab.dir / "site-models"
    sensor = netlab.Sensor(lab, f"learning:\n  seconds: 3\n  out: {out}\n  false_positive_rate: 0.05\n"
                                f"alerts:\n  models: {lab.models}\n"
                                "timeouts:\n  tcp_close: 0.2\ncapture:\n  expire_seconds: 0.1\n")
    lab.replay(FTP)
    learned = sensor.wait_for("learned the site's models; set alerts.models to use them and reload", timeout=120)
    assert learned["connections"] == 30 and learned["models"] == str(out)
    assert sensor.proc.poll() is None
    assert sensor.stop() == 0
    models = ModelSet.load(out)
    assert models.autoencoder.metadata["training_data"] == "learning.jsonl"
    assert len((out / "learning.jsonl").read_text().splitlines()) == 30


@live
def test_a_file_the_sensors_user_cannot_read_refuses_the_reload_and_keeps_running(lab):
    rules = lab.dir / "rules.yaml"
    rules.write_text(_RULE.format(id="ftp-seen", condition="service == ftp"))
    sensor = netlab.Sensor(lab, f"alerts:\n  rules: [{rules}]\n  models: {lab.models}\n")
    rules.chmod(0o600)   # root's only: the daemon runs as nobody by now
    sensor.proc.send_signal(signal.SIGHUP)
    refused = sensor.wait_for("reload refused; the running configuration stays")
    assert "Permission denied" in refused["error"]
    assert sensor.proc.poll() is None
    assert sensor.stop() == 0
