"""The sandbox backend: process-level virtualization as a guest with the one lifecycle of every level.

``SandboxBackend().define(kernel, spec)`` returns a :class:`SandboxedProcess`; ``start`` runs the
command in a sandbox (see :mod:`virtlevels_sandbox.sandbox`). The host is a kernel (``needs``)
and the guest offers a process, so a sandbox runs in a container or a VM's kernel alike.
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.backend import Lifecycle
from virtlevels.errors import ConfigError, LifecycleError
from virtlevels.kernel import signals
from virtlevels.taxonomy import BackendInfo
from virtlevels_sandbox import seccomp as sec
from virtlevels_sandbox.programs import install_programs
from virtlevels_sandbox.sandbox import SandboxSpec, spawn_sandboxed


@attrs.define
class SandboxGuestSpec:
    sandbox: SandboxSpec = attrs.field(factory=SandboxSpec)
    command: tuple[str, ...] = ("/bin/echo", "sandboxed")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SandboxGuestSpec:
        rest = {k: v for k, v in d.items() if k != "command"}
        return cls(SandboxSpec.from_dict(rest), tuple(d.get("command", ("/bin/echo", "sandboxed"))))


class SandboxedProcess:
    """A sandboxed process. pause/resume and snapshot are not offered: a bare process has no freezer
    of its own (put it in a container for cgroup.freeze) and no checkpoint/restore."""

    def __init__(self, kernel: Any, spec: SandboxGuestSpec, name: str) -> None:
        self.kernel = kernel
        self.spec = spec
        self.id = name
        self.lifecycle = Lifecycle(f"sandbox {name}")
        self.task: Any = None
        self.compiled = spec.sandbox.compile()  # a bad profile fails at define, before anything runs

    def start(self) -> None:
        self.lifecycle.check("start")
        if not self.spec.command:
            raise ConfigError(f"sandbox {self.id}: empty command")
        install_programs(self.kernel)
        cmd = list(self.spec.command)
        self.task = spawn_sandboxed(self.kernel, self.spec.sandbox, cmd[0], cmd, compiled=self.compiled)
        self.lifecycle.apply("start")

    def pause(self) -> None:
        raise LifecycleError(f"sandbox {self.id}: pause needs a freezer (run the sandbox in a container)")

    def resume(self) -> None:
        raise LifecycleError(f"sandbox {self.id}: resume needs a freezer (run the sandbox in a container)")

    def stop(self) -> None:
        self.lifecycle.check("stop")
        p = self.task.process if self.task is not None else None
        if p is not None and not p.zombie:
            self.kernel.send_signal(p, signals.SIGKILL)
        self.lifecycle.apply("stop")

    def destroy(self) -> None:
        self.lifecycle.check("destroy")
        if self.lifecycle.state.value == "running":
            self.stop()
        self.lifecycle.apply("destroy")

    def snapshot(self) -> bytes:
        raise LifecycleError(f"sandbox {self.id}: snapshot is not supported (no checkpoint/restore)")

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.id, "status": self.lifecycle.state.value}
        p = self.task.process if self.task is not None else None
        if p is not None:
            out["pid"] = p.host_pid
            out["exited"] = p.zombie or p.reaped
            out["exit_status"] = p.exit_code if p.zombie or p.reaped else None
        out["seccomp"] = sec.stats(self.kernel).to_dict()
        return out

    def run(self, workload: Any) -> Any:
        """Run a command (list of strings) in a new process under the same sandbox; returns its task."""
        if isinstance(workload, str):
            workload = [workload]
        if not isinstance(workload, (list, tuple)) or not workload:
            raise ConfigError(
                f"sandbox {self.id}: a workload is a command (list of strings), not {workload!r}"
            )
        install_programs(self.kernel)
        return spawn_sandboxed(
            self.kernel, self.spec.sandbox, workload[0], list(workload), compiled=self.compiled
        )


class SandboxBackend:
    """Process-level virtualization: seccomp-BPF, capabilities and rlimits (Docker/Firejail's place)."""

    # Equivalence is partial: the process sees the real kernel, minus the calls its filter denies.
    # Efficiency is native apart from the filter (a few cycles per BPF instruction). Resource
    # control is what rlimits give, per process, not a partition of the machine.
    info = BackendInfo(
        name="sandbox",
        level="process",
        techniques=["system-call filtering", "capabilities", "resource limits"],
        objects=["application virtual machine"],
        shares=["kernel", "hardware", "filesystem", "network", "libraries"],
        keeps=["efficiency"],
        needs="kernel",
        offers="process",
        description="seccomp-BPF filters (Docker profiles), capabilities and rlimits on one process",
    )

    def __init__(self) -> None:
        self._n = 0

    def define(
        self, host: Any, spec: SandboxGuestSpec | SandboxSpec | dict[str, Any] | None = None
    ) -> SandboxedProcess:
        if not hasattr(host, "syscall_filters") or not hasattr(host, "spawn"):
            raise ConfigError(f"the sandbox backend needs a kernel as its host, not {type(host).__name__}")
        if spec is None:
            spec = SandboxGuestSpec()
        elif isinstance(spec, SandboxSpec):
            spec = SandboxGuestSpec(spec)
        elif isinstance(spec, dict):
            spec = SandboxGuestSpec.from_dict(spec)
        self._n += 1
        return SandboxedProcess(host, spec, f"sandbox{self._n}")


# -- what other plugins (the container runtime) use, found through the registry -------------------------
def _action_name(ret: int) -> tuple[str, int | None]:
    from virtlevels_sandbox import profile as prof

    act = ret & 0xFFFF0000
    for name, value in prof.ACTIONS.items():
        if value == act and name != "SCMP_ACT_KILL":
            has_data = act in (sec.SECCOMP_RET_ERRNO, sec.SECCOMP_RET_TRACE)
            return name, (ret & 0xFFFF) if has_data else None
    raise ConfigError(f"no seccomp action for {ret:#x}")


def oci_profile(name_or_path: str, caps: Any) -> dict[str, Any]:
    """A Docker profile resolved for ``caps`` (the bounding set) into the OCI ``linux.seccomp`` shape,
    as dockerd does before it writes config.json."""
    from virtlevels_sandbox import profile as prof

    doc, source = prof.load_json(name_or_path)
    cp = prof.compile_profile(doc, caps=caps, source=source)
    action, errno = _action_name(cp.default)
    # No "architectures": the OCI schema has no riscv32 entry, and the native arch is always in the filter.
    out: dict[str, Any] = {"defaultAction": action, "syscalls": []}
    if errno is not None:
        out["defaultErrnoRet"] = errno
    for r in cp.rules:
        name, data = _action_name(r.action)
        entry: dict[str, Any] = {"names": list(r.names), "action": name}
        if data is not None:
            entry["errnoRet"] = data
        if r.conds:
            entry["args"] = [
                {"index": c.index, "value": c.value, "valueTwo": c.value_two, "op": c.op} for c in r.conds
            ]
        out["syscalls"].append(entry)
    return out


def compile_oci(seccomp: Any, caps: Any, source: str = "config.json") -> tuple[Any, ...]:
    """The BPF program for an OCI ``linux.seccomp`` (a dict, or the containers plugin's parsed object)."""
    from virtlevels_sandbox import profile as prof

    doc = prof.oci_to_dict(seccomp)
    return prof.compile_profile(doc, caps=caps, source=f"{source}: $.linux.seccomp").program


SandboxBackend.oci_profile = staticmethod(oci_profile)  # type: ignore[attr-defined]
SandboxBackend.compile_oci = staticmethod(compile_oci)  # type: ignore[attr-defined]
SandboxBackend.set_mode_filter = staticmethod(sec.set_mode_filter)  # type: ignore[attr-defined]
