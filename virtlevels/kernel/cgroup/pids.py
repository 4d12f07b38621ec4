"""The pids controller (cgroup-v2.rst "PID"; kernel/cgroup/pids.c).

pids.current counts the tasks of a cgroup's subtree, charged at fork before the task exists
and uncharged when it is reaped. A fork that would take any ancestor with the controller over
its pids.max fails with EAGAIN; the event is counted in pids.events ("max") of the cgroup
whose limit was hit and of its ancestors (Linux 6.12 hierarchical events), and in that
cgroup's pids.events.local. Migration moves the charge without checking the limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from virtlevels.kernel.cgroup.parse import kstrto
from virtlevels.kernel.errno import EAGAIN, EINVAL, KernelError

if TYPE_CHECKING:
    from virtlevels.kernel.cgroup.core import Cgroup

PID_MAX_LIMIT = 32768  # include/linux/threads.h on a 32-bit kernel
PIDS_MAX = PID_MAX_LIMIT + 1  # "max"


@attrs.define
class PidsState:
    max: int | None = None  # None = "max"
    current: int = 0  # tasks charged in this subtree (kept on every cgroup)
    peak: int = 0
    events_max: int = 0
    events_local_max: int = 0

    def reset_config(self) -> None:
        self.max = None
        self.events_max = 0
        self.events_local_max = 0


def force_charge(cg: Cgroup, n: int) -> None:
    for a in cg.ancestors():
        a.pids.current += n
        a.pids.peak = max(a.pids.peak, a.pids.current)


def uncharge(cg: Cgroup, n: int) -> None:
    for a in cg.ancestors():
        a.pids.current -= n


def try_charge_pid(cg: Cgroup, n: int = 1) -> None:
    """pids_can_fork: charge ``n`` tasks or raise KernelError(EAGAIN) (nothing charged then)."""
    for a in cg.ancestors():
        lim = a.pids.max
        if lim is not None and a.has("pids") and a.pids.current + n > lim:
            a.pids.events_local_max += 1
            for b in a.ancestors():
                if b.parent is not None:
                    b.pids.events_max += 1
            raise KernelError(EAGAIN, f"fork rejected by pids controller in {a.path}")
    force_charge(cg, n)


def cancel_charge_pid(cg: Cgroup, n: int = 1) -> None:
    """The fork failed after :func:`try_charge_pid` (pids_cancel_fork)."""
    uncharge(cg, n)


# -- files ---------------------------------------------------------------------------------------
def read_max(cg: Cgroup) -> str:
    return "max\n" if cg.pids.max is None else f"{cg.pids.max}\n"


def write_max(cg: Cgroup, text: str) -> None:
    """pids_max_write: "max" or 0..PID_MAX_LIMIT; EINVAL otherwise."""
    s = text.strip()
    if s == "max":
        cg.pids.max = None
        return
    v = kstrto(s, signed=True)
    if v < 0 or v >= PIDS_MAX:
        raise KernelError(EINVAL, f"pids.max out of range: {s!r}")
    cg.pids.max = v


def read_events(cg: Cgroup) -> str:
    return f"max {cg.pids.events_max}\n"


def read_events_local(cg: Cgroup) -> str:
    return f"max {cg.pids.events_local_max}\n"
