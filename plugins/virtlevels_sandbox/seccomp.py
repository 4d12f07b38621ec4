"""seccomp(2) and prctl(PR_SET_SECCOMP) on the kernel's seams (seccomp(2); kernel/seccomp.c).

:func:`install` sets ``Kernel.seccomp_provider`` (the two system calls) and puts one entry in
``Kernel.syscall_filters`` that runs a task's filters at every system call entry.

- A task's state (``Task.seccomp``) is an immutable :class:`SeccompState`: the mode and the
  filters, newest first. Attaching a filter makes a new state whose tail is the old one, so
  fork shares it (copy_seccomp), execve keeps it, and nothing ever removes a filter.
- STRICT mode allows read, write, exit and rt_sigreturn; anything else is SIGKILL.
- FILTER mode needs no_new_privs or CAP_SYS_ADMIN in the caller's user namespace (EACCES);
  every filter runs (newest first) and the action of highest precedence wins
  (seccomp_run_filters: the lowest ``ret & SECCOMP_RET_ACTION_FULL`` as a signed value, so
  KILL_PROCESS > KILL_THREAD > TRAP > ERRNO > USER_NOTIF > TRACE > LOG > ALLOW); among equal
  actions the first (newest) filter's data wins.
- ``struct seccomp_data`` holds nr, arch = AUDIT_ARCH_RISCV32, the instruction pointer and six
  arguments; this is a 32-bit kernel, so each argument's upper word is 0.
- Costs: each filter run charges ``[seccomp] filter`` plus ``[seccomp] bpf_insn`` per
  instruction executed (see the cost profiles for the figures), through ``Kernel.charge_extra``
  in the category "filters" (part of the system call's time, reported apart from "kernel").

Simulator shortcut (no effect on results or cycles): a filter whose verdict for a system call
number does not depend on the arguments is evaluated once per number and remembered, with its
instruction count (the idea of Linux 5.11's action cache).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import attrs

from virtlevels.errors import ConfigError, VirtlevelsError
from virtlevels.kernel import signals
from virtlevels.kernel.caps import CAP_SYS_ADMIN
from virtlevels.kernel.errno import EACCES, EFAULT, EINVAL, ENOMEM, ENOSYS, EOPNOTSUPP, ESRCH, KernelError
from virtlevels.kernel.ns.user import has_cap
from virtlevels.kernel.scripted import Obj, Syscall
from virtlevels.kernel.syscalls import numbers as nrs
from virtlevels.kernel.syscalls.table import FilterVerdict
from virtlevels.kernel.usermem import ARENA_BASE, ScriptedMemory
from virtlevels_sandbox import bpf
from virtlevels_sandbox.bpf import Insn

# include/uapi/linux/seccomp.h
SECCOMP_MODE_DISABLED = 0
SECCOMP_MODE_STRICT = 1
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_STRICT = 0
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2
SECCOMP_GET_NOTIF_SIZES = 3
SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_KILL = SECCOMP_RET_KILL_THREAD
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ACTION_FULL = 0xFFFF0000
SECCOMP_RET_ACTION = 0x7FFF0000
SECCOMP_RET_DATA = 0x0000FFFF
MAX_ERRNO = 4095  # include/linux/err.h: seccomp caps the errno it returns
# include/uapi/linux/prctl.h
PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
#: kernel/seccomp.c: a filter chain may hold this many instructions (each filter counts len + 4).
MAX_INSNS_PER_PATH = (1 << 18) // 8
#: include/uapi/linux/audit.h: AUDIT_ARCH_RISCV32 = EM_RISCV (243) | __AUDIT_ARCH_LE.
EM_RISCV = 243
AUDIT_ARCH_LE = 0x40000000
AUDIT_ARCH_64BIT = 0x80000000
AUDIT_ARCH_RISCV32 = EM_RISCV | AUDIT_ARCH_LE
AUDIT_ARCH_RISCV64 = EM_RISCV | AUDIT_ARCH_LE | AUDIT_ARCH_64BIT

ACTION_NAMES: dict[int, str] = {
    SECCOMP_RET_KILL_PROCESS: "KILL_PROCESS",
    SECCOMP_RET_KILL_THREAD: "KILL_THREAD",
    SECCOMP_RET_TRAP: "TRAP",
    SECCOMP_RET_ERRNO: "ERRNO",
    SECCOMP_RET_USER_NOTIF: "USER_NOTIF",
    SECCOMP_RET_TRACE: "TRACE",
    SECCOMP_RET_LOG: "LOG",
    SECCOMP_RET_ALLOW: "ALLOW",
}
#: seccomp(2) "strict mode": read, write, _exit (not exit_group) and sigreturn.
STRICT_ALLOWED = frozenset({nrs.read, nrs.write, nrs.exit, 139})  # 139: rt_sigreturn

#: Cost keys, section [seccomp] (defaults here when a profile lacks the section).
COST_DEFAULTS = {"filter": 90, "bpf_insn": 6}


def action_of(ret: int) -> int:
    return ret & SECCOMP_RET_ACTION_FULL


def _signed(action: int) -> int:
    return action - (1 << 32) if action & 0x80000000 else action


def describe_action(ret: int) -> str:
    """``ERRNO(1)``, ``ALLOW``, ``KILL_PROCESS``... for a filter's return value."""
    act = action_of(ret)
    name = ACTION_NAMES.get(act)
    if name is None:
        return f"unknown action {ret:#x} (treated as KILL_PROCESS)"
    data = ret & SECCOMP_RET_DATA
    if act in (SECCOMP_RET_ERRNO, SECCOMP_RET_TRACE, SECCOMP_RET_TRAP):
        return f"{name}({data})"
    return name


