"""Make payload-derived text safe for every sink and log.

Alert text comes, in part, from packets (an FTP user name, an HTTP path),
so an attacker chooses some of it.  Raw control characters in it could
forge log lines (CR/LF), drive the operator's terminal (ESC sequences),
cut C strings (NUL), or confuse a line-oriented consumer (NEL U+0085,
LINE/PARAGRAPH SEPARATOR).  Bidirectional overrides can make a log line
read differently from what it contains.  Lone surrogates cannot be
encoded as UTF-8 at all and would make a sink fail.

:func:`escape_text` replaces each of those characters with a visible
escape and escapes the backslash itself, so the mapping is reversible and
a literal ``\\n`` typed by an attacker stays distinguishable from a real
line feed.  Because it always escapes backslashes it is not idempotent:
text escaped twice shows doubled backslashes.  That is the price of an
unambiguous output and the reason every sink escapes exactly once, on
the way out.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["escape_alert", "escape_text"]

_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

# C0 controls, DEL, C1 controls, the backslash, surrogates (any surrogate
# code point in a str is unpaired: valid pairs are single code points),
# LINE/PARAGRAPH SEPARATOR and the bidirectional embedding/override/isolate
# controls.
_UNSAFE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _replace(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def escape_text(s: str) -> str:
    """Return *s* with control, separator, bidi and surrogate characters escaped.

    ``"a\\r\\nb\\x1b"`` becomes ``'a\\\\r\\\\nb\\\\x1b'`` (the escapes are
    literal backslash sequences); C1 controls and the other non-ASCII
    characters become ``\\uXXXX``; a backslash becomes two.  Other text,
    including printable non-ASCII, is unchanged.
    """
    if _UNSAFE.search(s) is None:
        return s
    return _UNSAFE.sub(_replace, s)


def escape_alert(alert: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of *alert* with every string, keys included, escaped.

    Nested dicts, lists and tuples are walked (tuples become lists, as
    JSON has no tuples); other values are kept as they are.
    """
    return _escape_value(alert)


def _escape_value(value: Any) -> Any:
    if isinstance(value, str):
        return escape_text(value)
    if isinstance(value, dict):
        return {
            (escape_text(k) if isinstance(k, str) else k): _escape_value(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_escape_value(v) for v in value]
    return value
