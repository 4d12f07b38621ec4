"""The containers backend: OS-level virtualization as a guest with the one lifecycle of every level.

``ContainersBackend().define(kernel, spec)`` returns a :class:`Container` guest over the OCI
runtime. The host is a :class:`~virtlevels.kernel.kernel.Kernel` (what ``info.needs`` says), so
a container inside a VM is this backend given the kernel that runs in the VM.
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.backend import Lifecycle
from virtlevels.errors import ConfigError, LifecycleError
from virtlevels.taxonomy import BackendInfo
from virtlevels_containers.engine import Engine, RunOptions, container_stats
from virtlevels_containers.runtime import Runtime


@attrs.define
class ContainerSpec:
    """What to run: an image (``busybox``, a layer directory or tarball) and a command, with options."""

    image: str = "busybox"
    command: tuple[str, ...] = ("true",)
    options: RunOptions = attrs.field(factory=RunOptions)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContainerSpec:
        opts = {k: v for k, v in d.items() if k not in ("image", "command")}
        if "env" in opts:
            opts["env"] = tuple(opts["env"])
        return cls(d.get("image", "busybox"), tuple(d.get("command", ("true",))), RunOptions(**opts))


def _runtime_of(kernel: Any) -> tuple[Runtime, Engine]:
    # One runtime and engine per kernel, as one containerd serves a host.
    rt = getattr(kernel, "_virtlevels_containers", None)
    if rt is None:
        runtime = Runtime(kernel)
        rt = (runtime, Engine(runtime))
        kernel._virtlevels_containers = rt
    return rt  # type: ignore[no-any-return]


class Container:
    """A container guest: start creates and starts it; pause/resume use cgroup.freeze."""

    def __init__(self, kernel: Any, spec: ContainerSpec, name: str) -> None:
        self.kernel = kernel
        self.spec = spec
        self.id = name
        self.lifecycle = Lifecycle(f"container {name}")
        self.runtime, self.engine = _runtime_of(kernel)
        self.exit_code: int | None = None

    def start(self) -> None:
        self.lifecycle.check("start")
        if self.id in self.runtime.containers:
            self.runtime.delete(self.id, force=True)  # a restart after stop makes a fresh container
        opts = attrs.evolve(self.spec.options, name=self.id)
        self.engine.run(self.spec.image, list(self.spec.command), opts, detach=True)
        self.lifecycle.apply("start")

    def _freeze(self, value: str) -> None:
        # cgroup-v2.rst "cgroup.freeze": the whole container stops being scheduled, atomically.
        c = self.runtime.get(self.id)
        from virtlevels_containers.init import write_path

        def prog() -> Any:
            yield from write_path(f"{c.cgroup_dir}/cgroup.freeze", value)
            return 0

        self.runtime._run(prog, what="freeze")

    def pause(self) -> None:
        self.lifecycle.check("pause")
        self._freeze("1")
        self.lifecycle.apply("pause")

    def resume(self) -> None:
        self.lifecycle.check("resume")
        self._freeze("0")
        self.lifecycle.apply("resume")

    def stop(self) -> None:
        self.lifecycle.check("stop")
        if self.lifecycle.state.value == "paused":
            self._freeze("0")
        self.runtime.kill(self.id, "KILL")
        self.exit_code = self.runtime.wait(self.id)
        self.lifecycle.apply("stop")

    def destroy(self) -> None:
        self.lifecycle.check("destroy")
        if self.id in self.runtime.containers:
            if self.lifecycle.state.value == "paused":
                self._freeze("0")
            self.runtime.delete(self.id, force=True)
        self.lifecycle.apply("destroy")

    def snapshot(self) -> bytes:
        # Checkpointing a process tree (CRIU) is not implemented by the kernel or the runtime.
        raise LifecycleError(f"container {self.id}: snapshot is not supported (no checkpoint/restore)")

    def stats(self) -> dict[str, Any]:
        if self.id not in self.runtime.containers:
            return {"name": self.id, "status": self.lifecycle.state.value}
        return container_stats(self.runtime, self.id)

    def run(self, workload: Any) -> Any:
        """Run a command (a list of strings) in the running container; returns the ExecResult."""
        if isinstance(workload, str):
            workload = [workload]
        if not isinstance(workload, (list, tuple)):
            raise ConfigError(
                f"container {self.id}: a workload is a command (list of strings), not {workload!r}"
            )
        return self.runtime.exec(self.id, list(workload))


class ContainersBackend:
    """OS-level virtualization with namespaces and cgroup v2 (runc's place in the taxonomy)."""

    # Equivalence is partial: a container sees the same kernel (same system-call interface and
    # version, same bugs), so it cannot run another kernel or use what its namespaces do not
    # cover (e.g. kernel modules, the clock without a time namespace). Efficiency is native:
    # system calls go straight to the host kernel. Resource control comes from cgroups.
    info = BackendInfo(
        name="containers",
        level="os",
        techniques=["namespaces", "control groups"],
        objects=["application virtual machine"],
        shares=["kernel", "hardware"],
        keeps=["efficiency", "resource control"],
        needs="kernel",
        offers="process",
        description="OCI runtime (runc's config.json) on the kernel's namespaces and cgroup v2",
    )

    def __init__(self) -> None:
        self._n = 0

    def define(self, host: Any, spec: ContainerSpec | dict[str, Any] | None = None) -> Container:
        if not hasattr(host, "cgroups") or not hasattr(host, "spawn"):
            raise ConfigError(f"the containers backend needs a kernel as its host, not {type(host).__name__}")
        if spec is None:
            spec = ContainerSpec()
        elif isinstance(spec, dict):
            spec = ContainerSpec.from_dict(spec)
        self._n += 1
        name = spec.options.name or f"guest{self._n}"
        return Container(host, spec, name)
