"""Disassembly in the text ``riscv64-unknown-elf-objdump -d`` (binutils 2.40) prints.

Decoding is driven by the rows of the instruction table (``match``/``mask``/``fmt``/``syntax``),
so rows added by ISA extensions disassemble too. With ``aliases=True`` (objdump's default) the
alias forms objdump prints are used (``li``, ``mv``, ``ret``, ``j``, ``beqz``, ``csrr`` ...,
including its habit of printing ``addi rd, rs, imm`` as ``add``); ``aliases=False`` matches
``objdump -M no-aliases``. Words no row matches print as ``.4byte 0x...`` as objdump does.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping

from virtlevels.machine.asm.names import ABI_NAMES, CSR_NAMES
from virtlevels.machine.image import PF_X, Image
from virtlevels.machine.isa import encodings as E
from virtlevels.machine.isa.encodings import Encoding

Symbolizer = Callable[[int], str]


class _Decoder:
    """Rows bucketed by major opcode, most specific mask first."""

    def __init__(self, rows: Iterable[Encoding]) -> None:
        self.buckets: dict[int, list[Encoding]] = {}
        self.syntax: dict[str, tuple[str, ...]] = {}
        for row in rows:
            self.syntax.setdefault(
                row.name, tuple(t.strip() for t in row.syntax.split(",")) if row.syntax else ()
            )
            opcodes = [row.match & 0x7F] if row.mask & 0x7F == 0x7F else range(128)
            for op in opcodes:
                self.buckets.setdefault(op, []).append(row)
        for rows_ in self.buckets.values():
            rows_.sort(key=lambda r: -bin(r.mask).count("1"))

    def find(self, word: int) -> Encoding | None:
        for row in self.buckets.get(word & 0x7F, ()):
            if word & row.mask == row.match:
                return row
        return None


_DECODERS: dict[int, tuple[tuple[Encoding, ...], _Decoder]] = {}


def _decoder(encodings: Iterable[Encoding] | None) -> _Decoder:
    rows = E.ENCODINGS if encodings is None else tuple(encodings)
    cached = _DECODERS.get(id(rows))
    if cached is not None and cached[0] is rows:
        return cached[1]
    dec = _Decoder(rows)
    _DECODERS[id(rows)] = (rows, dec)
    return dec


def _sext(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


def _imm(fmt: str, w: int) -> int:
    if fmt == E.S:
        return _sext(((w >> 25) << 5) | ((w >> 7) & 0x1F), 12)
    if fmt == E.U:
        return w >> 12
    if fmt == E.B:
        return _sext(
            ((w >> 31) << 12) | (((w >> 7) & 1) << 11) | (((w >> 25) & 0x3F) << 5) | (((w >> 8) & 0xF) << 1),
            13,
        )
    if fmt == E.J:
        return _sext(((w >> 31) << 20) | (((w >> 12) & 0xFF) << 12) | (((w >> 20) & 1) << 11)
                     | (((w >> 21) & 0x3FF) << 1), 21)  # fmt: skip
    return _sext(w >> 20, 12)


def _fence_set(bits: int) -> str:
    s = "".join(c for c, b in zip("iorw", (8, 4, 2, 1), strict=True) if bits & b)
    return s or "unknown"


def _objdump_rejects(row: Encoding, w: int) -> bool:
    """Encodings objdump prints as .4byte although a looser table row matches them."""
    if row.fmt == E.FENCE:
        return (w & 0xF00F8F80) != 0 and w != 0x8330000F  # reserved fm/rs1/rd bits
    if row.name == "fence.i":
        return w != 0x0000100F
    return False


class _Tracker:
    """objdump's memory of lui/auipc results, used to print ``# address`` after addi/loads/jalr."""

    def __init__(self, gp: int | None = None) -> None:
        self.hi: dict[int, int] = {}
        self.gp = gp

    def note_upper(self, name: str, rd: int, imm: int, pc: int) -> None:
        value = imm << 12
        self.hi[rd] = (value + pc if name == "auipc" else value) & 0xFFFFFFFF

    def address(self, base: int, offset: int) -> int | None:
        hi = self.hi.pop(base, None)
        if hi is not None:
            return ((hi if base else 0) + offset) & 0xFFFFFFFF
        if base == 3 and self.gp is not None:
            return (self.gp + offset) & 0xFFFFFFFF
        if base in (0, 4):  # x0 and tp: objdump prints the bare offset
            return offset & 0xFFFFFFFF
        return None


