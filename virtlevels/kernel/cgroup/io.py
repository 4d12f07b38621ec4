"""The io controller (cgroup-v2.rst "IO"; block/blk-throttle.c for io.max, blk-cgroup.c for io.stat).

io.max limits bytes and operations per second per device. The throttle is a token bucket per
(cgroup, device, limit) kept as a "theoretical arrival time": an IO of ``n`` bytes at rate
``bps`` occupies ``ceil(n * 1e9 / bps)`` ns of the bucket, starting when the bucket is free;
its delay is the time until it has been paid for. An IO passes each limited level from the
task's cgroup up to the root in turn (blk-throttle queues a bio at each level), so the delays
compose. Everything is integer ns: the same IOs give the same delays.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import attrs

from virtlevels.kernel.errno import EINVAL, ENODEV, ERANGE, KernelError

if TYPE_CHECKING:
    from virtlevels.kernel.cgroup.core import Cgroup

NSEC_PER_SEC = 1_000_000_000
LIMIT_KEYS = ("rbps", "wbps", "riops", "wiops")
UINT_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
CGROUP_WEIGHT_MIN, CGROUP_WEIGHT_MAX = 1, 10000
Dev = tuple[int, int]
_DEV = re.compile(r"(\d+):(\d+)(\s+|$)")


@attrs.define
class IoState:
    limits: dict[Dev, list[int | None]] = attrs.field(factory=dict)  # rbps wbps riops wiops
    weight: int = 100
    dev_weights: dict[Dev, int] = attrs.field(factory=dict)
    stats: dict[Dev, list[int]] = attrs.field(factory=dict)  # rbytes wbytes rios wios (subtree)
    tat: dict[tuple[Dev, int], int] = attrs.field(factory=dict)  # bucket free-at time (ns)

    def reset_config(self) -> None:
        self.limits.clear()
        self.dev_weights.clear()
        self.weight = 100
        self.tat.clear()


def _cost(amount: int, rate: int) -> int:
    return -(-amount * NSEC_PER_SEC // rate)  # ceil


def charge_io(cg: Cgroup, dev: Dev, read: bool, nbytes: int, now: int | None = None) -> int:
    """Account one IO of ``nbytes`` by a task of ``cg``; return how long to delay it (ns)."""
    t0 = cg.hierarchy.clock() if now is None else now
    t = t0
    bi, ii = (0, 2) if read else (1, 3)
    for a in cg.ancestors():
        st = a.io.stats.setdefault(dev, [0, 0, 0, 0])
        st[bi] += nbytes
        st[ii] += 1
        lim = a.io.limits.get(dev) if a.parent is not None and a.has("io") else None
        if lim is None:
            continue
        done = t
        for idx, amount in ((bi, nbytes), (ii, 1)):
            rate = lim[idx]
            if rate is None:
                continue
            start = max(t, a.io.tat.get((dev, idx), 0))
            finish = start + _cost(amount, rate)
            a.io.tat[(dev, idx)] = finish
            done = max(done, finish)
        t = done
    return t - t0


def io_weight(cg: Cgroup, dev: Dev) -> int:
    return cg.io.dev_weights.get(dev, cg.io.weight)


# -- files ---------------------------------------------------------------------------------------
def _parse_dev(cg: Cgroup, text: str) -> tuple[Dev, str]:
    """blkg_conf_prep: "MAJ:MIN" then whitespace; EINVAL if malformed, ENODEV if no such disk."""
    m = _DEV.match(text)
    if m is None:
        raise KernelError(EINVAL, f"expected MAJ:MIN in {text!r}")
    dev = (int(m.group(1)), int(m.group(2)))
    if dev not in cg.hierarchy.block_devices:
        raise KernelError(ENODEV, f"no block device {dev[0]}:{dev[1]}")
    return dev, text[m.end() :]


def write_max(cg: Cgroup, text: str) -> None:
    """tg_set_limit: "MAJ:MIN [rbps=N|max] [wbps=..] [riops=..] [wiops=..]"; keys not given keep
    their value. EINVAL for unknown keys or values, ERANGE for 0."""
    dev, body = _parse_dev(cg, text.strip())
    cur = list(cg.io.limits.get(dev, [None, None, None, None]))
    for tok in body.split():
        key, eq, val = tok.partition("=")
        if not eq:
            raise KernelError(EINVAL, f"bad io.max token {tok!r}")
        if val == "max":
            v: int | None = None
        elif val.isdigit():
            v = int(val)
            if v == 0:
                raise KernelError(ERANGE, f"{key}=0 is not a limit")
            if v > U64_MAX:
                raise KernelError(EINVAL, f"bad value {val!r}")
        else:
            raise KernelError(EINVAL, f"bad value {val!r}")
        if key not in LIMIT_KEYS:
            raise KernelError(EINVAL, f"unknown io.max key {key!r}")
        idx = LIMIT_KEYS.index(key)
        if v is not None and idx >= 2:
            v = min(v, UINT_MAX)
        cur[idx] = v
    if all(v is None for v in cur):
        cg.io.limits.pop(dev, None)
    else:
        cg.io.limits[dev] = cur
    for idx in range(4):
        cg.io.tat.pop((dev, idx), None)


def read_max(cg: Cgroup) -> str:
    out = []
    for dev in sorted(cg.io.limits):
        vals = " ".join(
            f"{k}={'max' if v is None else v}" for k, v in zip(LIMIT_KEYS, cg.io.limits[dev], strict=True)
        )
        out.append(f"{dev[0]}:{dev[1]} {vals}\n")
    return "".join(out)


def read_stat(cg: Cgroup) -> str:
    out = []
    for dev in sorted(cg.io.stats):
        rb, wb, ri, wi = cg.io.stats[dev]
        out.append(f"{dev[0]}:{dev[1]} rbytes={rb} wbytes={wb} rios={ri} wios={wi} dbytes=0 dios=0\n")
    return "".join(out)


def read_weight(cg: Cgroup) -> str:
    lines = [f"default {cg.io.weight}\n"]
    lines += [f"{d[0]}:{d[1]} {w}\n" for d, w in sorted(cg.io.dev_weights.items())]
    return "".join(lines)


def write_weight(cg: Cgroup, text: str) -> None:
    """ioc_weight_write: "[default] W" or "MAJ:MIN W|default"; W in 1..10000 else EINVAL."""
    s = text.strip()
    if ":" not in s.split(" ", 1)[0]:
        parts = s.split()
        if len(parts) == 2 and parts[0] == "default":
            parts = parts[1:]
        if len(parts) != 1 or not parts[0].isdigit():
            raise KernelError(EINVAL, f"bad io.weight {text!r}")
        v = int(parts[0])
        if not CGROUP_WEIGHT_MIN <= v <= CGROUP_WEIGHT_MAX:
            raise KernelError(EINVAL, f"io.weight out of range: {v}")
        cg.io.weight = v
        return
    dev, body = _parse_dev(cg, s)
    body = body.strip()
    if body == "default":
        cg.io.dev_weights.pop(dev, None)
        return
    if not body.isdigit() or not CGROUP_WEIGHT_MIN <= int(body) <= CGROUP_WEIGHT_MAX:
        raise KernelError(EINVAL, f"bad io.weight {text!r}")
    cg.io.dev_weights[dev] = int(body)
