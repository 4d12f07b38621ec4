"""Source text to statements: comments, statement separators, labels and operand lists.

GNU as for RISC-V: ``#`` starts a comment, ``;`` separates statements on one line and
``/* ... */`` comments may span lines. We also take ``//`` as a comment, since hand-written
``.S`` files use it and gcc's preprocessor would have removed it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import attrs

from virtlevels.errors import AssemblyError

_PLAIN = re.compile(r"[^#;/\"']*\Z")  # nothing that needs the slow scanner
_LABEL = re.compile(r"\s*([A-Za-z_.$][\w.$]*|\d+)\s*:(?!=)")
_MNEMONIC = re.compile(r"\s*([A-Za-z_.$][\w.$]*)")


@attrs.frozen
class Statement:
    """One statement: its labels, mnemonic and raw operand text."""

    line: int
    text: str  # the statement as written, for messages
    labels: tuple[str, ...]
    mnemonic: str  # as written; the assembler lower-cases it for lookup
    operands: str


def _logical_lines(source: str, filename: str) -> Iterator[tuple[int, str]]:
    """Yield (line number, statement text) with comments removed and ';' split."""
    in_block = False
    block_start = 0
    for lineno, raw in enumerate(source.splitlines(), 1):
        if not in_block and _PLAIN.match(raw):
            yield lineno, raw
            continue
        parts: list[str] = []
        cur: list[str] = []
        i, n = 0, len(raw)
        while i < n:
            c = raw[i]
            if in_block:
                j = raw.find("*/", i)
                if j < 0:
                    i = n
                    break
                in_block = False
                i = j + 2
                cur.append(" ")
                continue
            if c == '"' or c == "'":
                j = i + 1
                while j < n and raw[j] != c:
                    j += 2 if raw[j] == "\\" else 1
                if c == '"' and j >= n:
                    raise AssemblyError(f"{filename}:{lineno}: unterminated string: {raw.strip()}")
                cur.append(raw[i : j + 1])
                i = j + 1
                continue
            if c == "#" or (c == "/" and raw.startswith("//", i)):
                break
            if c == "/" and raw.startswith("/*", i):
                in_block = True
                block_start = lineno
                i += 2
                continue
            if c == ";":
                parts.append("".join(cur))
                cur = []
            else:
                cur.append(c)
            i += 1
        parts.append("".join(cur))
        for p in parts:
            yield lineno, p
    if in_block:
        raise AssemblyError(f"{filename}:{block_start}: unterminated /* comment: /*")


def statements(source: str, filename: str) -> Iterator[Statement]:
    """The statements of a source file, in order; blank statements are skipped."""
    for lineno, text in _logical_lines(source, filename):
        if not text or text.isspace():
            continue
        labels: list[str] = []
        pos = 0
        while True:
            m = _LABEL.match(text, pos)
            if m is None:
                break
            labels.append(m.group(1))
            pos = m.end()
        m = _MNEMONIC.match(text, pos)
        if m is None:
            rest = text[pos:].strip()
            if rest:
                raise AssemblyError(f"{filename}:{lineno}: cannot parse statement: {text.strip()}")
            yield Statement(lineno, text.strip(), tuple(labels), "", "")
            continue
        yield Statement(lineno, text.strip(), tuple(labels), m.group(1), text[m.end() :].strip())


def split_operands(text: str) -> list[str]:
    """Split an operand list at commas outside parentheses and quotes."""
    if not text:
        return []
    if "(" not in text and '"' not in text and "'" not in text:
        return [p.strip() for p in text.split(",")]
    out: list[str] = []
    depth = 0
    cur_start = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            out.append(text[cur_start:i].strip())
            cur_start = i + 1
        i += 1
    out.append(text[cur_start:].strip())
    return out


_STRING_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
                   "e": "\x1b", "\\": "\\", '"': '"', "'": "'"}  # fmt: skip


def parse_strings(text: str) -> list[bytes]:
    """The comma-separated string literals of .ascii/.asciz/.string, with C escapes decoded."""
    out: list[bytes] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        if text[i] != '"':
            raise ValueError(f"expected a string literal at {text[i:]!r}")
        i += 1
        buf = bytearray()
        while True:
            if i >= n:
                raise ValueError("unterminated string")
            c = text[i]
            if c == '"':
                i += 1
                break
            if c != "\\":
                buf += c.encode("utf-8")
                i += 1
                continue
            i += 1
            if i >= n:
                raise ValueError("unterminated string")
            e = text[i]
            if e in "01234567":
                j = i
                while j < n and j < i + 3 and text[j] in "01234567":
                    j += 1
                buf.append(int(text[i:j], 8) & 0xFF)
                i = j
            elif e == "x":
                j = i + 1
                while j < n and text[j] in "0123456789abcdefABCDEF":
                    j += 1
                if j == i + 1:
                    raise ValueError("\\x with no hex digits")
                buf.append(int(text[i + 1 : j], 16) & 0xFF)
                i = j
            else:
                buf += _STRING_ESCAPES.get(e, e).encode("utf-8")
                i += 1
        out.append(bytes(buf))
    return out
