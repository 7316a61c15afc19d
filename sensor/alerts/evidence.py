"""What an alert shows: the opening record, the values that crossed the
rule's thresholds, and the thresholds themselves.

Thresholds are read from the rule's condition tree: every comparison of a
field with a literal (``count >= 100``), with another field
(``model.autoencoder.score > model.autoencoder.threshold``) or with a
list (``service in [ftp, telnet]``) puts the field's observed value next
to what the rule asked of it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sensor.rules import Rule
from sensor.rules.condition import BoolOp, Compare, Match, Member, Name, Node, Not, Num, Str
from sensor.rules.fields import FIELDS, resolve

from sensor.alerts.values import plain, symbol


def thresholds(rule: Rule) -> dict[str, str]:
    """Field -> what the condition asks of it (``">= 100"``)."""
    out: dict[str, str] = {}
    _walk(rule.condition.tree, out)
    return out


def _walk(node: Node, out: dict[str, str]) -> None:
    if isinstance(node, BoolOp):
        for operand in node.operands:
            _walk(operand, out)
    elif isinstance(node, Not):
        inner: dict[str, str] = {}
        _walk(node.operand, inner)
        out.update({k: f"not ({v})" for k, v in inner.items()})
    elif isinstance(node, Compare) and isinstance(node.left, Name):
        out[_canonical(node.left)] = f"{node.op} {_literal(node.right)}"
    elif isinstance(node, Compare) and isinstance(node.right, Name):
        out[_canonical(node.right)] = f"{_mirrored(node.op)} {_literal(node.left)}"
    elif isinstance(node, Member) and isinstance(node.left, Name):
        items = ", ".join(_literal(i) for i in node.items.items)
        out[_canonical(node.left)] = f"{'not in' if node.negated else 'in'} [{items}]"
    elif isinstance(node, Match) and isinstance(node.left, Name):
        out[_canonical(node.left)] = f"{'!~' if node.negated else '=~'} {node.pattern.text}"


def _canonical(name: Name) -> str:
    field = resolve(name.name)
    return field.name if field else name.name


def _literal(node: Node) -> str:
    if isinstance(node, Num):
        return repr(node.value)
    if isinstance(node, Str):
        return node.value
    if isinstance(node, Name):
        return node.name
    return getattr(node, "text", type(node).__name__)


def _mirrored(op: str) -> str:
    return {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)


def observed(batch: Mapping[str, np.ndarray], row: int, names: list[str]) -> dict:
    """The values of ``names`` (no address fields: the alert shows those
    itself) in one record, as an analyst reads them."""
    out = {}
    for name in names:
        field = FIELDS[name]
        column = batch[name]
        if field.kind == "enum":
            out[name] = symbol(field.vocabulary, column[row])
        elif field.kind == "string":
            value = column[row]
            out[name] = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
        else:
            out[name] = plain(column[row])
    return out