def seccomp_data(nr: int, args: Sequence[int], ip: int = 0, arch: int = AUDIT_ARCH_RISCV32) -> bytes:
    """``struct seccomp_data`` as a 32-bit kernel fills it (syscall_get_arguments: unsigned long)."""
    a = [x & 0xFFFFFFFF for x in args[:6]] + [0] * (6 - min(len(args), 6))
    return struct.pack("<IIQ6Q", nr & 0xFFFFFFFF, arch & 0xFFFFFFFF, ip & 0xFFFFFFFF, *a)


@attrs.frozen(eq=False)
class SeccompFilter:
    """One attached filter (struct seccomp_filter): a checked program and its log flag."""

    prog: tuple[Insn, ...]
    log: bool = False
    #: nr -> (result, insns) for numbers whose verdict does not depend on the arguments (or None).
    cache: dict[int, tuple[int, int] | None] = attrs.field(factory=dict, repr=False)

    def constant(self, nr: int) -> tuple[int, int] | None:
        """The remembered (result, insns) for native-arch ``nr`` (0..2**32-1), or None when the
        verdict depends on the arguments."""
        cache = self.cache
        if nr in cache:
            return cache[nr]
        cached = cache[nr] = bpf.constant_result(self.prog, nr, AUDIT_ARCH_RISCV32)
        return cached


@attrs.frozen
class SeccompState:
    """A task's seccomp state: mode and filters, newest first (shared by fork, kept by execve)."""

    mode: int = SECCOMP_MODE_DISABLED
    filters: tuple[SeccompFilter, ...] = ()

    @property
    def total_insns(self) -> int:
        return sum(len(f.prog) + 4 for f in self.filters)


@attrs.frozen
class Decision:
    """What the filters of one system call decided."""

    ret: int
    insns: int
    filters: int
    log: bool = False

    @property
    def action(self) -> int:
        return action_of(self.ret)

    @property
    def data(self) -> int:
        return self.ret & SECCOMP_RET_DATA


def run_filters(
    state: SeccompState, nr: int, args: Sequence[int], ip: int = 0, arch: int = AUDIT_ARCH_RISCV32
) -> Decision:
    """seccomp_run_filters: every filter runs; the highest-precedence action wins."""
    # struct seccomp_data is packed only when a filter has to read it: on the common path every
    # filter's verdict for ``nr`` is remembered (constant) and the system call costs no packing.
    data: bytes | None = None
    best = SECCOMP_RET_ALLOW
    best_key = _signed(SECCOMP_RET_ALLOW)
    winner_log = False
    insns = 0
    native = arch == AUDIT_ARCH_RISCV32
    nr32 = nr & 0xFFFFFFFF
    for f in state.filters:
        result = f.constant(nr32) if native else None
        if result is None:
            if data is None:
                data = seccomp_data(nr, args, ip, arch)
            result = bpf.run(f.prog, data)
        ret, n = result
        insns += n
        key = _signed(action_of(ret))
        if key < best_key:
            best, best_key, winner_log = ret, key, f.log
    return Decision(best, insns, len(state.filters), winner_log)


