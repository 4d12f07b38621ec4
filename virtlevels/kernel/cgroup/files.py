"""The cgroup2 text interface: every interface file, its format and its errors.

What the kernel core mounts at /sys/fs/cgroup (through the VFS's synthetic filesystem): a
directory per cgroup, holding the files :func:`files_of` lists. Reads and writes go through
:func:`read_file` and :func:`write_file`, with Linux's errors: ENOENT for a file that does not
exist in that cgroup (e.g. memory.max at the root, or before "+memory" in the parent),
EACCES for a write to a read-only file or without write permission (kernfs_fop_open and the
VFS permission check), EPERM for a write from inside a cgroup namespace to the files of its
root cgroup other than cgroup.procs/threads/subtree_control (nsdelegate), and each file's own
EINVAL/ERANGE/EBUSY rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from virtlevels.kernel.cgroup import cpu, io, memory, pids
from virtlevels.kernel.cgroup.core import CONTROLLERS, INT_MAX, Cgroup, Task
from virtlevels.kernel.cgroup.parse import kstrto
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EACCES, EINVAL, ENOENT, EOPNOTSUPP, EPERM, ERANGE, KernelError


@attrs.frozen
class Opener:
    """Who reads or writes: their credentials, task (pid "0" in cgroup.procs), pid namespace
    (to show and resolve pids) and cgroup namespace (delegation boundary)."""

    creds: Credentials | None = None
    task: Task | None = None
    pid_ns: Any = None
    cgroup_ns: Any = None


Reader = Callable[[Cgroup, Opener], str]
Writer = Callable[[Cgroup, str, Opener], None]


@attrs.frozen
class CgFile:
    name: str
    controller: str | None  # None: a core file, always present
    where: str  # "all", "root" or "nonroot"
    read: Reader | None
    write: Writer | None
    delegatable: bool = False  # writable from inside a cgroup namespace at its root (CFTYPE_NS_DELEGATABLE)

    @property
    def mode(self) -> int:
        """0644 read-write, 0444 read-only, 0200 write-only (as cgroup_file_mode gives them)."""
        if self.read is not None and self.write is not None:
            return 0o644
        return 0o444 if self.read is not None else 0o200


def _r(fn: Callable[[Cgroup], str]) -> Reader:
    return lambda cg, _o: fn(cg)


def _w(fn: Callable[[Cgroup, str], None]) -> Writer:
    return lambda cg, text, _o: fn(cg, text)


# -- core files ------------------------------------------------------------------------------------
def _procs_read(cg: Cgroup, o: Opener) -> str:
    h = cg.hierarchy
    return "".join(f"{h.pid_of(t, o.pid_ns)}\n" for t in cg.procs)


def _procs_write(cg: Cgroup, text: str, o: Opener) -> None:
    assert o.creds is not None
    cg.hierarchy.write_procs(cg, text, o.creds, task=o.task, pid_ns=o.pid_ns, cgroup_ns=o.cgroup_ns)


def _threads_write(cg: Cgroup, text: str, o: Opener) -> None:
    raise KernelError(EOPNOTSUPP, "threaded cgroups are not implemented")


def _subtree_read(cg: Cgroup) -> str:
    return " ".join(c for c in CONTROLLERS if c in cg.subtree_control) + "\n"


def _subtree_write(cg: Cgroup, text: str) -> None:
    """cgroup_subtree_control_write: space-separated "+name"/"-name"; EINVAL for an unknown
    controller or a token without +/-; the later of two tokens for one controller wins."""
    enable: set[str] = set()
    disable: set[str] = set()
    for tok in text.strip().split(" "):
        if not tok:
            continue
        name = tok[1:]
        if name not in CONTROLLERS:
            raise KernelError(EINVAL, f"unknown controller in {tok!r}")
        if tok[0] == "+":
            enable.add(name)
            disable.discard(name)
        elif tok[0] == "-":
            disable.add(name)
            enable.discard(name)
        else:
            raise KernelError(EINVAL, f"{tok!r} must start with + or -")
    cg.hierarchy.set_subtree_control(cg, enable, disable)


def _controllers_read(cg: Cgroup) -> str:
    return " ".join(cg.controllers()) + "\n"


def _events_read(cg: Cgroup) -> str:
    return f"populated {int(cg.populated())}\nfrozen {int(cg.frozen())}\n"


def _type_write(cg: Cgroup, text: str) -> None:
    if text.strip() != "threaded":
        raise KernelError(EINVAL, f"cgroup.type accepts only 'threaded', not {text.strip()!r}")
    raise KernelError(EOPNOTSUPP, "threaded cgroups are not implemented")


def _freeze_write(cg: Cgroup, text: str) -> None:
    v = kstrto(text.strip(), signed=True, bits=32)
    if v not in (0, 1):
        raise KernelError(ERANGE, "cgroup.freeze takes 0 or 1")
    thaw = cg.freeze and not v
    cg.freeze = bool(v)
    h = cg.hierarchy
    if thaw and h.on_unthrottle is not None:
        # Thawed tasks are runnable again: idle CPUs must look at their queues (as a cpu.max refill).
        h.on_unthrottle(cg)


def _kill_write(cg: Cgroup, text: str) -> None:
    v = kstrto(text.strip(), signed=True, bits=32)
    if v != 1:
        raise KernelError(ERANGE, "cgroup.kill takes 1")
    cg.hierarchy.kill(cg)


def _limit_rw(field: str) -> tuple[Reader, Writer]:
    def read(cg: Cgroup, _o: Opener) -> str:
        v = getattr(cg, field)
        return "max\n" if v == INT_MAX else f"{v}\n"

    def write(cg: Cgroup, text: str, _o: Opener) -> None:
        s = text.strip()
        v = INT_MAX if s == "max" else kstrto(s, signed=True, bits=32)
        if v < 0:
            raise KernelError(ERANGE, f"{field} must not be negative")
        setattr(cg, field, v)

    return read, write


def _stat_read(cg: Cgroup) -> str:
    return f"nr_descendants {cg.nr_descendants()}\nnr_dying_descendants 0\n"


M, N = "memory", "nonroot"
_desc_r, _desc_w = _limit_rw("max_descendants")
_depth_r, _depth_w = _limit_rw("max_depth")

FILES: dict[str, CgFile] = {
    f.name: f
    for f in (
        CgFile("cgroup.controllers", None, "all", _r(_controllers_read), None),
        CgFile("cgroup.subtree_control", None, "all", _r(_subtree_read), _w(_subtree_write), True),
        CgFile("cgroup.procs", None, "all", _procs_read, _procs_write, True),
        CgFile("cgroup.threads", None, "all", _procs_read, _threads_write, True),
        CgFile("cgroup.max.descendants", None, "all", _desc_r, _desc_w),
        CgFile("cgroup.max.depth", None, "all", _depth_r, _depth_w),
        CgFile("cgroup.stat", None, "all", _r(_stat_read), None),
        CgFile("cgroup.events", None, "nonroot", _r(_events_read), None),
        CgFile("cgroup.type", None, "nonroot", _r(lambda cg: "domain\n"), _w(_type_write)),
        CgFile("cgroup.freeze", None, "nonroot", _r(lambda cg: f"{int(cg.freeze)}\n"), _w(_freeze_write)),
        CgFile("cgroup.kill", None, "nonroot", None, _w(_kill_write)),
        CgFile("cpu.stat", None, "all", _r(cpu.read_stat), None),
        CgFile("cpu.weight", "cpu", "nonroot", _r(cpu.read_weight), _w(cpu.write_weight)),
        CgFile("cpu.max", "cpu", "nonroot", _r(cpu.read_max), _w(cpu.write_max)),
        CgFile("memory.current", M, N, _r(memory.read_current), None),
        CgFile("memory.min", M, N, _r(memory.read_limit("min")), _w(memory.write_minlow("min"))),
        CgFile("memory.low", M, N, _r(memory.read_limit("low")), _w(memory.write_minlow("low"))),
        CgFile("memory.high", M, N, _r(memory.read_limit("high")), _w(memory.write_high)),
        CgFile("memory.max", M, N, _r(memory.read_limit("max")), _w(memory.write_max)),
        CgFile("memory.peak", M, N, _r(memory.read_peak), None),
        CgFile("memory.events", M, N, _r(memory.read_events), None),
        CgFile("memory.events.local", M, N, _r(memory.read_events_local), None),
        CgFile("memory.stat", M, "all", _r(memory.read_stat), None),
        CgFile("memory.oom.group", M, N, _r(memory.read_oom_group), _w(memory.write_oom_group)),
        CgFile("memory.reclaim", M, "all", None, _w(memory.write_reclaim)),
        CgFile("memory.swap.current", M, N, _r(lambda cg: "0\n"), None),
        CgFile("memory.swap.max", M, N, _r(memory.read_limit("swap_max")), _w(memory.write_swap_max)),
        CgFile("pids.max", "pids", "nonroot", _r(pids.read_max), _w(pids.write_max)),
        CgFile("pids.current", "pids", "nonroot", _r(lambda cg: f"{cg.pids.current}\n"), None),
        CgFile("pids.peak", "pids", "nonroot", _r(lambda cg: f"{cg.pids.peak}\n"), None),
        CgFile("pids.events", "pids", "nonroot", _r(pids.read_events), None),
        CgFile("pids.events.local", "pids", "nonroot", _r(pids.read_events_local), None),
        CgFile("io.stat", "io", "all", _r(io.read_stat), None),
        CgFile("io.max", "io", "nonroot", _r(io.read_max), _w(io.write_max)),
        CgFile("io.weight", "io", "nonroot", _r(io.read_weight), _w(io.write_weight)),
    )
}  # fmt: skip


def _present(cg: Cgroup, f: CgFile) -> bool:
    if f.where == "root" and not cg.is_root or f.where == "nonroot" and cg.is_root:
        return False
    return f.controller is None or cg.has(f.controller)


def files_of(cg: Cgroup) -> list[str]:
    """The interface files in ``cg``'s directory, sorted as ``ls`` shows them."""
    return sorted(n for n, f in FILES.items() if _present(cg, f))


