"""A Platform-Level Interrupt Controller with the SiFive layout QEMU's virt machine uses.

Register map (RISC-V PLIC Specification 1.0.0 §3-§9; QEMU hw/intc/sifive_plic.c, virt layout)::

    0x000000 + 4*s              priority of source s (s = 1..num_sources-1; 0 = never), WARL 0..7
    0x001000 + 4*w              pending bits, sources 32w..32w+31 (read-only)
    0x002000 + 0x80*c + 4*w     enable bits of context c
    0x200000 + 0x1000*c         priority threshold of context c, WARL 0..7
    0x200004 + 0x1000*c         claim (read) / complete (write) of context c

Contexts follow QEMU virt's "MS" order: context 2*h is hart h's M-mode external interrupt
(mip.MEIP), context 2*h+1 its S-mode one (mip.SEIP). The PLIC drives them through
``set_external(hart_id, supervisor, level)``; without one, :meth:`Plic.attach` wires it to an
``InterruptHost``'s ``set_hart_interrupt`` (mip bit 11 MEIP or 9 SEIP, Priv 3.1.9).

Gateways are level-triggered (PLIC spec §5): a source's request sets its pending bit while the
source is not in service; a claim clears the pending bit and puts the source in service; a
completion ends service and, if the line is still high, sets the pending bit again. A pending
bit stays set if the line drops before the claim (the request was already forwarded); the
driver then finds nothing to do. (QEMU's model instead lets the pending bit follow the line.)

A claim returns the highest-priority pending source enabled for the context whose priority
exceeds the context's threshold; ties go to the lowest ID (spec §8); 0 means none. A
completion naming a source not enabled for the context is ignored (spec §9). Accesses are
32-bit registers; narrower accesses use the byte lanes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.machine.devices.regs import read_lanes, write_lanes
from virtlevels.machine.memmap import PLIC_SIZE

if TYPE_CHECKING:
    from virtlevels.machine.bus import DeviceHost

MIP_SEIP, MIP_MEIP = 9, 11  # Priv 3.1.9: mip bit numbers of the external interrupts

PRIORITY_BASE = 0x000000
PENDING_BASE = 0x001000
ENABLE_BASE = 0x002000
ENABLE_STRIDE = 0x80
CONTEXT_BASE = 0x200000
CONTEXT_STRIDE = 0x1000
PRIORITY_MASK = 0x7  # QEMU virt: VIRT_IRQCHIP_NUM_PRIO_BITS = 3


@attrs.define(eq=False)
class Plic:
    """A PLIC for ``num_harts`` harts (two contexts each) and ``num_sources`` source IDs (0 unused)."""

    set_external: Callable[[int, bool, bool], object] | None = None
    num_harts: int = 1
    num_sources: int = 96  # QEMU virt: VIRT_IRQCHIP_NUM_SOURCES
    name: str = "plic"
    size: int = PLIC_SIZE  # the spec's 64 MiB window; registers of absent contexts read 0

    _host: DeviceHost | None = attrs.field(default=None, init=False)
    _priority: list[int] = attrs.field(init=False)
    _pending: int = attrs.field(default=0, init=False)
    _in_service: int = attrs.field(default=0, init=False)
    _levels: int = attrs.field(default=0, init=False)
    _enable: list[int] = attrs.field(init=False)
    _threshold: list[int] = attrs.field(init=False)
    _outputs: list[bool] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.num_sources <= 1024:
            raise ValueError(f"num_sources must be 1..1024 (PLIC spec §1), got {self.num_sources}")
        contexts = 2 * self.num_harts
        if CONTEXT_BASE + CONTEXT_STRIDE * contexts > self.size:
            raise ValueError(f"{contexts} PLIC contexts do not fit in a 0x{self.size:x}-byte region")
        self._priority = [0] * self.num_sources
        self._enable = [0] * contexts
        self._threshold = [0] * contexts
        self._outputs = [False] * contexts

    def attach(self, host: DeviceHost) -> None:
        self._host = host
        set_hart_interrupt = getattr(host, "set_hart_interrupt", None)
        if self.set_external is None and set_hart_interrupt is not None:

            def set_external(hart_id: int, supervisor: bool, level: bool) -> None:
                set_hart_interrupt(hart_id, MIP_SEIP if supervisor else MIP_MEIP, level)

            self.set_external = set_external

    @property
    def num_contexts(self) -> int:
        return 2 * self.num_harts

    @property
    def _source_mask(self) -> int:
        return ((1 << self.num_sources) - 1) & ~1  # source 0 does not exist (spec §3)

    # -- interrupt inputs --------------------------------------------------------------------
    def set_irq(self, source: int, level: bool) -> None:
        """A device's interrupt line ``source`` is now ``level`` (the machine's raise_irq)."""
        if not 0 < source < self.num_sources:
            return
        bit = 1 << source
        if level:
            self._levels |= bit
            if not self._in_service & bit:
                self._pending |= bit
        else:
            self._levels &= ~bit
        self._update()

    # -- MMIO --------------------------------------------------------------------------------
    def read(self, offset: int, width: int) -> int:
        return read_lanes(self._read32(offset & ~3), offset, width)

    def write(self, offset: int, width: int, value: int) -> None:
        reg = offset & ~3
        if width != 4:
            value = write_lanes(self._read32_quiet(reg), offset, width, value)
        self._write32(reg, value & 0xFFFF_FFFF)

    def _read32(self, reg: int) -> int:
        if reg >= CONTEXT_BASE:
            ctx, field = divmod(reg - CONTEXT_BASE, CONTEXT_STRIDE)
            if ctx < self.num_contexts and field == 4:
                return self._claim(ctx)
        return self._read32_quiet(reg)

    def _read32_quiet(self, reg: int) -> int:
        """A register's value without the claim side effect (for read-modify-write lanes)."""
        if reg < PENDING_BASE:
            source = reg >> 2
            return self._priority[source] if source < self.num_sources else 0
        if reg < ENABLE_BASE:
            return (self._pending >> ((reg - PENDING_BASE) * 8)) & 0xFFFF_FFFF
        if reg < CONTEXT_BASE:
            ctx, word = divmod(reg - ENABLE_BASE, ENABLE_STRIDE)
            if ctx < self.num_contexts:
                return (self._enable[ctx] >> (word * 8)) & 0xFFFF_FFFF
            return 0
        ctx, field = divmod(reg - CONTEXT_BASE, CONTEXT_STRIDE)
        if ctx < self.num_contexts and field == 0:
            return self._threshold[ctx]
        return 0

    def _write32(self, reg: int, value: int) -> None:
        if reg < PENDING_BASE:
            source = reg >> 2
            if 0 < source < self.num_sources:
                self._priority[source] = value & PRIORITY_MASK  # WARL (spec §4)
        elif reg < ENABLE_BASE:
            return  # pending bits are read-only (spec §6)
        elif reg < CONTEXT_BASE:
            ctx, word = divmod(reg - ENABLE_BASE, ENABLE_STRIDE)
            if ctx >= self.num_contexts:
                return
            shift = word * 8
            bits = self._enable[ctx] & ~(0xFFFF_FFFF << shift)
            self._enable[ctx] = (bits | (value << shift)) & self._source_mask
        else:
            ctx, field = divmod(reg - CONTEXT_BASE, CONTEXT_STRIDE)
            if ctx >= self.num_contexts:
                return
            if field == 0:
                self._threshold[ctx] = value & PRIORITY_MASK
            elif field == 4:
                self._complete(ctx, value)
                return
            else:
                return
        self._update()

    # -- claim / complete --------------------------------------------------------------------
    def _best(self, ctx: int) -> int:
        """The source a claim on ``ctx`` would return (spec §8), 0 if none."""
        candidates = self._pending & self._enable[ctx]
        best, best_priority = 0, self._threshold[ctx]
        priority = self._priority
        while candidates:
            low = candidates & -candidates
            source = low.bit_length() - 1
            if priority[source] > best_priority:  # strictly greater: ties keep the lower ID
                best, best_priority = source, priority[source]
            candidates ^= low
        return best

    def _claim(self, ctx: int) -> int:
        source = self._best(ctx)
        if source:
            bit = 1 << source
            self._pending &= ~bit
            self._in_service |= bit
            self._update()
        return source

    def _complete(self, ctx: int, source: int) -> None:
        if not 0 < source < self.num_sources or not self._enable[ctx] >> source & 1:
            return  # spec §9: a completion for a source not enabled here is ignored
        bit = 1 << source
        self._in_service &= ~bit
        if self._levels & bit:
            self._pending |= bit  # the line is still high: the gateway forwards a new request
        self._update()

    def _update(self) -> None:
        outputs = self._outputs
        for ctx in range(len(outputs)):
            level = self._best(ctx) != 0
            if level != outputs[ctx]:
                outputs[ctx] = level
                if self.set_external is not None:
                    self.set_external(ctx >> 1, bool(ctx & 1), level)

    # -- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Clear priorities, enables, thresholds and service state; line levels are the devices'."""
        self._priority = [0] * self.num_sources
        self._enable = [0] * self.num_contexts
        self._threshold = [0] * self.num_contexts
        self._in_service = 0
        self._pending = self._levels & self._source_mask
        self._update()

    def snapshot(self) -> dict[str, Any]:
        return {
            "priority": list(self._priority),
            "pending": self._pending,
            "in_service": self._in_service,
            "levels": self._levels,
            "enable": list(self._enable),
            "threshold": list(self._threshold),
            "outputs": list(self._outputs),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` without calling ``set_external`` (the harts' mip is in their
        own snapshot)."""
        if len(state["enable"]) != self.num_contexts or len(state["priority"]) != self.num_sources:
            raise ValueError("PLIC snapshot is for a different number of harts or sources")
        self._priority = [int(p) for p in state["priority"]]
        self._pending = int(state["pending"])
        self._in_service = int(state["in_service"])
        self._levels = int(state["levels"])
        self._enable = [int(e) for e in state["enable"]]
        self._threshold = [int(t) for t in state["threshold"]]
        self._outputs = [bool(o) for o in state["outputs"]]
