"""The OCI runtime on one simulated kernel: create, start, state, kill, delete, exec, list.

:class:`Runtime` is what the ``runc`` binary is to Linux, split in two: the host-side object
keeps the containers' records and turns a bundle's config into a plan, and every change to the
simulated system is made by a scripted process on the kernel (:mod:`.init`) through system
calls. Each operation spawns its program and runs the World's clock until it is done, so the
cycles a container start costs are the cycles of real system calls.

State lives in the simulated VFS like runc's: ``/run/virtlevels-runc/<id>/`` holds
``state.json`` (the runtime-spec state document), ``exec.fifo`` while created, and ``stdout``
(the container's stdout and stderr; ``terminal`` is always false).
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from virtlevels.errors import ConfigError, LifecycleError, VirtlevelsError
from virtlevels.kernel import scripted as sys
from virtlevels.kernel.kernel import Kernel
from virtlevels_containers import init as rinit
from virtlevels_containers.busybox import register_busybox
from virtlevels_containers.image import Entry, entries_from_dir, unpack
from virtlevels_containers.oci.bundle import load_bundle
from virtlevels_containers.oci.spec import RuntimeSpec
from virtlevels_containers.oci.state import ContainerLifecycle, State, Status, check_container_id
from virtlevels_containers.oci.support import Unsupported

#: How long (simulated cycles) one runtime operation may take before it is declared hung.
OP_LIMIT = 50_000_000_000
STEP = 10_000_000

SIGNALS: dict[str, int] = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
    "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "CHLD": 17, "CONT": 18,
    "STOP": 19, "TSTP": 20, "XCPU": 24, "SYS": 31,
}  # fmt: skip

#: Filesystem types the kernel offers, and the OCI/runc names that map to them.
FS_TYPES = {"proc": "proc", "tmpfs": "tmpfs", "devtmpfs": "devtmpfs", "overlay": "overlay",
            "cgroup2": "cgroup2", "cgroup": "cgroup2", "bind": None}  # fmt: skip


class RuntimeError_(VirtlevelsError):
    """A runtime operation failed (the message names the step and errno)."""


def parse_signal(sig: str | int) -> int:
    """A signal by number, name (TERM) or SIGNAME (SIGTERM), as runc kill takes it."""
    if isinstance(sig, int):
        return sig
    s = sig.upper()
    if s.isdigit():
        return int(s)
    s = s[3:] if s.startswith("SIG") else s
    if s not in SIGNALS:
        raise ConfigError(f"unknown signal {sig!r}")
    return SIGNALS[s]


@attrs.define
class BundleSource:
    """A bundle whose files are already in the simulated VFS (images, or an imported host bundle)."""

    path: str  # the bundle directory in the VFS
    spec: RuntimeSpec
    rootfs: str  # the root filesystem in the runtime's mount namespace
    unsupported: tuple[Unsupported, ...] = ()


@attrs.define(eq=False)
class Container:
    """One container's record in the runtime (what runc keeps in its state directory)."""

    id: str
    bundle: BundleSource
    lifecycle: ContainerLifecycle
    state_dir: str
    cgroup: str
    plan: rinit.CreatePlan
    init: Any = None  # the init Process
    init_pid: int = 0
    node_id: str = ""
    execs: int = 0
    hook_log: list[tuple[str, str, str]] = attrs.field(factory=list)
    on_delete: list[Callable[[], None]] = attrs.field(factory=list)

    @property
    def status(self) -> Status:
        return self.lifecycle.status

    @property
    def cgroup_dir(self) -> str:
        return "/sys/fs/cgroup" + self.cgroup


@attrs.define
class ExecResult:
    pid: int
    exit_code: int
    signal: int
    output: str