def _spec(cg: Cgroup, name: str) -> CgFile:
    f = FILES.get(name)
    if f is None or not _present(cg, f) or cg.removed:
        raise KernelError(ENOENT, f"no file {name} in {cg.path}")
    return f


def file_mode(cg: Cgroup, name: str) -> int:
    """Permission bits of an interface file (0644, 0444, or 0200 for write-only ones)."""
    return _spec(cg, name).mode


def read_file(cg: Cgroup, name: str, *, pid_ns: Any = None) -> str:
    f = _spec(cg, name)
    if f.read is None:
        raise KernelError(EACCES, f"{name} is write-only")
    return f.read(cg, Opener(pid_ns=pid_ns))


def write_file(
    cg: Cgroup,
    name: str,
    text: str,
    creds: Credentials,
    *,
    task: Task | None = None,
    pid_ns: Any = None,
    cgroup_ns: Any = None,
) -> None:
    f = _spec(cg, name)
    if f.write is None:
        raise KernelError(EACCES, f"{name} is read-only")
    uid, gid = cg.hierarchy.file_owner(cg, name)
    if not cg.hierarchy.may_access(creds, uid, gid, file_mode(cg, name), 2):
        raise KernelError(EACCES, f"no write permission on {cg.path}/{name}")
    if cg.hierarchy.ns_delegate and cgroup_ns is not None and not f.delegatable:
        ns_root = getattr(cgroup_ns, "root", None)
        if ns_root is cg and not cg.is_root:
            raise KernelError(EPERM, f"{name} of the cgroup namespace root is not writable from inside")
    f.write(cg, text, Opener(creds, task, pid_ns, cgroup_ns))
