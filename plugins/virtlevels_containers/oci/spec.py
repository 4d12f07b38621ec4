"""The typed runtime spec: the parts of config.json the virtlevels runtime implements.

``load_spec`` validates against the schema, then builds frozen attrs values with plain
converters and makes the checks the schema cannot (the runtime-spec's MUSTs in config.md and
config-linux.md, and the rules runc enforces), collecting every problem with its JSON path.
Fields the runtime does not implement are not modelled here; support.py reports them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from virtlevels.kernel.caps import CAP_BY_NAME
from virtlevels_containers.oci.validate import InvalidConfig, Issue, json_path, validate_config

#: cgroup-v2.rst "cpu.max": the period defaults to 100000 us when only a quota is given.
DEFAULT_CPU_PERIOD = 100_000

#: Linux resource limit numbers (include/uapi/asm-generic/resource.h), by OCI name.
RLIMIT_BY_NAME: dict[str, int] = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}

#: user_namespaces(7) "Defining user and group ID mappings": at most 340 lines (Linux >= 4.15).
MAX_ID_MAP_LINES = 340

#: The hook phases in the order runtime.md "Lifecycle" runs them, and the operation that runs each.
HOOK_PHASES: tuple[tuple[str, str], ...] = (
    ("prestart", "create"),
    ("createRuntime", "create"),
    ("createContainer", "create"),
    ("startContainer", "start"),
    ("poststart", "start"),
    ("poststop", "delete"),
)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(value or ())


@attrs.frozen
class Root:
    path: str
    readonly: bool = False


@attrs.frozen
class Mount:
    destination: str
    type: str | None = None
    source: str | None = None
    options: tuple[str, ...] = ()


@attrs.frozen
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()


@attrs.frozen
class Capabilities:
    """The five capability sets by name (``CAP_SYS_ADMIN``); kernel/caps.py turns them into masks."""

    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()


@attrs.frozen
class Rlimit:
    type: str
    soft: int
    hard: int

    @property
    def resource(self) -> int:
        """The Linux RLIMIT_* number."""
        return RLIMIT_BY_NAME[self.type]


@attrs.frozen
class ConsoleSize:
    height: int
    width: int


@attrs.frozen
class Process:
    cwd: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    terminal: bool = False
    console_size: ConsoleSize | None = None
    user: User = User()
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False


@attrs.frozen
class Namespace:
    """A namespace to create (``path`` None) or to join (the namespace file at ``path``)."""

    type: str
    path: str | None = None


@attrs.frozen
class IdMapping:
    container_id: int
    host_id: int
    size: int


@attrs.frozen
class Memory:
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None


@attrs.frozen
class Cpu:
    shares: int | None = None
    quota: int | None = None
    period: int | None = None

    @property
    def max(self) -> tuple[int | None, int]:
        """cgroup v2 cpu.max as (quota or None for "max", period) in microseconds.

        As runc writes it: a quota of zero or below is no limit; a missing period is the default.
        """
        quota = self.quota if self.quota is not None and self.quota > 0 else None
        return quota, self.period if self.period is not None else DEFAULT_CPU_PERIOD

    @property
    def weight(self) -> int | None:
        """cgroup v2 cpu.weight for ``shares``: runc's linear map of [2, 262144] onto [1, 10000]."""
        if not self.shares:
            return None
        shares = min(max(self.shares, 2), 262_144)
        return 1 + ((shares - 2) * 9999) // 262_142


@attrs.frozen
class Pids:
    limit: int

    @property
    def max(self) -> int | None:
        """pids.max: a limit of zero or below means no limit ("max"), as runc writes it."""
        return self.limit if self.limit > 0 else None


@attrs.frozen
class ThrottleDevice:
    major: int
    minor: int
    rate: int


@attrs.frozen
class BlockIO:
    weight: int | None = None
    throttle_read_bps: tuple[ThrottleDevice, ...] = ()
    throttle_write_bps: tuple[ThrottleDevice, ...] = ()
    throttle_read_iops: tuple[ThrottleDevice, ...] = ()
    throttle_write_iops: tuple[ThrottleDevice, ...] = ()

    @property
    def io_weight(self) -> int | None:
        """cgroup v2 io.weight for the v1 blkio weight: runc's map of [10, 1000] onto [1, 10000]."""
        if not self.weight:
            return None
        return 1 + ((min(max(self.weight, 10), 1000) - 10) * 9999) // 990


