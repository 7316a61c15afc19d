"""``sensor run`` on the lab's mirror port, beside tcpdump: the alerts a
deployed sensor would raise, and when.

The sensor runs as it would on a gateway: the shipped example
configuration (systemd/sensor.yaml, with its live settings
``limits.hold_seconds: 0.05`` and ``timeouts.tcp_handshake: 5``),
dropped to ``nobody``, alerts to a file.  A watcher thread tails that file and
stamps each alert line with the wall-clock time it appeared, so
``arrived - first packet of the phase`` is the latency an analyst
sees: the connection's end or timeout, the sensor's expiry tick, the
rules' thresholds and the sink's write, all included.  The capture's
timestamps are the same wall clock (one machine).

The stamped lines go to ``OUT/live-alerts.jsonl`` and the sensor's own
log to ``OUT/live-sensor.log``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from topology import Topology

POLL = 0.02         # seconds between looks at the alert file
EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "sensor.yaml"


def lab_config(alerts: Path) -> str:
    """The shipped example configuration, with the lab's interface, an
    existing unprivileged user, no metrics port and one file sink."""
    config = yaml.safe_load(EXAMPLE.read_text())
    config["capture"]["interfaces"] = ["span1"]
    config["daemon"].update(user="nobody", stats_seconds=10, metrics=None)
    config["alerts"]["to"] = [f"file:{alerts}"]
    return yaml.safe_dump(config)


class LiveSensor:
    def __init__(self, lab: Topology, work: Path, out: Path):
        self.lab, self.out = lab, out
        self.alerts = work / "live-alerts.raw.jsonl"   # the lab's work dir: readable and writable by nobody
        self.config = work / "live-sensor.yaml"
        self.log = out / "live-sensor.log"
        self.stamped = out / "live-alerts.jsonl"
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="lab-live-alerts", daemon=True)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start the sensor and wait until it captures."""
        self.config.write_text(lab_config(self.alerts))
        self.alerts.touch()
        self.alerts.chmod(0o666)
        self.proc = self.lab.start(self.lab.bridge_ns, sys.executable, "-m", "sensor", "run", "-c", str(self.config),
                                   log=self.log)
        deadline = time.monotonic() + timeout
        while '"capturing"' not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the lab's live sensor did not start; see {self.log}")
            time.sleep(0.05)
        self._watcher.start()

    def stop(self) -> int:
        """SIGTERM (the sensor flushes what it holds), then the last lines."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self._stop.set()
        self._watcher.join(10)
        return code

    def _watch(self) -> None:
        with open(self.alerts, "rb") as src, open(self.stamped, "w") as dst:
            pending = b""
            while True:
                stopping = self._stop.is_set()      # read once more after the sensor has exited
                chunk = src.read()
                now = time.time()
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    dst.write(json.dumps({"arrived": now, **json.loads(line)}) + "\n")
                dst.flush()
                if stopping:
                    return
                self._stop.wait(POLL)
