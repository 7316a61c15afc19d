"""The Prometheus endpoint of ``sensor run``.

Values are read from the pipeline's own counters when Prometheus scrapes,
so the packet path never touches a metric object.  The endpoint binds to
localhost unless ``daemon.metrics`` names another address.

The pipeline has no internal queue that drops.  A slow detector fills its
short queue and then stalls the capture loop, and the kernel ring absorbs
the backlog.  What the ring cannot hold is counted in
``sensor_kernel_drops_total``, so ``sensor_internal_drops_total`` stays
at 0, and it is exported so that dashboards can show that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector


@dataclass
class Sources:
    """What the collector reads; set by the daemon as it builds them."""

    pipeline: Any = None
    capture: Any = None
    detector: Any = None
    background: Any = None
    lag_seconds: float = 0.0                       # capture time to processing, of the latest batch
    started: float = field(default_factory=time.time)


class SensorCollector:
    def __init__(self, sources: Sources) -> None:
        self.s = sources

    def collect(self) -> Iterator:
        s = self.s
        yield from self._capture()
        summary = s.pipeline.summary
        tracker = s.pipeline.tracker
        yield _counter("sensor_records", "connection records emitted", summary.connections)
        yield _gauge("sensor_connections_active", "connections open in the tracker", tracker.active)
        yield _counter("sensor_evictions", "connections finished early because the table was full (limits)",
                       tracker.evicted)
        yield _gauge("sensor_tracker_bytes", "memory held by the connection tracker", tracker.memory)
        yield _counter("sensor_internal_drops", "records or batches dropped inside the sensor (never: see the docs)", 0)
        yield _gauge("sensor_processing_lag_seconds", "capture time to processing, latest batch", s.lag_seconds)
        queue = s.background.queued if s.background else 0
        yield _gauge("sensor_detector_queue_batches", "record batches waiting for the detector", queue)
        if s.detector is not None:
            yield from self._alerts()

    def _capture(self) -> Iterator:
        packets = CounterMetricFamily("sensor_packets", "packets captured", labels=["interface"])
        captured = CounterMetricFamily("sensor_bytes", "bytes captured", labels=["interface"])
        kernel = CounterMetricFamily("sensor_kernel_packets", "packets the kernel passed the filter",
                                     labels=["interface"])
        drops = CounterMetricFamily("sensor_kernel_drops", "packets the kernel dropped: the ring was full",
                                    labels=["interface"])
        per_interface = self.s.pipeline.per_source
        for name, stats in self.s.capture.stats().items():
            seen = per_interface.get(name, (0, 0))
            packets.add_metric([name], seen[0])
            captured.add_metric([name], seen[1])
            kernel.add_metric([name], stats.packets)
            drops.add_metric([name], stats.drops)
        yield from (packets, captured, kernel, drops)

    def _alerts(self) -> Iterator:
        detector = self.s.detector
        alerts = CounterMetricFamily("sensor_alerts", "alert emissions", labels=["rule", "severity"])
        severity = {r.id: r.severity for r in detector.rules}
        for rule_id, stats in list(detector.stats.items()):
            alerts.add_metric([rule_id, severity.get(rule_id, "")], stats.alerts)
        yield alerts
        outcomes = CounterMetricFamily("sensor_sink_alerts", "alerts by sink and outcome (sent, delivered, "
                                       "spooled, rejected, dropped, errors)", labels=["sink", "outcome"])
        spool = GaugeMetricFamily("sensor_sink_spool_bytes", "undelivered bytes in a webhook's spool", labels=["sink"])
        for sink in detector.sinks:
            for outcome, count in dict(getattr(sink, "counters", {})).items():
                outcomes.add_metric([sink.url, outcome], count)
            depth = getattr(sink, "spool_bytes", None)
            if depth is not None:
                spool.add_metric([sink.url], depth())
        yield from (outcomes, spool)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def serve(address: str, sources: Sources) -> Callable[[], None]:
    """Start the endpoint on ``host:port``; returns a function that stops it."""
    host, _, port = address.rpartition(":")
    registry = CollectorRegistry()
    registry.register(SensorCollector(sources))
    ProcessCollector(registry=registry)   # process_resident_memory_bytes and friends
    server, thread = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=registry)

    def stop() -> None:
        server.shutdown()
        thread.join(5)

    return stop
