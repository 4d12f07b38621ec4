"""The fast engine's own machinery: translation, loops, invalidation, re-verification, tracing."""

from __future__ import annotations

from test_engines_differential import assert_same, program, run_on

from virtlevels.machine.engines import get_engine
from virtlevels.machine.engines.fast import FastEngine
from virtlevels.machine.machine import PhysicalMachine

LOOP = """
    li t0, 0
    li t1, 500
1:  addi t0, t0, 1
    add t2, t2, t0
    bne t0, t1, 1b
"""


def fast_machine(body: str, **kw: object) -> tuple[PhysicalMachine, FastEngine]:
    m = PhysicalMachine()
    m.load(program(body, **kw))  # type: ignore[arg-type]
    eng = m.engine("fast")
    assert isinstance(eng, FastEngine)
    return m, eng


def test_get_engine_fast_is_the_block_translator() -> None:
    assert isinstance(get_engine("fast"), FastEngine)
    assert get_engine("fast").name == "fast"


def test_a_loop_is_compiled_once_into_a_python_loop() -> None:
    m, eng = fast_machine(LOOP)
    r = m.run(engine="fast", max_instructions=10_000)
    assert r.status == "pass"
    assert m.harts[0].x[7] == 500 * 501 // 2
    loops = [b for b in eng._by_key.values() if b.loop]
    assert len(loops) == 1 and "for it in range(lim):" in loops[0].source
    assert eng.translations < 10  # not re-translated per quantum
    assert all(ppn in m.watched_pages for ppn in eng._pages)  # code pages are watched


def test_a_store_into_a_block_drops_it_and_unwatches_an_empty_page() -> None:
    m, eng = fast_machine(LOOP)
    m.run(engine="fast", max_instructions=50)
    (ppn,) = eng._pages
    blocks = list(eng._pages[ppn].blocks)
    target = blocks[0]
    h = m.harts[0]
    h.store((ppn << 12) + target.lo, 4, 0x13)  # a nop over its first instruction, through the hart
    assert not target.valid and eng.invalidations >= 1
    for blk in blocks[1:]:  # blocks the store did not overlap stay
        assert blk.valid == (blk.hi <= target.lo or blk.lo >= target.lo + 4)
    while ppn in eng._pages:
        h.store((ppn << 12) + eng._pages[ppn].blocks[0].lo, 4, 0x13)
    assert ppn not in eng._pages and ppn not in m.watched_pages


def test_fence_i_drops_every_translation() -> None:
    m, eng = fast_machine(LOOP + "    fence.i\n")
    m.run(engine="fast", max_instructions=10_000)
    assert eng.invalidations >= 1
    assert not any(b.vpc < 0x8000_0010 for b in eng._by_key.values())  # the loop's blocks went


def test_host_write_with_context_change_is_seen() -> None:
    # A host-side write (bypassing the bus) followed by context_changed (as machine.load does):
    # the refilled fetch cache makes the engine re-verify the bytes of its blocks.
    m, eng = fast_machine(LOOP)
    m.run(engine="fast", max_instructions=30)
    h = m.harts[0]
    add_word = 0x007383B3  # add t2, t2, t2
    m.memory.write(0x8000_0008 + 4, 4, add_word)  # replace "add t2, t2, t0" in the loop
    h.context_changed()
    m.run(engine="fast", max_instructions=1000)
    twin = PhysicalMachine()
    twin.load(program(LOOP))
    twin.run(engine="interp", max_instructions=30)
    twin.memory.write(0x8000_0008 + 4, 4, add_word)
    twin.run(engine="interp", max_instructions=1000)
    assert h.x == twin.harts[0].x and h.pc == twin.harts[0].pc


def test_code_that_crosses_a_page_boundary() -> None:
    body = "    li s0, 50\n    j 2f\n.balign 4096\n    .space 4080\n2:\n" + "".join(
        f"    addi a{i % 6}, a{i % 6}, {i}\n" for i in range(12)
    ) + "    addi s0, s0, -1\n    bnez s0, 2b\n"  # fmt: skip
    state, results = assert_same(program(body))
    assert results[-1]["status"] == "pass"