def _target(addr: int, symbolize: Symbolizer | None) -> str:
    addr &= 0xFFFFFFFF
    return f"{addr:x}" + (f" {symbolize(addr)}" if symbolize is not None and symbolize(addr) else "")


def disassemble(
    word: int,
    pc: int = 0,
    *,
    encodings: Iterable[Encoding] | None = None,
    aliases: bool = True,
    symbols: Mapping[str, int] | Symbolizer | None = None,
    _track: _Tracker | None = None,
) -> str:
    """objdump's text for one instruction word at ``pc``, e.g. ``"addi\\ta0,a0,1"``.

    ``symbols`` (a name->address map or a function address->"<sym+0x4>") decorates branch
    targets as objdump does.
    """
    symbolize = _symbolizer(symbols) if isinstance(symbols, Mapping) else symbols
    word &= 0xFFFFFFFF
    dec = _decoder(encodings)
    row = dec.find(word)
    if row is None or _objdump_rejects(row, word):
        return f".4byte\t{word:#x}"
    if word in _ALWAYS:  # objdump has these as instructions of their own, not aliases
        return _ALWAYS[word]
    track = _track if _track is not None else _Tracker()
    name, fmt = row.name, row.fmt
    rd, rs1, rs2 = (word >> 7) & 31, (word >> 15) & 31, (word >> 20) & 31
    imm = _imm(fmt, word)
    if fmt == E.U:
        track.note_upper(name, rd, imm, pc)
    mnemonic = name
    if fmt in (E.AMO, E.LR):
        mnemonic += {0: "", 2: ".aq", 1: ".rl", 3: ".aqrl"}[(word >> 25) & 3]
    # What objdump annotates with "# address": loads/stores/jalr offsets and addi's operand.
    comment_base: int | None = None
    if row.cls in ("load", "store") or name == "jalr" or (name == "addi" and rs1 != 0):
        comment_base = rs1

    if aliases:
        alias = _alias(name, rd, rs1, rs2, imm, word, pc, symbolize)
        if alias is not None:
            mnemonic, ops, uses_addr = alias
            text = f"{mnemonic}\t{ops}" if ops else mnemonic
            if uses_addr and comment_base is not None:
                return _with_comment(text, track.address(comment_base, imm), symbolize)
            return text

    ops_text = ",".join(
        _operand(tok, fmt, word, rd, rs1, rs2, imm, pc, symbolize) for tok in dec.syntax[name]
    )
    text = f"{mnemonic}\t{ops_text}" if ops_text else mnemonic
    if comment_base is not None:
        return _with_comment(text, track.address(comment_base, imm), symbolize)
    return text


def _with_comment(text: str, addr: int | None, symbolize: Symbolizer | None) -> str:
    if addr is None:
        return text
    return f"{text} # {_target(addr, symbolize)}"


def _operand(
    tok: str, fmt: str, w: int, rd: int, rs1: int, rs2: int, imm: int, pc: int, symbolize: Symbolizer | None
) -> str:
    if tok == "rd":
        return ABI_NAMES[rd]
    if tok == "rs1":
        return ABI_NAMES[rs1]
    if tok == "rs2":
        return ABI_NAMES[rs2]
    if tok == "imm":
        return f"{imm:#x}" if fmt == E.U else str(imm)
    if tok == "imm(rs1)":
        return f"{imm}({ABI_NAMES[rs1]})"
    if tok == "(rs1)":
        return f"({ABI_NAMES[rs1]})"
    if tok == "shamt":
        return f"{rs2:#x}"
    if tok == "target":
        return _target(pc + imm, symbolize)
    if tok == "csr":
        num = w >> 20
        return CSR_NAMES.get(num, f"{num:#x}")
    if tok == "uimm":
        return str(rs1)
    if tok == "pred":
        return _fence_set((w >> 24) & 0xF)
    if tok == "succ":
        return _fence_set((w >> 20) & 0xF)
    return "?"