@attrs.frozen
class DeviceRule:
    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"


@attrs.frozen
class Resources:
    memory: Memory | None = None
    cpu: Cpu | None = None
    pids: Pids | None = None
    block_io: BlockIO | None = None
    devices: tuple[DeviceRule, ...] = ()


@attrs.frozen
class Hook:
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


@attrs.frozen
class Hooks:
    prestart: tuple[Hook, ...] = ()
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()

    def for_operation(self, operation: str) -> list[tuple[str, Hook]]:
        """The hooks ``operation`` (create, start, delete) runs, as (phase, hook) in run order."""
        return [
            (phase, hook)
            for phase, op in HOOK_PHASES
            if op == operation
            for hook in getattr(self, _snake(phase))
        ]


@attrs.frozen
class SeccompArg:
    index: int
    value: int
    op: str
    value_two: int = 0


@attrs.frozen
class SeccompSyscall:
    names: tuple[str, ...]
    action: str
    errno_ret: int | None = None
    args: tuple[SeccompArg, ...] = ()


@attrs.frozen
class Seccomp:
    """The OCI ``linux.seccomp`` object; the sandbox plugin compiles it to BPF."""

    default_action: str
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    syscalls: tuple[SeccompSyscall, ...] = ()


@attrs.frozen
class Linux:
    namespaces: tuple[Namespace, ...] = ()
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()
    resources: Resources | None = None
    cgroups_path: str | None = None
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    seccomp: Seccomp | None = None
    rootfs_propagation: str | None = None

    def namespace(self, type: str) -> Namespace | None:
        """The entry for namespace ``type`` (``pid``, ``user``...), or None: share the runtime's."""
        for ns in self.namespaces:
            if ns.type == type:
                return ns
        return None


@attrs.frozen
class RuntimeSpec:
    oci_version: str
    root: Root
    source: str = "config.json"
    mounts: tuple[Mount, ...] = ()
    process: Process | None = None
    hostname: str | None = None
    domainname: str | None = None
    hooks: Hooks = Hooks()
    annotations: Mapping[str, str] = attrs.field(factory=dict)
    linux: Linux = Linux()

    def check_startable(self) -> None:
        """runtime.md "start" needs a process to run; config.md: ``args`` needs one entry or more."""
        issues = list(_start_issues(self.process))
        if issues:
            raise InvalidConfig(self.source, issues)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _start_issues(process: Process | None) -> Iterator[Issue]:
    if process is None:
        yield Issue("$.process", 'required when the container is started (config.md "process")')
    elif not process.args:
        # config.md "process.args": at least one entry is REQUIRED (non-Windows).
        yield Issue("$.process.args", "needs at least one entry (the program) to start the container")


# ---- building the model from a schema-valid dict -------------------------------------------


def _user(d: Mapping[str, Any]) -> User:
    return User(
        uid=d.get("uid", 0),
        gid=d.get("gid", 0),
        umask=d.get("umask"),
        additional_gids=tuple(d.get("additionalGids") or ()),
    )


def _capabilities(d: Mapping[str, Any]) -> Capabilities:
    return Capabilities(**{name: _strings(d.get(name)) for name in attrs.fields_dict(Capabilities)})


def _process(d: Mapping[str, Any]) -> Process:
    console = d.get("consoleSize")
    caps = d.get("capabilities")
    return Process(
        cwd=d["cwd"],
        args=_strings(d.get("args")),
        env=_strings(d.get("env")),
        terminal=d.get("terminal", False),
        console_size=ConsoleSize(console["height"], console["width"]) if console else None,
        user=_user(d.get("user") or {}),
        capabilities=_capabilities(caps) if caps is not None else None,
        rlimits=tuple(Rlimit(r["type"], r["soft"], r["hard"]) for r in d.get("rlimits") or ()),
        no_new_privileges=d.get("noNewPrivileges", False),
    )


def _id_mappings(items: Any) -> tuple[IdMapping, ...]:
    return tuple(IdMapping(m["containerID"], m["hostID"], m["size"]) for m in items or ())


