"""Run one workload at one level: build the level's stack in a fresh World, run, measure.

Every level ends in an RV32 process of the simulated Linux-like kernel (DESIGN.md "The spine"):
``native`` is :class:`~virtlevels.kernel.kernel.Kernel` on a PhysicalMachine; ``hw:<t>`` is the
same kernel booted in a VM of the ``hypervisor`` backend (``define(host, {"kernel":
"python-kernel", ...})``); a nested ``hw:a@hw:b`` puts that domain on a VM the backend's
hypervisor made on the host; ``os:container``, ``process:<profile>`` and ``library:<x>`` are the
``containers``, ``sandbox`` and ``interpose`` backends given that kernel. Backends are reached only
through ``world.registry.backends`` (the core never imports plugins).

Each run gets its own World seeded from the job, so a run's result depends only on its job:
serial, multiprocessing and Dask runs give the same numbers, bit for bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import attrs

from virtlevels.compare.levels import LevelError, LevelSpec
from virtlevels.errors import VirtlevelsError
from virtlevels.plugins import hookimpl

MIB = 1 << 20
HOST_RAM = 64 * MIB
VM_RAM = 16 * MIB
OUTER_VM_RAM = 32 * MIB
#: Simulated cycles a run may take before it is reported as "timeout" (10 s at 1 GHz).
RUN_LIMIT = 10_000_000_000
CGROUP = "compare"
U_MODE = 0


@attrs.frozen
class Job:
    """One cell of the matrix: what to run, where, with which cost profile and ISA."""

    workload: str
    level: str
    profile: str = "default"
    isa: str | None = None
    seed: int = 0
    params: tuple[tuple[str, Any], ...] = ()
    #: A Workload object not in the registry (it must be picklable for --jobs and Dask).
    source: Any = attrs.field(default=None, eq=False)


class _Observer:
    """Per-run observer hooks: exec/exit times and system calls, per kernel."""

    def __init__(self) -> None:
        self.kernels: dict[str, Any] = {}
        self.exec_at: dict[tuple[str, int], tuple[int, dict[str, int]]] = {}
        self.exit_at: dict[tuple[str, int], int] = {}
        self.syscalls: dict[str, int] = {}
        self.snapshot: Callable[[], dict[str, int]] = dict

    @hookimpl
    def virtlevels_on_process(self, kernel: Any, pid: int, event: str) -> None:
        key = (kernel.node_id, pid)
        if event == "exec":
            self.exec_at[key] = (kernel.world.now, self.snapshot())
        elif event == "exited":
            self.exit_at[key] = kernel.world.now

    @hookimpl
    def virtlevels_on_syscall(
        self, kernel: Any, pid: int, nr: int, args: tuple[int, ...], result: int
    ) -> None:
        self.syscalls[kernel.node_id] = self.syscalls.get(kernel.node_id, 0) + 1


@attrs.define
class Stack:
    """What a level's construction made: the machine at the bottom, the VMs, the kernel on top."""

    world: Any
    machine: Any
    vms: list[Any] = attrs.field(factory=list)
    kernel: Any = None
    guest: Any = None  # the top backend's guest (container, sandboxed or interposed process)


def _physical_machine(world: Any, spec: LevelSpec, profile: str, isa: tuple[str, ...]) -> Any:
    from virtlevels.machine.devices.finisher import TestFinisher
    from virtlevels.machine.devices.plic import Plic
    from virtlevels.machine.devices.uart import Uart16550
    from virtlevels.machine.machine import PhysicalMachine
    from virtlevels.machine.memmap import PLIC_BASE, TEST_FINISHER_BASE, UART_BASE

    # The H extension only when the first hypervisor layer uses hardware assistance.
    first_hw = next((layer for layer in spec.layers if layer.kind == "hw"), None)
    m = PhysicalMachine(
        ram_size=HOST_RAM, profile=profile, world=world, isa_extensions=isa,
        hypervisor=first_hw is not None and first_hw.name == "hw", name="host",
    )  # fmt: skip
    m.add_device(PLIC_BASE, Plic())
    m.add_device(UART_BASE, Uart16550())
    m.add_device(TEST_FINISHER_BASE, TestFinisher())
    return m


