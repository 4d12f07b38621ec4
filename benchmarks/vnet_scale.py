"""vnet benchmark: frames per second through a bridge, and ping_all wall time on linear and tree
topologies. ``python benchmarks/vnet_scale.py [--hosts 100 1000] [--full]``. Without --full, a
1000-host run pings from one host to all others (999 pings) instead of all 999,000 pairs."""

from __future__ import annotations

import argparse
import time

from virtlevels_vnet.topo import linear, single, tree


def bridge_fps(frames: int = 200_000) -> float:
    net = single(2)
    net.start()
    assert net.ping("h1", "h2").ok  # the bridge has learned both MACs
    h1 = net.host("h1").stack.dev("h1-eth0")  # type: ignore[union-attr]
    h2 = net.host("h2").stack.dev("h2-eth0")  # type: ignore[union-attr]
    frame = h2.mac + h1.mac + b"\x08\x00" + bytes(100)
    h2.stack = None  # count arrivals without the IP stack's cost
    before = h2.rx_packets
    t0 = time.perf_counter()
    for _ in range(frames):
        h1.xmit(frame)
    net.world.run()
    dt = time.perf_counter() - t0
    assert h2.rx_packets - before == frames
    return frames / dt


def ping_time(build: object, n: int, full: bool) -> tuple[float, int]:
    net = build(n)  # type: ignore[operator]
    net.start()
    t0 = time.perf_counter()
    if full or n <= 100:
        loss, res = net.ping_all()
        count = len(res)
    else:
        hs = net.hosts()
        res = [net.ping(hs[0].name, h.name) for h in hs[1:]]
        loss, count = 100.0 * sum(not r.ok for r in res) / len(res), len(res)
    assert loss == 0.0
    return time.perf_counter() - t0, count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, nargs="*", default=[100, 1000])
    ap.add_argument("--full", action="store_true")
    a = ap.parse_args()
    print(f"bridge: {bridge_fps():,.0f} frames/s")
    for n in a.hosts:
        dt, c = ping_time(linear, n, a.full)
        print(f"linear {n}: {c} pings in {dt:.2f} s")
        depth = 1
        while 2**depth < n:
            depth += 1
        dt, c = ping_time(lambda _n, d=depth: tree(d, 2), n, a.full)
        print(f"tree depth {depth} (fanout 2, {2**depth} hosts): {c} pings in {dt:.2f} s")


if __name__ == "__main__":
    main()
