"""The systemd unit: it verifies, and its hardening rates "OK" (exposure
at most 2.0 in systemd-analyze security) while keeping what capture needs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

UNIT = ROOT / "systemd" / "sensor.service"


def _settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_unit_verifies(tmp_path):
    # verify checks that ExecStart exists: point it at this checkout's sensor
    unit = tmp_path / "sensor.service"
    unit.write_text(UNIT.read_text().replace("/opt/sensor/bin/sensor", str(Path(sys.executable).parent / "sensor")))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == ""


def test_security_exposure_is_at_most_two():
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(UNIT)],
                         capture_output=True, text=True)
    level = re.search(r"Overall exposure level for sensor\.service: ([0-9.]+) (\w+)", out.stdout)
    assert level, out.stdout + out.stderr
    assert float(level.group(1)) <= 2.0 and level.group(2) == "OK"
    assert out.returncode == 0


def test_unit_keeps_what_capture_needs_and_nothing_else():
    s = _settings()
    assert s["Type"] == ["notify"] and s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert set(s["AmbientCapabilities"][0].split()) == {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert s["CapabilityBoundingSet"] == s["AmbientCapabilities"]
    assert "AF_PACKET" in s["RestrictAddressFamilies"][0].split()
    assert s["User"] == ["sensor"] and s["NoNewPrivileges"] == ["yes"] and s["ProtectSystem"] == ["strict"]
    assert s["StateDirectory"] == ["sensor"] and s["WatchdogSec"]
    # the example configuration the unit reads is valid
    out = subprocess.run([sys.executable, "-m", "sensor", "config", "check", str(ROOT / "systemd" / "sensor.yaml")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
