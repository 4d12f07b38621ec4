"""The plain interpreter: fetch, decode (cached by word), execute, retire - one instruction at a time.

It reads like the specification's fetch-execute cycle; the only concessions to speed are local
variables for the hart's state and the fast-path caches, and a decode cache keyed by the
instruction word (so code that rewrites itself needs no invalidation).
"""

from __future__ import annotations

from virtlevels.machine.hart import Hart
from virtlevels.machine.trap import HaltRequest, Trap


class Interpreter:
    name = "interp"

    def run(self, hart: Hart, budget: int) -> int:
        """Execute up to ``budget`` steps (retired instructions + exceptions) on ``hart``."""
        h = hart
        machine = h.machine
        if machine.tracer is not None:
            return self._run_traced(hart, budget)
        table = machine.table
        decode = table.decode
        sync = table.sync_index
        done = 0
        while done < budget and not h.wfi and not machine.exit_requested and not machine.quantum_break:
            h.check_interrupts()  # Priv 3.1.9: interrupts are taken between instructions
            # Re-read after every sync point: privilege, translation or caches may have changed.
            x = h.x
            pc = h.pc
            counts = h.counts
            xget = h.xcache.get
            dget = table.cache.get
            i = ci = 0
            try:
                for i in range(budget - done):  # noqa: B007 - i is the step count below
                    page = xget(pc >> 12)  # fetch through the fast path, else translate
                    word = page[(pc & 0xFFF) >> 2] if page is not None else h.fetch_slow(pc)
                    entry = dget(word)
                    if entry is None:
                        entry = decode(word)
                    op, ci = entry
                    pc = op(h, x, pc)  # execute
                    counts[ci] += 1  # retire
                    if ci >= sync:
                        break
            except Trap as trap:
                h.pc = pc  # the faulting instruction's address becomes xepc
                h.take_trap(trap.cause, trap.tval)
            except HaltRequest:
                counts[ci] += 1  # the store that asked to stop did retire
                h.pc = pc + 4
                done += i + 1
                break
            else:
                h.pc = pc
            done += i + 1  # step i (0-based) was the last one: retired, or the one that trapped
        return done

    def _run_traced(self, h: Hart, budget: int) -> int:
        """The same cycle, one instruction at a time, telling ``machine.tracer`` before each one."""
        machine = h.machine
        tracer = machine.tracer
        assert tracer is not None
        done = 0
        while done < budget and not h.wfi and not machine.exit_requested and not machine.quantum_break:
            h.check_interrupts()
            pc = h.pc
            ci = 0
            try:
                word = h.fetch(pc)
                tracer.instruction(h, pc, word)
                op, ci = machine.table.decode(word)
                h.pc = op(h, h.x, pc)
                h.counts[ci] += 1
            except Trap as trap:
                h.take_trap(trap.cause, trap.tval)
            except HaltRequest:
                h.counts[ci] += 1
                h.pc = pc + 4
            done += 1
        return done