class Runtime:
    """An OCI runtime managing containers on one kernel."""

    def __init__(
        self, kernel: Kernel, *, root: str = "/run/virtlevels-runc", cgroup_parent: str = "/virtlevels"
    ):
        self.kernel = kernel
        self.root = root
        self.cgroup_parent = cgroup_parent
        self.containers: dict[str, Container] = {}
        register_busybox(kernel)
        self._ensure_init()

    # -- running programs on the kernel ---------------------------------------------------------------
    def _ensure_init(self) -> None:
        if not self.kernel.processes:
            # pid 1 of the host: reaps orphans (container inits are reparented to it when runc exits).
            t = self.kernel.spawn(_host_init, name="init")
            self.run_until(lambda: bool(t.process.children), limit=1_000_000)

    def run_until(self, done: Callable[[], bool], limit: int = OP_LIMIT) -> bool:
        """Run the World until ``done()`` (True) or ``limit`` cycles pass or nothing is left to do."""
        world = self.kernel.world
        end = world.now + limit
        events = world.events
        while not done():
            nxt = events.peek()
            if nxt is None or nxt > end:
                return done()
            events.step()
        return True

    def _run(self, program: Any, *args: Any, what: str) -> int:
        """Spawn ``program(*args)`` as root in the host namespaces and run it to its exit status."""
        t = self.kernel.spawn(program, args, name=what[:15])
        p = t.process
        if not self.run_until(lambda: p.zombie or p.reaped):
            raise RuntimeError_(f"{what}: did not finish within {OP_LIMIT} cycles")
        return int(p.exit_code)

    # -- bundles ---------------------------------------------------------------------------------------
    def import_bundle(self, path: str | os.PathLike[str]) -> BundleSource:
        """Load a host bundle (validated) and copy its rootfs into the VFS at the same path."""
        b = load_bundle(path)
        rootfs = str(b.rootfs)
        if not self._vfs_exists(rootfs):
            self.import_tree(rootfs, list(entries_from_dir(b.rootfs)))
        return BundleSource(str(b.path), b.spec, rootfs, b.unsupported)

    def import_tree(self, dest: str, entries: list[Entry]) -> None:
        errors: list[str] = []
        if self._run(unpack, dest, entries, errors, what="unpack") != 0:
            raise RuntimeError_(f"unpacking into {dest}: {'; '.join(errors)}")

    def _vfs_exists(self, path: str) -> bool:
        try:
            # A host-side lookup (as root in the initial mount namespace), like Kernel.read_file.
            self.kernel.vfs.stat(self.kernel._boot_fs, self.kernel.init_creds, path)
            return True
        except Exception:  # noqa: BLE001 - any lookup failure means "not there"
            return False

    # -- create ----------------------------------------------------------------------------------------
    def create(self, container_id: str, bundle: str | os.PathLike[str] | BundleSource) -> Container:
        """runtime.md "create": build the container; its process waits for ``start``.

        Refuses unsupported fields (by path), a config without a process, a taken id. On failure
        nothing is left: no cgroup, namespace, mount, process or state file."""
        check_container_id(container_id)
        if container_id in self.containers:
            raise LifecycleError(f"container {container_id}: already exists")
        src = bundle if isinstance(bundle, BundleSource) else self.import_bundle(bundle)
        if src.unsupported:
            raise ConfigError("\n".join(u.format(src.path + "/config.json") for u in src.unsupported))
        spec = src.spec
        spec.check_startable()
        plan = self._plan(container_id, src)
        lc = ContainerLifecycle(container_id)
        c = Container(container_id, src, lc, plan.state_dir, plan.cgroup, plan)
        code = self._run(rinit.runc_create, plan, what="runc-create")
        c.hook_log = plan.hook_log
        if code != 0 or not plan.init_pid:
            lc.apply("abort")
            raise RuntimeError_(f"container {container_id}: create failed: {plan.error or f'status {code}'}")
        c.init_pid = plan.init_pid
        task = self.kernel.init_nsproxy.pid_for_children.find_task(plan.init_pid)
        c.init = task.process if task is not None else None
        lc.apply("created")
        self.containers[container_id] = c
        self._graph_add(c)
        self._write_state(c)
        return c

    def _plan(self, cid: str, src: BundleSource) -> rinit.CreatePlan:
        spec = src.spec
        linux = spec.linux
        new_flags = 0
        joins: list[tuple[str, str]] = []
        for ns in linux.namespaces:
            if ns.path is None:
                new_flags |= rinit.NS_FLAGS[ns.type]
            else:
                joins.append((ns.type, ns.path))
        joins.sort(key=lambda j: rinit.JOIN_ORDER.index(j[0]))
        if not new_flags & rinit.CLONE_NEWNS and not any(t == "mount" for t, _ in joins) and spec.mounts:
            raise ConfigError(f"{spec.source}: $.mounts: mounts need a mount namespace ($.linux.namespaces)")
        cg = linux.cgroups_path
        if cg is None:
            cgroup = f"{self.cgroup_parent}/{cid}"
        elif cg.startswith("/"):
            cgroup = posixpath.normpath(cg)
        else:
            cgroup = posixpath.normpath(f"{self.cgroup_parent}/{cg}")
        if ":" in cgroup:
            raise ConfigError(f"{spec.source}: $.linux.cgroupsPath: systemd slices are not supported: {cg!r}")
        mounts = []
        for i, m in enumerate(spec.mounts):
            flags, prop, data = rinit.parse_mount_options(m.options)
            mtype = m.type
            if mtype == "bind":
                flags |= rinit.MS_BIND
            if not flags & rinit.MS_BIND:
                if mtype not in FS_TYPES:
                    raise ConfigError(
                        f"{spec.source}: $.mounts[{i}].type: the kernel has no {mtype!r} filesystem "
                        f"(it has {', '.join(sorted(t for t in FS_TYPES if t not in ('bind', 'cgroup')))})"
                    )
                mtype = FS_TYPES[mtype]
            source = m.source
            if flags & rinit.MS_BIND and source is not None and not source.startswith("/"):
                source = posixpath.normpath(f"{src.path}/{source}")  # relative to the bundle (runc)
            mounts.append(rinit.MountStep(m.destination, mtype, source, flags, prop, data))
        prop = 0
        if linux.rootfs_propagation:
            prop = rinit.PROPAGATION[linux.rootfs_propagation]
        process = spec.process
        assert process is not None
        seccomp = self._seccomp(spec)
        hooks = [
            rinit.HookCall(phase, h.path, h.args, h.env) for phase, h in spec.hooks.for_operation("create")
        ]
        start_hooks = [
            rinit.HookCall(phase, h.path, h.args, h.env)
            for phase, h in spec.hooks.for_operation("start")
            if phase == "startContainer"
        ]
        state_dir = f"{self.root}/{cid}"
        holder: dict[str, rinit.CreatePlan] = {}

        def state_json(status: str) -> str:
            doc: dict[str, Any] = {"ociVersion": "1.2.0", "id": cid, "status": status, "bundle": src.path}
            pid = holder["plan"].init_pid
            if pid:
                doc["pid"] = pid
            if spec.annotations:
                doc["annotations"] = dict(spec.annotations)
            return json.dumps(doc)

        plan = rinit.CreatePlan(
            id=cid, state_dir=state_dir, rootfs=src.rootfs, rootfs_readonly=spec.root.readonly, cgroup=cgroup,
            cgroup_writes=cgroup_writes(spec), new_flags=new_flags, joins=joins,
            uid_map="".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in linux.uid_mappings),
            gid_map="".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in linux.gid_mappings),
            mounts=mounts, masked=linux.masked_paths, readonly=linux.readonly_paths, propagation=prop,
            hostname=spec.hostname, domainname=spec.domainname,
            rlimits=[(r.resource, r.soft, r.hard) for r in process.rlimits],
            process=process_plan(spec, seccomp), hooks=hooks, start_hooks=start_hooks, state_json=state_json,
        )  # fmt: skip
        holder["plan"] = plan
        return plan

    def _seccomp(self, spec: RuntimeSpec) -> tuple[Any, Any] | None:
        """linux.seccomp compiled by the sandbox plugin (found in the World's registry, not imported)."""
        linux = spec.linux
        if linux is None or linux.seccomp is None:
            return None
        sandbox = self.kernel.world.registry.backends.get("sandbox")
        if sandbox is None or not hasattr(sandbox, "compile_oci"):
            raise ConfigError(f"{spec.source}: $.linux.seccomp: needs the sandbox plugin (not loaded)")
        p = spec.process
        bounding = tuple(p.capabilities.bounding) if p is not None and p.capabilities is not None else ()
        program = sandbox.compile_oci(linux.seccomp, bounding, source=spec.source)
        return program, sandbox.set_mode_filter

    # -- the other operations ---------------------------------------------------------------------------
    def get(self, container_id: str) -> Container:
        c = self.containers.get(container_id)
        if c is None:
            raise LifecycleError(f"container {container_id}: does not exist")
        self._refresh(c)
        return c

    def _refresh(self, c: Container) -> None:
        """A container whose init has exited is stopped (runtime.md "Lifecycle" step 8)."""
        p = c.init
        if c.status in (Status.CREATED, Status.RUNNING) and (p is None or p.zombie or p.reaped):
            c.lifecycle.apply("exited")
            self._write_state(c)

    def start(self, container_id: str) -> None:
        c = self.get(container_id)
        c.lifecycle.check("start")
        out = rinit.OpResult()
        hooks = c.bundle.spec.hooks.for_operation("start")
        post = [rinit.HookCall(ph, h.path, h.args, h.env) for ph, h in hooks
                if ph == "poststart"]  # fmt: skip
        self._run(rinit.runc_start, c.state_dir, post, c.plan.state_json, out, what="runc-start")
        c.hook_log.extend(out.hook_log)
        if out.code:
            raise RuntimeError_(f"container {container_id}: start failed: {out.error}")
        c.lifecycle.apply("start")
        self._write_state(c)
        self.kernel.run(self.kernel.world.now)  # let init get going at this instant

    def state(self, container_id: str) -> State:
        c = self.get(container_id)
        pid = c.init_pid if c.status in (Status.CREATED, Status.RUNNING) else None
        return c.lifecycle.state(c.bundle.path, pid, c.bundle.spec.annotations)

    def kill(self, container_id: str, sig: str | int = "TERM") -> None:
        c = self.get(container_id)
        c.lifecycle.check("kill")
        out = rinit.OpResult()
        self._run(rinit.runc_kill, c.init_pid, parse_signal(sig), out, what="runc-kill")
        if out.code:
            raise RuntimeError_(f"container {container_id}: kill failed: {out.error}")
        self.run_until(lambda: c.init is None or c.init.zombie or c.init.reaped, limit=STEP)
        self._refresh(c)

    def delete(self, container_id: str, *, force: bool = False) -> None:
        c = self.get(container_id)
        if force and c.status in (Status.CREATED, Status.RUNNING):
            self.kill(container_id, "KILL")
        c.lifecycle.check("delete")
        out = rinit.OpResult()
        post = [
            rinit.HookCall(ph, h.path, h.args, h.env) for ph, h in c.bundle.spec.hooks.for_operation("delete")
        ]
        self._run(rinit.runc_delete, c.state_dir, c.plan.created_cgroups, post, c.plan.state_json, out,
                  what="runc-delete")  # fmt: skip
        c.hook_log.extend(out.hook_log)
        if out.code:
            raise RuntimeError_(f"container {container_id}: delete failed: {out.error}")
        c.lifecycle.apply("delete")
        for undo in reversed(c.on_delete):
            undo()
        del self.containers[container_id]
        g = self.kernel.world.graph
        if c.node_id in g:
            g.remove(c.node_id)

    def exec(self, container_id: str, args: list[str] | tuple[str, ...], *,
             env: tuple[str, ...] | None = None,
             cwd: str | None = None, user: tuple[int, int] | None = None) -> ExecResult:  # fmt: skip
        """runc exec: run ``args`` in the container's namespaces and cgroup; waits for it to exit."""
        c = self.get(container_id)
        c.lifecycle.check("exec")
        if not args:
            raise ConfigError("exec: no command given")
        base = process_plan(c.bundle.spec, self._seccomp(c.bundle.spec))
        p = attrs.evolve(
            base,
            args=tuple(args),
            env=env if env is not None else base.args and base.env,
            cwd=cwd or base.cwd,
            uid=user[0] if user else base.uid,
            gid=user[1] if user else base.gid,
        )
        c.execs += 1
        log = f"{c.state_dir}/exec-{c.execs}.out"
        spec = c.bundle.spec
        names = ["user"] if spec.linux.namespace("user") else []
        names += [rinit.NS_PROC_NAME[n.type] for n in spec.linux.namespaces if n.type != "user"]
        names = [n for n in ("user", "ipc", "uts", "net", "pid", "cgroup", "time", "mnt") if n in names]
        out = rinit.OpResult()
        self._run(
            rinit.runc_exec, c.init_pid, names, c.cgroup_dir, log, p, c.plan.warnings, out, what="runc-exec"
        )
        if out.code:
            raise RuntimeError_(f"container {container_id}: exec failed: {out.error}")
        text = self._read(log)
        self._run(_unlink, log, what="rm")
        status = out.status
        return ExecResult(out.pid, (status >> 8) & 0xFF, status & 0x7F, text)

    def list(self) -> list[State]:
        return [self.state(cid) for cid in sorted(self.containers)]

    def output(self, container_id: str) -> str:
        """What the container's process wrote to stdout and stderr so far."""
        c = self.get(container_id)
        return self._read(f"{c.state_dir}/stdout")

    def wait(self, container_id: str, limit: int = OP_LIMIT) -> int | None:
        """Run until the container's process exits; its exit code (128+N for signal N), or None."""
        c = self.get(container_id)
        self.run_until(lambda: c.init is None or c.init.zombie or c.init.reaped, limit)
        self._refresh(c)
        if c.status is not Status.STOPPED:
            return None
        return exit_code(c.init.exit_code if c.init is not None else 0)

    def _read(self, path: str) -> str:
        try:
            return self.kernel.read_file(path).decode(errors="replace")
        except Exception:  # noqa: BLE001 - a missing log is an empty one
            return ""

    # -- state files and graph --------------------------------------------------------------------------
    def _write_state(self, c: Container) -> None:
        if not c.lifecycle.exists:
            return
        pid = c.init_pid if c.status in (Status.CREATED, Status.RUNNING) else None
        text = c.lifecycle.state(c.bundle.path, pid, c.bundle.spec.annotations).to_json()
        try:
            self.kernel.write_file(f"{c.state_dir}/state.json", text, 0o600)
        except Exception:  # noqa: BLE001 - the directory is gone once deleted
            pass

    def _graph_add(self, c: Container) -> None:
        """container --runs_on--> kernel, --member_of--> each of its namespaces, --limited_by--> cgroup."""
        k = self.kernel
        g = k.world.graph
        c.node_id = f"{k.node_id}/container:{c.id}"
        g.add(c.node_id, "container", id=c.id, bundle=c.bundle.path)
        g.link(c.node_id, k.node_id, "runs_on")
        p = c.init
        if p is not None and p.leader is not None:
            t = p.leader
            seen = set()
            for ns in [*t.nsproxy.namespaces(), t.pid_ns]:
                if ns.node_id in g and ns.node_id not in seen:
                    seen.add(ns.node_id)
                    g.link(c.node_id, ns.node_id, "member_of")
            if p.graph_id in g:
                g.link(p.graph_id, c.node_id, "part_of")
        cg = k.cgroups.lookup(c.cgroup)
        if cg is not None and cg.node_id in g:
            g.link(c.node_id, cg.node_id, "limited_by")

    def namespaces_of(self, container_id: str) -> dict[str, str]:
        """The container's namespaces by /proc name, as ``type:[inode]``."""
        c = self.get(container_id)
        t = c.init.leader if c.init is not None else None
        if t is None:
            return {}
        return {name: ns.proc_link() for name, ns in t.nsproxy.proc_ns(t.pid_ns).items()}


