"""The translation cache: where translated guest-kernel blocks live, and how they are found,
chained and invalidated.

The cache is a region of host RAM (frames from the hypervisor's pool) that the monitor maps into the
shadow address space of virtual S-mode at :data:`TC_BASE`, a virtual-address hole the guest kernel
does not use (VMware kept its monitor and cache in the top 4 MB of the guest's address space, ASPLOS
2006 section 3.1). Translations are placed one after another (a bump allocator); when the cache is
full everything is dropped at once and translation starts again (QEMU's ``tb_flush`` does the same).

* ``by_gva``: guest virtual pc -> translation (the dispatcher's lookup);
* the TC address of every word -> its translation (``pcmap``: the guest pc of a fault there) and,
  for ``ecall`` words, the :class:`~.translator.Callout` it stands for;
* guest physical page -> the translations read from it: the monitor watches those host pages
  (``machine.watch_page``), and a store that overlaps a translated block invalidates it;
* guest virtual page -> translations, for the re-check of mappings when the guest switches ``satp``
  or fences its TLB.

Invalidating a translation overwrites *every* word of it with an ``ecall`` meaning "stale: continue
at this word's guest pc" and un-chains the jumps into it, so whatever enters or is in the middle of
it - a chained jump, the dispatcher, the host hart that just executed the store - leaves to the
monitor at the right guest pc and sees the new code at once (as the interpreter does).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

import attrs

from virtlevels_hypervisor.bt import encode
from virtlevels_hypervisor.bt.translator import STALE, Callout, Translation

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
#: Where the translation cache sits in virtual S-mode's shadow address space (a 4 MiB-aligned hole:
#: teachos uses 0x0001_0000-0x0040_0000, the UART megapage, RAM at 0x8000_0000 and 0xFFFF_F000).
TC_BASE = 0xFF00_0000
TC_PAGES = 64  # 256 KiB: teachos's whole kernel translates into a few pages


class TranslationCacheFull(Exception):  # noqa: N818 - control flow
    """No room for a translation: the caller flushes the cache and translates again."""


@attrs.define(eq=False)
class TranslationCache:
    """Translated blocks in host frames ``frames`` (host-physical addresses), mapped at ``base``."""

    frames: list[int]
    write: Callable[[int, bytes], None]  # host.phys_write: stores the host's watchers see
    watch: Callable[[int], None]  # host.watch_page(hppn)
    unwatch: Callable[[int], None]
    hppn_of_gppn: Callable[[int], int]
    base: int = TC_BASE
    limit: int | None = None  # bytes usable (None: all frames); smaller to watch flushes happen
    top: int = 0  # bytes used
    generation: int = 0  # bumped by flush: TC addresses saved before a flush are meaningless
    placed: int = 0  # translations placed (statistics)
    invalidations: int = 0
    flushes: int = 0
    chains: int = 0
    by_gva: dict[int, Translation] = attrs.field(factory=dict)
    by_gppn: dict[int, list[Translation]] = attrs.field(factory=dict)
    by_vpn: dict[int, list[Translation]] = attrs.field(factory=dict)
    callouts: dict[int, tuple[Translation, Callout]] = attrs.field(factory=dict)
    _starts: list[int] = attrs.field(factory=list)  # TC addresses of placed translations, ascending
    _order: list[Translation] = attrs.field(factory=list)
    _watched: dict[int, int] = attrs.field(factory=dict)  # hppn -> gppn of watched guest code pages
    #: hppn -> (gppn, lowest, highest translated byte + 1): stores to a page's data (teachos keeps
    #: .data and .bss next to .text) are told apart from code stores at once.
    _span: dict[int, tuple[int, int, int]] = attrs.field(factory=dict)

    @property
    def size(self) -> int:
        full = len(self.frames) * PAGE_SIZE
        return full if self.limit is None else min(full, self.limit)

    def contains(self, addr: int) -> bool:
        return self.base <= addr < self.base + self.top

    # -- placing ----------------------------------------------------------------------------------
    def place(self, t: Translation) -> int:
        """Copy ``t`` into the cache; returns its TC address (TranslationCacheFull when there is no room)."""
        if self.top + t.size > self.size:
            raise TranslationCacheFull
        addr = self.base + self.top
        t.tc = addr
        self._write_words(addr, t.words)
        self.top += t.size
        self._starts.append(addr)
        self._order.append(t)
        for i, c in t.callouts.items():
            self.callouts[addr + 4 * i] = (t, c)
        self.by_gva[t.gva] = t
        self.by_gppn.setdefault(t.gppn, []).append(t)
        self.by_vpn.setdefault(t.gva >> PAGE_SHIFT, []).append(t)
        hppn = self.hppn_of_gppn(t.gppn)
        if hppn not in self._watched:
            self._watched[hppn] = t.gppn
            self.watch(hppn)
        span = self._span.get(hppn)
        self._span[hppn] = (
            (t.gppn, t.lo, t.hi) if span is None else (t.gppn, min(span[1], t.lo), max(span[2], t.hi))
        )
        self.placed += 1
        return addr

    def _write_words(self, addr: int, words: list[int]) -> None:
        data = b"".join(w.to_bytes(4, "little") for w in words)
        off = addr - self.base
        pos = 0
        while pos < len(data):  # frames need not be contiguous in host memory
            frame, inner = divmod(off + pos, PAGE_SIZE)
            chunk = min(len(data) - pos, PAGE_SIZE - inner)
            self.write(self.frames[frame] + inner, data[pos : pos + chunk])
            pos += chunk

    # -- looking up -------------------------------------------------------------------------------
    def lookup(self, gva: int) -> Translation | None:
        return self.by_gva.get(gva)

    def owner(self, addr: int) -> Translation | None:
        """The translation whose words include TC address ``addr``."""
        if not self.contains(addr):
            return None
        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0:
            return None
        t = self._order[i]
        return t if addr < t.tc + t.size else None

    def guest_pc(self, addr: int) -> int | None:
        """The guest pc the host is at before running the TC word at ``addr`` (a fault's sepc)."""
        t = self.owner(addr)
        if t is None:
            return None
        return t.pcmap[(addr - t.tc) >> 2]

    def callout(self, addr: int) -> tuple[Translation, Callout] | None:
        return self.callouts.get(addr)

    # -- chaining ---------------------------------------------------------------------------------
    def chain(self, stub: int, target: Translation) -> bool:
        """Patch the exit stub at ``stub`` into ``jal x0`` to ``target`` (block chaining)."""
        offset = target.tc - stub
        if not -encode.JAL_RANGE <= offset < encode.JAL_RANGE or not target.valid:
            return False
        self._write_words(stub, [encode.jal(0, offset)])
        target.chained_from.append(stub)
        self.chains += 1
        return True

    # -- invalidation -----------------------------------------------------------------------------
    def invalidate(self, t: Translation) -> None:
        """Drop ``t``: every word becomes a stale exit to its own guest pc; chains into it are undone."""
        if not t.valid:
            return
        t.valid = False
        self.invalidations += 1
        if self.by_gva.get(t.gva) is t:
            del self.by_gva[t.gva]
        for table, key in ((self.by_gppn, t.gppn), (self.by_vpn, t.gva >> PAGE_SHIFT)):
            lst = table.get(key)
            if lst is not None and t in lst:
                lst.remove(t)
                if not lst:
                    del table[key]
        if t.gppn not in self.by_gppn:
            hppn = self.hppn_of_gppn(t.gppn)
            self._span.pop(hppn, None)
            if self._watched.pop(hppn, None) is not None:
                self.unwatch(hppn)
        for i, gpc in enumerate(t.pcmap):
            self.callouts[t.tc + 4 * i] = (t, Callout(STALE, gpc))
        self._write_words(t.tc, [encode.ECALL] * len(t.words))
        for stub in t.chained_from:
            entry = self.callouts.get(stub)
            if entry is not None and entry[0].valid:
                self._write_words(stub, [encode.ECALL])  # back to "exit": the source re-chains later
        t.chained_from.clear()

    def invalidate_range(self, gppn: int, lo: int, hi: int) -> int:
        """Invalidate the translations read from bytes ``[lo, hi)`` of guest page ``gppn``; how many."""
        hit = [t for t in self.by_gppn.get(gppn, ()) if t.lo < hi and lo < t.hi]
        for t in hit:
            self.invalidate(t)
        return len(hit)

    def on_host_store(self, paddr: int, width: int) -> int:
        """A store to host-physical ``paddr`` (a store watcher): invalidate what it overwrote."""
        span = self._span.get(paddr >> PAGE_SHIFT)
        if span is None:
            return 0
        gppn, lo, hi = span
        off = paddr & (PAGE_SIZE - 1)
        if off >= hi or off + width <= lo:
            return 0  # data next to the code: no translation came from these bytes
        return self.invalidate_range(gppn, off, off + width)

    def flush(self) -> None:
        """Forget every translation (the cache is full, or the guest's code mappings changed wholesale)."""
        for hppn in self._watched:
            self.unwatch(hppn)
        for t in self._order:
            t.valid = False
        self._watched.clear()
        self._span.clear()
        self.by_gva.clear()
        self.by_gppn.clear()
        self.by_vpn.clear()
        self.callouts.clear()
        self._starts.clear()
        self._order.clear()
        self.top = 0
        self.generation += 1
        self.flushes += 1

    def translations(self) -> list[Translation]:
        return [t for t in self._order if t.valid]
