"""H extension CSRs (Priv 8.2): existence only with H, WARL fields, aliases, V=1 substitution,
and which CSR accesses are virtual-instruction exceptions (Priv 8.6.1)."""

from __future__ import annotations

import pytest
from hext_util import S, U, guest_machine, hmachine, run_guest, word

from virtlevels.machine import csr as C
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.machine.memmap import RAM_BASE

H_CSRS = ["hstatus", "hedeleg", "hideleg", "hie", "hip", "hvip", "hgeip", "hgeie", "htval", "htinst",
          "hgatp", "hcounteren", "htimedelta", "htimedeltah", "vsstatus", "vsie", "vsip", "vstvec",
          "vsscratch", "vsepc", "vscause", "vstval", "vsatp"]  # fmt: skip


def test_misa_h_is_off_by_default_and_on_with_the_profile() -> None:
    plain = PhysicalMachine().harts[0]
    assert plain.csr.read(0x301) == C.MISA and not plain.hext
    h = hmachine().harts[0]
    assert h.csr.read(0x301) == C.MISA | C.MISA_H and h.hext


@pytest.mark.parametrize("name", H_CSRS)
def test_hypervisor_csrs_are_illegal_without_h(name: str) -> None:
    m = PhysicalMachine()
    h = m.harts[0]
    m.memory.write(RAM_BASE, 4, word(f"csrr a0, {name}"))
    h.pc = RAM_BASE
    m.run(max_instructions=1)
    assert h.traps == {"illegal_instruction": 1}


@pytest.mark.parametrize("name", H_CSRS)
def test_hypervisor_csrs_exist_with_h(name: str) -> None:
    h = hmachine().harts[0]
    assert h.csr.check_access_h(C.CSR_BY_NAME[name], S, 0, False) == 0  # HS-mode may read them


def test_warl_fields() -> None:
    c = hmachine().harts[0].csr
    c.write(0x600, 0xFFFFFFFF)  # hstatus: VGEIN (GEILEN = 0), VSBE and reserved bits stay 0
    assert c.read(0x600) == C.HSTATUS_WMASK
    c.write(0x680, 0xFFFFFFFF)  # hgatp: PPN[1:0] read-only zero, bits 30:29 reserved
    assert c.read(0x680) == 0x9FFFFFFC
    c.write(0x602, 0xFFFFFFFF)  # hedeleg: 9-11 and 20-23 read-only zero
    assert c.read(0x602) == C.HEDELEG_MASK and not c.read(0x602) & (1 << 10 | 1 << 22)
    c.write(0x603, 0xFFFFFFFF)  # hideleg: only the VS-level interrupts
    assert c.read(0x603) == C.VS_INTS
    c.write(0x303, 0)  # mideleg: the VS-level bits are read-only one
    assert c.read(0x303) == C.VS_INTS
    c.write(0x302, 0xFFFFFFFF)  # medeleg now delegates ecall-from-VS, guest-page faults, virtual instr.
    assert c.read(0x302) & (1 << 10 | 1 << 20 | 1 << 21 | 1 << 22 | 1 << 23) == (
        1 << 10 | 1 << 20 | 1 << 21 | 1 << 22 | 1 << 23)
    c.write(0xE12 & 0xFFF, 0)
    assert c.read(0xE12) == 0 and c.read(0x607) == 0  # hgeip/hgeie: GEILEN = 0
    c.write(0x310, 0xFFFFFFFF)
    assert c.read(0x310) == C.MSTATUSH_MPV | C.MSTATUSH_GVA


def test_hvip_hip_mip_and_vsip_aliases() -> None:
    c = hmachine().harts[0].csr
    c.write(0x645, 0xFFFFFFFF)  # hvip: VSSIP, VSTIP, VSEIP
    assert c.read(0x645) == C.VS_INTS
    assert c.read(0x644) == C.VS_INTS and c.read(0x344) & C.VS_INTS == C.VS_INTS
    assert c.read(0x144) & C.VS_INTS == 0  # not visible in sip
    assert c.read(0x244) == 0  # vsip: nothing delegated by hideleg yet
    c.write(0x603, C.VSTIP)
    assert c.read(0x244) == C.STIP  # vsip.STIP is hip.VSTIP when delegated
    c.write(0x644, 0)  # hip: only VSSIP is writable
    assert c.read(0x645) == C.VSTIP | C.VSEIP
    c.write(0x604, 0xFFFFFFFF)  # hie: the VS bits of mie
    assert c.read(0x604) == C.VS_INTS and c.read(0x304) & C.VS_INTS == C.VS_INTS
    assert c.read(0x204) == C.STIP  # vsie, through hideleg
    c.write(0x204, 0)
    assert c.read(0x604) == C.VSSIP | C.VSEIP


