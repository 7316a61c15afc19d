"""The sensor's configuration: one validated object.

Every stage takes its settings from a :class:`SensorConfig`; defaults are
those of ``../shared/kdd-features.md`` (Zeek's timers, the KDD service
rules) and docs/features.md.  :func:`load_config` reads a YAML file and
rejects unknown keys and bad values with the file, line and path of the
field (``sensor.yaml:4: Expected `float` > 0.0 - at `$.timeouts.tcp_close```).

msgspec rather than pydantic: it validates the same way but imports in a
quarter of the time, and a replay's start-up is part of its speed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

NS = 1_000_000_000

Seconds = Annotated[float, msgspec.Meta(gt=0)]
Count = Annotated[int, msgspec.Meta(gt=0)]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class Timeouts(_Section):
    """When a connection record is complete, in seconds."""

    tcp_inactivity: Seconds = 300.0  # established TCP idle (Zeek tcp_inactivity_timeout)
    tcp_handshake: Seconds = 60.0    # TCP idle while neither side is past the handshake
    tcp_attempt: Seconds = 5.0       # unanswered SYN, from the first SYN (Zeek tcp_attempt_delay)
    tcp_close: Seconds = 5.0         # after both FINs or a RST (Zeek tcp_close_delay)
    udp_inactivity: Seconds = 60.0   # UDP idle (Zeek udp_inactivity_timeout)
    icmp_inactivity: Seconds = 1.0   # ICMP idle: one record per burst, as in KDD
    max_lifetime: Seconds = 600.0    # longest UDP/ICMP record before a new one starts
    fragment: Seconds = 30.0         # IP reassembly timeout (Linux ipfrag_time)

    def tracker_ns(self) -> tuple[int, ...]:
        """The tracker's timeouts in nanoseconds, in the compiled core's order."""
        return tuple(
            int(v * NS)
            for v in (
                self.tcp_inactivity, self.tcp_handshake, self.tcp_attempt, self.tcp_close,
                self.udp_inactivity, self.icmp_inactivity, self.max_lifetime,
            )
        )


class Services(_Section):
    # unnamed responder ports below this are 'private', the rest 'other' (kdd-features.md 4.2)
    private_below: Annotated[int, msgspec.Meta(ge=0, le=65536)] = 1024


KDD_FLAGS = Literal["SF", "S0", "S1", "S2", "S3", "REJ", "RSTO", "RSTOS0", "RSTR", "SH", "OTH"]


class Traffic(_Section):
    """KDD traffic features 23-41 (docs/features.md has the evidence for each default)."""

    time_window: Seconds = 2.0
    # the last N records before each one, sliced by host and by service
    host_window: Count = 256
    # bound on the 2-second window in a flood: the most recent records are kept
    time_window_records: Count = 65536
    # 'distinct': distinct services/hosts, own included, 0 when only one (the KDD rows);
    # 'complement': 1 - same rate (AIIDS, gure)
    diff_rates: Literal["distinct", "complement"] = "distinct"
    # 'with_current': host-window rates over the record itself and the most recent
    # earlier ones (the KDD rows); 'earlier_only': over the earlier records (spec 7.3)
    host_rates: Literal["with_current", "earlier_only"] = "with_current"
    serror_flags: tuple[KDD_FLAGS, ...] = ("S0", "S1", "S2", "S3", "SH")
    rerror_flags: tuple[KDD_FLAGS, ...] = ("REJ", "RSTO", "RSTOS0", "RSTR")
    count_cap: Count = 511
    host_count_cap: Count = 255


class Content(_Section):
    """KDD content features 10-22."""

    byte_cap: Count = 65536  # bytes analyzed per direction of a connection


class Limits(_Section):
    fragment_datagrams: Count = 65536  # IP datagrams held for reassembly at once
    # finished records held back to keep start order behind a long-open connection
    reorder_records: Count = 262144
    # and for at most this long (capture time; 0: no bound but reorder_records).
    # A live sensor wants alerts soon after a connection ends: 0.05 bounds the
    # wait, and the records of connections still open are released late, with
    # approximate 2-second windows (counted as released out of start order)
    hold_seconds: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    # open connections tracked at once; when full, the eighth idle longest
    # is finished early as records (end reason 'evicted'), and counted
    connections: Count = 1_000_000
    # sensor run: the process's memory budget in MiB (0: none); the
    # connection table gets what start-up, the capture rings and a reserve
    # leave of it
    memory_mb: Annotated[int, msgspec.Meta(ge=0)] = 0


class Alerts(_Section):
    """Detection and delivery: which rules and models, and where alerts go."""

    enabled: bool = True
    to: tuple[str, ...] = ()             # sink URLs, besides any --alert-to
    rules: tuple[str, ...] = ()          # rule files or directories; empty: the shipped rules/
    models: str | None = None            # model directory; None: the shipped models/
    idle_seconds: Seconds = 60.0         # an episode closes after this long without a match
    spool_dir: str | None = None         # webhook spool; None: /var/lib/sensor/spool as root, else ~/.local/state
    webhook_secret_file: str | None = None
    webhook_secret_env: str | None = None
    ca_file: str | None = None           # extra CA bundle for https webhooks


class Capture(_Section):
    """Live capture (``sensor run``)."""

    interfaces: tuple[str, ...] = ()      # besides any -i
    filter: str = ""                      # tcpdump syntax, compiled by libpcap; empty: everything
    promiscuous: bool = True
    snaplen: Annotated[int, msgspec.Meta(ge=0, le=262144)] = 0  # bytes per frame; 0: whole frames (content features read payloads)
    ring_mb: Annotated[int, msgspec.Meta(ge=4, le=4096)] = 64   # kernel ring per interface
    expire_seconds: Seconds = 0.5         # how often connections are expired on the wall clock when traffic stops


class Daemon(_Section):
    """The service around the pipeline (``sensor run``)."""

    user: str = "sensor"                  # dropped to after the capture opens, when started as root outside systemd
    records: str | None = None            # connection records as JSONL (-o); None: none written
    stats_seconds: Seconds = 60.0         # period of the stats log event
    log_format: Literal["json", "console"] = "json"
    # Prometheus endpoint, HOST:PORT; localhost only unless told otherwise; null: none
    metrics: Annotated[str, msgspec.Meta(pattern=r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):[0-9]{1,5}$")] | None = "127.0.0.1:9750"


class Learning(_Section):
    """Learning mode of ``sensor run``: record the site's traffic for a
    period, then fit the anomaly models to it (as ``sensor learn`` does)."""

    seconds: Annotated[float, msgspec.Meta(ge=0)] = 0.0   # how long to record; 0: no learning
    out: str | None = None                # the site's model set goes here (needs the training extra)
    false_positive_rate: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 1e-4


class SensorConfig(_Section):
    capture: Capture = Capture()
    learning: Learning = Learning()
    daemon: Daemon = Daemon()
    timeouts: Timeouts = Timeouts()
    services: Services = Services()
    traffic: Traffic = Traffic()
    content: Content = Content()
    limits: Limits = Limits()
    alerts: Alerts = Alerts()


def config_from_dict(data: dict[str, Any]) -> SensorConfig:
    """Validate a configuration mapping (e.g. parsed YAML)."""
    try:
        return msgspec.convert(data, SensorConfig)
    except msgspec.ValidationError as exc:
        message = str(exc)
        choices = _choices(message)
        raise ConfigError(f"{message} (expected one of: {', '.join(choices)})" if choices else message) from None


def _choices(message: str) -> list[str]:
    """The allowed values of the Literal field a validation message names."""
    import typing

    found = re.search(r"Invalid enum value .* - at `\$((?:\.\w+)+)", message)
    if not found:
        return []
    kind: Any = SensorConfig
    for name in found.group(1).strip(".").split("."):
        fields = {f.name: f.type for f in msgspec.structs.fields(kind)} if isinstance(kind, type) else {}
        kind = fields.get(name)
        while typing.get_origin(kind) is typing.Annotated:
            kind = typing.get_args(kind)[0]
    while typing.get_origin(kind) is tuple:
        kind = typing.get_args(kind)[0]
    return [str(v) for v in typing.get_args(kind)] if typing.get_origin(kind) is Literal else []


def load_config(path: str | Path) -> SensorConfig:
    """Read and validate a YAML configuration file; an empty file is all defaults."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the configuration must be a mapping of sections")
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        line = _line_of(root, str(exc))
        raise ConfigError(f"{path}{f':{line}' if line else ''}: {exc}") from None


def _line_of(root: Any, message: str) -> int | None:
    """The YAML line of the field a validation message names (`$.a.b` or `$.a[2]`)."""
    import yaml

    found = re.search(r"`\$([^`]*)`", message)
    if not found or root is None:
        return None
    node = root
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", found.group(1)):
        if name and isinstance(node, yaml.MappingNode):
            matches = [value for key, value in node.value if key.value == name]
            if not matches:  # an unknown key: point at the mapping that holds it
                break
            node = matches[0]
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
        else:
            break
    return node.start_mark.line + 1
