"""A docker-like engine over the runtime: images stacked with overlayfs, options turned into config.json.

``Engine.run("busybox", ["echo", "hi"], memory="64m", cpus=0.5)`` does what ``docker run`` does
with containerd and runc: unpack the image's layers (once per image), mount an overlay
(``lowerdir=<layers>,upperdir=...,workdir=...``) as the container's rootfs, write a runtime spec
from the options (namespaces, mounts, masked and read-only paths like Docker's defaults), then
create and start the container through :class:`~virtlevels_containers.runtime.Runtime`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Generator
from pathlib import Path
from typing import Any

import attrs

from virtlevels.errors import ConfigError
from virtlevels.kernel import scripted as sys
from virtlevels.kernel.vfs.constants import AT_FDCWD, AT_REMOVEDIR, MNT_DETACH
from virtlevels_containers.image import busybox_entries, entries_from
from virtlevels_containers.init import mkdir_p
from virtlevels_containers.oci.spec import load_spec
from virtlevels_containers.oci.state import Status
from virtlevels_containers.runtime import OP_LIMIT, BundleSource, Runtime, RuntimeError_, exit_code

Gen = Generator[Any, Any, Any]
IMAGES = "/var/lib/virtlevels/images"
CONTAINERS = "/var/lib/virtlevels/containers"
DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
_SIZE = re.compile(r"(\d+)([bkmg]?)b?\Z", re.I)


def parse_size(text: str) -> int:
    """docker's memory sizes: 64m, 1g, 512k, 1048576."""
    m = _SIZE.match(text.strip())
    if not m:
        raise ConfigError(f"invalid size {text!r} (use e.g. 64m, 1g, 512k)")
    return int(m.group(1)) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]


@attrs.define
class RunOptions:
    memory: str | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    hostname: str | None = None
    read_only: bool = False
    env: tuple[str, ...] = ()
    user: str | None = None
    name: str | None = None
    #: docker run --security-opt: ``seccomp=unconfined`` or ``seccomp=FILE.json`` (default: Docker's profile).
    security_opt: tuple[str, ...] = ()


@attrs.define
class RunResult:
    name: str
    status: str
    exit_code: int | None
    output: str


def build_config(cmd: list[str], o: RunOptions, cid: str) -> dict[str, Any]:
    """The runtime spec `docker run` would hand runc for these options (Docker's defaults, cut down)."""
    uid, gid = 0, 0
    if o.user:
        u, _, g = o.user.partition(":")
        if not u.isdigit() or (g and not g.isdigit()):
            raise ConfigError(f"--user {o.user!r}: use UID[:GID] (numbers)")
        uid, gid = int(u), int(g or 0)
    for e in o.env:
        if "=" not in e:
            raise ConfigError(f"--env {e!r}: use KEY=VALUE")
    resources: dict[str, Any] = {}
    if o.memory is not None:
        resources["memory"] = {"limit": parse_size(o.memory)}
    if o.cpus is not None:
        if o.cpus <= 0:
            raise ConfigError(f"--cpus {o.cpus}: must be positive")
        resources["cpu"] = {"quota": int(o.cpus * 100_000), "period": 100_000}
    if o.pids_limit is not None:
        resources["pids"] = {"limit": o.pids_limit}
    return {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs", "readonly": o.read_only},
        "process": {
            "terminal": False, "user": {"uid": uid, "gid": gid}, "args": cmd, "cwd": "/",
            "env": list(DEFAULT_ENV) + [f"HOSTNAME={o.hostname or cid}"] + list(o.env),
            "noNewPrivileges": True,
            "capabilities": {k: list(DOCKER_CAPS) for k in ("bounding", "effective", "permitted")},
        },
        "hostname": o.hostname or cid[:12],
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "devtmpfs", "source": "devtmpfs", "options": ["nosuid"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network", "cgroup")],
            "resources": resources,
            "cgroupsPath": f"/virtlevels/{cid}",
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }  # fmt: skip


#: Docker's default capability set.
DOCKER_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)  # fmt: skip