_ALWAYS = {0x8330000F: "fence.tso", 0xC0001073: "unimp"}
_COUNTER_ALIASES = {0xC00: "rdcycle", 0xC01: "rdtime", 0xC02: "rdinstret",
                    0xC80: "rdcycleh", 0xC81: "rdtimeh", 0xC82: "rdinstreth"}  # fmt: skip
_IMM_AS_REG_OP = {"xori": "xor", "ori": "or", "andi": "and", "slli": "sll", "srli": "srl", "srai": "sra"}


def _alias(
    name: str, rd: int, rs1: int, rs2: int, imm: int, w: int, pc: int, symbolize: Symbolizer | None
) -> tuple[str, str, bool] | None:
    """(mnemonic, operands, prints an address comment) of objdump's alias for this word, if any."""
    R = ABI_NAMES
    if name == "addi":
        if rd == 0 and rs1 == 0 and imm == 0:
            return "nop", "", False
        if rs1 == 0:
            return "li", f"{R[rd]},{imm}", False
        if imm == 0:
            return "mv", f"{R[rd]},{R[rs1]}", False
        return "add", f"{R[rd]},{R[rs1]},{imm}", True
    if name in _IMM_AS_REG_OP:
        if name == "xori" and imm == -1:
            return "not", f"{R[rd]},{R[rs1]}", False
        if name == "andi" and imm == 255:
            return "zext.b", f"{R[rd]},{R[rs1]}", False
        if name in ("slli", "srli", "srai"):
            return _IMM_AS_REG_OP[name], f"{R[rd]},{R[rs1]},{rs2:#x}", False
        return _IMM_AS_REG_OP[name], f"{R[rd]},{R[rs1]},{imm}", False
    if name == "sltiu" and imm == 1:
        return "seqz", f"{R[rd]},{R[rs1]}", False
    if name == "sub" and rs1 == 0:
        return "neg", f"{R[rd]},{R[rs2]}", False
    if name == "slt":
        if rs2 == 0:
            return "sltz", f"{R[rd]},{R[rs1]}", False
        if rs1 == 0:
            return "sgtz", f"{R[rd]},{R[rs2]}", False
    if name == "sltu" and rs1 == 0:
        return "snez", f"{R[rd]},{R[rs2]}", False
    if name == "jal":
        if rd == 0:
            return "j", _target(pc + imm, symbolize), False
        if rd == 1:
            return "jal", _target(pc + imm, symbolize), False
    if name == "jalr":
        if rd == 0 and rs1 == 1 and imm == 0:
            return "ret", "", False
        if rd in (0, 1):
            mn = "jr" if rd == 0 else "jalr"
            return mn, (R[rs1] if imm == 0 else f"{imm}({R[rs1]})"), True
        if imm == 0:
            return "jalr", f"{R[rd]},{R[rs1]}", True
    if name in ("beq", "bne") and rs2 == 0:
        return name + "z", f"{R[rs1]},{_target(pc + imm, symbolize)}", False
    if name == "blt":
        if rs2 == 0:
            return "bltz", f"{R[rs1]},{_target(pc + imm, symbolize)}", False
        if rs1 == 0:
            return "bgtz", f"{R[rs2]},{_target(pc + imm, symbolize)}", False
    if name == "bge":
        if rs1 == 0:
            return "blez", f"{R[rs2]},{_target(pc + imm, symbolize)}", False
        if rs2 == 0:
            return "bgez", f"{R[rs1]},{_target(pc + imm, symbolize)}", False
    if name in ("csrrw", "csrrs", "csrrc", "csrrwi", "csrrsi", "csrrci"):
        csr = w >> 20
        cname = CSR_NAMES.get(csr, f"{csr:#x}")
        src = str(rs1) if name.endswith("i") else R[rs1]
        base = name[:5]  # csrrw / csrrs / csrrc
        if name == "csrrs" and rs1 == 0:
            if csr in _COUNTER_ALIASES:
                return _COUNTER_ALIASES[csr], R[rd], False
            return "csrr", f"{R[rd]},{cname}", False
        if rd == 0:
            return "csr" + base[4], f"{cname},{src}", False
        if name.endswith("i"):
            return base, f"{R[rd]},{cname},{src}", False
        return None
    if name == "fence" and (w >> 20) & 0xFF == 0xFF and w >> 28 == 0:
        return "fence", "", False
    if name in ("sfence.vma", "hfence.vvma", "hfence.gvma") and rs2 == 0:
        return name, ("" if rs1 == 0 else R[rs1]), False
    return None