def _throttles(items: Any) -> tuple[ThrottleDevice, ...]:
    return tuple(ThrottleDevice(t["major"], t["minor"], t["rate"]) for t in items or ())


def _resources(d: Mapping[str, Any]) -> Resources:
    memory = d.get("memory")
    cpu = d.get("cpu")
    pids = d.get("pids")
    blkio = d.get("blockIO")
    return Resources(
        memory=Memory(memory.get("limit"), memory.get("reservation"), memory.get("swap"))
        if memory is not None
        else None,
        cpu=_cpu(cpu) if cpu is not None else None,
        pids=Pids(pids["limit"]) if pids is not None else None,
        block_io=BlockIO(
            weight=blkio.get("weight"),
            throttle_read_bps=_throttles(blkio.get("throttleReadBpsDevice")),
            throttle_write_bps=_throttles(blkio.get("throttleWriteBpsDevice")),
            throttle_read_iops=_throttles(blkio.get("throttleReadIOPSDevice")),
            throttle_write_iops=_throttles(blkio.get("throttleWriteIOPSDevice")),
        )
        if blkio is not None
        else None,
        devices=tuple(
            DeviceRule(r["allow"], r.get("type", "a"), r.get("major"), r.get("minor"), r.get("access", "rwm"))
            for r in d.get("devices") or ()
        ),
    )


def _cpu(d: Mapping[str, Any]) -> Cpu:
    quota, period = d.get("quota"), d.get("period")
    if quota is not None and quota > 0 and period is None:
        period = DEFAULT_CPU_PERIOD
    return Cpu(shares=d.get("shares"), quota=quota, period=period)


def _hooks(d: Mapping[str, Any]) -> Hooks:
    def phase(name: str) -> tuple[Hook, ...]:
        return tuple(
            Hook(h["path"], _strings(h.get("args")), _strings(h.get("env")), h.get("timeout"))
            for h in d.get(name) or ()
        )

    return Hooks(**{_snake(name): phase(name) for name, _op in HOOK_PHASES})


def _seccomp(d: Mapping[str, Any]) -> Seccomp:
    return Seccomp(
        default_action=d["defaultAction"],
        default_errno_ret=d.get("defaultErrnoRet"),
        architectures=_strings(d.get("architectures")),
        flags=_strings(d.get("flags")),
        syscalls=tuple(
            SeccompSyscall(
                names=_strings(s["names"]),
                action=s["action"],
                errno_ret=s.get("errnoRet"),
                args=tuple(
                    SeccompArg(a["index"], a["value"], a["op"], a.get("valueTwo", 0))
                    for a in s.get("args") or ()
                ),
            )
            for s in d.get("syscalls") or ()
        ),
    )


def _linux(d: Mapping[str, Any]) -> Linux:
    resources = d.get("resources")
    seccomp = d.get("seccomp")
    return Linux(
        namespaces=tuple(Namespace(n["type"], n.get("path")) for n in d.get("namespaces") or ()),
        uid_mappings=_id_mappings(d.get("uidMappings")),
        gid_mappings=_id_mappings(d.get("gidMappings")),
        resources=_resources(resources) if resources is not None else None,
        cgroups_path=d.get("cgroupsPath"),
        masked_paths=_strings(d.get("maskedPaths")),
        readonly_paths=_strings(d.get("readonlyPaths")),
        seccomp=_seccomp(seccomp) if seccomp is not None else None,
        rootfs_propagation=d.get("rootfsPropagation"),
    )


# ---- semantic checks the schema does not make ----------------------------------------------