def test_tracing_uses_the_interpreter_path() -> None:
    seen: list[int] = []

    class Tracer:
        def instruction(self, hart: object, pc: int, word: int) -> None:
            seen.append(pc)

        def trap(self, *args: object) -> None:
            pass

    m, _eng = fast_machine(LOOP)
    m.tracer = Tracer()
    r = m.run(engine="fast", max_instructions=40)
    assert r.instructions == 40 and len(seen) == 40


def test_restore_then_continue_matches_the_interpreter() -> None:
    image = program(LOOP)
    fast = PhysicalMachine()
    fast.load(image)
    fast.run(engine="fast", max_instructions=777)
    snap = fast.snapshot()
    fast.run(engine="fast", max_instructions=300)
    fast.restore(snap)  # new page objects: every block is stale and must be re-translated
    r_fast = fast.run(engine="fast", max_instructions=2000)
    ref_state, ref_results = run_on("interp", image, chunks=(777,), limit=2000)
    assert r_fast.instructions == ref_results[-1]["instructions"]
    assert fast.harts[0].x == ref_state["harts"][0]["x"]


# -- grouped accesses off one base register (one page/alignment check for the group) ---------------

GROUP_DATA = """
.data
.align 6
tohost: .word 0, 0
fromhost: .word 0, 0
.align 12
buf: .space 4096
buf2: .space 4096
"""


def grouped(setup: str, group: str, rounds: int = 24) -> str:
    """A loop that runs ``group`` (accesses off t0) ``rounds`` times; ``setup`` picks t0 each
    round from s1 (it may alternate it with s2)."""
    return f"""
    la t0, trap
    csrw mtvec, t0
    li s0, {rounds}
1:  {setup}
{group}
    addi s0, s0, -1
    bnez s0, 1b
"""


SWAP = "mv t0, s1\n    mv s1, s2\n    mv s2, t0"  # t0 alternates between the two bases
GROUP = """
    lw a1, 0(t0)
    addi a1, a1, 7
    sw a1, 0(t0)
    lw a2, 4(t0)
    xor a2, a2, a1
    sw a2, 4(t0)
"""


def _is_grouped(body: str) -> bool:
    m, eng = fast_machine(body, data=GROUP_DATA)
    m.run(engine="fast", max_instructions=5000)
    return any("g2" in b.source or "g1" in b.source for b in eng._by_key.values())


def test_a_group_compiles_to_one_check_and_matches_the_interpreter() -> None:
    body = "    la s1, buf + 64\n    la s2, buf + 128\n" + grouped(SWAP, GROUP)
    assert _is_grouped(body)
    state, results = assert_same(program(body, data=GROUP_DATA))
    assert results[-1]["status"] == "pass"
    for n in (50, 101, 233):
        assert_same(program(body, data=GROUP_DATA), limit=n)


def test_a_group_spanning_a_page_boundary() -> None:
    # every other round the group's second word is on the next page
    body = "    la s1, buf2 - 4\n    la s2, buf + 8\n" + grouped(SWAP, GROUP)
    assert _is_grouped(body)
    state, results = assert_same(program(body, data=GROUP_DATA))
    assert results[-1]["status"] == "pass"


def test_a_group_with_a_misaligned_access() -> None:
    # every other round the base is off by two: both words are misaligned (traps, counted in s11)
    mixed = "\n    lh a3, 2(t0)\n    sb a3, 9(t0)\n    lhu a4, 6(t0)\n    lb a5, 1(t0)\n"
    body = "    la s1, buf + 64\n    la s2, buf + 130\n" + grouped(SWAP, GROUP + mixed)
    assert _is_grouped(body)
    state, results = assert_same(program(body, data=GROUP_DATA))
    assert results[-1]["status"] == "pass"
    assert_same(program(body, data=GROUP_DATA), limit=177)


def test_a_group_whose_middle_store_hits_mmio() -> None:
    # every other round the base is the CLINT's mtimecmp (MMIO; interrupts stay disabled)
    body = "    la s1, buf + 64\n    li s2, 0x2004000\n" + grouped(SWAP, GROUP)
    assert _is_grouped(body)
    state, results = assert_same(program(body, data=GROUP_DATA))
    assert results[-1]["status"] == "pass"


def test_a_group_whose_middle_store_hits_a_watched_code_page() -> None:
    # every other round the base is a data word on the loop's own (translated, watched) code page
    body = (
        "    la s1, buf + 64\n    la s2, codedata\n"
        + grouped(SWAP, GROUP)
        + ("    j 3f\n.align 4\ncodedata: .word 1, 2, 3, 4\n3:\n")
    )
    assert _is_grouped(body)
    state, results = assert_same(program(body, data=GROUP_DATA))
    assert results[-1]["status"] == "pass"
    assert state["harts"][0]["x"][11] != 0