class Engine:
    """Images and docker-like verbs on one Runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.images: dict[str, list[str]] = {}  # image name -> layer dirs in the VFS, bottom first
        self._n = 0

    def pull(self, image: str) -> list[str]:
        """Unpack an image's layers into the VFS (once): 'busybox', a layer (dir or tar), or a
        directory whose entries (sorted) are the layers, bottom first."""
        if image in self.images:
            return self.images[image]
        if image == "busybox":
            layers = [(f"{IMAGES}/busybox/0", busybox_entries())]
        else:
            p = Path(image)
            digest = hashlib.sha256(str(p.absolute()).encode()).hexdigest()[:12]
            if p.is_dir() and (p / "layers").is_dir():
                sources = sorted((p / "layers").iterdir())
            else:
                sources = [p]
            layers = [(f"{IMAGES}/{digest}/{i}", entries_from(s)) for i, s in enumerate(sources)]
        for dest, entries in layers:
            self.runtime.import_tree(dest, entries)
        self.images[image] = [d for d, _e in layers]
        return self.images[image]

    def run(self, image: str, cmd: list[str], options: RunOptions | None = None, *, detach: bool = False,
            rm: bool = False, limit: int = OP_LIMIT) -> RunResult:  # fmt: skip
        o = options or RunOptions()
        if not cmd:
            raise ConfigError("container run: no command given")
        self._n += 1
        cid = o.name or f"c{self._n:04d}"
        if cid in self.runtime.containers:
            raise ConfigError(f"container name {cid!r} is already in use")
        layers = self.pull(image)
        base = f"{CONTAINERS}/{cid}"
        rootfs = f"{base}/rootfs"
        errors: list[str] = []
        lower = ":".join(reversed(layers))  # overlayfs.rst: the leftmost lowerdir is the top layer
        data = f"lowerdir={lower},upperdir={base}/upper,workdir={base}/work"
        if self.runtime._run(_snapshot, base, data, errors, what="snapshotter") != 0:
            raise RuntimeError_(f"container {cid}: preparing the rootfs: {'; '.join(errors)}")
        config = build_config(cmd, o, cid)
        seccomp = self._seccomp_profile(o)
        if seccomp is not None:
            config["linux"]["seccomp"] = seccomp
        try:
            spec = load_spec(config, f"{cid}/config.json")
            src = BundleSource(base, spec, rootfs)
            c = self.runtime.create(cid, src)
        except Exception:
            self.runtime._run(_remove_snapshot, base, what="snapshotter")
            raise

        def remove_rootfs() -> None:
            self.runtime._run(_remove_snapshot, base, what="snapshotter")

        c.on_delete.append(remove_rootfs)
        self.runtime.start(cid)
        code = None
        if not detach:
            code = self.runtime.wait(cid, limit)
        out = self.runtime.output(cid)
        status = self.runtime.state(cid).status.value
        if rm and code is not None:
            self.rm(cid)
        return RunResult(cid, status, code, out)

    def _seccomp_profile(self, o: RunOptions) -> dict[str, Any] | None:
        """linux.seccomp as dockerd writes it: Docker's default profile for the default capabilities,
        unless ``--security-opt seccomp=unconfined`` or ``seccomp=FILE``. Without the sandbox plugin
        the default is unconfined (as dockerd on a kernel without seccomp); a file is then an error."""
        choice = "default"
        for opt in o.security_opt:
            key, sep, value = opt.partition("=")
            if key != "seccomp" or not sep or not value:
                raise ConfigError(f"--security-opt {opt!r}: supported: seccomp=unconfined, seccomp=FILE.json")
            choice = value
        if choice == "unconfined":
            return None
        sandbox = self.runtime.kernel.world.registry.backends.get("sandbox")
        if sandbox is None or not hasattr(sandbox, "oci_profile"):
            if choice == "default":
                return None
            raise ConfigError(f"--security-opt seccomp={choice}: needs the sandbox plugin (not loaded)")
        return sandbox.oci_profile("docker-default" if choice == "default" else choice, DOCKER_CAPS)  # type: ignore[no-any-return]

    def ps(self) -> list[dict[str, Any]]:
        rows = []
        for cid, c in sorted(self.runtime.containers.items()):
            self.runtime.get(cid)
            code = exit_code(c.init.exit_code) if c.status is Status.STOPPED and c.init is not None else None
            rows.append({"name": cid, "status": c.status.value, "pid": c.init_pid,
                         "command": " ".join(c.bundle.spec.process.args if c.bundle.spec.process else ()),
                         "exit_code": code})  # fmt: skip
        return rows

    def stats(self, cid: str) -> dict[str, Any]:
        return container_stats(self.runtime, cid)

    def rm(self, cid: str, force: bool = False) -> None:
        self.runtime.delete(cid, force=force)


def container_stats(runtime: Runtime, cid: str) -> dict[str, Any]:
    """The cgroup counters of a container (cgroup-v2.rst interface files), parsed."""
    c = runtime.get(cid)
    k = runtime.kernel
    out: dict[str, Any] = {"name": cid, "status": c.status.value}

    def read(name: str) -> str:
        try:
            return k.read_file(f"{c.cgroup_dir}/{name}").decode()
        except Exception:  # noqa: BLE001 - a controller that is not enabled has no file
            return ""

    def keyed(text: str) -> dict[str, int]:
        return {a: int(b) for a, b in (line.split()[:2] for line in text.splitlines() if line.strip())}

    for name in (
        "memory.current",
        "memory.peak",
        "pids.current",
        "memory.max",
        "pids.max",
        "cpu.max",
        "cpu.weight",
    ):
        text = read(name).strip()
        if text:
            out[name] = int(text) if text.isdigit() else text
    for name in ("memory.events", "pids.events", "cpu.stat"):
        text = read(name)
        if text:
            out[name] = keyed(text)
    return out


def _snapshot(base: str, data: str, errors: list[str]) -> Gen:
    """The snapshotter: upper and work directories, and the overlay mount that is the rootfs."""
    try:
        for d in ("upper", "work", "rootfs"):
            yield from mkdir_p(f"{base}/{d}")
    except Exception as exc:  # noqa: BLE001 - Failure from mkdir_p
        errors.append(str(exc))
        return 1
    r = yield sys.mount("overlay", f"{base}/rootfs", "overlay", 0, data)
    if r < 0:
        errors.append(f"mount overlay: errno {-r}")
        yield from _rm_rf(base)
        return 1
    return 0


def _remove_snapshot(base: str) -> Gen:
    yield sys.umount2(f"{base}/rootfs", MNT_DETACH)
    yield from _rm_rf(base)
    return 0


def _rm_rf(path: str) -> Gen:
    from virtlevels_containers.busybox import list_dir

    names = yield from list_dir(path)
    if isinstance(names, int):
        yield sys.unlinkat(AT_FDCWD, path)
        return
    for name in names:
        yield from _rm_rf(f"{path}/{name}")
    yield sys.unlinkat(AT_FDCWD, path, AT_REMOVEDIR)