def test_vs_mode_supervisor_csrs_are_the_vs_registers() -> None:
    m, h = guest_machine(vs=False)
    h.csr.vsscratch = 0x1234
    run_guest(m, "csrr a0, sscratch\nli a1, 0x55\ncsrw sepc, a1\ncsrr a2, sstatus\ncsrw satp, zero", 5)
    assert h.x[10] == 0x1234 and h.csr.vsepc == 0x54 and h.csr.sepc == 0
    assert h.csr.vsscratch == 0x1234 and h.trap_count == 0


def test_htimedelta_offsets_time_in_vs_mode() -> None:
    m, h = guest_machine(vs=False)
    h.csr.mcounteren = h.csr.hcounteren = 0b111
    h.csr.htimedelta = 1000
    t0 = h.csr.read(0xC01)
    run_guest(m, "rdtime a0", 1)
    assert h.trap_count == 0 and h.x[10] - t0 >= 1000 and h.x[10] - t0 < 1100


@pytest.mark.parametrize(
    ("priv", "text", "cause"),
    [
        (S, "csrr a0, hstatus", 22),  # hypervisor CSR from VS
        (S, "csrr a0, vsatp", 22),  # VS CSR from VS
        (U, "csrr a0, sstatus", 22),  # supervisor CSR from VU
        (S, "csrw hgeip, zero", 2),  # a write HS-mode could not do either: illegal
        (S, "csrr a0, mstatus", 2),  # machine CSR: illegal
        (U, "csrr a0, hstatus", 22),
    ],
)
def test_csr_accesses_from_v1(priv: int, text: str, cause: int) -> None:
    m, h = guest_machine()
    h.csr.medeleg = 0  # everything goes to M, so mcause/mtval show the exception
    h = run_guest(m, text, 1, priv=priv)
    assert h.csr.mcause == cause and h.csr.mtval == word(text)


@pytest.mark.parametrize(
    ("mcounteren", "hcounteren", "scounteren", "priv", "cause"),
    [
        (0, 1, 1, S, 2),  # mcounteren clear: illegal
        (1, 0, 1, S, 22),  # hcounteren clear, mcounteren set: virtual instruction
        (1, 1, 0, S, 0),  # VS-mode ignores scounteren
        (1, 1, 0, U, 22),  # VU-mode with scounteren clear: virtual instruction
        (1, 1, 1, U, 0),
    ],
)
def test_counter_access_from_v1(
    mcounteren: int, hcounteren: int, scounteren: int, priv: int, cause: int
) -> None:
    m, h = guest_machine()
    c = h.csr
    c.mcounteren, c.hcounteren, c.scounteren = mcounteren, hcounteren, scounteren
    run_guest(m, "rdcycle a0", 1, priv=priv)
    if cause:
        assert c.mcause == cause
    else:
        assert h.trap_count == 0


def test_vtvm_makes_satp_a_virtual_instruction_and_tvm_does_not_apply() -> None:
    m, h = guest_machine()
    h.csr.mstatus |= C.MSTATUS_TVM  # affects HS only
    run_guest(m, "csrr a0, satp", 1)
    assert h.trap_count == 0 and h.x[10] == h.csr.vsatp
    h.csr.hstatus |= C.HSTATUS_VTVM
    run_guest(m, "csrr a0, satp", 1)
    assert h.csr.mcause == 22


def test_machine_hypervisor_flag_selects_the_h_profile() -> None:
    from virtlevels.machine.machine import PhysicalMachine

    assert PhysicalMachine(hypervisor=True).harts[0].hext
    assert not PhysicalMachine().harts[0].hext


def test_hfence_pseudo_forms_match_gnu_as() -> None:
    from virtlevels.machine.asm import assemble
    from virtlevels.machine.disasm import disassemble
    from virtlevels.machine.isa.encodings import ENCODINGS, H_ENCODINGS

    table = (*ENCODINGS, *H_ENCODINGS)
    image = assemble("hfence.vvma\nhfence.gvma a0\nhfence.vvma a0, a1\n", encodings=table)
    data = image.segments[0].data
    words = [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)]
    assert words == [0x22000073, 0x62050073, 0x22B50073]  # riscv64-unknown-elf-as 2.40
    assert [disassemble(w, encodings=table) for w in words] == ["hfence.vvma", "hfence.gvma\ta0",
                                                               "hfence.vvma\ta0,a1"]
