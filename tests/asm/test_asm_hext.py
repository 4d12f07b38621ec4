"""The H extension rows (Priv 8.3: HLV, HLVX, HSV, HFENCE.VVMA/GVMA) assemble and disassemble like
GNU binutils 2.40 with ``-march=rv32ima_zicsr_zifencei_h``, and stay out of the base table."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from virtlevels.machine.asm import assemble
from virtlevels.machine.disasm import disassemble
from virtlevels.machine.isa.encodings import ENCODINGS, H_ENCODINGS
from virtlevels.machine.isa.table import HYPERVISOR_PROFILE, InstructionTable

HX = (*ENCODINGS, *H_ENCODINGS)
H_FLAGS = ["-march=rv32ima_zicsr_zifencei_h", "-mabi=ilp32"]

SOURCE_LINES = [
    "hlv.b a0, (a1)", "hlv.bu t0, (sp)", "hlv.h s1, (a5)", "hlv.hu zero, (ra)", "hlvx.hu a2, (a3)",
    "hlv.w t6, (t5)", "hlvx.wu a0, (zero)", "hsv.b a0, (a1)", "hsv.h zero, (t2)", "hsv.w s11, (gp)",
    "hfence.vvma a0, a1", "hfence.gvma a0, a1", "hfence.vvma zero, zero", "hfence.gvma t0, zero",
]  # fmt: skip

# objdump -M no-aliases, by word, as binutils 2.40 prints them (checked in when GNU is absent)
KNOWN = {
    0x6005C573: "hlv.b\ta0,(a1)",
    0x6835C573: "hlvx.wu\ta0,(a1)",
    0x62A5C073: "hsv.b\ta0,(a1)",
    0x22B50073: "hfence.vvma\ta0,a1",
    0x62050073: "hfence.gvma\ta0,zero",
}


def _words(seed: int = 7, per_row: int = 12) -> list[int]:
    rnd = random.Random(seed)
    out = []
    for row in H_ENCODINGS:
        for _ in range(per_row):
            out.append((rnd.getrandbits(32) & ~row.mask) | row.match)
    return out


def test_h_rows_are_only_in_the_hypervisor_table() -> None:
    assert not InstructionTable().hypervisor
    assert InstructionTable().lookup(0x6005C573) is None
    t = InstructionTable(profile=HYPERVISOR_PROFILE)
    assert t.hypervisor and t.lookup(0x6005C573).name == "hlv.b"  # type: ignore[union-attr]
    assert disassemble(0x6005C573).startswith(".4byte")  # the base disassembler does not know them


@pytest.mark.parametrize(("w", "text"), sorted(KNOWN.items()))
def test_known_words(w: int, text: str) -> None:
    assert disassemble(w, encodings=HX, aliases=False) == text
    line = text.replace("\t", " ")
    assert int.from_bytes(assemble(line, encodings=HX).segments[0].data, "little") == w


def test_every_h_row_round_trips() -> None:
    for w in _words():
        text = disassemble(w, encodings=HX, aliases=False)
        assert not text.startswith(".4byte"), hex(w)
        got = assemble(text.replace("\t", " "), encodings=HX).segments[0].data
        assert int.from_bytes(got, "little") == w, text


def _gnu(tool: str) -> str:
    path = shutil.which("riscv64-unknown-elf-" + tool)
    if path is None:
        pytest.skip(f"riscv64-unknown-elf-{tool} not installed")
    return path


def test_gnu_as_and_objdump_agree(tmp_path: Path) -> None:
    as_, objdump = _gnu("as"), _gnu("objdump")
    words = _words()
    src = tmp_path / "h.S"
    src.write_text("\n".join(SOURCE_LINES) + "\n" + "".join(f".insn {w:#x}\n" for w in words))
    obj = tmp_path / "h.o"
    subprocess.run([as_, *H_FLAGS, str(src), "-o", str(obj)], check=True, capture_output=True, timeout=60)
    out = subprocess.run([objdump, "-d", "-M", "no-aliases", str(obj)], check=True, capture_output=True,
                         text=True, timeout=60).stdout  # fmt: skip
    rows = [line.split("\t") for line in out.splitlines() if line[:1] == " " and ":\t" in line]
    gnu = [(int(r[1].strip(), 16), "\t".join(r[2:]).strip()) for r in rows]
    ours = assemble("\n".join(SOURCE_LINES), encodings=HX).segments[0].data
    n = len(SOURCE_LINES)
    assert [w for w, _ in gnu[:n]] == [int.from_bytes(ours[i : i + 4], "little") for i in range(0, 4 * n, 4)]
    assert [w for w, _ in gnu[n:]] == words
    for w, text in gnu:
        assert disassemble(w, encodings=HX, aliases=False) == text, hex(w)
