"""The fast engine: a block translator (guest code compiled to Python functions, as QEMU's TCG does).

A *block* is a trace of guest instructions on one page, starting at a virtual pc: straight-line
code that continues past not-taken conditional branches (their taken side is an exit) and through
direct ``jal`` jumps to code on the same page, and ends after an indirect jump (``jalr``), a
jump or branch that leaves the trace, any instruction run through the interpreter's op (CSR,
system, fence, AMO, LR/SC, plugin instructions, illegal words), at the page end, or after
:data:`MAX_TRACE` instructions. When a branch or ``jal`` goes back to the block's first
instruction the block is a *loop*, compiled to a Python ``while`` loop.

:mod:`blockgen` writes the Python source; this module owns the caches and the run loop. What
makes it behave exactly like :class:`~virtlevels.machine.engines.interp.Interpreter`:

* **Validity.** Generated code embeds virtual pcs but reads everything else that depends on the
  context (privilege, caches, counters) from the hart when it runs. A block is entered only if
  ``hart.xcache`` maps its virtual page to the very physical page view it was translated from;
  the core keeps ``xcache`` per privilege context and clears it whenever satp, MPRV/MPP, SUM,
  MXR or the TLB (SFENCE.VMA, eviction) change, so a stale mapping or a missing execute
  permission is never run. On an ``xcache`` miss the engine runs one instruction the
  interpreter's way (which refills the cache, counting the TLB exactly as the interpreter does)
  and re-verifies the bytes of that page's blocks before running them again.
* **Invalidation.** Every page holding translated code is watched (``machine.watch_page``), so
  all stores to it - this hart's, another hart's, an AMO, SC, DMA - reach
  :meth:`FastEngine._on_store`, which drops the blocks whose bytes overlap the store. A block
  that might have been hit stops right after the store, so new code is seen by the next
  instruction: the same as the interpreter, which re-reads every word (no FENCE.I is needed).
  FENCE.I drops every translation (for host-side writes that bypassed the bus).
* **Steps and interrupts.** A block runs only if the remaining budget covers its longest pass;
  otherwise the rest of the budget is interpreted. Blocks end after every sync-class
  instruction, where the run loop checks interrupts as the interpreter does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from virtlevels.machine.engines.blockgen import MAX_TRACE, Block, translate
from virtlevels.machine.engines.interp import Interpreter
from virtlevels.machine.memory import PAGE_MASK, PAGE_SHIFT
from virtlevels.machine.trap import HaltRequest, Trap

if TYPE_CHECKING:
    from virtlevels.machine.hart import Hart
    from virtlevels.machine.machine import PhysicalMachine

__all__ = ["HOT", "MAX_TRACE", "Block", "FastEngine"]

HOT = 4  # a block is translated on this visit of its first pc (earlier ones are interpreted)


@attrs.define(eq=False)
class _HartBlocks:
    """One hart's direct-lookup table: virtual pc -> block (valid while its page view matches)."""

    blocks: dict[int, Block] = attrs.field(factory=dict)
    by_vpn: dict[int, list[int]] = attrs.field(factory=dict)

    def add(self, blk: Block) -> None:
        self.blocks[blk.vpc] = blk
        self.by_vpn.setdefault(blk.vpc >> PAGE_SHIFT, []).append(blk.vpc)

    def drop_vpn(self, vpn: int) -> None:
        for vpc in self.by_vpn.pop(vpn, ()):
            self.blocks.pop(vpc, None)


@attrs.define(eq=False)
class _CodePage:
    """The translated blocks on one physical page (watched while it has any)."""

    view: memoryview
    blocks: list[Block] = attrs.field(factory=list)


