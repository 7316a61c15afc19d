"""Rule scopes: which records a rule looks at (protocols, services, networks, ports).

A scope is checked before a rule's condition and is as cheap as it can
be: protocols, services and ports become boolean look-up tables indexed
by the record's code or port, and a network is two masked comparisons
over the ``(hi, lo)`` address halves.  IPv4 networks are written as
usual (``10.0.0.0/8``) and matched as the core stores IPv4 addresses,
mapped into ``::ffff:0:0/96``.

IPv4 addresses live in ``::ffff:0:0/96``, so an IPv6 network that
covers it (``::/0``) matches IPv4 records too.

Lists of networks follow Suricata's convention: entries prefixed with
``!`` exclude.  A record matches when it is in one of the plain entries
(or there are none) and in none of the excluded ones.  Port lists apply
to TCP and UDP records only: ICMP records keep the type and code in the
port columns, and a port scope never matches them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from sensor.features.basic import PROTOCOL_NAMES
from sensor.features.kdd import SYMBOLIC
from sensor.rules.fields import address_parts, batch_rows

_ALL64 = (1 << 64) - 1
_V4_MAPPED = 0xFFFF << 32


@dataclass(frozen=True)
class Network:
    """One CIDR block as the 128-bit value and mask the address columns are compared with."""

    text: str
    value: int
    prefix: int  # over the 128-bit (IPv4-mapped) address
    _halves: tuple[int, int, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mask = ((1 << self.prefix) - 1) << (128 - self.prefix)
        halves = (mask >> 64, mask & _ALL64, self.value >> 64, self.value & _ALL64)
        object.__setattr__(self, "_halves", halves)

    def matches(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        mask_hi, mask_lo, value_hi, value_lo = self._halves
        out = _masked_equal(hi, mask_hi, value_hi)
        if mask_lo:
            low = _masked_equal(lo, mask_lo, value_lo)
            out = low if out is None else out & low
        return np.ones(len(hi), dtype=bool) if out is None else out


def _masked_equal(column: np.ndarray, mask: int, value: int) -> np.ndarray | None:
    if mask == 0:
        return None
    if mask == _ALL64:
        return column == np.uint64(value)
    return (column & np.uint64(mask)) == np.uint64(value)


def parse_network(text: str) -> Network:
    """A CIDR block or single address, IPv4 or IPv6; ValueError says what is wrong."""
    text = text.strip()
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        reason = str(exc)
        if "host bits set" in reason:
            loose = ipaddress.ip_network(text, strict=False)
            raise ValueError(f"bad CIDR {text!r}: it has host bits set (did you mean {loose}?)") from None
        raise ValueError(f"bad CIDR {text!r}: expected an IPv4 or IPv6 address or network such as 10.0.0.0/8") from None
    if isinstance(net, ipaddress.IPv4Network):
        return Network(text, _V4_MAPPED | int(net.network_address), 96 + net.prefixlen)
    return Network(text, int(net.network_address), net.prefixlen)


@dataclass(frozen=True)
class AddressSet:
    """Networks a record's address must be in (``include``) and must not be in (``exclude``)."""

    include: tuple[Network, ...] = ()
    exclude: tuple[Network, ...] = ()

    def matches(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        if self.include:
            out = self.include[0].matches(hi, lo)
            for net in self.include[1:]:
                out |= net.matches(hi, lo)
        else:
            out = np.ones(len(hi), dtype=bool)
        for net in self.exclude:
            out &= ~net.matches(hi, lo)
        return out


def parse_address_item(text: str) -> tuple[Network, bool]:
    """One scope list entry: a network, and whether it was negated with ``!``."""
    text = text.strip()
    negated = text.startswith("!")
    return parse_network(text[1:] if negated else text), negated




def parse_port_item(item: object) -> tuple[int, int]:
    """A port (80) or inclusive range ("1024-65535"); ValueError says what is wrong."""
    if isinstance(item, bool):
        raise ValueError(f"expected a port or 'lo-hi' range, found {item!r}")
    if isinstance(item, int):
        low = high = item
    elif isinstance(item, str):
        parts = item.split("-")
        if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"bad port range {item!r}: expected a port or 'lo-hi', such as 1024-65535")
        low, high = int(parts[0]), int(parts[-1])
    else:
        raise ValueError(f"expected a port or 'lo-hi' range, found {item!r}")
    if not (0 <= low <= 65535 and 0 <= high <= 65535):
        raise ValueError(f"bad port {item!r}: ports are 0-65535")
    if low > high:
        raise ValueError(f"bad port range {item!r}: the low end is above the high end")
    return low, high


@dataclass(frozen=True)
class PortSet:
    """Ports and port ranges, matched by a 65,536-entry look-up table."""

    ranges: tuple[tuple[int, int], ...]
    table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = np.zeros(65536, dtype=bool)
        for low, high in self.ranges:
            table[low : high + 1] = True
        object.__setattr__(self, "table", table)

    def matches(self, ports: np.ndarray) -> np.ndarray:
        return self.table[ports]


def _lookup(vocabulary: tuple[str, ...], names: tuple[str, ...]) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    table[[vocabulary.index(n) for n in names]] = True
    return table


_PORTED = _lookup(PROTOCOL_NAMES, ("tcp", "udp"))


@dataclass(frozen=True)
class Scope:
    """What a rule applies to; an empty field places no constraint."""

    protocols: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    src: AddressSet | None = None
    dst: AddressSet | None = None
    src_ports: PortSet | None = None
    dst_ports: PortSet | None = None
    _protocols: np.ndarray = field(init=False, repr=False, compare=False)
    _services: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = [p for p in self.protocols if p not in PROTOCOL_NAMES]
        unknown += [s for s in self.services if s not in SYMBOLIC["service"]]
        if unknown:
            raise ValueError(f"unknown protocol or service {unknown[0]!r}")
        object.__setattr__(self, "_protocols", _lookup(PROTOCOL_NAMES, self.protocols))
        object.__setattr__(self, "_services", _lookup(SYMBOLIC["service"], self.services))

    @property
    def fields(self) -> frozenset[str]:
        """The batch columns the scope reads."""
        used = set()
        if self.protocols or self.src_ports or self.dst_ports:
            used.add("proto")
        if self.services:
            used.add("service")
        if self.src:
            used.add("src")
        if self.dst:
            used.add("dst")
        if self.src_ports:
            used.add("orig_p")
        if self.dst_ports:
            used.add("resp_p")
        return frozenset(used)

    def matches(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        """A boolean mask: the records of the batch inside the scope."""
        out: np.ndarray | None = None

        def both(mask: np.ndarray) -> None:
            nonlocal out
            out = mask if out is None else out & mask

        if self.protocols:
            both(_table_lookup(self._protocols, batch["proto"]))
        if self.services:
            both(_table_lookup(self._services, batch["service"]))
        if self.src:
            both(self.src.matches(*address_parts(batch["src"])))
        if self.dst:
            both(self.dst.matches(*address_parts(batch["dst"])))
        if self.src_ports or self.dst_ports:
            both(_table_lookup(_PORTED, batch["proto"]))
            if self.src_ports:
                both(self.src_ports.matches(batch["orig_p"]))
            if self.dst_ports:
                both(self.dst_ports.matches(batch["resp_p"]))
        if out is None:
            return np.ones(batch_rows(batch), dtype=bool)
        return out


def _table_lookup(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """table[codes], where codes past the table's end match nothing."""
    if codes.dtype == np.uint8:
        return table[codes]
    return np.isin(codes, np.flatnonzero(table))
