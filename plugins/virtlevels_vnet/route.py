"""IPv4 routing tables with longest-prefix match (fib_lookup): one dict per prefix length,
probed from the longest present length down, so a lookup costs at most 33 probes."""

from __future__ import annotations

import attrs

from virtlevels.kernel.errno import EEXIST, ESRCH, KernelError
from virtlevels_vnet.frames.ipv4 import mask, ntoa


@attrs.frozen
class Route:
    dst: int
    plen: int
    dev: str
    gw: int = 0  # 0: directly connected (scope link)
    src: int = 0  # preferred source (0: the device's primary address)
    metric: int = 0
    proto: str = "static"  # "kernel" for connected routes added with an address

    def __str__(self) -> str:
        d = "default" if self.plen == 0 else f"{ntoa(self.dst)}/{self.plen}"
        via = f" via {ntoa(self.gw)}" if self.gw else ""
        return f"{d}{via} dev {self.dev}" + (f" proto {self.proto}" if self.proto != "static" else "")


@attrs.define(eq=False)
class RouteTable:
    _by_len: dict[int, dict[int, Route]] = attrs.field(factory=dict)
    _lens: list[int] = attrs.field(factory=list)  # present prefix lengths, longest first

    def add(self, route: Route) -> None:
        net = route.dst & mask(route.plen)
        table = self._by_len.setdefault(route.plen, {})
        if net in table:
            raise KernelError(EEXIST, f"route {ntoa(net)}/{route.plen} already exists")
        table[net] = attrs.evolve(route, dst=net)
        self._lens = sorted(self._by_len, reverse=True)

    def delete(self, dst: int, plen: int) -> Route:
        net = dst & mask(plen)
        table = self._by_len.get(plen, {})
        r = table.pop(net, None)
        if r is None:
            raise KernelError(ESRCH, f"no route {ntoa(net)}/{plen}")
        if not table:
            del self._by_len[plen]
            self._lens = sorted(self._by_len, reverse=True)
        return r

    def delete_dev(self, dev: str) -> None:
        for plen in list(self._by_len):
            for net, r in list(self._by_len[plen].items()):
                if r.dev == dev:
                    self.delete(net, plen)

    def lookup(self, addr: int) -> Route | None:
        by_len = self._by_len
        for plen in self._lens:
            r = by_len[plen].get(addr & ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF))
            if r is not None:
                return r
        return None

    def routes(self) -> list[Route]:
        return [r for plen in self._lens for _n, r in sorted(self._by_len[plen].items())]