def exit_code(status: int) -> int:
    return 128 + (status & 0x7F) if status & 0x7F else (status >> 8) & 0xFF


def cgroup_writes(spec: RuntimeSpec) -> list[tuple[str, str]]:
    """The cgroup v2 files and values for linux.resources (runc's fs2 manager's conversions)."""
    r = spec.linux.resources
    out: list[tuple[str, str]] = []
    if r is None:
        return out
    if r.memory is not None:
        m = r.memory
        if m.reservation is not None and m.reservation > 0:
            out.append(("memory.low", str(m.reservation)))  # cgroup-v2.rst: memory.low is best-effort
        if m.limit is not None:
            out.append(("memory.max", str(m.limit) if m.limit > 0 else "max"))
            if m.swap is not None and m.limit > 0 and m.swap > 0:
                # OCI swap is memory+swap; cgroup v2 memory.swap.max is swap alone (runc).
                out.append(("memory.swap.max", str(m.swap - m.limit)))
    if r.cpu is not None:
        if r.cpu.weight is not None:
            out.append(("cpu.weight", str(r.cpu.weight)))
        if r.cpu.quota is not None or r.cpu.period is not None:
            quota, period = r.cpu.max
            out.append(("cpu.max", f"{quota if quota is not None else 'max'} {period}"))
    if r.pids is not None:
        limit = r.pids.max
        out.append(("pids.max", str(limit) if limit is not None else "max"))
    if r.block_io is not None:
        b = r.block_io
        if b.io_weight is not None:
            out.append(("io.weight", f"default {b.io_weight}"))
        for key, devices in (("rbps", b.throttle_read_bps), ("wbps", b.throttle_write_bps),
                             ("riops", b.throttle_read_iops), ("wiops", b.throttle_write_iops)):  # fmt: skip
            for d in devices:
                out.append(("io.max", f"{d.major}:{d.minor} {key}={d.rate}"))
    return out