def _semantic_issues(config: Mapping[str, Any]) -> Iterator[Issue]:
    if "root" not in config:
        # config.md "root": optional only on Windows; this runtime is Linux-like.
        yield Issue("$.root", 'required on Linux (config.md "Root")')
    for i, mount in enumerate(config.get("mounts") or ()):
        # config.md "Mounts": destination MUST be an absolute path (Linux).
        if not posixpath.isabs(mount["destination"]):
            yield Issue(json_path(["mounts", i, "destination"]), f"{mount['destination']!r} is not absolute")
    if "process" in config:
        yield from _process_issues(config["process"])
    for phase, _op in HOOK_PHASES:
        for i, hook in enumerate((config.get("hooks") or {}).get(phase) or ()):
            # config.md "POSIX-platform Hooks": path MUST be absolute.
            if not posixpath.isabs(hook["path"]):
                yield Issue(json_path(["hooks", phase, i, "path"]), f"{hook['path']!r} is not absolute")
    linux = config.get("linux") or {}
    yield from _namespace_issues(config, linux)
    for key in ("uidMappings", "gidMappings"):
        yield from _id_mapping_issues(key, linux.get(key) or ())
    yield from _resource_issues(linux.get("resources") or {})
    for key in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(linux.get(key) or ()):
            # config-linux.md: masked and read-only paths MUST be absolute in the container.
            if not posixpath.isabs(path):
                yield Issue(json_path(["linux", key, i]), f"{path!r} is not absolute")
    for i, syscall in enumerate((linux.get("seccomp") or {}).get("syscalls") or ()):
        for j, arg in enumerate(syscall.get("args") or ()):
            # seccomp(2): struct seccomp_data has args[6].
            if arg["index"] > 5:
                where = json_path(["linux", "seccomp", "syscalls", i, "args", j, "index"])
                yield Issue(where, f"{arg['index']} is out of range: system calls have 6 arguments (0-5)")


def _process_issues(process: Mapping[str, Any]) -> Iterator[Issue]:
    # config.md "process.cwd": MUST be an absolute path.
    if not posixpath.isabs(process["cwd"]):
        yield Issue("$.process.cwd", f"{process['cwd']!r} is not absolute")
    for i, entry in enumerate(process.get("env") or ()):
        # environ(7) entries are name=value; runc refuses an entry without a name.
        if "=" not in entry or entry.startswith("="):
            yield Issue(json_path(["process", "env", i]), f"{entry!r} is not of the form NAME=value")
    for set_name, names in (process.get("capabilities") or {}).items():
        for i, name in enumerate(names or ()):
            # config.md "capabilities": a value that cannot be mapped to the kernel MUST fail.
            if name not in CAP_BY_NAME:
                yield Issue(
                    json_path(["process", "capabilities", set_name, i]), f"unknown capability {name!r}"
                )
    seen: dict[str, int] = {}
    for i, rlimit in enumerate(process.get("rlimits") or ()):
        where: list[str | int] = ["process", "rlimits", i]
        kind = rlimit["type"]
        if kind not in RLIMIT_BY_NAME:
            # config.md "rlimits": getrlimit(3) on type MUST succeed.
            yield Issue(json_path([*where, "type"]), f"unknown resource limit {kind!r}")
        elif kind in seen:
            # config.md "rlimits": duplicated entries MUST generate an error.
            yield Issue(
                json_path([*where, "type"]),
                f"{kind} listed twice (first at {json_path(['process', 'rlimits', seen[kind]])})",
            )
        else:
            seen[kind] = i
        if rlimit["soft"] > rlimit["hard"]:
            # setrlimit(2): EINVAL when rlim_cur exceeds rlim_max.
            yield Issue(
                json_path([*where, "soft"]),
                f"soft limit {rlimit['soft']} exceeds hard limit {rlimit['hard']}",
            )


