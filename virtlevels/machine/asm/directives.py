"""Assembler directives (GNU as manual, "Assembler Directives"; RISC-V specifics from the
"RISC-V Dependent Features" chapter: ``.align`` takes a power of two, ``.half``/``.word``/``.dword``).
"""

from __future__ import annotations

from collections.abc import Callable

from . import expr as X
from .lexer import parse_strings, split_operands
from .program import BSS, DATA, NOP, RODATA, TEXT, Assembler

Directive = Callable[[Assembler, str], None]
DIRECTIVES: dict[str, Directive] = {}


def _directive(*names: str) -> Callable[[Directive], Directive]:
    def register(fn: Directive) -> Directive:
        for n in names:
            DIRECTIVES[n] = fn
        return fn

    return register


# -- sections -------------------------------------------------------------------------------


def _switch(a: Assembler, name: str, flags: str = "", sect_type: str = "") -> None:
    a.cur = a.section(name, flags, sect_type)


@_directive(".text")
def _text(a: Assembler, args: str) -> None:
    _switch(a, TEXT)


@_directive(".data")
def _data(a: Assembler, args: str) -> None:
    _switch(a, DATA)


@_directive(".rodata")
def _rodata(a: Assembler, args: str) -> None:
    _switch(a, RODATA)


@_directive(".bss")
def _bss(a: Assembler, args: str) -> None:
    _switch(a, BSS)


@_directive(".section")
def _section(a: Assembler, args: str) -> None:
    parts = split_operands(args)
    if not parts or not parts[0]:
        raise a.error("missing section name")
    name = parts[0].strip('"')
    flags = parts[1].strip().strip('"') if len(parts) > 1 else ""
    sect_type = parts[2].strip().lstrip("@%") if len(parts) > 2 else ""
    _switch(a, name, flags, sect_type)


# -- symbols --------------------------------------------------------------------------------


@_directive(".globl", ".global")
def _globl(a: Assembler, args: str) -> None:
    for name in split_operands(args):
        if not name:
            raise a.error("missing symbol name")
        a.globals.add(name)


def _set(a: Assembler, args: str, *, redefine: bool) -> None:
    parts = split_operands(args)
    if len(parts) != 2 or not parts[0]:
        raise a.error("expected `symbol, expression`")
    a.define_symbol(parts[0], a.expr(parts[1]), redefine=redefine)


@_directive(".equ", ".set")
def _equ(a: Assembler, args: str) -> None:
    _set(a, args, redefine=True)


@_directive(".equiv")
def _equiv(a: Assembler, args: str) -> None:
    _set(a, args, redefine=False)


@_directive(
    ".type",
    ".size",
    ".file",
    ".ident",
    ".option",
    ".attribute",
    ".local",
    ".weak",
    ".hidden",
    ".protected",
    ".internal",
    ".addrsig",
    ".addrsig_sym",
    ".loc",
    ".variant_cc",
    ".cfi_startproc",
    ".cfi_endproc",
    ".cfi_def_cfa_offset",
    ".cfi_offset",
    ".cfi_restore",
    ".cfi_def_cfa",
    ".cfi_def_cfa_register",
    ".cfi_sections",
    ".cfi_remember_state",
    ".cfi_restore_state",
    ".cfi_escape",
    ".cfi_signal_frame",
    ".cfi_adjust_cfa_offset",
)
def _ignored(a: Assembler, args: str) -> None:
    """Accepted for compatibility with gcc output; they change nothing in a static image."""


@_directive(".end")
def _end(a: Assembler, args: str) -> None:
    a.ended = True


# -- alignment ------------------------------------------------------------------------------


