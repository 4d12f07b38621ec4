"""Expressions as GNU as reads them: tokens, a precedence parser and an evaluator.

An expression becomes a small tuple tree, evaluated once all labels have addresses. Values
are ``(number, section)`` pairs so that, before layout, ``end - start`` within one section is
known as an absolute number while ``start`` alone is not (GNU as, "Sections and Relocation").
Operator precedence follows GNU as (as.info, "Infix Operators"), not C: ``1 + 2 & 3`` is 3.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from virtlevels.errors import AssemblyError

# AST nodes (plain tuples, cheap to build and walk):
#   ("n", value) number   ("s", name) symbol   (".",) current location
#   ("u", op, a) unary    ("b", op, a, b) binary
#   ("%", func, a) %hi/%lo/%pcrel_hi/%pcrel_lo   ("plo", a, delta) lo12(a - (pc + delta))
Node = tuple
Value = tuple[int, "str | None"]  # (number, section name or None when absolute)

MASK64 = (1 << 64) - 1


class ExprError(AssemblyError):
    """An expression cannot be parsed or evaluated; the caller adds file:line."""


class Unresolved(ExprError):
    """The expression needs a symbol that is not (yet) defined or a not-yet-known address."""


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>0[xX][0-9a-fA-F]+|0[bB][01]+|\d+[bf](?![\w$.])|\d+)
     |(?P<chr>'(?:\\(?:[0-7]{1,3}|x[0-9a-fA-F]+|.)|[^\\])'?)
     |(?P<pct>%[A-Za-z_]+)
     |(?P<sym>[A-Za-z_.$][\w.$]*)
     |(?P<op><<|>>|<=|>=|==|!=|<>|&&|\|\||[-+*/%&|^~!()<>])
    )""",
    re.X,
)

_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "a": 7, "b": 8, "f": 12, "v": 11, "e": 27,
            "\\": 92, "'": 39, '"': 34}  # fmt: skip

# Binary operators by precedence rank, lowest first (as.info, "Infix Operators").
_RANKS: dict[str, int] = {
    "||": 1, "&&": 2,
    "+": 3, "-": 3, "==": 3, "!=": 3, "<>": 3, "<": 3, ">": 3, "<=": 3, ">=": 3,
    "|": 4, "&": 4, "^": 4, "!": 4,
    "*": 5, "/": 5, "%": 5, "<<": 5, ">>": 5,
}  # fmt: skip

PERCENT_FUNCS = ("hi", "lo", "pcrel_hi", "pcrel_lo")

_SIMPLE_INT = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|[1-9]\d*|0)\Z")


def char_value(lit: str) -> int:
    """The value of a character constant body such as ``a`` or ``\\n``."""
    if not lit.startswith("\\"):
        return ord(lit[0])
    body = lit[1:]
    if body[0] in "01234567":
        return int(body, 8) & 0xFF
    if body[0] == "x":
        return int(body[1:], 16) & 0xFF
    return _ESCAPES.get(body, ord(body[0]))