# -- per-kernel bookkeeping --------------------------------------------------------------------------
@attrs.define
class SandboxStats:
    """What the filters did in one kernel: for reports (``virtlevels sandbox run`` prints them)."""

    filtered_syscalls: int = 0
    bpf_insns: int = 0
    filter_runs: int = 0
    cycles: int = 0
    actions: dict[str, int] = attrs.field(factory=dict)
    #: (time, host pid, syscall name, action) for LOG actions and filters attached with FLAG_LOG.
    log: list[tuple[int, int, str, str]] = attrs.field(factory=list)

    def to_dict(self) -> dict[str, Any]:
        per = self.bpf_insns / self.filtered_syscalls if self.filtered_syscalls else 0.0
        return {
            "filtered_syscalls": self.filtered_syscalls,
            "bpf_insns": self.bpf_insns,
            "bpf_insns_per_syscall": round(per, 2),
            "filter_runs": self.filter_runs,
            "filter_cycles": self.cycles,
            "actions": dict(sorted(self.actions.items())),
        }


@attrs.define(eq=False)
class KernelSeccomp:
    """The plugin's per-kernel part: the entry filter, the provider, the costs and the stats."""

    kernel: Any
    c_filter: int = 0
    c_insn: int = 0
    stats: SandboxStats = attrs.field(factory=SandboxStats)

    def entry_filter(self, t: Any, nr: int, args: tuple[int, ...], ip: int) -> FilterVerdict | None:
        st = t.seccomp
        if st is None or not st.mode:
            return None
        k = self.kernel
        stats = self.stats
        stats.filtered_syscalls += 1
        if st.mode == SECCOMP_MODE_STRICT:
            if nr in STRICT_ALLOWED:
                return None
            # __secure_computing_strict: do_exit(SIGKILL).
            stats.actions["KILL(strict)"] = stats.actions.get("KILL(strict)", 0) + 1
            k.send_signal(t.process, signals.SIGKILL)
            return FilterVerdict("errno", ENOSYS)
        d = run_filters(st, nr, args, ip)
        cycles = d.filters * self.c_filter + d.insns * self.c_insn
        k.charge_extra(cycles, "filters")  # its own category in the cycle breakdown
        stats.bpf_insns += d.insns
        stats.filter_runs += d.filters
        stats.cycles += cycles
        act = d.action
        name = ACTION_NAMES.get(act, "KILL_PROCESS")
        stats.actions[name] = stats.actions.get(name, 0) + 1
        if act == SECCOMP_RET_ALLOW:
            return None
        if act == SECCOMP_RET_LOG or d.log:
            stats.log.append((k.world.now, t.process.host_pid, nrs.name_of(nr), describe_action(d.ret)))
        if act == SECCOMP_RET_LOG:
            return None  # allowed, and logged
        if act == SECCOMP_RET_ERRNO:
            return FilterVerdict("errno", min(d.data, MAX_ERRNO))
        if act in (SECCOMP_RET_USER_NOTIF, SECCOMP_RET_TRACE):
            # No listener / no tracer attached: the call fails with ENOSYS (seccomp(2)).
            return FilterVerdict("errno", ENOSYS)
        if act == SECCOMP_RET_TRAP:
            return FilterVerdict("trap", data=d.data)
        if act == SECCOMP_RET_KILL_THREAD:
            return FilterVerdict("kill_thread")
        return FilterVerdict("kill_process")  # KILL_PROCESS, and any unknown action

    # -- the system calls ----------------------------------------------------------------------------
    def provider(self, k: Any, t: Any, kind: str, op: int, args: tuple[int, ...]) -> int:
        if kind == "prctl":
            if op == PR_GET_SECCOMP:
                st = t.seccomp
                return st.mode if st is not None else 0
            mode, ptr = args[0], args[1]
            if mode == SECCOMP_MODE_STRICT:
                return self._set_strict(t, 0, 0)
            if mode == SECCOMP_MODE_FILTER:
                return self._set_filter(t, 0, ptr)
            raise KernelError(EINVAL, f"PR_SET_SECCOMP mode {mode}")
        flags, uargs = args
        if op == SECCOMP_SET_MODE_STRICT:
            return self._set_strict(t, flags, uargs)
        if op == SECCOMP_SET_MODE_FILTER:
            return self._set_filter(t, flags, uargs)
        if op == SECCOMP_GET_ACTION_AVAIL:
            if flags:
                raise KernelError(EINVAL, "SECCOMP_GET_ACTION_AVAIL takes no flags")
            action = struct.unpack("<I", _mem(t).read(uargs, 4))[0]
            if action not in ACTION_NAMES:
                raise KernelError(EOPNOTSUPP, f"action {action:#x}")
            return 0
        if op == SECCOMP_GET_NOTIF_SIZES:
            if flags:
                raise KernelError(EINVAL, "SECCOMP_GET_NOTIF_SIZES takes no flags")
            # struct seccomp_notif_sizes: sizeof seccomp_notif, seccomp_notif_resp, seccomp_data.
            _mem(t).write(uargs, struct.pack("<HHH", 80, 24, bpf.SECCOMP_DATA_SIZE))
            return 0
        raise KernelError(EINVAL, f"seccomp operation {op}")

    def _set_strict(self, t: Any, flags: int, uargs: int) -> int:
        if flags or uargs:
            raise KernelError(EINVAL, "SECCOMP_SET_MODE_STRICT takes no flags or arguments")
        st = t.seccomp
        if st is not None and st.mode not in (SECCOMP_MODE_DISABLED, SECCOMP_MODE_STRICT):
            raise KernelError(EINVAL, "seccomp mode cannot change once set")
        t.seccomp = SeccompState(SECCOMP_MODE_STRICT, ())
        return 0

    def _set_filter(self, t: Any, flags: int, uargs: int) -> int:
        known = (
            SECCOMP_FILTER_FLAG_TSYNC
            | SECCOMP_FILTER_FLAG_LOG
            | SECCOMP_FILTER_FLAG_SPEC_ALLOW
            | SECCOMP_FILTER_FLAG_NEW_LISTENER
            | SECCOMP_FILTER_FLAG_TSYNC_ESRCH
            | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        )
        if flags & ~known:
            raise KernelError(EINVAL, f"unknown seccomp filter flags {flags & ~known:#x}")
        if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER:
            raise KernelError(EINVAL, "seccomp user notification listeners are not modelled")
        prog = read_fprog(t, uargs)
        return attach(self.kernel, t, prog, flags=flags)


