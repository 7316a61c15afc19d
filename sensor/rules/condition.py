"""Rule conditions: a small boolean language over record fields, compiled to numpy.

A condition such as ``service in [ftp, telnet] and num_failed_logins >= 1``
is tokenized, parsed by recursive descent into a tree of small
dataclasses, type-checked against the field catalogue, and compiled into
a tree of closures, each taking a batch of columns and returning a numpy
array.  Nothing is ever handed to ``eval``: a rule file is untrusted
input, and a parse tree also gives every error an exact column.

Grammar (lowest precedence first)::

    condition  = or_expr EOF
    or_expr    = and_expr { "or" and_expr }
    and_expr   = not_expr { "and" not_expr }
    not_expr   = "not" not_expr | comparison
    comparison = sum [ ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) sum
                     | [ "not" ] "in" list
                     | ( "=~" | "!~" ) STRING ]
    sum        = product { ( "+" | "-" ) product }
    product    = unary { ( "*" | "/" ) unary }
    unary      = "-" unary | primary
    primary    = NUMBER | STRING | NAME | ADDRESS | "(" or_expr ")"
    list       = "[" [ item { "," item } [ "," ] ] "]"
    item       = [ "-" ] NUMBER | STRING | NAME | ADDRESS

NAME is a dotted identifier (``model.classifier.label``); next to an enum
field a bare NAME is a value of that field's vocabulary (``flag == SF``).
ADDRESS is an IPv4 or IPv6 address or CIDR block (``10.0.0.0/8``,
``fe80::/10``).  Strings take ``'`` or ``"``; a backslash escapes only
the quote itself, so regular expressions read as written (``'^\\d+$'``).

Semantics: arithmetic is done in float64 (unsigned byte counts never wrap
on subtraction); division by zero gives inf or nan, and every comparison
with nan is false, ``!=`` included.  Regular expressions use Python's
``re.search``; on an enum field the pattern is run once per vocabulary
entry at compile time, so evaluation stays one vectorised look-up.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from sensor.rules.fields import FIELDS, Field, address_parts, all_names, batch_rows, resolve
from sensor.rules.scope import AddressSet, Network, parse_network


class RuleError(ValueError):
    """A problem in a rule, located as precisely as possible.

    ``line`` and ``column`` are 1-based; for a condition parsed on its own
    they are relative to the condition text, and ``offset`` is the 0-based
    character offset in it (the rule loader maps it into the file).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        expected: str | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.expected = expected
        self.offset = offset

    def __str__(self) -> str:
        where = ":".join(str(part) for part in (self.file, self.line, self.column) if part is not None)
        return f"{where}: {self.message}" if where else self.message

    def at(self, file: str | None, line: int | None, column: int | None) -> "RuleError":
        """The same error placed at a position in a file."""
        return RuleError(
            self.message, file=file, line=line, column=column, expected=self.expected, offset=self.offset
        )


class RuleErrors(RuleError):
    """Several rule errors reported together, one per line; the position is the first one's."""

    def __init__(self, errors: list[RuleError]) -> None:
        first = errors[0]
        super().__init__(
            first.message, file=first.file, line=first.line, column=first.column, expected=first.expected
        )
        self.errors = list(errors)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


