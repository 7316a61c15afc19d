"""The sensor's configuration: one validated object.

Every stage takes its settings from a :class:`SensorConfig`; defaults are
those of ``../shared/kdd-features.md`` (Zeek's timers, the KDD service
rules).  Unknown keys and bad values are rejected with the field's path.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

NS = 1_000_000_000


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Section):
    """When a connection record is complete (seconds)."""

    tcp_inactivity: PositiveFloat = Field(300.0, description="established TCP idle (Zeek tcp_inactivity_timeout)")
    tcp_handshake: PositiveFloat = Field(60.0, description="TCP idle while neither side is past the handshake")
    tcp_attempt: PositiveFloat = Field(5.0, description="unanswered SYN, from the first SYN (Zeek tcp_attempt_delay)")
    tcp_close: PositiveFloat = Field(5.0, description="after both FINs or a RST (Zeek tcp_close_delay)")
    udp_inactivity: PositiveFloat = Field(60.0, description="UDP idle (Zeek udp_inactivity_timeout)")
    icmp_inactivity: PositiveFloat = Field(1.0, description="ICMP idle: one record per burst, as in KDD")
    max_lifetime: PositiveFloat = Field(600.0, description="longest UDP/ICMP record before a new one starts")
    fragment: PositiveFloat = Field(30.0, description="IP reassembly timeout (Linux ipfrag_time)")

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
    private_below: int = Field(
        1024, ge=0, le=65536,
        description="unnamed responder ports below this are 'private', the rest 'other' (kdd-features.md 4.2)",
    )


class Limits(_Section):
    fragment_datagrams: PositiveInt = Field(65536, description="IP datagrams held for reassembly at once")
    reorder_records: PositiveInt = Field(
        1_000_000, description="finished records held back to keep start-time order behind a long connection"
    )


class SensorConfig(_Section):
    timeouts: Timeouts = Timeouts()
    services: Services = Services()
    limits: Limits = Limits()