def _symbolizer(symbols: Mapping[str, int]) -> Symbolizer:
    """address -> "<sym>" / "<sym+0x10>" / "<sym-0x10>" as objdump prints next to addresses."""
    items = sorted((v & 0xFFFFFFFF, n) for n, v in symbols.items())
    addrs = [a for a, _ in items]
    if not items:
        return lambda addr: ""

    def name_for(addr: int) -> str:
        i = bisect.bisect_right(addrs, addr) - 1
        if i < 0:
            a, n = items[0]
            return f"<{n}-{a - addr:#x}>"
        a = addrs[i]
        j = bisect.bisect_left(addrs, a)  # first symbol at that address
        n = items[j][1]
        return f"<{n}>" if a == addr else f"<{n}+{addr - a:#x}>"

    return name_for


def _address_skip(start: int, end: int) -> int:
    """How many leading address digits objdump drops for a section: whole groups of four
    that are zero in its end address."""
    zeros = len(f"{end:08x}") - len(f"{end:08x}".lstrip("0"))
    if zeros == 8 and start != 0:
        return 0
    return (zeros - 1) & -4 if zeros else 0


def _address(pc: int, skip: int) -> str:
    digits = f"{pc:08x}"[skip:]
    stripped = digits.lstrip("0") or "0"
    return " " * (len(digits) - len(stripped)) + stripped


def disassemble_image(
    image: Image, *, aliases: bool = True, encodings: Iterable[Encoding] | None = None
) -> list[str]:
    """Lines like ``objdump -d``'s body: a ``<symbol>:`` header where a label starts, then
    ``addr:\\tword          \\tmnemonic\\toperands`` for each word of every executable segment."""
    symbolize = _symbolizer(image.symbols)
    by_addr: dict[int, str] = {}
    for n, v in sorted(image.symbols.items(), key=lambda kv: (kv[1], kv[0])):
        by_addr.setdefault(v & 0xFFFFFFFF, n)
    gp = image.symbols.get("__global_pointer$")
    lines: list[str] = []
    for seg in sorted(image.segments, key=lambda s: s.addr):
        if not seg.flags & PF_X or not seg.data:
            continue
        track = _Tracker(gp)
        skip = _address_skip(seg.addr, seg.addr + len(seg.data))
        data = seg.data
        off = 0
        while off + 2 <= len(data):
            pc = seg.addr + off
            if pc in by_addr:
                lines.append("")
                lines.append(f"{pc:08x} <{by_addr[pc]}>:")
            half = int.from_bytes(data[off : off + 2], "little")
            if half & 3 != 3 or half & 0x1F == 0x1F or off + 4 > len(data):
                # Unprivileged 1.5: low bits other than 11 mean a 16-bit parcel (11111: 48 bits+), which
                # without the C extension is no instruction; objdump steps over it alone.
                lines.append(f"{_address(pc, skip)}:\t{half:04x}                \t.2byte\t{half:#x}")
                off += 2
                continue
            word = int.from_bytes(data[off : off + 4], "little")
            text = disassemble(
                word, pc, encodings=encodings, aliases=aliases, symbols=symbolize, _track=track
            )
            lines.append(f"{_address(pc, skip)}:\t{word:08x}          \t{text}")
            off += 4
    return lines
