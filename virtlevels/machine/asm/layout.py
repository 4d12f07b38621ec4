"""Pass 2: place sections, give every symbol its address, fill in instructions and data.

Output groups follow each other in the order a default linker script gives them: .text at
the base address, then .rodata, .data and .bss, each starting on a 16-byte boundary (or its
sections' larger alignment), unless ``origins`` places a group at a given address.
"""

from __future__ import annotations

from collections.abc import Mapping

from virtlevels.errors import AssemblyError
from virtlevels.machine.image import PF_R, PF_W, PF_X, Image, Segment

from . import expr as X
from .encoder import FieldError, place
from .program import BSS, DATA, GROUPS, RODATA, TEXT, Assembler, Section, Symbol

GROUP_ALIGN = 16
_FLAGS = {TEXT: PF_R | PF_X, RODATA: PF_R, DATA: PF_R | PF_W, BSS: PF_R | PF_W}


def _align(v: int, a: int) -> int:
    return (v + a - 1) & ~(a - 1)


def place_sections(a: Assembler, base: int, origins: Mapping[str, int]) -> dict[str, int]:
    """Base address of every input section."""
    bases: dict[str, int] = {}
    addr = base
    for group in GROUPS:
        secs = sorted((s for s in a.sections.values() if s.group == group and s.data), key=lambda s: s.order)
        if not secs:
            continue
        if group in origins:
            addr = origins[group]
        elif group != TEXT:
            addr = _align(addr, max(GROUP_ALIGN, *(s.align for s in secs)))
        for s in secs:
            addr = _align(addr, s.align)
            bases[s.name] = addr
            addr += len(s.data)
    for s in a.sections.values():
        bases.setdefault(s.name, addr)  # empty sections: labels in them point past the end
    return bases


class _Resolver:
    """Final symbol values; deferred .equ expressions are evaluated on first use."""

    def __init__(self, a: Assembler, bases: dict[str, int]) -> None:
        self.a = a
        self.bases = bases
        self.done: dict[str, int] = {}
        self.busy: set[str] = set()

    def __call__(self, name: str) -> X.Value:
        v = self.done.get(name)
        if v is not None:
            return v, None
        sym = self.a.symbols.get(name)
        if sym is None:
            shown = f"local label {name.split(chr(2))[0]}" if "\x02" in name else f"`{name}`"
            raise X.Unresolved(f"undefined symbol {shown}")
        v = self._value(sym)
        self.done[name] = v
        return v, None

    def _value(self, sym: Symbol) -> int:
        if sym.node is None:
            return sym.value + (self.bases[sym.section] if sym.section is not None else 0)
        if sym.name in self.busy:
            raise X.Unresolved(f"symbol `{sym.name}` is defined in terms of itself")
        self.busy.add(sym.name)
        try:
            return X.Evaluator(self).absolute(sym.node)
        finally:
            self.busy.discard(sym.name)


def link(a: Assembler, base: int, origins: Mapping[str, int] | None = None) -> Image:
    bases = place_sections(a, base, origins or {})
    resolve = _Resolver(a, bases)
    pcrel: dict[int, X.Node] = {}
    for s in a.sections.values():
        b = bases[s.name]
        for off, node in s.pcrel_hi.items():
            pcrel[b + off] = node

    def pcrel_hi_at(addr: int) -> X.Node:
        node = pcrel.get(addr & 0xFFFFFFFF)
        if node is None:
            raise X.ExprError(f"%pcrel_lo label at {addr:#x} does not mark an auipc with %pcrel_hi")
        return node

    ev = X.Evaluator(resolve, None, pcrel_hi_at)
    for s in a.sections.values():
        _fill_section(a, s, bases[s.name], ev)

    # Every symbol must resolve, even if unused (a bad .equ is still an error, as in GNU as).
    for name, sym in a.symbols.items():
        try:
            resolve(name)
        except X.ExprError as exc:
            raise a.error(str(exc), sym.stmt) from None

    symbols: dict[str, int] = {}
    for name, sym in a.symbols.items():
        if "\x02" in name or name.startswith(".L"):
            continue
        if sym.is_label or name in a.globals:
            symbols[name] = resolve.done[name] & 0xFFFFFFFF
    entry = symbols.get("_start", base)
    return Image(segments=_segments(a, bases), entry=entry, symbols=symbols, source=a.filename)


def _fill_section(a: Assembler, s: Section, b: int, ev: X.Evaluator) -> None:
    data = s.data
    for off, insn, stmt in s.insns:
        pc = (b + off) & 0xFFFFFFFF
        ev.pc = (pc, None)
        word = insn.enc.match | insn.regs
        fmt = insn.enc.fmt
        for field, node in insn.fields:
            try:
                v = node[1] if node[0] == "n" else ev.absolute(node)
                if field == "target":
                    v &= 0xFFFFFFFF
                word |= place(fmt, field, v, pc)
            except (X.ExprError, FieldError) as exc:
                raise a.error(str(exc), stmt) from None
        data[off : off + 4] = (word & 0xFFFFFFFF).to_bytes(4, "little")
    for off, width, node, stmt in s.fixups:
        ev.pc = ((b + off) & 0xFFFFFFFF, None)
        try:
            v = ev.absolute(node)
        except X.ExprError as exc:
            raise a.error(str(exc), stmt) from None
        if s.nobits and v:
            raise a.error(f"non-zero data in {s.name}, which holds no data", stmt)
        data[off : off + width] = (v & ((1 << (8 * width)) - 1)).to_bytes(width, "little")


def _segments(a: Assembler, bases: dict[str, int]) -> tuple[Segment, ...]:
    out: list[Segment] = []
    for group in GROUPS:
        secs = sorted((s for s in a.sections.values() if s.group == group and s.data), key=lambda s: s.order)
        if not secs:
            continue
        start = bases[secs[0].name]
        end = max(bases[s.name] + len(s.data) for s in secs)
        if group == BSS:
            out.append(Segment(start, b"", end - start, _FLAGS[group], group))
            continue
        buf = bytearray(end - start)
        for s in secs:
            o = bases[s.name] - start
            buf[o : o + len(s.data)] = s.data
        out.append(Segment(start, bytes(buf), end - start, _FLAGS[group], group))
    out.sort(key=lambda seg: seg.addr)
    for prev, nxt in zip(out, out[1:], strict=False):
        if prev.addr + prev.memsize > nxt.addr:
            raise AssemblyError(
                f"{a.filename}: {prev.name} ({prev.addr:#x}+{prev.memsize:#x}) "
                f"overlaps {nxt.name} at {nxt.addr:#x}"
            )
    return tuple(out)
