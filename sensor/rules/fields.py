"""The field catalogue: every name a rule may reference, and where its column comes from.

A rule sees one connection record as a flat namespace: the 41 KDD
features, the Zeek connection fields, and the models' outputs.  The
catalogue is data (:data:`FIELDS`, :data:`ALIASES`) so that the parser,
the validator, the documentation and :class:`BatchView` cannot disagree
about what a name means.

Columns are numpy arrays with one entry per record:

- ``number``: any numeric dtype;
- ``enum``: integer codes indexing the field's vocabulary (a code outside
  it, such as the service 255 the sensor's tables do not know, matches no
  name);
- ``string``: a bytes/str array (only ``history``);
- ``address``: ``(hi, lo)`` 128-bit halves as the compiled core stores
  them (IPv6, or IPv4 as ``::ffff:a.b.c.d``, each half a native uint64
  whose most significant bits are the first bytes on the wire), either an
  ``(N, 2)`` uint64 array or a structured array of two uint64 fields;
  :func:`address_parts` reads both, :func:`address_column` builds one
  from text.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np

from sensor.features.basic import PROTOCOL_NAMES, duration_ns, protocol_codes
from sensor.features.kdd import KDD_FEATURES, SYMBOLIC
from sensor.models.categories import CATEGORIES
from sensor.rows import CONN_STATES

Kind = Literal["number", "enum", "string", "address"]


@dataclass(frozen=True)
class Field:
    """One name a rule may use."""

    name: str
    kind: Kind
    source: Literal["kdd", "conn", "model"]
    doc: str = ""
    vocabulary: tuple[str, ...] = ()


def _kdd_fields() -> list[Field]:
    out = []
    for name in KDD_FEATURES:
        if name in SYMBOLIC:
            out.append(Field(name, "enum", "kdd", f"KDD feature {name}", SYMBOLIC[name]))
        else:
            out.append(Field(name, "number", "kdd", f"KDD feature {name}"))
    return out


_CONN_NUMBERS = {
    "orig_bytes": "payload bytes sent by the originator",
    "resp_bytes": "payload bytes sent by the responder",
    "orig_pkts": "packets sent by the originator",
    "resp_pkts": "packets sent by the responder",
    "orig_ip_bytes": "IP bytes sent by the originator",
    "resp_ip_bytes": "IP bytes sent by the responder",
    "orig_p": "originator port (ICMP: type)",
    "resp_p": "responder port (ICMP: code)",
    "ip_ver": "IP version, 4 or 6",
    "duration_s": "last packet time minus first, in seconds (float)",
}


def _conn_fields() -> list[Field]:
    out = [Field(name, "number", "conn", doc) for name, doc in _CONN_NUMBERS.items()]
    out += [
        Field("conn_state", "enum", "conn", "Zeek connection state", CONN_STATES),
        Field("proto", "enum", "conn", "transport protocol, named as in the records", PROTOCOL_NAMES),
        Field("history", "string", "conn", "Zeek history string"),
        Field("src", "address", "conn", "originator address"),
        Field("dst", "address", "conn", "responder address"),
    ]
    return out


def _model_fields() -> list[Field]:
    out = [
        Field("model.verdict", "enum", "model", "the sensor's verdict category", CATEGORIES),
        Field("model.classifier.label", "enum", "model", "the classifier's predicted category", CATEGORIES),
        Field("model.classifier.probability", "number", "model", "probability of the predicted category"),
    ]
    out += [
        Field(f"model.classifier.p.{c}", "number", "model", f"classifier probability of {c}") for c in CATEGORIES
    ]
    for kind in ("autoencoder", "isolation_forest"):
        out.append(Field(f"model.{kind}.score", "number", "model", f"{kind} anomaly score"))
        out.append(Field(f"model.{kind}.threshold", "number", "model", f"{kind} alert threshold"))
    return out


#: Every field a rule may reference, by canonical name.
FIELDS: dict[str, Field] = {f.name: f for f in (*_kdd_fields(), *_conn_fields(), *_model_fields())}
#: Other spellings accepted for a field -> its canonical name.
ALIASES: dict[str, str] = {"src_port": "orig_p", "dst_port": "resp_p"}


def resolve(name: str) -> Field | None:
    """The catalogue entry for a name or alias, or None."""
    return FIELDS.get(ALIASES.get(name, name))


def all_names() -> list[str]:
    """Every accepted name, aliases included (for did-you-mean suggestions)."""
    return [*FIELDS, *ALIASES]


# ---- addresses ------------------------------------------------------------

_MASK64 = (1 << 64) - 1


def address_int(text: str) -> int:
    """An address as the 128-bit integer the core stores (IPv4 mapped into ::ffff:0:0/96)."""
    addr = ipaddress.ip_address(text)
    if isinstance(addr, ipaddress.IPv4Address):
        return (0xFFFF << 32) | int(addr)
    return int(addr)


def address_column(texts: Sequence[str]) -> np.ndarray:
    """An ``(N, 2)`` uint64 address column (hi, lo) from textual addresses."""
    out = np.zeros((len(texts), 2), dtype=np.uint64)
    for i, text in enumerate(texts):
        value = address_int(text)
        out[i, 0], out[i, 1] = value >> 64, value & _MASK64
    return out


def address_parts(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """The (hi, lo) halves of an address column in any of the accepted shapes."""
    if isinstance(column, tuple):
        return column[0], column[1]
    if column.dtype.names:
        hi_name, lo_name = column.dtype.names[:2]
        return column[hi_name], column[lo_name]
    return column[:, 0], column[:, 1]


# ---- lazy batch columns ---------------------------------------------------


class MissingFieldError(KeyError):
    """A rule needs a column the batch does not carry (e.g. no model loaded)."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


