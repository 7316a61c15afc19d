"""``sensor run``: the live sensor, a thin shell around the pipeline.

The shell opens the capture, builds the same pipeline and detector as a
replay, drops root, tells systemd it is ready, and then loops: drain the
capture rings into the pipeline, expire connections on the wall clock,
beat the watchdog, log stats.  Signals only set flags the loop reads:

- ``SIGHUP`` reloads the configuration, rules and models.  They are read
  and validated on a helper thread while capture goes on; an invalid file
  leaves the running set untouched and is logged with file and line.
  Connection and window state are never touched; rules and models are
  swapped between two batches.
- ``SIGTERM``/``SIGINT`` stop capture, flush every open connection
  through features, scoring and sinks, drain the sinks (a webhook that
  cannot take its alerts keeps them in its spool) and exit 0.
"""

from __future__ import annotations

import os
import pwd
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import msgspec

from sensor._logging import get_logger
from sensor.background import BackgroundSink
from sensor.capture.live import CaptureError, LiveCapture, RingSize
from sensor.config import ConfigError, SensorConfig, load_config
from sensor.metrics import Sources, serve
from sensor.output import RecordWriter
from sensor.pipeline import Pipeline
from sensor.service import PrivilegeError, Watchdog, drop_root, notify

log = get_logger("sensor.daemon")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
POLL_SECONDS = 0.1
RING_BLOCK_BYTES = 4 << 20
RESERVE_MB = 96       # batches, feature windows, detector episodes, sink queues
MIN_TRACKER_MB = 16


@dataclass(frozen=True)
class RunOptions:
    """Command-line values, which override the configuration file's."""

    config: str | None = None
    interfaces: tuple[str, ...] = ()
    records: str | None = None
    alert_to: tuple[str, ...] = ()


@dataclass
class _Loaded:
    """A validated configuration with its rules and models, ready to swap in."""

    config: SensorConfig
    rules: object = None
    models: object = None


@dataclass
class _Flags:
    stop: bool = False
    reload: bool = False
    pending: list = field(default_factory=list)   # (loaded or None) from the reload thread