def _namespace_issues(config: Mapping[str, Any], linux: Mapping[str, Any]) -> Iterator[Issue]:
    seen: dict[str, int] = {}
    for i, ns in enumerate(linux.get("namespaces") or ()):
        kind = ns["type"]
        if kind in seen:
            # config-linux.md "Namespaces": a duplicated type MUST generate an error.
            first = json_path(["linux", "namespaces", seen[kind], "type"])
            yield Issue(
                json_path(["linux", "namespaces", i, "type"]),
                f"namespace {kind!r} listed twice (first at {first})",
            )
        else:
            seen[kind] = i
        path = ns.get("path")
        if path is not None and not posixpath.isabs(path):
            # config-linux.md "Namespaces": path MUST be absolute in the runtime mount namespace.
            yield Issue(json_path(["linux", "namespaces", i, "path"]), f"{path!r} is not absolute")
    mapped = bool(linux.get("uidMappings") or linux.get("gidMappings"))
    if mapped and "user" not in seen:
        # As runc: mappings are written to a new user namespace's uid_map/gid_map, so none, no maps.
        where = "$.linux.uidMappings" if linux.get("uidMappings") else "$.linux.gidMappings"
        yield Issue(where, "id mappings given but no user namespace in $.linux.namespaces")
    if "user" in seen and "path" not in linux["namespaces"][seen["user"]]:
        for key in ("uidMappings", "gidMappings"):
            if not linux.get(key):
                # As runc: a new user namespace without a map leaves every id unmapped.
                yield Issue(f"$.linux.{key}", "a new user namespace needs uid and gid mappings")
    for key in ("hostname", "domainname"):
        if config.get(key) and "uts" not in seen:
            # As runc: setting the hostname without a private UTS namespace would change the host's.
            yield Issue(f"$.{key}", f"setting {key} needs a new uts namespace in $.linux.namespaces")


def _id_mapping_issues(key: str, mappings: Any) -> Iterator[Issue]:
    if len(mappings) > MAX_ID_MAP_LINES:
        yield Issue(
            f"$.linux.{key}", f"{len(mappings)} mappings; the kernel takes at most {MAX_ID_MAP_LINES}"
        )
    for i, m in enumerate(mappings):
        if m["size"] == 0:
            # user_namespaces(7): a map line's length must be greater than 0.
            yield Issue(json_path(["linux", key, i, "size"]), "must be greater than 0")
            continue
        for j in range(i):
            other = mappings[j]
            for field in ("containerID", "hostID"):
                # user_namespaces(7): the ranges of two lines must not overlap, inside or outside.
                if m[field] < other[field] + other["size"] and other[field] < m[field] + m["size"]:
                    yield Issue(
                        json_path(["linux", key, i, field]),
                        f"range overlaps {json_path(['linux', key, j])}",
                    )


def _resource_issues(resources: Mapping[str, Any]) -> Iterator[Issue]:
    memory = resources.get("memory") or {}
    limit, swap, reservation = memory.get("limit"), memory.get("swap"), memory.get("reservation")
    if limit is not None and limit > 0 and swap is not None and 0 < swap < limit:
        # swap is memory+swap (config-linux.md "Memory"); runc needs it >= the memory limit.
        yield Issue("$.linux.resources.memory.swap", f"memory+swap {swap} is below the memory limit {limit}")
    if limit is not None and limit > 0 and reservation is not None and reservation > limit:
        # cgroup-v2.rst: memory.low above memory.max can never be honoured.
        yield Issue(
            "$.linux.resources.memory.reservation", f"reservation {reservation} exceeds the limit {limit}"
        )
    cpu = resources.get("cpu") or {}
    if cpu.get("period") is not None and not 1000 <= cpu["period"] <= 1_000_000:
        # kernel/sched/core.c tg_set_cfs_bandwidth: the period is 1 ms to 1 s.
        yield Issue("$.linux.resources.cpu.period", f"{cpu['period']} us is outside 1000..1000000")


def load_spec(data: bytes | str | Mapping[str, Any], source: str = "config.json") -> RuntimeSpec:
    """Validate config.json against the schema and the runtime-spec's rules; build the model.

    Raises JsonParseError, or InvalidConfig listing every problem as ``source: $.path: message``.
    Unimplemented fields are not errors here: support.unsupported_fields reports them.
    """
    config = validate_config(data, source)
    issues = list(_semantic_issues(config))
    if issues:
        raise InvalidConfig(source, issues)
    root = config["root"]
    process = config.get("process")
    return RuntimeSpec(
        oci_version=config["ociVersion"],
        root=Root(root["path"], root.get("readonly", False)),
        source=source,
        mounts=tuple(
            Mount(m["destination"], m.get("type"), m.get("source"), _strings(m.get("options")))
            for m in config.get("mounts") or ()
        ),
        process=_process(process) if process is not None else None,
        hostname=config.get("hostname"),
        domainname=config.get("domainname"),
        hooks=_hooks(config.get("hooks") or {}),
        annotations=dict(config.get("annotations") or {}),
        linux=_linux(config.get("linux") or {}),
    )