# ---- tokens ---------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<addr6>(?=[0-9A-Fa-f]*:)[0-9A-Fa-f:]+(?:\.\d+){0,3}(?:/\d+)?)
  | (?P<addr4>\d+\.\d+\.\d+\.\d+(?:/\d+)?)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
  | (?P<op>==|!=|<=|>=|=~|!~|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in"}
_STRAY = {
    "=": "'=' is not an operator (did you mean '=='?)",
    "!": "'!' is not an operator (use 'not', or '!=')",
    "&": "'&' is not an operator (use 'and')",
    "|": "'|' is not an operator (use 'or')",
}


@dataclass(frozen=True)
class Token:
    kind: str  # num, str, name, addr, an operator or keyword itself, or eof
    text: str
    pos: int
    value: Any = None

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of condition"
        if self.kind == "str":
            return f"string {self.text}"
        return f"'{self.text}'"


def tokenize(text: str) -> list[Token]:
    """The condition's tokens, ending with an ``eof`` token; RuleError on a stray character."""
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            ch = text[pos]
            if ch in "'\"":
                raise _error(pos, f"unterminated string: no closing {ch}", expected=ch)
            raise _error(pos, _STRAY.get(ch, f"unexpected character {ch!r}"))
        kind, lexeme = m.lastgroup, m.group()
        if kind == "num":
            value: Any = float(lexeme) if any(c in lexeme for c in ".eE") else int(lexeme)
            tokens.append(Token("num", lexeme, pos, value))
        elif kind == "str":
            quote = lexeme[0]
            tokens.append(Token("str", lexeme, pos, lexeme[1:-1].replace("\\" + quote, quote)))
        elif kind == "name":
            tokens.append(Token(lexeme if lexeme in _KEYWORDS else "name", lexeme, pos, lexeme))
        elif kind in ("addr4", "addr6"):
            tokens.append(Token("addr", lexeme, pos, lexeme))
        elif kind == "op":
            tokens.append(Token(lexeme, lexeme, pos))
        pos = m.end()
    tokens.append(Token("eof", "", len(text)))
    return tokens


# ---- syntax tree ----------------------------------------------------------


@dataclass(frozen=True)
class Num:
    value: int | float
    pos: int


@dataclass(frozen=True)
class Str:
    value: str
    pos: int
    text: str  # as written, quotes included


@dataclass(frozen=True)
class Name:
    name: str
    pos: int


@dataclass(frozen=True)
class Addr:
    text: str
    pos: int


@dataclass(frozen=True)
class ListLit:
    items: tuple["Node", ...]
    pos: int


@dataclass(frozen=True)
class Neg:
    operand: "Node"
    pos: int


@dataclass(frozen=True)
class Arith:
    op: str
    left: "Node"
    right: "Node"
    pos: int


@dataclass(frozen=True)
class Compare:
    op: str
    left: "Node"
    right: "Node"
    pos: int


@dataclass(frozen=True)
class Member:
    left: "Node"
    items: ListLit
    negated: bool
    pos: int


@dataclass(frozen=True)
class Match:
    left: "Node"
    pattern: Str
    negated: bool
    pos: int


@dataclass(frozen=True)
class Not:
    operand: "Node"
    pos: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    operands: tuple["Node", ...]
    pos: int


Node = Union[Num, Str, Name, Addr, ListLit, Neg, Arith, Compare, Member, Match, Not, BoolOp]

_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


class _Parser:
    """Recursive descent over the token list; one method per grammar rule."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, expected: str) -> RuleError:
        return _error(self.tok.pos, f"expected {expected}, found {self.tok.describe()}", expected=expected)

    def parse(self) -> Node:
        if self.tok.kind == "eof":
            raise _error(0, "empty condition", expected="a condition such as 'count > 100'")
        node = self.or_expr()
        if self.tok.kind != "eof":
            raise self.fail("'and', 'or' or the end of the condition")
        return node

    def or_expr(self) -> Node:
        return self._chain("or", self.and_expr)

    def and_expr(self) -> Node:
        return self._chain("and", self.not_expr)

    def _chain(self, op: str, operand: Callable[[], Node]) -> Node:
        first = operand()
        items = [first]
        while self.tok.kind == op:
            self.take()
            items.append(operand())
        return first if len(items) == 1 else BoolOp(op, tuple(items), _pos(first))

    def not_expr(self) -> Node:
        if self.tok.kind == "not":
            pos = self.take().pos
            return Not(self.not_expr(), pos)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum()
        tok = self.tok
        if tok.kind in _COMPARISONS:
            self.take()
            return Compare(tok.kind, left, self.sum(), tok.pos)
        if tok.kind == "in" or (tok.kind == "not" and self.tokens[self.i + 1].kind == "in"):
            negated = tok.kind == "not"
            self.i += 2 if negated else 1
            return Member(left, self.list(), negated, tok.pos)
        if tok.kind in ("=~", "!~"):
            self.take()
            if self.tok.kind != "str":
                raise self.fail(f"a quoted regular expression after '{tok.kind}'")
            pattern = self.take()
            return Match(left, Str(pattern.value, pattern.pos, pattern.text), tok.kind == "!~", tok.pos)
        if tok.kind == "not":
            raise self.fail("'in' after 'not' (write 'not in [...]', or put 'not' before the comparison)")
        return left

    def sum(self) -> Node:
        node = self.product()
        while self.tok.kind in ("+", "-"):
            op = self.take()
            node = Arith(op.kind, node, self.product(), op.pos)
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.tok.kind in ("*", "/"):
            op = self.take()
            node = Arith(op.kind, node, self.unary(), op.pos)
        return node

    def unary(self) -> Node:
        if self.tok.kind == "-":
            pos = self.take().pos
            return Neg(self.unary(), pos)
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "(":
            self.take()
            node = self.or_expr()
            if self.tok.kind != ")":
                raise self.fail("')' or an operator")
            self.take()
            return node
        atom = self._atom()
        if atom is None:
            raise self.fail("a field, number, string or '('")
        return atom

    def _atom(self) -> Node | None:
        tok = self.tok
        if tok.kind == "num":
            self.take()
            return Num(tok.value, tok.pos)
        if tok.kind == "str":
            self.take()
            return Str(tok.value, tok.pos, tok.text)
        if tok.kind == "name":
            self.take()
            return Name(tok.value, tok.pos)
        if tok.kind == "addr":
            self.take()
            return Addr(tok.value, tok.pos)
        return None

    def list(self) -> ListLit:
        if self.tok.kind != "[":
            raise self.fail("'[' opening a list of values")
        pos = self.take().pos
        items: list[Node] = []
        while self.tok.kind != "]":
            if self.tok.kind == "-" and self.tokens[self.i + 1].kind == "num":
                minus = self.take()
                number = self.take()
                items.append(Num(-number.value, minus.pos))
            else:
                atom = self._atom()
                if atom is None:
                    raise self.fail("a value or ']'")
                items.append(atom)
            if self.tok.kind == ",":
                self.take()
            elif self.tok.kind != "]":
                raise self.fail("',' or ']'")
        self.take()
        return ListLit(tuple(items), pos)


def _pos(node: Node) -> int:
    """Where a node starts in the text (binary nodes record their operator)."""
    while isinstance(node, (Arith, Compare, Member, Match, BoolOp)):
        node = node.left if not isinstance(node, BoolOp) else node.operands[0]
    return node.pos


def parse(text: str) -> Node:
    """The syntax tree of a condition; RuleError on a syntax error."""
    return _Parser(text).parse()


# ---- type checking and compilation ------------------------------------------

Batch = Mapping[str, Any]
Eval = Callable[[Batch], Any]


@dataclass
class _Typed:
    """A compiled sub-expression: its type and the closure computing it."""

    kind: str  # number | bool | enum | string | address
    fn: Eval
    field: Field | None = None  # set when the expression is a bare field
    const: bool = False  # fn ignores the batch


def _error(pos: int, message: str, expected: str | None = None) -> RuleError:
    return RuleError(message, line=1, column=pos + 1, expected=expected, offset=pos)


def _suggest(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return lowered[word.lower()]
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_field(name: Name) -> RuleError:
    hint = _suggest(name.name, all_names())
    tail = f" (did you mean '{hint}'?)" if hint else ""
    return _error(name.pos, f"unknown field '{name.name}'{tail}", expected="a field name")


def _vocabulary_hint(field_: Field) -> str:
    shown = ", ".join(field_.vocabulary[:8])
    return shown + (", ..." if len(field_.vocabulary) > 8 else "")


def _enum_code(field_: Field, node: Node) -> int:
    """The code of an enum literal (a bare word or a quoted string) next to ``field_``."""
    if isinstance(node, (Name, Str)):
        value = node.name if isinstance(node, Name) else node.value
        if value in field_.vocabulary:
            return field_.vocabulary.index(value)
        hint = _suggest(value, field_.vocabulary)
        tail = f"; did you mean '{hint}'?" if hint else ""
        raise _error(
            node.pos,
            f"unknown {field_.name} '{value}' (expected one of {_vocabulary_hint(field_)}{tail})",
            expected=", ".join(field_.vocabulary),
        )
    raise _error(
        _pos(node),
        f"{field_.name} is an enum field: compare it with one of its names "
        f"({_vocabulary_hint(field_)}), not {_describe(node)}",
        expected=", ".join(field_.vocabulary),
    )


def _describe(node: Node) -> str:
    if isinstance(node, Num):
        return f"the number {node.value}"
    if isinstance(node, Str):
        return f"the string {node.text}"
    if isinstance(node, Addr):
        return f"the address {node.text}"
    if isinstance(node, Name):
        return f"'{node.name}'"
    return "an expression"


class _Compiler:
    def __init__(self) -> None:
        self.fields: set[str] = set()
        self.arithmetic = False

    # -- leaves

    def field(self, name: Name) -> _Typed:
        f = resolve(name.name)
        if f is None:
            raise _unknown_field(name)
        self.fields.add(f.name)
        key = f.name
        return _Typed(f.kind, lambda b: b[key], field=f)

    def value(self, node: Node) -> _Typed:
        """Compile an expression that must produce a number, bool, or field value."""
        if isinstance(node, Num):
            v = node.value
            return _Typed("number", lambda b: v, const=True)
        if isinstance(node, Name):
            return self.field(node)
        if isinstance(node, Neg):
            inner = self.number(node.operand, "'-'")
            self.arithmetic = True
            if inner.const:
                v = -inner.fn({})
                return _Typed("number", lambda b: v, const=True)
            f = inner.fn
            return _Typed("number", lambda b: np.negative(_float(f(b))))
        if isinstance(node, Arith):
            return self.arith(node)
        if isinstance(node, (Compare, Member, Match, Not, BoolOp)):
            return self.boolean(node)
        if isinstance(node, Str):
            raise _error(node.pos, f"a string ({node.text}) can only be compared with an enum field or matched with =~")
        if isinstance(node, Addr):
            raise _error(node.pos, f"an address ({node.text}) can only be compared with src or dst")
        raise _error(_pos(node), "a list can only follow 'in' or 'not in'")

    def number(self, node: Node, context: str) -> _Typed:
        typed = self.value(node)
        if typed.kind != "number":
            what = f"{typed.field.name} is {_article(typed.kind)} field" if typed.field else f"it is {_article(typed.kind)}"
            raise _error(_pos(node), f"{context} needs numbers, and {what}", expected="a number")
        return typed

    def arith(self, node: Arith) -> _Typed:
        left = self.number(node.left, f"'{node.op}'")
        right = self.number(node.right, f"'{node.op}'")
        self.arithmetic = True
        ufunc = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide}[node.op]
        lf, rf = left.fn, right.fn
        if left.const and right.const:
            with np.errstate(all="ignore"):
                v = ufunc(np.float64(lf({})), np.float64(rf({})))
            return _Typed("number", lambda b: v, const=True)
        return _Typed("number", lambda b: ufunc(_float(lf(b)), _float(rf(b))))

    # -- conditions

    def boolean(self, node: Node) -> _Typed:
        if isinstance(node, BoolOp):
            parts = [self.condition(n) for n in node.operands]
            fns = [p.fn for p in parts]
            if node.op == "and":
                return _Typed("bool", _all_of(fns))
            return _Typed("bool", _any_of(fns))
        if isinstance(node, Not):
            inner = self.condition(node.operand).fn
            return _Typed("bool", lambda b: np.logical_not(inner(b)))
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Member):
            return self.member(node)
        if isinstance(node, Match):
            return self.match(node)
        return self.condition(node)

    def condition(self, node: Node) -> _Typed:
        typed = self.value(node)
        if typed.kind != "bool":
            if typed.field is not None:
                example = f"{typed.field.name} > 0" if typed.kind == "number" else f"{typed.field.name} == ..."
                raise _error(
                    _pos(node),
                    f"'{typed.field.name}' is {_article(typed.kind)} field, not a condition (compare it, e.g. '{example}')",
                    expected="a comparison",
                )
            raise _error(_pos(node), f"expected a condition (a comparison), found {_article(typed.kind)}", expected="a comparison")
        return typed

    def compare(self, node: Compare) -> _Typed:
        left, right, op = node.left, node.right, node.op
        left_field = _enum_or_text_field(left)
        right_field = _enum_or_text_field(right)
        if left_field is None and right_field is not None and op in ("==", "!="):
            left, right, left_field = right, left, right_field
        if left_field is not None:
            return self.compare_symbolic(left, left_field, op, right, node.pos)
        left_addr = _address_field(left)
        right_addr = _address_field(right)
        if left_addr is None and right_addr is not None and op in ("==", "!="):
            left, right, left_addr = right, left, right_addr
        if left_addr is not None:
            if op not in ("==", "!="):
                raise _error(node.pos, f"'{op}' is not defined for addresses (use ==, != or in [CIDR, ...])")
            mask = self.addresses(left, ListLit((right,), _pos(right)))
            return _Typed("bool", mask if op == "==" else _negate(mask))
        if isinstance(left, (Compare, Member, Match, Not, BoolOp)):
            raise _error(node.pos, f"'{op}' compares values, not conditions (combine conditions with 'and', 'or')")
        a = self.number(left, f"'{op}'")
        b = self.number(right, f"'{op}'")
        return _Typed("bool", _comparison(op, a.fn, b.fn))

    def compare_symbolic(self, left: Node, field_: Field, op: str, right: Node, pos: int) -> _Typed:
        """enum or string field against a literal or (enum) another field of the same vocabulary."""
        self.field(left)  # type: ignore[arg-type]
        key = field_.name
        if op not in ("==", "!="):
            raise _error(
                pos,
                f"'{op}' is not defined for {field_.kind} field {key} (use ==, !=, in, not in, =~ or !~)",
                expected="==, !=, in, not in, =~ or !~",
            )
        other = _enum_or_text_field(right)
        if isinstance(right, Name) and other is not None and not _is_literal_for(field_, right):
            if other.kind != field_.kind or other.vocabulary != field_.vocabulary:
                raise _error(_pos(right), f"{key} and {other.name} have different values and cannot be compared")
            self.field(right)
            okey = other.name
            if field_.kind == "string":
                fn: Eval = lambda b: b[key] == b[okey]
            else:
                fn = lambda b: np.asarray(b[key]) == np.asarray(b[okey])
            return _Typed("bool", fn if op == "==" else _negate(fn))
        if field_.kind == "string":
            value = _text_literal(field_, right).encode("latin-1", "replace")
            fn = lambda b: _bytes(b[key]) == value
        else:
            code = _enum_code(field_, right)
            fn = lambda b: b[key] == code
        return _Typed("bool", fn if op == "==" else _negate(fn))

    def member(self, node: Member) -> _Typed:
        left = node.left
        sym = _enum_or_text_field(left)
        if sym is not None:
            self.field(left)  # type: ignore[arg-type]
            key = sym.name
            if sym.kind == "string":
                values = np.array([_text_literal(sym, item).encode("latin-1", "replace") for item in node.items.items])
                fn: Eval = lambda b: np.isin(_bytes(b[key]), values)
            else:
                fn = _code_set(key, {_enum_code(sym, item) for item in node.items.items})
        elif _address_field(left) is not None:
            fn = self.addresses(left, node.items)
        else:
            a = self.number(left, "'in'")
            numbers = []
            for item in node.items.items:
                if not isinstance(item, Num):
                    raise _error(_pos(item), f"a list of numbers was expected, found {_describe(item)}", expected="a number")
                numbers.append(item.value)
            values = np.array(numbers, dtype=np.float64)
            lf = a.fn
            fn = lambda b: np.isin(lf(b), values)
        return _Typed("bool", _negate(fn) if node.negated else fn)

    def addresses(self, left: Node, items: ListLit) -> Eval:
        typed = self.field(left)  # type: ignore[arg-type]
        key = typed.field.name  # type: ignore[union-attr]
        networks: list[Network] = []
        for item in items.items:
            if not isinstance(item, (Addr, Str)):
                raise _error(_pos(item), f"{key} is an address: expected a CIDR such as 10.0.0.0/8, found {_describe(item)}", expected="a CIDR")
            text = item.text if isinstance(item, Addr) else item.value
            try:
                networks.append(parse_network(text))
            except ValueError as exc:
                raise _error(item.pos, str(exc), expected="an IPv4 or IPv6 CIDR") from None
        nets = AddressSet(tuple(networks))
        return lambda b: nets.matches(*address_parts(b[key]))

    def match(self, node: Match) -> _Typed:
        sym = _enum_or_text_field(node.left)
        if sym is None:
            what = _describe(node.left)
            f = node.left if isinstance(node.left, Name) else None
            if f is not None and resolve(f.name) is None:
                raise _unknown_field(f)
            raise _error(node.pos, f"'=~' and '!~' need an enum or string field on the left, found {what}", expected="an enum field")
        self.field(node.left)  # type: ignore[arg-type]
        try:
            regex = re.compile(node.pattern.value)
        except re.error as exc:
            at = node.pattern.pos + 1 + (exc.pos or 0)
            raise _error(at, f"bad regular expression for {sym.name}: {exc.msg}", expected="a Python regular expression") from None
        key = sym.name
        if sym.kind == "enum":
            fn = _code_set(key, {code for code, name in enumerate(sym.vocabulary) if regex.search(name)})
        else:
            fn = lambda b: _regex_over_strings(regex, b[key])
        return _Typed("bool", _negate(fn) if node.negated else fn)


def _article(kind: str) -> str:
    return {"enum": "an enum", "address": "an address", "number": "a number", "bool": "a condition", "string": "a string"}[kind]


def _enum_or_text_field(node: Node) -> Field | None:
    if isinstance(node, Name):
        f = resolve(node.name)
        if f is not None and f.kind in ("enum", "string"):
            return f
    return None


def _address_field(node: Node) -> Field | None:
    if isinstance(node, Name):
        f = resolve(node.name)
        if f is not None and f.kind == "address":
            return f
    return None


def _is_literal_for(field_: Field, node: Name) -> bool:
    return field_.kind == "enum" and node.name in field_.vocabulary


def _text_literal(field_: Field, node: Node) -> str:
    if isinstance(node, Str):
        return node.value
    if isinstance(node, Name):
        return node.name
    raise _error(_pos(node), f"{field_.name} is a string field: expected a quoted string, found {_describe(node)}", expected="a string")


def _float(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x if x.dtype == np.float64 else x.astype(np.float64)
    return np.float64(x)


def _bytes(column: np.ndarray) -> np.ndarray:
    return column if column.dtype.kind == "S" else np.char.encode(column.astype(str), "latin-1")


def _regex_over_strings(regex: re.Pattern[str], column: np.ndarray) -> np.ndarray:
    """One regex run per distinct value, not per record."""
    distinct, inverse = np.unique(column, return_inverse=True)
    hits = np.array(
        [bool(regex.search(v.decode("latin-1") if isinstance(v, bytes) else str(v))) for v in distinct.tolist()],
        dtype=bool,
    )
    return hits[inverse.reshape(-1)] if len(distinct) else np.zeros(len(column), dtype=bool)


def _code_set(key: str, codes: set[int]) -> Eval:
    """Membership of an enum column in a set of codes: a 256-entry table for uint8 codes."""
    table = np.zeros(256, dtype=bool)
    table[sorted(codes)] = True
    code_array = np.array(sorted(codes), dtype=np.int64)
    if len(codes) == 1:
        (only,) = codes
        return lambda b: np.asarray(b[key]) == only

    def fn(b: Batch) -> np.ndarray:
        column = np.asarray(b[key])
        if column.dtype == np.uint8:
            return table[column]
        return np.isin(column, code_array)

    return fn


def _comparison(op: str, lf: Eval, rf: Eval) -> Eval:
    if op == "!=":
        # as '<' or '>': false when either side is nan, like every other comparison
        def not_equal(b: Batch) -> Any:
            left, right = lf(b), rf(b)
            if _is_float(left) or _is_float(right):
                return np.less(left, right) | np.greater(left, right)
            return np.not_equal(left, right)

        return not_equal
    ufunc = {"==": np.equal, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}[op]
    return lambda b: ufunc(lf(b), rf(b))


def _is_float(x: Any) -> bool:
    return isinstance(x, float) or (hasattr(x, "dtype") and x.dtype.kind == "f")


def _negate(fn: Eval) -> Eval:
    return lambda b: np.logical_not(fn(b))


def _all_of(fns: list[Eval]) -> Eval:
    first, rest = fns[0], fns[1:]

    def fn(b: Batch) -> Any:
        out = first(b)
        for f in rest:
            out = out & f(b)
        return out

    return fn


def _any_of(fns: list[Eval]) -> Eval:
    first, rest = fns[0], fns[1:]

    def fn(b: Batch) -> Any:
        out = first(b)
        for f in rest:
            out = out | f(b)
        return out

    return fn


@dataclass(frozen=True, eq=False)
class Condition:
    """A compiled condition: ``evaluate(batch)`` gives one bool per record.

    ``fields`` holds the canonical names of the fields the condition
    reads, so the caller computes only those (and knows whether models
    must run).
    """

    text: str
    tree: Node = field(repr=False)
    fields: frozenset[str]
    _fn: Eval = field(repr=False)
    _arithmetic: bool = field(default=False, repr=False)

    def evaluate(self, batch: Batch) -> np.ndarray:
        """The records of ``batch`` (field name -> column) for which the condition holds."""
        if self._arithmetic:
            with np.errstate(all="ignore"):
                out = self._fn(batch)
        else:
            out = self._fn(batch)
        out = np.asarray(out, dtype=bool)
        if out.ndim == 0:
            out = np.full(batch_rows(batch), bool(out))
        return out

    @property
    def uses_models(self) -> bool:
        return any(FIELDS[name].source == "model" for name in self.fields)


def parse_condition(text: str) -> Condition:
    """Parse, type-check and compile a condition; RuleError (with a column) on any problem."""
    if not isinstance(text, str):
        raise RuleError(f"a condition must be a string, not {type(text).__name__}")
    compiler = _Compiler()
    try:
        tree = parse(text)
        typed = compiler.condition(tree)
    except RecursionError:
        raise _error(0, "condition nested too deeply", expected="fewer nested parentheses or operators") from None
    return Condition(text, tree, frozenset(compiler.fields), typed.fn, compiler.arithmetic)
