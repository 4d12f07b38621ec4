"""CLINT: the core-local interruptor (SiFive layout, as QEMU's virt machine maps it)::

    +0x0000 + 4*h     msip[h]       bit 0 drives hart h's mip.MSIP
    +0x4000 + 8*h     mtimecmp[h]   64-bit; mip.MTIP of hart h is (mtime >= mtimecmp[h])
    +0xBFF8           mtime         64-bit, counts up at the timebase

``mtime`` is derived from the machine's cycle clock: ``now // timebase_divisor + offset``
(``offset`` changes only when the guest writes ``mtime``), so time is deterministic and costs
nothing to keep. When a hart's MTIP would rise in the future the CLINT schedules one event at
that cycle; the machine runs events between quanta, so a timer interrupt is seen within one
quantum of its due time. Priv 3.2.1 describes mtime/mtimecmp; the addresses follow SiFive's
CLINT and QEMU ``hw/intc/riscv_aclint.c``. Accesses are 32-bit (RV32 reads a 64-bit register
as two words); narrower accesses use the byte lanes.

Sstc. The CLINT also drives each hart's supervisor timer (the "Sstc" extension v1.0): a hart
whose menvcfg.STCE is set hands its ``stimecmp`` CSR to :meth:`Clint.set_stimecmp`, and the
CLINT drives mip.STIP as ``mtime >= stimecmp`` with the same one-event-per-deadline scheme as
MTIP. :meth:`Clint.poll` re-evaluates both comparators of a hart at its current local time, for
a host that runs a hart outside the machine's round loop (``PhysicalMachine.run_hart``).
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.machine.bus import InterruptHost
from virtlevels.machine.memmap import CLINT_SIZE

MSIP_BASE = 0x0000
MTIMECMP_BASE = 0x4000
MTIME = 0xBFF8
MSIP_BIT, STIP_BIT, MTIP_BIT = 3, 5, 7  # mip bit numbers (Priv 3.1.9)
M64 = (1 << 64) - 1


@attrs.define(eq=False)
class Clint:
    """Timer and software interrupts for ``harts`` harts."""

    harts: int = 1
    timebase_divisor: int = 100
    name: str = "clint"
    size: int = CLINT_SIZE
    msip: list[int] = attrs.field(init=False)
    mtimecmp: list[int] = attrs.field(init=False)
    offset: int = 0  # mtime - now // divisor
    _host: InterruptHost | None = attrs.field(default=None, init=False)
    stimecmp: list[int] = attrs.field(init=False)  # Sstc comparators (M64 while STCE is clear)
    _generation: list[int] = attrs.field(init=False)
    _sgeneration: list[int] = attrs.field(init=False)
    _armed: dict[tuple[str, int], object] = attrs.field(factory=dict, init=False)
    _stce: list[bool] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        self.msip = [0] * self.harts
        self.mtimecmp = [M64] * self.harts  # "never" until software programs it
        self.stimecmp = [M64] * self.harts
        self._generation = [0] * self.harts
        self._sgeneration = [0] * self.harts
        self._stce = [False] * self.harts  # whether the Sstc comparator drives the hart's STIP

    def attach(self, host: InterruptHost) -> None:
        self._host = host
        for h in range(self.harts):
            self._update_timer(h)

    # -- time --------------------------------------------------------------------------------
    @property
    def mtime(self) -> int:
        now = self._host.now() if self._host is not None else 0
        return (now // self.timebase_divisor + self.offset) & M64

    def _update_timer(self, hart: int) -> None:
        host = self._host
        if host is None:
            return
        self._generation[hart] += 1
        self._disarm(("m", hart))
        due = self.mtime >= self.mtimecmp[hart]
        host.set_hart_interrupt(hart, MTIP_BIT, due)
        if not due and self.mtimecmp[hart] != M64:
            # The first cycle at which now // divisor + offset reaches mtimecmp.
            at = (self.mtimecmp[hart] - self.offset) * self.timebase_divisor
            generation = self._generation[hart]

            def fire() -> None:
                if self._generation[hart] == generation:
                    self._update_timer(hart)

            self._arm(("m", hart), host.schedule(max(1, at - host.now()), fire))

    def _arm(self, key: tuple[str, int], handle: object) -> None:
        self._armed[key] = handle

    def _disarm(self, key: tuple[str, int]) -> None:
        # One pending event per timer: a re-arm cancels the old deadline, so a deadline written in
        # two halves (Priv 3.2.1) or abandoned never leaves a far-future event in the World's queue.
        old = self._armed.pop(key, None)
        cancel = getattr(self._host, "cancel", None)
        if old is not None and cancel is not None:
            cancel(old)

    # -- Sstc --------------------------------------------------------------------------------
    def set_stimecmp(self, hart: int, value: int | None) -> None:
        """A hart's stimecmp changed (``None``: its STCE is clear, STIP is software's again)."""
        self.stimecmp[hart] = M64 if value is None else value & M64
        was, self._stce[hart] = self._stce[hart], value is not None
        if value is None and not was:
            return  # STIP is software's (mip.STIP, Sstc 1.0): the comparator never drove it
        self._update_stimer(hart, value is not None)

    def _update_stimer(self, hart: int, enabled: bool = True) -> None:
        host = self._host
        if host is None:
            return
        self._sgeneration[hart] += 1
        self._disarm(("s", hart))
        cmp = self.stimecmp[hart]
        due = enabled and self.mtime >= cmp
        host.set_hart_interrupt(hart, STIP_BIT, due)
        if not due and cmp != M64:
            at = (cmp - self.offset) * self.timebase_divisor
            generation = self._sgeneration[hart]

            def fire() -> None:
                if self._sgeneration[hart] == generation:
                    self._update_stimer(hart)

            self._arm(("s", hart), host.schedule(max(1, at - host.now()), fire))

    def poll(self, hart: int) -> int | None:
        """Drive ``hart``'s MTIP and STIP from the current time (no events); the machine cycle at
        which the next of them will rise, if one is armed."""
        host = self._host
        if host is None:
            return None
        now = self.mtime
        nxt: int | None = None
        for cmp, bit in ((self.mtimecmp[hart], MTIP_BIT), (self.stimecmp[hart], STIP_BIT)):
            if bit == STIP_BIT and not self._stce[hart]:
                continue  # STCE clear: STIP belongs to software, not to the comparator
            if cmp == M64:
                host.set_hart_interrupt(hart, bit, False)
                continue
            due = now >= cmp
            host.set_hart_interrupt(hart, bit, due)
            if not due:
                at = (cmp - self.offset) * self.timebase_divisor
                nxt = at if nxt is None else min(nxt, at)
        return nxt

    # -- MMIO --------------------------------------------------------------------------------
    def _register(self, offset: int) -> tuple[str, int, int] | None:
        """(kind, hart, byte offset within the register) for an address, or None."""
        if offset < MSIP_BASE + 4 * self.harts:
            return "msip", offset >> 2, offset & 3
        if MTIMECMP_BASE <= offset < MTIMECMP_BASE + 8 * self.harts:
            rel = offset - MTIMECMP_BASE
            return "mtimecmp", rel >> 3, rel & 7
        if MTIME <= offset < MTIME + 8:
            return "mtime", 0, offset - MTIME
        return None

    def read(self, offset: int, width: int) -> int:
        reg = self._register(offset)
        if reg is None:
            return 0
        kind, hart, byte = reg
        if kind == "msip":
            value = self.msip[hart]
        else:
            value = self.mtimecmp[hart] if kind == "mtimecmp" else self.mtime
        return (value >> (8 * byte)) & ((1 << (8 * width)) - 1)

    def write(self, offset: int, width: int, value: int) -> None:
        reg = self._register(offset)
        if reg is None:
            return
        kind, hart, byte = reg
        shift = 8 * byte
        mask = ((1 << (8 * width)) - 1) << shift
        if kind == "msip":
            self.msip[hart] = ((self.msip[hart] & ~mask) | ((value << shift) & mask)) & 1
            if self._host is not None:
                self._host.set_hart_interrupt(hart, MSIP_BIT, bool(self.msip[hart]))
        elif kind == "mtimecmp":
            self.mtimecmp[hart] = (self.mtimecmp[hart] & ~mask) | ((value << shift) & mask)
            self._update_timer(hart)
        else:
            new = (self.mtime & ~mask) | ((value << shift) & mask)
            now = self._host.now() if self._host is not None else 0
            self.offset = new - now // self.timebase_divisor
            for h in range(self.harts):
                self._update_timer(h)
                if self.stimecmp[h] != M64:
                    self._update_stimer(h)

    # -- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        self.msip = [0] * self.harts
        self.mtimecmp = [M64] * self.harts
        self.offset = 0
        if self._host is not None:
            for h in range(self.harts):
                self._host.set_hart_interrupt(h, MSIP_BIT, False)
                self._update_timer(h)

    def snapshot(self) -> dict[str, Any]:
        return {"msip": list(self.msip), "mtimecmp": list(self.mtimecmp), "offset": self.offset}

    def restore(self, state: dict[str, Any]) -> None:
        self.msip = [int(v) for v in state["msip"]]
        self.mtimecmp = [int(v) for v in state["mtimecmp"]]
        self.offset = int(state["offset"])
        if self._host is not None:
            for h in range(self.harts):
                self._host.set_hart_interrupt(h, MSIP_BIT, bool(self.msip[h]))
                self._update_timer(h)  # re-arms the timer events the old machine had queued
                if self.stimecmp[h] != M64:  # (stimecmp is hart state: the hart restored it first)
                    self._update_stimer(h)
