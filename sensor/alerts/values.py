"""Record values as an analyst reads them: addresses, uids, times."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def address_text(hi: int, lo: int) -> str:
    """The text of a core address (IPv4 is stored as ::ffff:a.b.c.d)."""
    if hi == 0 and lo >> 32 == 0xFFFF:
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def uid_text(value: int) -> str:
    """A connection uid as the records print it (the formatter's base 62)."""
    chars = ["C"]
    for _ in range(11):
        chars.append(_B62[value % 62])
        value //= 62
    return "".join(chars)


def iso_time(ns: int) -> str:
    """RFC 3339 UTC with microseconds, from capture time in nanoseconds."""
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plain(value):
    """A numpy scalar as the JSON-ready Python value."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return round(value, 6)
    return value


def symbol(names: tuple[str, ...], code) -> str:
    """A symbolic value's name; '?' for a code the tables lack, as the records print it."""
    code = int(code)
    return names[code] if code < len(names) else "?"
