"""Helpers for the H-extension tests: a machine with the ``rv32imah`` profile and a guest layout.

Layout (host physical): trap vectors at RAM_BASE + 0x800 (M) and + 0x900 (HS), each ``j .``;
the G-stage root (16 KiB) at G_ROOT with one level-0 table G_L0 mapping guest physical
0x0000_0000-0x003F_FFFF page by page onto host GUEST; the VS-stage tables live in guest physical
memory at VS_ROOT/VS_L0 and map guest virtual 0x0000_0000-0x003F_FFFF. Guest code starts at
guest virtual (and guest physical) 0; the VS trap vector is at guest virtual VS_VEC.
"""

from __future__ import annotations

from virtlevels.machine import csr as C
from virtlevels.machine.asm import assemble
from virtlevels.machine.hart import Hart
from virtlevels.machine.isa.encodings import ENCODINGS, H_ENCODINGS
from virtlevels.machine.isa.table import HYPERVISOR_PROFILE, InstructionTable
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.machine.memmap import RAM_BASE
from virtlevels.machine.mmu import PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X

HX = (*ENCODINGS, *H_ENCODINGS)
U, S, M = 0, 1, 3
M_VEC = RAM_BASE + 0x800
HS_VEC = RAM_BASE + 0x900
G_ROOT = RAM_BASE + 0x10_0000
G_L0 = RAM_BASE + 0x10_4000
GUEST = RAM_BASE + 0x40_0000
VS_ROOT = 0x0010_0000  # guest physical
VS_L0 = 0x0010_1000
VS_VEC = 0x3000  # guest virtual = guest physical
VMID = 5
RWXAD = PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
URWXAD = RWXAD | PTE_U


def code(text: str, base: int = 0) -> bytes:
    """Assemble ``text`` (H instructions allowed) for address ``base``."""
    return assemble(text, base=base, encodings=HX).segments[0].data


def word(text: str) -> int:
    return int.from_bytes(code(text)[:4], "little")


def pte(pa: int, flags: int) -> int:
    return ((pa >> 12) << 10) | flags


def hmachine(**kwargs: object) -> PhysicalMachine:
    return PhysicalMachine(table=InstructionTable(profile=HYPERVISOR_PROFILE), **kwargs)  # type: ignore[arg-type]


def g_map(m: PhysicalMachine, gpa: int, hpa: int, flags: int = URWXAD) -> int:
    """Map one guest physical page in the G-stage; returns the PTE's host address."""
    addr = G_L0 + 4 * ((gpa >> 12) & 0x3FF)
    m.memory.write(addr, 4, pte(hpa, flags))
    return addr


def vs_map(m: PhysicalMachine, gva: int, gpa: int, flags: int = RWXAD) -> int:
    """Map one guest virtual page in the VS-stage; returns the PTE's guest physical address."""
    gaddr = VS_L0 + 4 * ((gva >> 12) & 0x3FF)
    m.memory.write(GUEST + gaddr, 4, pte(gpa, flags))
    return gaddr


def guest_machine(vs: bool = True, g: bool = True, **kwargs: object) -> tuple[PhysicalMachine, Hart]:
    """An H machine whose hart is set up (not yet in) a two-stage guest context."""
    m = hmachine(**kwargs)
    h = m.harts[0]
    mem = m.memory
    loop = code("j .")
    mem.write_bytes(M_VEC, loop)
    mem.write_bytes(HS_VEC, loop)
    mem.write_bytes(GUEST + VS_VEC, loop)
    mem.write(G_ROOT, 4, pte(G_L0, PTE_V))
    for i in range(1024):
        mem.write(G_L0 + 4 * i, 4, pte(GUEST + i * 4096, URWXAD))
    mem.write(GUEST + VS_ROOT, 4, pte(VS_L0, PTE_V))
    for i in range(16):  # guest kernel code and data: guest virtual = guest physical
        vs_map(m, i * 4096, i * 4096)
    c = h.csr
    c.mtvec, c.stvec, c.vstvec = M_VEC, HS_VEC, VS_VEC
    c.hgatp = (C.SATP_MODE | VMID << 22 | G_ROOT >> 12) if g else 0
    c.vsatp = (C.SATP_MODE | VS_ROOT >> 12) if vs else 0
    return m, h


def enter(h: Hart, priv: int, virt: int, pc: int) -> None:
    h.set_mode(priv, virt)
    h.pc = pc
    h.context_changed()


def run_guest(m: PhysicalMachine, text: str, steps: int, priv: int = S, at: int = 0x1000) -> Hart:
    """Put ``text`` at guest virtual/physical ``at`` and run ``steps`` steps in VS (or VU) mode."""
    m.memory.write_bytes(GUEST + at, code(text, base=at))
    h = m.harts[0]
    if priv == U:  # VU code needs a U page in the VS-stage
        vs_map(m, at, at, RWXAD | PTE_U)
        h.mmu.tlb.clear()  # the mapping may have changed (what HFENCE.VVMA is for)
    enter(h, priv, 1, at)
    m.run(max_instructions=steps)
    return h