def process_plan(spec: RuntimeSpec, seccomp: tuple[Any, Any] | None = None) -> rinit.ProcessPlan:
    p = spec.process
    assert p is not None
    return rinit.ProcessPlan(
        args=p.args, env=p.env, cwd=p.cwd, uid=p.user.uid, gid=p.user.gid, umask=p.user.umask,
        caps=rinit.caps_masks(p.capabilities), no_new_privileges=p.no_new_privileges,
        additional_gids=p.user.additional_gids,
        seccomp=seccomp[0] if seccomp else None, seccomp_call=seccomp[1] if seccomp else None,
    )  # fmt: skip


def _host_init() -> Any:
    """pid 1 of a kernel the runtime boots: reap children (and orphans) as soon as they exit.

    A child that never exits keeps wait4 blocking rather than failing with ECHILD, so init sleeps
    on its wait queue instead of polling, and zombies never pile up between operations."""
    yield sys.fork(_idle)
    while True:
        yield sys.wait4(-1)


def _idle() -> Any:
    # Blocks forever on an empty pipe whose write end it holds itself: no timer, no events.
    fds = yield sys.pipe2(0)
    while True:
        yield sys.read(fds[0], 1)


def _unlink(path: str) -> Any:
    yield sys.unlinkat(-100, path)
    return 0


def load_host_bundle(path: str | Path) -> Any:
    return load_bundle(path)