def _conn(name: str) -> Callable[["BatchView"], np.ndarray]:
    return lambda view: view.conns[name]


_DERIVED: dict[str, Callable[["BatchView"], np.ndarray]] = {
    **{name: _conn(name) for name in _CONN_NUMBERS if name != "duration_s"},
    "duration_s": lambda v: duration_ns(v.conns) / 1e9,
    "conn_state": _conn("conn_state"),
    # as the JSON records name it: the KDD protocol_type (ICMPv6 is 'icmp')
    "proto": lambda v: v.features["protocol_type"] if v.features is not None else protocol_codes(v.conns),
    "history": _conn("history"),
    # a zero-copy structured view of the two halves
    "src": lambda v: v.conns[["orig_hi", "orig_lo"]],
    "dst": lambda v: v.conns[["resp_hi", "resp_lo"]],
}


class BatchView(Mapping[str, np.ndarray]):
    """A record batch seen as named rule columns, each derived on first use.

    ``conns`` are ``CONN_DTYPE`` rows, ``features`` the matching
    ``KDD_DTYPE`` rows, ``scores`` maps model field names
    (``model.classifier.label`` ...) to arrays or scalars; enum model
    columns may be codes or the category names as strings.  Nothing is
    computed for fields no rule asks for.
    """

    def __init__(
        self,
        conns: np.ndarray,
        features: np.ndarray | None = None,
        scores: Mapping[str, Any] | None = None,
    ) -> None:
        self.conns = conns
        self.features = features
        self.scores = dict(scores or {})
        self.rows = len(conns)
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        key = ALIASES.get(name, name)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        column = self._compute(key)
        self._cache[key] = column
        return column

    def _compute(self, key: str) -> np.ndarray:
        field = FIELDS.get(key)
        if field is None:
            raise MissingFieldError(f"no field {key!r} in the rule catalogue")
        if field.source == "kdd":
            if self.features is None:
                raise MissingFieldError(f"field {key!r} needs the KDD features, and none were given")
            return self.features[key]
        if field.source == "conn":
            return _DERIVED[key](self)
        if key not in self.scores:
            raise MissingFieldError(f"field {key!r} needs model output, and the batch has none for it")
        return _model_column(field, self.scores[key], self.rows)

    def __iter__(self) -> Iterator[str]:
        for name, field in FIELDS.items():
            if field.source == "conn" or (field.source == "kdd" and self.features is not None):
                yield name
            elif field.source == "model" and name in self.scores:
                yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and ALIASES.get(name, name) in set(self)


def _model_column(field: Field, values: Any, rows: int) -> np.ndarray:
    column = np.asarray(values)
    if field.kind == "enum" and column.dtype.kind in "USO":
        # category names -> codes; anything else gets a code no name matches
        # (one dictionary look-up per distinct name, not per record)
        lookup = {name: code for code, name in enumerate(field.vocabulary)}
        distinct, inverse = np.unique(column.astype(str), return_inverse=True)
        codes = np.array([lookup.get(n, len(field.vocabulary)) for n in distinct], dtype=np.int64)
        column = codes[inverse].reshape(column.shape)
    if column.ndim == 0:
        column = np.broadcast_to(column, (rows,))
    return column


def batch_columns(
    conns: np.ndarray, features: np.ndarray | None = None, scores: Mapping[str, Any] | None = None
) -> BatchView:
    """The lazy column view rules evaluate over (see :class:`BatchView`)."""
    return BatchView(conns, features, scores)


def batch_rows(batch: Mapping[str, Any]) -> int:
    """Records in a batch: its ``rows`` when it has one, else any column's length."""
    rows = getattr(batch, "rows", None)
    if rows is not None:
        return int(rows)
    for column in batch.values():
        return len(column)
    return 0