@attrs.define(eq=False)
class FastEngine:
    """Block-translating engine with the interpreter's architectural behaviour."""

    name: str = attrs.field(default="fast", init=False)
    machine: PhysicalMachine | None = attrs.field(default=None, init=False)
    translations: int = attrs.field(default=0, init=False)  # blocks compiled
    invalidations: int = attrs.field(default=0, init=False)  # blocks dropped by stores/FENCE.I
    _harts: dict[Hart, _HartBlocks] = attrs.field(factory=dict, init=False)
    _by_key: dict[tuple[int, int], Block] = attrs.field(factory=dict, init=False)  # (id(view), vpc)
    _pages: dict[int, _CodePage] = attrs.field(factory=dict, init=False)  # ppn -> its blocks
    _view_ppn: dict[int, int] = attrs.field(factory=dict, init=False)  # id(32-bit page view) -> ppn
    _prev_fence_i: Callable[[Hart], None] | None = attrs.field(default=None, init=False)
    _interp: Interpreter = attrs.field(factory=Interpreter, init=False)
    _heat: dict[tuple[int, int], int] = attrs.field(factory=dict, init=False)  # visits before translation

    # -- wiring -------------------------------------------------------------------------------
    def _attach(self, machine: PhysicalMachine) -> None:
        if self.machine is not None:  # an engine serves one machine; start clean on another
            self.flush()
            self.machine.store_watchers.remove(self._on_store)
        self.machine = machine
        machine.store_watchers.append(self._on_store)
        self._prev_fence_i = machine.fence_i_hook
        machine.fence_i_hook = self._on_fence_i

    def _on_fence_i(self, hart: Hart) -> None:
        # Unpriv 3.1: FENCE.I makes earlier stores visible to fetch. Stores through the bus already
        # invalidated what they hit; dropping everything also covers host writes that bypassed it.
        self.flush()
        if self._prev_fence_i is not None:
            self._prev_fence_i(hart)

    def flush(self) -> None:
        """Forget every translation (and stop watching code pages)."""
        m = self.machine
        for ppn, page in self._pages.items():
            for blk in page.blocks:
                blk.valid = False
                self.invalidations += 1
            if m is not None:
                m.unwatch_page(ppn)
        self._pages.clear()
        self._by_key.clear()
        self._heat.clear()
        for hb in self._harts.values():
            hb.blocks.clear()
            hb.by_vpn.clear()

    def _on_store(self, hart: Hart | None, paddr: int, width: int) -> None:
        """A store to a watched page: drop the blocks whose bytes it overlaps."""
        ppn = paddr >> PAGE_SHIFT
        page = self._pages.get(ppn)
        if page is None:
            return
        off = paddr & PAGE_MASK
        end = off + width
        hit = [b for b in page.blocks if b.lo < end and off < b.hi]
        if not hit:
            return
        for blk in hit:
            self._drop(blk)
            page.blocks.remove(blk)
        if not page.blocks:
            del self._pages[ppn]
            if self.machine is not None:
                self.machine.unwatch_page(ppn)

    def _drop(self, blk: Block) -> None:
        blk.valid = False
        self.invalidations += 1
        key = (id(blk.view), blk.vpc)
        if self._by_key.get(key) is blk:
            del self._by_key[key]
        for hb in self._harts.values():
            if hb.blocks.get(blk.vpc) is blk:
                del hb.blocks[blk.vpc]

    def _ppn_of(self, view: memoryview) -> int:
        ppn = self._view_ppn.get(id(view))
        if ppn is not None:
            return ppn
        assert self.machine is not None
        for n, page in self.machine.bus.memory.pages.items():
            if page[2] is view:
                self._view_ppn[id(view)] = n
                return n
        raise LookupError("fetch view is not a RAM page")  # pragma: no cover - xcache holds RAM pages

    # -- running ------------------------------------------------------------------------------
    def run(self, hart: Hart, budget: int) -> int:
        """Execute up to ``budget`` steps (retired instructions + exceptions), as the interpreter does."""
        h = hart
        machine = h.machine
        if machine is not self.machine:
            self._attach(machine)
        if machine.tracer is not None:
            return self._interp.run(h, budget)  # a trace wants every instruction one at a time
        hb = self._harts.get(h)
        if hb is None:
            hb = self._harts[h] = _HartBlocks()
        blocks = hb.blocks
        done = 0
        while done < budget and not h.wfi and not machine.exit_requested and not machine.quantum_break:
            h.check_interrupts()  # Priv 3.1.9: at the points the interpreter checks
            xget = h.xcache.get  # re-read after every sync point: privilege may have changed
            while done < budget:
                pc = h.pc
                blk = blocks.get(pc)
                if blk is None or xget(pc >> 12) is not blk.view or blk.length > budget - done:
                    n = self._dispatch_slow(h, hb, pc, budget - done)
                else:
                    n = blk.fn(h, budget - done)
                if n < 0:  # a sync point (sync-class instruction, trap, halt): check interrupts
                    done -= n
                    break
                done += n
        return done

    def _dispatch_slow(self, h: Hart, hb: _HartBlocks, pc: int, left: int) -> int:
        view = h.xcache.get(pc >> PAGE_SHIFT)
        if view is None:
            # The interpreter would translate the fetch here: do it its way (TLB counted the same),
            # and re-verify this page's blocks once the cache is refilled.
            hb.drop_vpn(pc >> PAGE_SHIFT)
            return self.step(h, 1)
        blk = hb.blocks.get(pc)
        if blk is None or blk.view is not view:
            key = (id(view), pc)
            blk = self._by_key.get(key)
            if blk is None or not blk.valid or blk.buf[blk.lo : blk.hi] != blk.code:
                if blk is not None:
                    self._forget(blk)
                # Translate code only on its second visit: code that runs once (start-up, an
                # exit path) is interpreted, cheaper than compiling it.
                heat = self._heat
                if heat.get(key, 0) < HOT - 1:
                    heat[key] = heat.get(key, 0) + 1
                    return self.step(h, min(left, MAX_TRACE), until_jump=True)
                heat.pop(key, None)
                blk = self._translate(h, pc, view)
            hb.add(blk)
        if blk.length > left:
            return self.step(h, left)  # the budget ends inside this block: interpret the rest
        return blk.fn(h, left)

    def _forget(self, blk: Block) -> None:
        page = self._pages.get(blk.ppn)
        self._drop(blk)
        if page is not None and blk in page.blocks:
            page.blocks.remove(blk)

    def _translate(self, h: Hart, pc: int, view: memoryview) -> Block:
        assert self.machine is not None
        ppn = self._ppn_of(view)
        blk = translate(self.machine.table, view, ppn, pc)
        self.translations += 1
        page = self._pages.get(ppn)
        if page is not None and page.view is not view:
            # The page was replaced (snapshot restore): its old blocks are stale. The restore also
            # replaced the watch counts, so watch afresh and leave the old count alone.
            for old in page.blocks:
                self._drop(old)
            page = None
        if page is None:
            page = self._pages[ppn] = _CodePage(view)
            self.machine.watch_page(ppn)
        page.blocks.append(blk)
        self._by_key[(id(view), pc)] = blk
        return blk

    def step(self, h: Hart, n: int, *, until_jump: bool = False) -> int:
        """Interpret up to ``n`` instructions exactly as the interpreter's inner loop does.

        Returns the steps done, negated when it stopped at a sync point (sync-class instruction,
        trap, halt request). ``until_jump`` also stops after a taken branch or jump (the end of a
        straight run, where the next dispatch finds a block start)."""
        table = h.machine.table
        decode = table.decode
        dget = table.cache.get
        sync = table.sync_index
        x = h.x
        pc = h.pc
        counts = h.counts
        xget = h.xcache.get
        i = ci = 0
        try:
            for i in range(n):  # noqa: B007 - i is the step count below
                page = xget(pc >> 12)
                word = page[(pc & 0xFFF) >> 2] if page is not None else h.fetch_slow(pc)
                entry = dget(word)
                if entry is None:
                    entry = decode(word)
                op, ci = entry
                npc = op(h, x, pc)
                counts[ci] += 1
                if ci >= sync:
                    h.pc = npc
                    return -(i + 1)
                if until_jump and npc != pc + 4:
                    h.pc = npc
                    return i + 1
                pc = npc
        except Trap as trap:
            h.pc = pc
            h.take_trap(trap.cause, trap.tval)
            return -(i + 1)
        except HaltRequest:
            counts[ci] += 1
            h.pc = pc + 4
            return -(i + 1)
        h.pc = pc
        return n
