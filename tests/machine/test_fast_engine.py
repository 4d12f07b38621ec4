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
