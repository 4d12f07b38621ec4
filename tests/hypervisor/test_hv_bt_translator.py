"""The binary translator and its cache, unit by unit (plugins/virtlevels_hypervisor/bt/)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from virtlevels_hypervisor.bt import encode
from virtlevels_hypervisor.bt.cache import TC_BASE, TranslationCache, TranslationCacheFull
from virtlevels_hypervisor.bt.translator import EMULATE, EXIT, JALR, MAX_BLOCK, STALE, translate_block

from virtlevels.machine.asm import assemble
from virtlevels.machine.isa import x86like
from virtlevels.machine.isa.encodings import ENCODINGS
from virtlevels.machine.isa.table import InstructionTable
from virtlevels.machine.machine import PhysicalMachine

BASE = 0x8020_0000


def page_of(source: str, encodings: tuple = ()) -> Callable[[int], int]:  # type: ignore[type-arg]
    image = assemble(source, base=BASE, encodings=(*ENCODINGS, *encodings) if encodings else None)
    data = bytearray(4096)
    for seg in image.segments:
        if BASE <= seg.addr < BASE + 4096:
            data[seg.addr - BASE : seg.addr - BASE + len(seg.data)] = seg.data
    return lambda off: int.from_bytes(data[off : off + 4], "little")


def run_words(words: list[int], regs: dict[int, int] | None = None) -> list[int]:
    """Run straight-line words (ending before any exit) on a bare machine; the registers after."""
    m = PhysicalMachine()
    m.phys_write(0x8000_0000, b"".join(w.to_bytes(4, "little") for w in words))
    h = m.harts[0]
    for r, v in (regs or {}).items():
        h.x[r] = v
    h.pc = 0x8000_0000
    m.run(len(words))
    return h.x


def test_innocuous_words_are_copied_with_their_guest_pcs() -> None:
    read = page_of("add a0, a1, a2\nlw t0, 8(sp)\nsw t0, 12(sp)\nmul a3, a0, a0\nj 1f\n1: nop\n")
    t = translate_block(InstructionTable(), read, BASE, BASE)
    assert t.words[:4] == [read(0), read(4), read(8), read(12)]
    assert t.pcmap[:4] == [BASE, BASE + 4, BASE + 8, BASE + 12]
    assert t.guest_instructions == 5  # the block ends at the jump
    assert t.callouts[4].kind == EXIT and t.callouts[4].gpc == BASE + 20
    assert t.words[4] == encode.ECALL and t.pcmap[4] == BASE + 20


def test_auipc_becomes_the_value_the_guest_would_compute() -> None:
    read = page_of("nop\nnop\nauipc a0, 0x12345\nauipc a1, 0\nauipc zero, 1\nret\n")
    t = translate_block(InstructionTable(), read, BASE, BASE)
    body = [w for w, pc in zip(t.words, t.pcmap, strict=True) if pc < BASE + 20 and w != encode.ECALL]
    x = run_words(body)
    assert x[10] == (BASE + 8 + 0x12345000) & 0xFFFFFFFF
    assert x[11] == BASE + 12
    assert all(pc in (BASE, BASE + 4, BASE + 8, BASE + 12, BASE + 16) for pc in t.pcmap[:-1])


def test_jal_links_the_guest_return_address_and_exits_to_the_guest_target() -> None:
    read = page_of("jal ra, 1f\nnop\n1: ret\n")
    t = translate_block(InstructionTable(), read, BASE, BASE)
    link = [w for i, w in enumerate(t.words) if i not in t.callouts]
    assert run_words(link)[1] == BASE + 4  # ra = the guest's pc + 4, not a cache address
    ((exit_index, target),) = t.exits()
    assert target == BASE + 8 and t.pcmap[exit_index] == BASE + 8
    assert t.guest_instructions == 1


def test_branch_is_retargeted_to_two_exits() -> None:
    read = page_of("1: addi a0, a0, -1\nbnez a0, 1b\nnop\n")
    t = translate_block(InstructionTable(), read, BASE, BASE)
    assert t.words[0] == read(0)
    assert t.words[1] == encode.retarget_branch(read(4), 8)
    assert [t.callouts[2].gpc, t.callouts[3].gpc] == [BASE + 8, BASE]  # fall-through, then taken
    assert t.pcmap[2:] == [BASE + 8, BASE]
    # the re-encoded branch keeps its condition and registers: taken -> skips one word
    m = PhysicalMachine()
    h = m.harts[0]
    m.phys_write(0x8000_0000, t.words[1].to_bytes(4, "little"))
    h.pc, h.x[10] = 0x8000_0000, 5
    m.run(1)
    assert h.pc == 0x8000_0008


def test_indirect_jumps_and_privileged_instructions_are_callouts() -> None:
    read = page_of("csrr t0, sstatus\ncsrr t1, time\naddi t0, t0, 1\ncsrw sscratch, t0\njr t0\n")
    t = translate_block(InstructionTable(), read, BASE, BASE)
    kinds = {t.pcmap[i]: (c.kind, c.name) for i, c in t.callouts.items()}
    assert kinds[BASE] == (EMULATE, "csrrs")  # sstatus: privileged and sensitive
    assert BASE + 4 not in kinds  # the user counter (time) is innocuous: copied
    assert read(4) in t.words
    assert kinds[BASE + 12] == (EMULATE, "csrrw")
    assert kinds[BASE + 16] == (JALR, "jalr")
    assert not t.callouts[0].terminal  # the rest of the block follows a CSR callout


@pytest.mark.parametrize("insn", ["sret", "wfi", "ecall", "sfence.vma", "mret", "ebreak"])
def test_terminal_instructions_end_the_block(insn: str) -> None:
    read = page_of(f"nop\n{insn}\nnop\n")
    t = translate_block(InstructionTable(), read, BASE, BASE)
    assert t.guest_instructions == 2
    last = t.callouts[len(t.words) - 1]
    assert last.kind == EMULATE and last.terminal and last.gpc == BASE + 4


def test_x86_like_sensitive_unprivileged_instructions_are_caught() -> None:
    table = InstructionTable()
    x86like.apply(table)
    read = page_of("popf t0\nsmsw t1\nsidt t2\nrdcs a0\nadd a1, a1, a1\nret\n", x86like.ENCODINGS)
    t = translate_block(table, read, BASE, BASE)
    (co,) = [c for c in t.callouts.values() if c.kind == EMULATE]  # one callout takes all four
    assert [name for _pc, _w, name in co.steps] == ["popf", "smsw", "sidt", "rdcs"]
    assert read(16) in t.words  # the add is copied


def test_a_callout_takes_later_sensitive_instructions_along() -> None:
    read = page_of(
        "csrw sepc, t0\nli t0, 256\ncsrc sstatus, t0\nli t0, 32\ncsrs sstatus, t0\naddi a0, a0, 1\n"
        "sw a0, 0(sp)\ncsrr t1, sstatus\nli a7, 1\necall\n"
    )
    t = translate_block(InstructionTable(), read, BASE, BASE)
    groups = [[pc - BASE for pc, _w, _n in c.steps] for c in t.callouts.values() if c.kind == EMULATE]
    # the addi after the last sensitive one stays translated code; a store ends the group; ecall
    # (an SBI call) is never emulated as part of a group
    assert groups == [[0, 4, 8, 12, 16], [28], [36]]
    assert t.words[1] == read(20) and t.words[2] == read(24)
    assert t.pcmap[:3] == [BASE, BASE + 20, BASE + 24]
    assert t.guest_instructions == 10


def test_block_limit_and_page_end() -> None:
    read = page_of("\n".join(["nop"] * (MAX_BLOCK + 4)))
    t = translate_block(InstructionTable(), read, BASE, BASE)
    assert t.guest_instructions == MAX_BLOCK
    assert t.exits() == [(MAX_BLOCK, BASE + 4 * MAX_BLOCK)]
    t2 = translate_block(InstructionTable(), lambda off: encode.NOP, BASE + 4088, BASE + 4088)
    assert t2.guest_instructions == 2 and t2.exits() == [(2, BASE + 4096)]
    assert (t2.lo, t2.hi) == (4088, 4096)


def test_encoders_round_trip_through_the_decoder() -> None:
    table = InstructionTable()
    for off in (-(1 << 20), -8, 8, (1 << 20) - 2):
        f = table.lookup(encode.jal(0, off)).fields(encode.jal(0, off))  # type: ignore[union-attr]
        assert f.imm == off
    for value in (0, 1, -1, 2047, -2048, 2048, 0x80200FFC, 0xFFFFF800, 0x7FFFFFFF, 0x12345678):
        x = run_words(encode.load_constant(7, value))
        assert x[7] == value & 0xFFFFFFFF


# -- the cache ----------------------------------------------------------------------------------------
class FakeHost:
    def __init__(self) -> None:
        self.mem: dict[int, int] = {}
        self.watched: dict[int, int] = {}

    def write(self, paddr: int, data: bytes) -> None:
        for i in range(0, len(data), 4):
            self.mem[paddr + i] = int.from_bytes(data[i : i + 4], "little")

    def watch(self, ppn: int) -> None:
        self.watched[ppn] = self.watched.get(ppn, 0) + 1

    def unwatch(self, ppn: int) -> None:
        self.watched[ppn] -= 1
        if not self.watched[ppn]:
            del self.watched[ppn]


def make_cache(pages: int = 2) -> tuple[TranslationCache, FakeHost]:
    host = FakeHost()
    frames = [0x9000_0000 + 0x3000 * i for i in range(pages)]  # deliberately not contiguous
    cache = TranslationCache(frames, host.write, host.watch, host.unwatch, lambda g: g + 0x100)
    return cache, host


def word_at(cache: TranslationCache, host: FakeHost, addr: int) -> int:
    off = addr - cache.base
    return host.mem[cache.frames[off // 4096] + off % 4096]


def test_cache_places_finds_and_maps_back_to_guest_pcs() -> None:
    cache, host = make_cache()
    read = page_of("add a0, a0, a1\nlw a2, 0(a0)\nbeqz a2, 1f\n1: ret\n")
    t = translate_block(InstructionTable(), read, BASE, BASE)
    addr = cache.place(t)
    assert addr == TC_BASE and cache.lookup(BASE) is t
    assert word_at(cache, host, addr + 4) == read(4)
    assert cache.guest_pc(addr + 4) == BASE + 4  # a fault on the lw is the guest's fault at BASE+4
    assert cache.callout(addr + 12)[1].kind == EXIT  # type: ignore[index]
    assert cache.owner(addr + t.size) is None
    assert host.watched == {(BASE >> 12) + 0x100: 1}  # the guest code page's host frame is watched


def test_chaining_patches_a_jal_and_invalidation_undoes_it() -> None:
    cache, host = make_cache()
    read = page_of("j 1f\n" + "nop\n" * 7 + "1: addi a0, a0, 1\nret\n")
    a = translate_block(InstructionTable(), read, BASE, BASE)
    b = translate_block(InstructionTable(), read, BASE + 32, BASE + 32)
    cache.place(a)
    cache.place(b)
    stub = a.tc + 4 * a.exits()[0][0]
    assert cache.chain(stub, b)
    w = word_at(cache, host, stub)
    f = InstructionTable().lookup(w).fields(w)  # type: ignore[union-attr]
    assert w & 0x7F == 0x6F and f.rd == 0 and stub + f.imm == b.tc
    # the guest overwrites the code b came from: b's words become stale exits to their own guest pcs
    assert cache.on_host_store(((BASE >> 12) + 0x100) << 12 | 32, 4) == 1
    assert not b.valid and cache.lookup(BASE + 32) is None and a.valid
    assert all(word_at(cache, host, b.tc + 4 * i) == encode.ECALL for i in range(len(b.words)))
    assert cache.callout(b.tc + 4)[1].kind == STALE and cache.callout(b.tc + 4)[1].gpc == BASE + 36  # type: ignore[index]
    assert word_at(cache, host, stub) == encode.ECALL  # un-chained: a re-chains to the new translation
    # a store elsewhere on the page (data next to code) invalidates nothing
    assert cache.on_host_store(((BASE >> 12) + 0x100) << 12 | 2048, 4) == 0


def test_full_cache_flushes_and_bumps_the_generation() -> None:
    cache, host = make_cache(pages=1)
    t = translate_block(InstructionTable(), lambda off: encode.NOP, BASE, BASE)
    n = 0
    with pytest.raises(TranslationCacheFull):
        while True:
            cache.place(
                translate_block(InstructionTable(), lambda off: encode.NOP, BASE + 4 * n, BASE + 4 * n)
            )
            n += 1
    assert n == 4096 // t.size
    cache.flush()
    assert cache.generation == 1 and cache.top == 0 and not cache.by_gva and host.watched == {}