def _backend(world: Any, name: str, level: str) -> Any:
    backend = world.registry.backends.get(name)
    if backend is None:
        raise LevelError(f"level {level!r} needs the {name!r} backend, which is not installed")
    return backend


def build_stack(world: Any, spec: LevelSpec, profile: str = "default", isa: tuple[str, ...] = ()) -> Stack:
    """The machine, VMs and kernel of ``spec`` (the top non-kernel layer is made by :func:`start`)."""
    from virtlevels.kernel.kernel import Kernel

    machine = _physical_machine(world, spec, profile, isa)
    stack = Stack(world, machine)
    hw = [layer for layer in spec.layers if layer.kind == "hw"]
    if not hw:
        stack.kernel = Kernel(world, machine=machine, hostname="host")
        return stack
    backend = _backend(world, "hypervisor", spec.text)
    host: Any = machine
    for i, layer in enumerate(hw[:-1]):
        # An outer VM left bare (its vCPUs in reset state): the next hypervisor runs in it.
        hv = backend.hypervisor_for(host, "native")
        host = hv.create_vm(layer.name, ram_size=OUTER_VM_RAM, name=f"outer{i}", isa_extensions=isa)
        stack.vms.append(host)
    top = hw[-1]
    dom = backend.define(host, {
        "name": "guest", "technique": top.name, "mode": "hosted" if top.hosted else "native",
        "kernel": "python-kernel", "memory": f"{VM_RAM // MIB}MiB", "profile": profile,
        "isa_extensions": list(isa),
    })  # fmt: skip
    dom.start()
    stack.vms.append(dom.vm)
    stack.kernel = dom.kernel
    return stack


def _exec(argv: list[str]) -> Callable[..., Any]:
    from virtlevels.kernel import scripted as sc

    def launcher(*_args: Any) -> Any:
        r = yield sc.execve(argv[0], argv, [])
        return 127 if isinstance(r, int) and r < 0 else 0

    return launcher


def _waiter(done: dict[str, Any]) -> Callable[[], Any]:
    from virtlevels.kernel import scripted as sc

    def init() -> Any:
        # pid 1: reaps every child (orphans of forkwait too) until there are none left.
        while True:
            r = yield sc.wait4(-1)
            if not isinstance(r, tuple):
                return 0
            done.setdefault("waits", []).append(r)

    return init


def _cgroup(k: Any) -> Any:
    """A cgroup with the memory controller for the workload, so memory.peak is its footprint."""
    root = k.cgroups.root
    k.cgroups.set_subtree_control(root, {"memory"}, set())
    return k.cgroups.mkdir(root, CGROUP)


def _install(kernel: Any, image: Any, prefix: str = "") -> None:
    kernel.write_file(prefix + image.argv[0], image.elf, 0o755)
    for path, data in sorted(image.files.items()):
        kernel.write_file(prefix + path, data, 0o644)