class Daemon:
    def __init__(self, options: RunOptions, config: SensorConfig) -> None:
        self.options = options
        self.config = config
        self.flags = _Flags()
        self.capture: LiveCapture | None = None
        self.detector = None
        self.background: BackgroundSink | None = None
        self.records = None
        self.sources: Sources | None = None
        self.learning = None
        self._stop_metrics = None

    # -- start ---------------------------------------------------------------

    def run(self) -> int:
        config = self.config
        try:
            interfaces = self._interfaces(config)
        except ConfigError as exc:
            log.error(str(exc))
            return EXIT_USAGE
        try:
            self.capture = self._open_capture(config, interfaces)
            pipeline = self._build(config)
            budget = self._bound_memory(config, pipeline)
            self.sources = Sources(pipeline, self.capture, self.detector, self.background)
            self._stop_metrics = serve(config.daemon.metrics, self.sources) if config.daemon.metrics else None
            _import_before_dropping_root()
            user = drop_root(config.daemon.user, self._writable(config))
        except (CaptureError, PrivilegeError, ValueError, OSError, ImportError) as exc:
            log.error(str(exc) if not isinstance(exc, ImportError) else
                      f"learning mode needs the training extra (pip install 'sensor[train]'): {exc.name} is missing")
            self._close_early()
            return EXIT_FAILED
        self._install_signals()
        log.info("capturing", interfaces=interfaces, filter=config.capture.filter or None,
                 user=user or _current_user(), alerts=self.detector is not None, metrics=config.daemon.metrics,
                 max_connections=config.limits.connections, tracker_budget_mb=budget)
        notify("READY=1")
        self._loop(config, pipeline)
        return EXIT_OK

    def _bound_memory(self, config: SensorConfig, pipeline: Pipeline) -> int | None:
        """Give the connection table what the memory budget leaves once
        start-up, the capture rings and a reserve are counted; MiB, or None
        when no budget is set."""
        if not config.limits.memory_mb:
            return None
        rings = config.capture.ring_mb * len(self.capture.rings)
        left = config.limits.memory_mb - _rss_mb() - rings - RESERVE_MB
        if left < MIN_TRACKER_MB:
            raise ValueError(
                f"limits.memory_mb {config.limits.memory_mb} is too small: start-up holds {_rss_mb()} MiB, "
                f"the capture rings {rings} MiB, and {RESERVE_MB} MiB is kept for batches and alert state; "
                f"the connection table needs at least {MIN_TRACKER_MB} MiB")
        pipeline.tracker.set_limits(config.limits.connections, left << 20, config.limits.hold_seconds)
        return left

    def _read_config(self) -> SensorConfig:
        return load_config(self.options.config) if self.options.config else SensorConfig()

    def _interfaces(self, config: SensorConfig) -> list[str]:
        interfaces = list(self.options.interfaces) or list(config.capture.interfaces)
        if not interfaces:
            raise ConfigError("no interface to capture on: name one with -i or in capture.interfaces")
        return interfaces

    def _open_capture(self, config: SensorConfig, interfaces: Sequence[str]) -> LiveCapture:
        c = config.capture
        blocks = max(2, c.ring_mb * (1 << 20) // RING_BLOCK_BYTES)
        return LiveCapture(interfaces, c.snaplen, c.promiscuous, c.filter, RingSize(RING_BLOCK_BYTES, blocks))

    def _build(self, config: SensorConfig) -> Pipeline:
        sinks = []
        records = self.options.records or config.daemon.records
        if records:
            # unbuffered: each batch of records is one write, visible at once
            self.records = open(records, "ab", buffering=0)
            sinks.append(RecordWriter(self.records, "jsonl"))
        if config.learning.seconds:
            from sensor.learning import LearningPeriod

            self.learning = LearningPeriod(config.learning, config.alerts.models)
            sinks.append(self.learning)
        if config.alerts.enabled:
            from sensor.alerts.setup import build_detector

            self.detector = build_detector(config, self.options.alert_to, records_on_stdout=False)
            self.background = BackgroundSink(self.detector)
            sinks.append(self.background)
        return Pipeline(config, sinks)

    def _writable(self, config: SensorConfig) -> list[Path]:
        from sensor.alerts.setup import default_spool_dir

        spool = Path(config.alerts.spool_dir) if config.alerts.spool_dir else default_spool_dir()
        return [spool] + ([Path(config.learning.out)] if self.learning else [])

    def _close_early(self) -> None:
        if self._stop_metrics:
            self._stop_metrics()
        if self.capture:
            self.capture.close()
        if self.background:
            self.background.close()
        if self.records:
            self.records.close()

    def _install_signals(self) -> None:
        def stop(signum, frame):
            self.flags.stop = True

        def reload(signum, frame):
            self.flags.reload = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    # -- run -----------------------------------------------------------------

    def _loop(self, config: SensorConfig, pipeline: Pipeline) -> None:
        watchdog = Watchdog()
        expire_every = config.capture.expire_seconds
        next_expire = next_stats = 0.0
        started = time.monotonic()
        while not self.flags.stop:
            for interface, batch in self.capture.batches(POLL_SECONDS):
                pipeline.feed(batch, interface)
                self.sources.lag_seconds = max(0.0, time.time() - int(batch.rows["ts"][-1]) / 1e9)
            now = time.monotonic()
            if now >= next_expire:
                pipeline.tick(time.time_ns())
                next_expire = now + expire_every
            if now >= next_stats:
                if now > started:
                    self._log_stats(pipeline)
                next_stats = now + config.daemon.stats_seconds
            if self.flags.reload:
                self.flags.reload = False
                self._start_reload(config)
            if self.flags.pending:
                config = self._apply_reload(config, self.flags.pending.pop())
            if self.learning:
                self.learning.tick()
            watchdog.beat()
        self._shutdown(pipeline)

    def _shutdown(self, pipeline: Pipeline) -> None:
        notify("STOPPING=1")
        for interface, batch in self.capture.last_batches():
            pipeline.feed(batch, interface)
        stats = self.capture.stats()
        self.capture.close()
        summary = pipeline.finish()   # every open connection through features, detector and sinks
        if self.records:
            self.records.close()
        if self._stop_metrics:
            self._stop_metrics()
        log.info("stopped", packets=summary.packets, connections=summary.connections, evicted=summary.evicted,
                 kernel_drops={name: s.drops for name, s in stats.items()})

    def _log_stats(self, pipeline: Pipeline) -> None:
        s = pipeline.summary
        kernel = self.capture.stats()
        log.info("stats", packets=s.packets, connections=s.connections, active=pipeline.tracker.active,
                 evicted=pipeline.tracker.evicted, rss_mb=_rss_mb(), lag_seconds=round(self.sources.lag_seconds, 3),
                 kernel_packets={n: k.packets for n, k in kernel.items()},
                 kernel_drops={n: k.drops for n, k in kernel.items()},
                 alerts=len(self.detector.alerts) if self.detector else 0)

    # -- reload --------------------------------------------------------------

    def _start_reload(self, running: SensorConfig) -> None:
        notify("RELOADING=1")
        threading.Thread(target=self._load_for_reload, name="sensor-reload", daemon=True).start()

    def _load_for_reload(self) -> None:
        """Read and validate everything off the packet loop; hand the result over."""
        try:
            config = self._read_config()
            loaded = _Loaded(config)
            if self.detector is not None and config.alerts.enabled:
                from sensor.alerts.setup import load_models, load_ruleset

                loaded.rules = load_ruleset(list(config.alerts.rules))
                loaded.models = load_models(config.alerts.models, required=loaded.rules.uses_models)
        except (ConfigError, ValueError, OSError) as exc:   # OSError: a file the sensor's user cannot read
            log.error("reload refused; the running configuration stays", error=str(exc))
            self.flags.pending.append(None)
            return
        self.flags.pending.append(loaded)

    def _apply_reload(self, running: SensorConfig, loaded: _Loaded | None) -> SensorConfig:
        notify("READY=1")
        if loaded is None:
            return running
        later = [name for name in ("capture", "daemon", "learning", "timeouts", "services", "traffic", "content", "limits")
                 if getattr(loaded.config, name) != getattr(running, name)]
        if later:
            log.warning("these sections changed and take effect on restart", sections=later)
        if loaded.config.alerts.to != running.alerts.to:
            log.warning("alert sinks changed and take effect on restart")
        if loaded.rules is not None:
            def swap(detector) -> None:
                try:
                    changes = detector.reload(loaded.rules, loaded.models)
                except ValueError as exc:
                    log.error("reload refused; the running rules stay", error=str(exc))
                    return
                log.info("rules reloaded", rules=len(detector.rules), changes=changes or ["none"])

            self.background.call(swap)
        return msgspec.structs.replace(running, alerts=loaded.config.alerts)


def _import_before_dropping_root() -> None:
    """What the loop imports lazily (the logger, the reload path), imported
    now: once root is gone, the Python installation may not be readable
    (a pyenv under /root, say)."""
    import yaml  # noqa: F401 - read again on reload

    import sensor.alerts.setup  # noqa: F401
    log.debug("capture open")   # configures structlog and imports logging


def _rss_mb() -> int:
    """This process's resident memory, MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20


def _current_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name
