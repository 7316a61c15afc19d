"""Configuration files: validated into one object, errors naming file and line."""

from __future__ import annotations

import pytest
from craft import replay
from conftest import FIXTURES

from sensor.config import ConfigError, SensorConfig, load_config


def test_empty_file_is_all_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path) == SensorConfig()


def test_values_are_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("timeouts:\n  tcp_close: 2.5\ntraffic:\n  diff_rates: complement\n  host_window: 100\n")
    c = load_config(path)
    assert c.timeouts.tcp_close == 2.5 and c.traffic.diff_rates == "complement" and c.traffic.host_window == 100
    assert c.timeouts.tcp_attempt == SensorConfig().timeouts.tcp_attempt


@pytest.mark.parametrize(
    "text, where, words",
    [
        ("timeouts:\n  tcp_close: -1\n", ":2:", ["> 0", "$.timeouts.tcp_close"]),
        ("traffic:\n  host_window: 256\n  diff_rate: distinct\n", ":2:", ["unknown field `diff_rate`"]),
        ("traffic:\n  diff_rates: maybe\n", ":2:", ["distinct", "complement"]),
        ("timeouts: [1, 2\n", ":2:1:", []),
        ("- just\n- a list\n", ":1:", ["mapping"]),
    ],
)
def test_errors_name_the_file_and_line(tmp_path, text, where, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}{where}"), message
    assert all(w in message for w in words), message


def test_replay_reports_a_bad_config_without_a_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("limits:\n  reorder_records: lots\n")
    result = replay(FIXTURES / "ftp-bruteforce.pcap", extra=("--config", str(path)))
    assert result.returncode == 2 and result.stdout == ""
    assert f"{path}:2:" in result.stderr and "Traceback" not in result.stderr