def start(stack: Stack, spec: LevelSpec, image: Any) -> tuple[Any, Callable[[], bytes]]:
    """Start the workload at the top of the stack: (its process, a reader of its stdout)."""
    k = stack.kernel
    world = stack.world
    top = spec.layers[-1]
    argv = list(image.argv)
    done: dict[str, Any] = {}
    if top.kind != "os":
        k.spawn(_waiter(done), name="init")
    base = len(k.console)

    def console() -> bytes:
        return bytes(k.console[base:])

    if top.kind in ("native", "hw"):
        _install(k, image)
        # Started as a shell starts a program (a process that calls execve), so that every level
        # pays the same exec from the exec event on, as the sandbox, interposer and runc do.
        task = k.spawn(_exec(argv), argv, stdio=True, cgroup=_cgroup(k), name=argv[0].rsplit("/", 1)[-1])
        return task.process, console
    if top.kind == "process":
        _install(k, image)
        profile: Any = None if top.name == "unconfined" else top.name
        guest = _backend(world, "sandbox", spec.text).define(k, {"profile": profile, "command": argv})
        guest.start()
        stack.guest = guest
        k.cgroups.migrate(guest.task.process, _cgroup(k))
        return guest.task.process, console
    if top.kind == "library":
        _install(k, image)
        opts: dict[str, Any] = {"program": argv[0], "argv": argv}
        if top.name == "ltrace":
            opts["ltrace"] = True
        elif top.name == "faketime":
            opts["faketime"] = "+1d"
        else:
            opts["fakeroot"] = True
        guest = _backend(world, "interpose", spec.text).define(k, opts)
        guest.start()
        stack.guest = guest
        k.cgroups.migrate(guest.task.process, _cgroup(k))
        return guest.task.process, console
    # os:container: the image's files go into a layer of the container's image (busybox).
    containers = _backend(world, "containers", spec.text)
    guest = containers.define(k, {"image": "busybox", "command": argv, "name": "wl"})
    layers = guest.engine.pull("busybox")
    _install(k, image, prefix=layers[-1])
    guest.start()
    stack.guest = guest
    c = guest.runtime.get("wl")

    def container_out() -> bytes:
        return guest.runtime.output("wl").encode("utf-8", errors="surrogateescape")

    return c.init, container_out