def code_padding(pad: int) -> bytes:
    """What GNU as fills code with: NOPs, after a 2-byte c.nop pattern and zeros up to a word boundary."""
    lead = pad % 4
    head = bytes(lead - 2) + b"\x01\x00" if lead >= 2 else bytes(lead)
    return head + NOP.to_bytes(4, "little") * (pad // 4)


def _align_to(a: Assembler, boundary: int, fill: int | None, max_skip: int | None) -> None:
    if boundary <= 0 or boundary & (boundary - 1):
        raise a.error(f"alignment {boundary} is not a power of two")
    sec = a.cur
    pad = -len(sec.data) % boundary
    if max_skip is not None and pad > max_skip:
        return
    sec.align = max(sec.align, boundary)
    if not pad:
        return
    if fill is None and sec.group == TEXT:
        sec.data += code_padding(pad)
    else:
        sec.data += bytes([fill & 0xFF if fill is not None else 0]) * pad


def _align_args(a: Assembler, args: str) -> tuple[int, int | None, int | None]:
    parts = split_operands(args)
    if not parts or not parts[0]:
        raise a.error("missing alignment")
    if len(parts) > 3:
        raise a.error("expected `alignment[, fill[, max-skip]]`")
    n = a.absolute_now(a.expr(parts[0]), "alignment")
    fill = a.absolute_now(a.expr(parts[1]), "fill value") if len(parts) > 1 and parts[1] else None
    max_skip = a.absolute_now(a.expr(parts[2]), "maximum skip") if len(parts) > 2 and parts[2] else None
    return n, fill, max_skip


@_directive(".align", ".p2align")
def _p2align(a: Assembler, args: str) -> None:
    n, fill, max_skip = _align_args(a, args)
    if not 0 <= n <= 30:
        raise a.error(f"alignment 2**{n} too large")
    _align_to(a, 1 << n, fill, max_skip)


@_directive(".balign")
def _balign(a: Assembler, args: str) -> None:
    n, fill, max_skip = _align_args(a, args)
    _align_to(a, max(n, 1), fill, max_skip)


# -- data -----------------------------------------------------------------------------------


def _emit_values(a: Assembler, args: str, width: int) -> None:
    sec = a.cur
    for text in split_operands(args):
        if not text:
            raise a.error("missing value")
        node = a.expr(text)
        off = len(sec.data)
        if node[0] == "n":
            _check_nobits(a, node[1])
            sec.data += (node[1] & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        else:
            sec.fixups.append((off, width, node, a.stmt))
            sec.data += bytes(width)


def _check_nobits(a: Assembler, value: int) -> None:
    if a.cur.nobits and value:
        raise a.error(f"non-zero data in {a.cur.name}, which holds no data")


def _data_directive(width: int) -> Directive:
    def emit(a: Assembler, args: str) -> None:
        _emit_values(a, args, width)

    return emit


for _names, _width in (
    ((".byte",), 1),
    ((".half", ".short", ".2byte"), 2),
    ((".word", ".long", ".int", ".4byte"), 4),
    ((".dword", ".quad", ".8byte"), 8),
):
    for _n in _names:
        DIRECTIVES[_n] = _data_directive(_width)


def _strings(a: Assembler, args: str, terminate: bool) -> None:
    try:
        strings = parse_strings(args)
    except ValueError as exc:
        raise a.error(str(exc)) from None
    if not strings:
        raise a.error("missing string")
    for s in strings:
        data = s + b"\0" if terminate else s
        _check_nobits(a, any(data))
        a.cur.data += data


@_directive(".ascii")
def _ascii(a: Assembler, args: str) -> None:
    _strings(a, args, False)


@_directive(".asciz", ".string")
def _asciz(a: Assembler, args: str) -> None:
    _strings(a, args, True)


@_directive(".space", ".zero", ".skip")
def _space(a: Assembler, args: str) -> None:
    parts = split_operands(args)
    if not parts or not parts[0]:
        raise a.error("missing size")
    size = a.absolute_now(a.expr(parts[0]), "size")
    if size < 0:
        raise a.error(f"negative size {size}")
    fill = a.absolute_now(a.expr(parts[1]), "fill value") & 0xFF if len(parts) > 1 else 0
    _check_nobits(a, fill)
    a.cur.data += bytes([fill]) * size


@_directive(".fill")
def _fill(a: Assembler, args: str) -> None:
    parts = split_operands(args)
    if not parts or not parts[0]:
        raise a.error("missing repeat count")
    repeat = a.absolute_now(a.expr(parts[0]), "repeat count")
    size = a.absolute_now(a.expr(parts[1]), "size") if len(parts) > 1 else 1
    value = a.absolute_now(a.expr(parts[2]), "value") if len(parts) > 2 else 0
    if repeat < 0 or not 0 <= size <= 8:
        raise a.error("bad .fill repeat count or size")
    _check_nobits(a, value)
    # GNU as: the value is 4 bytes wide at most; wider sizes are zero-padded.
    unit = (value & 0xFFFFFFFF).to_bytes(4, "little")[:size] + bytes(max(0, size - 4))
    a.cur.data += unit * repeat


@_directive(".org")
def _org(a: Assembler, args: str) -> None:
    parts = split_operands(args)
    node = a.expr(parts[0]) if parts and parts[0] else None
    if node is None:
        raise a.error("missing location")
    try:
        target, sect = a.value_now(node)
    except X.ExprError as exc:
        raise a.error(f".org location must be known here ({exc})") from None
    if sect is not None and sect != a.cur.name:
        raise a.error(".org location is in another section")
    here = len(a.cur.data)
    if target < here:
        raise a.error(f".org cannot move backwards (from {here:#x} to {target:#x})")
    fill = a.absolute_now(a.expr(parts[1]), "fill value") & 0xFF if len(parts) > 1 else 0
    a.cur.data += bytes([fill]) * (target - here)