def test_a_group_ends_where_its_base_register_is_overwritten() -> None:
    # 4(base) holds base + 16 (stored each round): a load into the base ends the group, and so
    # does an addi to it; s3 keeps the final base
    overwrite = """
    lw a1, 0(t0)
    lw t0, 4(t0)
    sw a1, 8(t0)
    lw a2, 12(t0)
    addi t0, t0, 4
    sw a2, 0(t0)
    lw a3, 4(t0)
    mv s3, t0
"""
    setup = "mv t0, s1\n    addi t1, s1, 16\n    sw t1, 4(s1)\n    sw s0, 0(s1)"
    body = "    la s1, buf + 64\n" + grouped(setup, overwrite)
    assert _is_grouped(body)
    state, results = assert_same(program(body, data=GROUP_DATA))
    assert results[-1]["status"] == "pass"
    assert state["harts"][0]["x"][19] == 0x8001_1000 + 64 + 16 + 4


SV32_WRAP = """
    la t0, trap
    csrw mtvec, t0
    la t0, root           # megapages: VA 0x8000_0000 and VA 0 identity/alias of RAM, VA 0xFFC0_0000
    li t1, 0x200000CF     #   -> PA 0x8000_0000; R W X A D, kernel only
    li t2, 0x800
    add t2, t0, t2
    sw t1, 0(t2)
    sw t1, 0(t0)          # entry 0: VA 0 -> PA 0x8000_0000
    li t2, 0xFFC
    add t2, t0, t2
    sw t1, 0(t2)          # entry 0x3FF: VA 0xFFC0_0000 -> PA 0x8000_0000
    srli t0, t0, 12
    li t1, 0x80000000
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    la t0, smain
    csrw mepc, t0
    li t0, 0x800          # MPP = S
    csrw mstatus, t0
    mret
smain:
    li s0, 20
    li s1, 0xFFFFFFF8     # group in the top page: 0xFFFF_FFF8 and 0xFFFF_FFFC
    li s2, 0              # group at -4(0) and 0(0): the first address wraps to 0xFFFF_FFFC
1:  mv t0, s1
    lw a1, 0(t0)
    addi a1, a1, 3
    sw a1, 0(t0)
    lw a2, 4(t0)
    add a2, a2, a1
    sw a2, 4(t0)
    mv t0, s2
    lw a3, -4(t0)
    addi a3, a3, 5
    sw a3, -4(t0)
    lw a4, 0(t0)
    sw a4, -8(t0)
    addi s0, s0, -1
    bnez s0, 1b
    ecall
"""


def test_a_word_access_wrapping_at_the_top_of_the_address_space_under_sv32() -> None:
    data = GROUP_DATA + ".align 12\nroot: .space 4096\n"
    state, results = assert_same(program(SV32_WRAP, data=data))
    x = state["harts"][0]["x"]
    assert x[12] != 0 and x[13] != 0  # a2, a3: the loop ran
    for n in (60, 211, 399):
        assert_same(program(SV32_WRAP, data=data), limit=n)


# -- loops whose induction register only moves by a constant: an unmasked copy of the body --------


def test_an_induction_register_that_wraps_takes_the_masked_body() -> None:
    for start, step, stop in ((-64, 16, 64), (64, -16, -64), (0x7FFF_FF00, 16, 0x8000_0100)):
        body = f"""
    li a2, {start}
    li a3, {stop}
    li s1, 0
1:  addi a2, a2, {step}
    add s1, s1, a2
    xori s1, s1, 0x35
    bne a2, a3, 1b
"""
        m, eng = fast_machine(body)
        m.run(engine="fast", max_instructions=5000)
        loops = [b for b in eng._by_key.values() if b.loop]
        assert loops and ("<= 0xFFFFFFFF:" in loops[0].source or ">= 0:" in loops[0].source)
        state, results = assert_same(program(body))
        assert results[-1]["status"] == "pass"
        assert state["harts"][0]["x"][12] == stop & 0xFFFF_FFFF
        for n in (13, 77, 150):
            assert_same(program(body), limit=n)