def _mem(t: Any) -> Any:
    from virtlevels.kernel.syscalls.util import mem

    return mem(t)


def read_fprog(t: Any, addr: int) -> tuple[Insn, ...]:
    """copy the ``struct sock_fprog`` at ``addr`` (u16 len, pad, u32 filter) and its program.

    A scripted program passes the program by handle instead (``Obj(insns)``, as clone's entry):
    a list of :class:`Insn` or packed ``sock_filter`` bytes.
    """
    m = _mem(t)
    if addr == 0:
        raise KernelError(EFAULT, "NULL sock_fprog")
    if isinstance(m, ScriptedMemory) and addr < ARENA_BASE:
        obj = m.object_at(addr)
        if isinstance(obj, (bytes, bytearray)):
            return _unpack(bytes(obj))
        if isinstance(obj, (list, tuple)) and all(isinstance(i, Insn) for i in obj):
            return tuple(obj)
        raise KernelError(EFAULT, f"scripted sock_fprog handle holds {type(obj).__name__}")
    length, _pad, ptr = struct.unpack("<HHI", m.read(addr, 8))
    if length == 0 or length > bpf.BPF_MAXINSNS:
        raise KernelError(EINVAL, f"sock_fprog.len {length}")
    return _unpack(m.read(ptr, 8 * length))


def _unpack(raw: bytes) -> tuple[Insn, ...]:
    try:
        return bpf.unpack(raw)
    except bpf.BpfError as exc:
        raise KernelError(EINVAL, str(exc)) from None