def _categories(machine: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for hart in machine.harts:
        for key, value in hart.cycles_by_category().items():
            out[key] = out.get(key, 0) + int(value)
    return out


def _counters(stack: Stack) -> dict[str, int]:
    """Monotonic counters snapshotted at the workload's exec and read at its end."""
    m = stack.kernel.machine
    out = {f"cat:{k}": v for k, v in _categories(m).items()}
    out["traps"] = sum(sum(h.traps.values()) for h in m.harts)
    for i, vm in enumerate(stack.vms):
        vs = vm.vstats
        out[f"exits:{i}"] = sum(vs.exits.values())
        for reason, n in vs.exits.items():
            out[f"exit:{i}:{reason}"] = int(n)
    ks = getattr(stack.kernel, "_virtlevels_sandbox", None)  # the sandbox plugin's per-kernel stats
    out["filters"] = int(ks.stats.filter_runs) if ks is not None else 0
    return out


def _build_image(world: Any, job: Job) -> Any:
    wl = job.source
    if wl is None:
        wl = world.registry.workloads.get(job.workload)
        if wl is None:
            from virtlevels.compare.probes import PROBES

            wl = PROBES.get(job.workload)
        if wl is None:
            raise VirtlevelsError(f"unknown workload {job.workload!r}")
    return wl.build(**dict(job.params))


def run_job(job: Job) -> dict[str, Any]:
    """Run ``job`` in a fresh World; a plain, JSON-ready result (see docs/compare-schema.json)."""
    from virtlevels.world import World

    spec = LevelSpec.parse(job.level)
    world = World(job.seed)
    obs = _Observer()
    world.register_plugin(obs, "compare-observer")
    isa = (job.isa,) if job.isa else ()
    result: dict[str, Any] = {"workload": job.workload, "level": spec.text, "status": "ok", "error": None}
    try:
        image = _build_image(world, job)
        stack = build_stack(world, spec, job.profile, isa)
        boot_work = sum(_categories(stack.kernel.machine).values())
        # The VMs below the kernel's own machine were created first (nested levels): their
        # creation (the hypervisor's "vm_create" charge, on each VM's vCPU 0) is start-up too.
        below = [vm for vm in stack.vms if vm is not stack.kernel.machine]
        boot_work += sum(_categories(vm).get("vm_create", 0) for vm in below)
        t0 = world.now
        obs.snapshot = lambda: _counters(stack)
        proc, stdout = start(stack, spec, image)
        events = world.events
        end = world.now + RUN_LIMIT
        while not (proc.zombie or proc.reaped):
            nxt = events.peek()
            if nxt is None or nxt > end:
                break
            events.step()
    except VirtlevelsError as exc:
        result.update(status="error", error=str(exc))
        return result
    k = stack.kernel
    key = (k.node_id, proc.host_pid)
    exited = proc.zombie or proc.reaped
    exec_time, before = obs.exec_at.get(key, (t0, {}))
    end_time = obs.exit_at.get(key, world.now)
    after = _counters(stack)

    def delta(name: str) -> int:
        return after.get(name, 0) - before.get(name, 0)

    code = proc.exit_code
    exit_status = None if not exited else ((code >> 8) & 0xFF if not code & 0x7F else 128 + (code & 0x7F))
    if not exited:
        result["status"] = "timeout"
    elif exit_status != 0:
        result["status"] = "failed"
    out = stdout()
    cats = {n[4:]: delta(n) for n in sorted(after) if n.startswith("cat:") and delta(n)}
    exits_by = {}
    if stack.vms:
        top = len(stack.vms) - 1
        exits_by = {
            n.split(":", 2)[2]: delta(n) for n in sorted(after) if n.startswith(f"exit:{top}:") and delta(n)
        }
    result.update(
        exit_status=exit_status,
        cycles=end_time - exec_time,
        startup_cycles=boot_work + exec_time - t0,
        cycles_by_category=cats,
        exits=sum(delta(f"exits:{i}") for i in range(len(stack.vms))),
        exits_by_reason=exits_by,
        traps=delta("traps"),
        syscalls=obs.syscalls.get(k.node_id, 0),
        filter_evaluations=delta("filters"),
        memory_bytes=_memory_peak(stack, spec),
        stdout=out.decode("utf-8", errors="replace"),
        stdout_sha256=hashlib.sha256(out).hexdigest(),
        expected_stdout_ok=None if image.expected_stdout is None else out == image.expected_stdout,
        isolation=isolation(stack),
    )
    return result


def _memory_peak(stack: Stack, spec: LevelSpec) -> int:
    """Peak memory charged to the workload's cgroup (cgroup-v2.rst memory.peak), else frames in use."""
    k = stack.kernel
    guest = stack.guest
    if spec.layers[-1].kind == "os" and guest is not None:
        st = guest.stats()
        for name in ("memory.peak", "memory.current"):
            if isinstance(st.get(name), int):
                return int(st[name])
    try:
        return int(k.read_file(f"/sys/fs/cgroup/{CGROUP}/memory.peak").decode().strip())
    except (VirtlevelsError, ValueError):
        return 0


def isolation(stack: Stack) -> dict[str, Any]:
    """What the workload's kernel shares with the host's physical machine, from the resource graph."""
    g = stack.world.graph
    k = stack.kernel
    host = stack.machine.node_id
    deps = g.depends_on(k.node_id)
    shared = g.shared_kinds(k.node_id, host) if host in g else {}
    kinds = sorted({g.kind(n) for n in deps})
    top = stack.guest
    return {
        "kernel": "own" if stack.vms else "host",
        "container": bool(top is not None and hasattr(top, "runtime")),
        "rests_on": kinds,
        "shared_with_host": sorted(shared),
        "layers_below": len(stack.vms),
    }


def draw_level(level: str, path: str, *, workload: str = "startup", profile: str = "default",
               isa: str | None = None, seed: int = 0) -> str:
    """The resource graph of one level's stack with a workload started in it, as a picture
    (``.png``, needs matplotlib) or Graphviz text (``.dot``): what the level shares with its host."""
    from pathlib import Path

    from virtlevels.world import World

    spec = LevelSpec.parse(level)
    world = World(seed)
    job = Job(workload, spec.text, profile, isa, seed)
    image = _build_image(world, job)
    stack = build_stack(world, spec, profile, (isa,) if isa else ())
    start(stack, spec, image)
    out = Path(path)
    if out.suffix == ".dot":
        out.write_text(world.graph.to_dot())
    else:
        world.graph.draw(out)
    return str(out)
