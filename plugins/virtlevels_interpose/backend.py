"""The interpose backend: the library level as a guest with the one lifecycle of every level.

``InterposeBackend().define(kernel, spec)`` returns an :class:`InterposedProcess`: a program run
with preloaded libraries, an ltrace-like tracer, faketime/fakeroot and fault rules. Its host is
a kernel (``info.needs``); it offers a process.
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.backend import Lifecycle
from virtlevels.errors import ConfigError, LifecycleError
from virtlevels.kernel import signals
from virtlevels.taxonomy import BackendInfo
from virtlevels_interpose.interposers import FAKEROOT_NAME, FAKETIME_NAME, FaultInjector, FaultRule, Tracer
from virtlevels_interpose.linker import Linker


@attrs.define
class InterposeSpec:
    """What to run and how its library calls are virtualized."""

    program: str  # a path in the kernel's filesystem
    argv: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    preload: tuple[str, ...] = ()
    ltrace: bool = False
    faketime: str | None = None
    fakeroot: bool = False
    fail: tuple[str, ...] = ()  # FaultRule.parse texts

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InterposeSpec:
        known = {f.name for f in attrs.fields(cls)}
        for k in d:
            if k not in known:
                raise ConfigError(f"interpose spec: unknown field {k!r} (known: {', '.join(sorted(known))})")
        if "program" not in d:
            raise ConfigError("interpose spec: field 'program' is required")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)  # type: ignore[arg-type]

    def environment(self) -> list[str]:
        env = list(self.env)
        pre = list(self.preload)
        if self.faketime is not None:
            pre.append(FAKETIME_NAME)
            env.append(f"FAKETIME={self.faketime}")
        if self.fakeroot:
            pre.append(FAKEROOT_NAME)
        if pre:
            env = [e for e in env if not e.startswith("LD_PRELOAD=")] + ["LD_PRELOAD=" + ":".join(pre)]
        return env


class InterposedProcess:
    """A program under the dynamic linker's control (the library level's guest)."""

    def __init__(self, kernel: Any, spec: InterposeSpec, name: str) -> None:
        self.kernel = kernel
        self.spec = spec
        self.id = name
        self.lifecycle = Lifecycle(f"interposed process {name}")
        self.linker = Linker.of(kernel)
        self.tracer: Tracer | None = None
        self.faults: FaultInjector | None = None
        self.task: Any = None
        for text in spec.fail:
            FaultRule.parse(text)  # reject a bad rule at define time, before anything runs

    @property
    def pid(self) -> int | None:
        return self.task.process.host_pid if self.task is not None else None

    def start(self) -> None:
        self.lifecycle.check("start")
        s = self.spec
        argv = list(s.argv) or [s.program]
        envp = list(s.environment())
        # Started as a shell starts a program: a process that calls execve(2), so the dynamic
        # linker binds at that exec and the exec is paid for as at every other level.
        self.task = self.kernel.spawn(_launcher(s.program, argv, envp), argv, stdio=True, envp=envp,
                                      name=s.program.rsplit("/", 1)[-1])
        pid = self.task.process.host_pid
        if s.ltrace:
            self.tracer = Tracer(self.kernel).start()
        if s.fail:
            # Per-process rules belong to the program, so they go in once its execve has bound it
            # (an exec drops the process's hooks, as it drops LD_PRELOAD state).
            def arm(task: Any, path: str, program: Any) -> None:
                if task.process.host_pid == pid and self.faults is None and not self.task.dead:
                    self.faults = FaultInjector(self.kernel)
                    for text in s.fail:
                        self.faults.add(attrs.evolve(FaultRule.parse(text), pid=pid))

            self.kernel.exec_hooks.append(arm)
        self.lifecycle.apply("start")

    def pause(self) -> None:
        raise LifecycleError(f"{self.id}: pause needs job control (SIGSTOP), which the kernel does not model")

    def resume(self) -> None:
        raise LifecycleError(
            f"{self.id}: resume needs job control (SIGCONT), which the kernel does not model"
        )

    def stop(self) -> None:
        self.lifecycle.check("stop")
        if self.task is not None and not self.task.process.zombie:
            self.kernel.send_signal(self.task.process, signals.SIGKILL)
        self.lifecycle.apply("stop")

    def destroy(self) -> None:
        self.lifecycle.check("destroy")
        if self.tracer is not None:
            self.tracer.stop()
        if self.faults is not None:
            self.faults.clear()
        if self.task is not None and not self.task.process.zombie:
            self.kernel.send_signal(self.task.process, signals.SIGKILL)
        self.lifecycle.apply("destroy")

    def snapshot(self) -> bytes:
        raise LifecycleError(f"{self.id}: snapshots of a process are not supported (CRIU is not modelled)")

    def stats(self) -> dict[str, Any]:
        pid = self.pid
        out: dict[str, Any] = {"pid": pid, "state": self.lifecycle.state.value}
        out["library"] = self.linker.stats(pid) if pid is not None else {}
        if pid is not None and pid in self.kernel.exit_status:
            out["exit_status"] = self.kernel.exit_status[pid]
        if self.tracer is not None:
            out["ltrace"] = list(self.tracer.lines)
        # The level below, when a sandbox plugin filters this kernel's system calls (found by
        # duck typing: this plugin does not import the sandbox plugin).
        ks = getattr(self.kernel, "_virtlevels_sandbox", None)
        if ks is not None:
            out["seccomp"] = ks.stats.to_dict()
        machine = getattr(self.kernel, "machine", None)
        if machine is not None:  # ISA programs: where the harts' cycles went ("library", "filters"...)
            by: dict[str, int] = {}
            for hart in machine.harts:
                for key, value in hart.cycles_by_category().items():
                    if value:
                        by[key] = by.get(key, 0) + value
            out["cycles_by_category"] = dict(sorted(by.items()))
        return out

    def run(self, workload: Any = None) -> Any:
        if self.lifecycle.state.value == "defined":
            self.start()
        self.kernel.run()
        return self.stats()


def _launcher(program: str, argv: list[str], envp: list[str]) -> Any:
    from virtlevels.kernel import scripted as sc

    def launch(*_args: Any) -> Any:
        r = yield sc.execve(program, argv, envp)
        return 127 if isinstance(r, int) and r < 0 else 0

    return launch


class InterposeBackend:
    info = BackendInfo(
        name="interpose",
        level="library",
        techniques=["preload interposition", "call hooks", "API translation"],
        objects=["application virtual machine"],
        shares=["kernel", "hardware", "address space", "filesystem"],
        keeps=["equivalence", "efficiency"],
        needs="kernel",
        offers="process",
        description="a dynamic linker with LD_PRELOAD, Qiling-style hooks and a Wine-like Win32 layer",
    )

    def __init__(self) -> None:
        self._n = 0

    def define(self, host: Any, spec: Any) -> InterposedProcess:
        if isinstance(spec, dict):
            spec = InterposeSpec.from_dict(spec)
        if not isinstance(spec, InterposeSpec):
            raise ConfigError(
                f"interpose: spec must be an InterposeSpec or a dict, not {type(spec).__name__}"
            )
        self._n += 1
        return InterposedProcess(host, spec, f"interposed-{self._n}")