def attach(kernel: Any, t: Any, prog: Sequence[Insn], *, flags: int = 0, privileged_ok: bool = True) -> int:
    """seccomp_set_mode_filter: check, then stack ``prog`` on ``t`` (and its threads with TSYNC).

    Raises KernelError (EINVAL for a rejected program, EACCES without no_new_privs or
    CAP_SYS_ADMIN, ENOMEM past the path limit); returns 0 (or, with TSYNC, the tid of a thread
    that cannot be synchronised).
    """
    install(kernel)
    prog = tuple(prog)
    try:
        bpf.check_seccomp(prog)
    except bpf.BpfError as exc:
        raise KernelError(EINVAL, f"seccomp filter rejected: {exc}") from None
    # seccomp_prepare_filter: no_new_privs, or CAP_SYS_ADMIN in the task's user namespace.
    if not t.creds.no_new_privs and not (privileged_ok and has_cap(t.creds, t.nsproxy.user, CAP_SYS_ADMIN)):
        raise KernelError(EACCES, "seccomp filter needs no_new_privs or CAP_SYS_ADMIN")
    old = t.seccomp or SeccompState()
    if old.mode not in (SECCOMP_MODE_DISABLED, SECCOMP_MODE_FILTER):
        raise KernelError(EINVAL, "seccomp mode cannot change once set")
    new_filter = SeccompFilter(prog, log=bool(flags & SECCOMP_FILTER_FLAG_LOG))
    new = SeccompState(SECCOMP_MODE_FILTER, (new_filter, *old.filters))
    if new.total_insns > MAX_INSNS_PER_PATH:
        raise KernelError(ENOMEM, f"seccomp filter chain longer than {MAX_INSNS_PER_PATH} instructions")
    if flags & SECCOMP_FILTER_FLAG_TSYNC:
        # seccomp_can_sync_threads: every other thread's filters must be an ancestor of ours.
        for other in t.process.threads:
            if other is t or other.dead:
                continue
            ost = other.seccomp or SeccompState()
            n = len(ost.filters)
            if (
                ost.mode == SECCOMP_MODE_STRICT
                or n > len(old.filters)
                or ost.filters != old.filters[len(old.filters) - n :]
            ):
                if flags & SECCOMP_FILTER_FLAG_TSYNC_ESRCH:
                    raise KernelError(ESRCH, "a thread cannot be synchronised")
                return int(other.host_tid)
        for other in t.process.threads:
            if not other.dead:
                other.seccomp = new
    t.seccomp = new
    return 0


def install(kernel: Any) -> KernelSeccomp:
    """Give ``kernel`` seccomp: the provider and the entry filter (idempotent)."""
    ks = getattr(kernel, "_virtlevels_sandbox", None)
    if ks is not None:
        return ks  # type: ignore[no-any-return]
    costs = {}
    for key, default in COST_DEFAULTS.items():
        try:
            costs[key] = int(kernel.cost.get("seccomp", key))
        except ConfigError:
            costs[key] = default
    if kernel.seccomp_provider is not None:
        raise VirtlevelsError(f"{kernel.node_id}: another plugin already provides seccomp")
    ks = KernelSeccomp(kernel, costs["filter"], costs["bpf_insn"])
    kernel._virtlevels_sandbox = ks
    kernel.seccomp_provider = ks.provider
    kernel.syscall_filters.append(ks.entry_filter)
    return ks


def stats(kernel: Any) -> SandboxStats:
    """The filters' statistics for ``kernel`` (empty if seccomp was never installed)."""
    ks = getattr(kernel, "_virtlevels_sandbox", None)
    return ks.stats if ks is not None else SandboxStats()


# -- scripted helpers --------------------------------------------------------------------------------
def set_mode_filter(prog: Sequence[Insn] | bytes, flags: int = 0) -> Syscall:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, &fprog) for a scripted program (program by handle)."""
    value = bytes(prog) if isinstance(prog, (bytes, bytearray)) else tuple(prog)
    return Syscall(nrs.seccomp, (SECCOMP_SET_MODE_FILTER, flags, Obj(value)))


def set_mode_strict() -> Syscall:
    return Syscall(nrs.seccomp, (SECCOMP_SET_MODE_STRICT, 0, 0))


def prctl_set_filter(prog: Sequence[Insn]) -> Syscall:
    return Syscall(nrs.prctl, (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, Obj(tuple(prog)), 0, 0))