def tokenize(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip() == "":
                break
            raise ExprError(f"unexpected character {text[pos:].strip()[0]!r} in expression")
        kind = m.lastgroup
        if kind is None:
            break
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


LocalRef = Callable[[str, str], str]  # (digits, "b" | "f") -> unique symbol name


class _Parser:
    __slots__ = ("toks", "i", "local_ref", "constants")

    def __init__(
        self, toks: list[tuple[str, str]], local_ref: LocalRef | None, constants: dict[str, int] | None
    ) -> None:
        self.toks = toks
        self.i = 0
        self.local_ref = local_ref
        self.constants = constants

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def binary(self, min_rank: int) -> Node:
        left = self.unary()
        while True:
            tok = self.peek()
            if tok is None or tok[0] != "op":
                return left
            rank = _RANKS.get(tok[1])
            if rank is None or rank < min_rank:
                return left
            self.i += 1
            right = self.binary(rank + 1)
            left = _fold(("b", tok[1], left, right))

    def unary(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise ExprError("missing operand in expression")
        kind, text = tok
        self.i += 1
        if kind == "op":
            if text in ("-", "~", "!", "+"):
                return _fold(("u", text, self.unary()))
            if text == "(":
                inner = self.binary(1)
                self.expect(")")
                return inner
            raise ExprError(f"unexpected {text!r} in expression")
        if kind == "num":
            if text[-1] in "bf" and text[:-1].isdigit():
                if self.local_ref is None:
                    raise ExprError(f"local label reference {text} not allowed here")
                return ("s", self.local_ref(text[:-1], text[-1]))
            return ("n", _number(text))
        if kind == "chr":
            return ("n", char_value(text[1:-1] if text.endswith("'") and len(text) > 2 else text[1:]))
        if kind == "pct":
            func = text[1:]
            if func not in PERCENT_FUNCS:
                raise ExprError(f"unknown relocation %{func}")
            self.expect("(")
            inner = self.binary(1)
            self.expect(")")
            return ("%", func, inner)
        # symbol
        if text == ".":
            return (".",)
        if self.constants is not None and text in self.constants:
            return ("n", self.constants[text])
        return ("s", text)

    def expect(self, op: str) -> None:
        tok = self.peek()
        if tok is None or tok[1] != op:
            raise ExprError(f"expected {op!r} in expression")
        self.i += 1


def _number(text: str) -> int:
    if text[:2] in ("0x", "0X"):
        return int(text[2:], 16)
    if text[:2] in ("0b", "0B"):
        return int(text[2:], 2)
    if len(text) > 1 and text[0] == "0":
        try:
            return int(text, 8)  # GNU as: a leading 0 means octal
        except ValueError:
            raise ExprError(f"bad octal number {text}") from None
    return int(text)


def _fold(node: Node) -> Node:
    """Fold operators over plain numbers at parse time, so most operands are one ("n", v)."""
    if node[0] == "u" and node[2][0] == "n":
        return ("n", _unary(node[1], node[2][1]))
    if node[0] == "b" and node[2][0] == "n" and node[3][0] == "n":
        return ("n", _binary_abs(node[1], node[2][1], node[3][1]))
    return node


def parse(text: str, local_ref: LocalRef | None = None, constants: dict[str, int] | None = None) -> Node:
    """Parse one expression. ``constants`` are symbols whose current value is substituted now."""
    text = text.strip()
    if _SIMPLE_INT.match(text):
        neg = text.startswith("-")
        body = text[1:] if neg else text
        v = int(body[2:], 16) if body[:2] in ("0x", "0X") else int(body)
        return ("n", -v if neg else v)
    if not text:
        raise ExprError("missing expression")
    p = _Parser(tokenize(text), local_ref, constants)
    node = p.binary(1)
    if p.i != len(p.toks):
        raise ExprError(f"junk at end of expression: {p.toks[p.i][1]!r}")
    return node


def symbols_in(node: Node) -> set[str]:
    kind = node[0]
    if kind == "s":
        return {node[1]}
    if kind == "u" or kind == "%":
        return symbols_in(node[2])
    if kind == "b":
        return symbols_in(node[2]) | symbols_in(node[3])
    if kind == "plo":
        return symbols_in(node[1])
    return set()


def _to_signed64(v: int) -> int:
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


def _unary(op: str, a: int) -> int:
    if op == "-":
        return _to_signed64(-a)
    if op == "~":
        return _to_signed64(~a)
    if op == "!":
        return 1 if a == 0 else 0
    return a


def _binary_abs(op: str, a: int, b: int) -> int:
    # 64-bit arithmetic as GNU as does on a 64-bit host (offsetT/valueT).
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    elif op in ("/", "%"):
        if b == 0:
            raise ExprError("division by zero")
        q = abs(a) // abs(b)
        q = q if (a >= 0) == (b >= 0) else -q  # C truncation toward zero
        r = q if op == "/" else a - q * b
    elif op == "<<":
        r = a << b if 0 <= b < 64 else 0
    elif op == ">>":
        r = (a & MASK64) >> b if 0 <= b < 64 else 0  # valueT: a logical shift
    elif op == "&":
        r = a & b
    elif op == "|":
        r = a | b
    elif op == "^":
        r = a ^ b
    elif op == "!":
        r = a | ~b
    elif op == "&&":
        r = 1 if (a and b) else 0
    elif op == "||":
        r = 1 if (a or b) else 0
    else:
        # Comparisons give -1 for true (as.info, "Infix Operators").
        truth = {"==": a == b, "!=": a != b, "<>": a != b, "<": a < b, ">": a > b,
                 "<=": a <= b, ">=": a >= b}[op]  # fmt: skip
        r = -1 if truth else 0
    return _to_signed64(r)


def lo12(v: int) -> int:
    """Sign-extended low 12 bits: the addi/load/store half of a hi/lo split."""
    v &= 0xFFF
    return v - 0x1000 if v & 0x800 else v


def hi20(v: int) -> int:
    """The lui/auipc half of a hi/lo split; rounds up when the low half is negative."""
    return ((v + 0x800) >> 12) & 0xFFFFF


class Evaluator:
    """Evaluates trees against a symbol lookup. ``lookup`` raises Unresolved for unknown names."""

    __slots__ = ("lookup", "pc", "pcrel_hi_at")

    def __init__(
        self,
        lookup: Callable[[str], Value],
        pc: Value | None = None,
        pcrel_hi_at: Callable[[int], Node] | None = None,
    ) -> None:
        self.lookup = lookup
        self.pc = pc
        self.pcrel_hi_at = pcrel_hi_at

    def value(self, node: Node) -> Value:
        kind = node[0]
        if kind == "n":
            return node[1], None
        if kind == "s":
            return self.lookup(node[1])
        if kind == ".":
            if self.pc is None:
                raise Unresolved("'.' is not known here")
            return self.pc
        if kind == "u":
            a, sect = self.value(node[2])
            if sect is not None and node[1] != "+":
                raise Unresolved("operator applied to an address whose value is not yet known")
            return _unary(node[1], a), sect
        if kind == "b":
            return self._binary(node[1], self.value(node[2]), self.value(node[3]))
        if kind == "%":
            return self._percent(node[1], node[2]), None
        if kind == "plo":
            target = self.absolute(node[1])
            pc = self._pc_abs()
            return lo12(target - (pc + node[2])), None
        raise ExprError(f"bad expression node {kind!r}")

    def absolute(self, node: Node) -> int:
        v, sect = self.value(node)
        if sect is not None:
            raise Unresolved("value is an address not yet known")
        return v

    def _pc_abs(self) -> int:
        if self.pc is None or self.pc[1] is not None:
            raise Unresolved("pc-relative value needs the final address")
        return self.pc[0]

    def _binary(self, op: str, a: Value, b: Value) -> Value:
        av, asect = a
        bv, bsect = b
        if asect is None and bsect is None:
            return _binary_abs(op, av, bv), None
        if op == "+" and (asect is None or bsect is None):
            return av + bv, asect or bsect
        if op == "-":
            if asect == bsect:
                return av - bv, None
            if bsect is None:
                return av - bv, asect
        raise Unresolved("expression combines addresses that are not yet known")

    def _percent(self, func: str, inner: Node) -> int:
        if func == "hi":
            return hi20(self.absolute(inner))
        if func == "lo":
            return lo12(self.absolute(inner))
        pc = self._pc_abs()
        if func == "pcrel_hi":
            return hi20(self.absolute(inner) - pc)
        # %pcrel_lo(label): label marks the auipc whose %pcrel_hi gives the target.
        anchor = self.absolute(inner)
        if self.pcrel_hi_at is None:
            raise Unresolved("%pcrel_lo needs the final address")
        hi_target = self.pcrel_hi_at(anchor)
        return lo12(self.absolute(hi_target) - anchor)
