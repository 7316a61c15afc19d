"""A private network namespace with a veth pair, for live-capture tests.

Traffic never leaves it: captures are replayed with tcpreplay into one
end (``inject``) and the sensor captures the other (``sniff``).  Offloads
are off on both ends so frames arrive as they were written (lab notes,
pitfall 2), IPv6 is off so the kernel adds no solicitations of its own
(pitfall 12), and the MTU is the veth maximum so a capture's oversize
frames still fit.  Teardown kills whatever runs inside before deleting
the namespace (pitfall 10).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SENSOR = [sys.executable, "-m", "sensor"]


def available() -> str | None:
    """Why a namespace lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs the suite as root)"
    for tool in ("ip", "tcpreplay", "tcpdump", "ethtool"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: run scripts/bootstrap --dev"
    return None


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True)


class VethLab:
    def __init__(self, name: str) -> None:
        self.ns = name
        self.inject, self.sniff = "inj0", "snf0"
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> "VethLab":
        # the sensor drops to nobody and must still read its files on reload:
        # a world-readable directory (pytest's tmp_path is root-only)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.ns}-"))
        self.dir.chmod(0o755)
        sh("ip", "netns", "del", self.ns, check=False)
        sh("ip", "netns", "add", self.ns)
        try:
            self.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            self.run("ip", "link", "add", self.inject, "type", "veth", "peer", "name", self.sniff)
            for dev in (self.inject, self.sniff):
                self.run("ip", "link", "set", dev, "mtu", "65535")
                self.run("ethtool", "-K", dev, "rx", "off", "tx", "off", "tso", "off", "gso", "off", "gro", "off",
                         check=False)
                self.run("ip", "link", "set", dev, "up")
            self.run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        pids = sh("ip", "netns", "pids", self.ns, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        sh("ip", "netns", "del", self.ns, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.ns, *args, check=check)

    def start(self, *args: str, **kw) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns, *args], cwd=ROOT, **kw)
        self._procs.append(proc)
        return proc

    @property
    def models(self) -> Path:
        """A copy of the shipped model set the sensor can still read after
        dropping to nobody (a checkout may sit in a directory only root reads)."""
        copy = self.dir / "models"
        if not copy.exists():
            copy.mkdir()
            for model in (ROOT / "models").glob("*.onnx"):
                shutil.copyfile(model, copy / model.name)
        return copy

    def metrics(self, address: str = "127.0.0.1:9750") -> dict[str, float]:
        """The samples of a sensor's Prometheus endpoint, read from inside the
        namespace (it binds the namespace's loopback); empty if it is not up."""
        fetch = ("import sys, urllib.request; "
                 f"sys.stdout.write(urllib.request.urlopen('http://{address}/metrics').read().decode())")
        samples = {}
        for line in self.run(sys.executable, "-c", fetch, check=False).stdout.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    def replay(self, capture: Path, pps: int = 2000, loops: int = 1) -> None:
        """Send a capture's frames into the inject end at a fixed rate, or
        as fast as tcpreplay can (pps 0), ``loops`` times over."""
        rate = f"--pps={pps}" if pps else "--topspeed"
        out = self.run("tcpreplay", "-q", "-i", self.inject, rate, f"--loop={loops}", str(capture))
        failed = re.search(r"Failed packets:\s+(\d+)", out.stdout)
        assert failed and failed.group(1) == "0", out.stdout


class Sensor:
    """``sensor run`` inside the lab, with JSON logs read back from stderr."""

    def __init__(self, lab: VethLab, config: str = "", *args: str, records: bool = True) -> None:
        tmp = lab.dir
        self.config = tmp / "sensor.yaml"
        self.config.write_text("daemon:\n  user: nobody\n  log_format: json\n  stats_seconds: 1\n" + config)
        self.records = tmp / "records.jsonl"
        self.alerts = tmp / "alerts.jsonl"
        self.log = tmp / "sensor.log"
        self._log = open(self.log, "wb")
        output = ["-o", str(self.records)] if records else []
        self.proc = lab.start(*SENSOR, "run", "-c", str(self.config), "-i", lab.sniff, *output,
                              "--alert-to", f"file:{self.alerts}", *args,
                              stdout=subprocess.DEVNULL, stderr=self._log)
        self.wait_for("capturing")

    def events(self) -> list[dict]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"event": line})
        return out

    def wait_for(self, event: str, timeout: float = 20.0, after: int = 0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events()[after:] if e.get("event") == event]
            if found:
                return found[0]
            if self.proc.poll() is not None:
                raise AssertionError(f"sensor exited {self.proc.returncode} before {event!r}:\n{self.log.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"no {event!r} within {timeout} s:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def record_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.records.read_text().splitlines()] if self.records.exists() else []

    def alert_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.alerts.read_text().splitlines()] if self.alerts.exists() else []
