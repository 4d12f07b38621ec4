"""Which config.json fields the virtlevels runtime implements, as data, and the report of the rest.

Issue 4 asks that every field the runtime does not implement be reported by its path, never
silently ignored. ``SUPPORTED`` is a tree that mirrors config.json: an object node lists the
members the runtime implements, an array node gives the shape of its items, a map node the
shape of its values, and a leaf accepts the value (optionally only some values). Anything present
in a config and absent from the tree is reported. The runtime grows by adding entries here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from virtlevels_containers.oci.validate import json_path

NOT_IMPLEMENTED = "not implemented by the virtlevels runtime"


@attrs.frozen
class Leaf:
    """An implemented field. ``accepts`` limits it to some values; others are reported."""

    accepts: Callable[[Any], bool] | None = None
    reason: str = ""


@attrs.frozen
class Obj:
    """An object whose listed members are implemented; unlisted members are reported."""

    fields: Mapping[str, Node]


@attrs.frozen
class Items:
    """An array whose items have the shape ``item``."""

    item: Node


@attrs.frozen
class MapOf:
    """An object with arbitrary keys whose values have the shape ``value``."""

    value: Node


Node = Leaf | Obj | Items | MapOf

LEAF = Leaf()


@attrs.frozen
class Unsupported:
    """A field present in a config that the runtime does not implement, and why."""

    path: str
    reason: str = NOT_IMPLEMENTED

    def format(self, source: str = "config.json") -> str:
        return f"{source}: {self.path}: unsupported: {self.reason}"


def obj(**fields: Node) -> Obj:
    return Obj(fields)


_HOOKS = Items(obj(path=LEAF, args=LEAF, env=LEAF, timeout=LEAF))
_THROTTLE = Items(obj(major=LEAF, minor=LEAF, rate=LEAF))
_ID_MAPPINGS = Items(obj(containerID=LEAF, hostID=LEAF, size=LEAF))

#: What the runtime implements (issue 4 item 7, issue 6 item 11). Keys are config.json names.
SUPPORTED: Obj = obj(
    ociVersion=LEAF,
    root=obj(path=LEAF, readonly=LEAF),
    mounts=Items(obj(destination=LEAF, type=LEAF, source=LEAF, options=LEAF)),
    process=obj(
        # No pty in the simulated kernel: the container's stdio is the runtime's.
        terminal=Leaf(accepts=lambda v: v is False, reason="only terminal=false is supported (no pty)"),
        consoleSize=obj(height=LEAF, width=LEAF),
        user=obj(uid=LEAF, gid=LEAF, umask=LEAF, additionalGids=LEAF),
        args=LEAF,
        env=LEAF,
        cwd=LEAF,
        capabilities=obj(bounding=LEAF, effective=LEAF, inheritable=LEAF, permitted=LEAF, ambient=LEAF),
        rlimits=Items(obj(type=LEAF, soft=LEAF, hard=LEAF)),
        noNewPrivileges=LEAF,
    ),
    hostname=LEAF,
    domainname=LEAF,
    hooks=obj(
        prestart=_HOOKS,
        createRuntime=_HOOKS,
        createContainer=_HOOKS,
        startContainer=_HOOKS,
        poststart=_HOOKS,
        poststop=_HOOKS,
    ),
    annotations=LEAF,
    linux=obj(
        namespaces=Items(obj(type=LEAF, path=LEAF)),
        uidMappings=_ID_MAPPINGS,
        gidMappings=_ID_MAPPINGS,
        resources=obj(
            # memory.swap is accepted: the simulated kernel has no swap, so it never limits.
            memory=obj(limit=LEAF, reservation=LEAF, swap=LEAF),
            cpu=obj(shares=LEAF, quota=LEAF, period=LEAF),
            pids=obj(limit=LEAF),
            blockIO=obj(
                weight=LEAF,
                throttleReadBpsDevice=_THROTTLE,
                throttleWriteBpsDevice=_THROTTLE,
                throttleReadIOPSDevice=_THROTTLE,
                throttleWriteIOPSDevice=_THROTTLE,
            ),
            # The device cgroup list is accepted: /dev in the simulated kernel holds only null,
            # zero and console, which every allow-list runc writes permits.
            devices=Items(obj(allow=LEAF, type=LEAF, major=LEAF, minor=LEAF, access=LEAF)),
        ),
        cgroupsPath=LEAF,
        maskedPaths=LEAF,
        readonlyPaths=LEAF,
        seccomp=obj(
            defaultAction=LEAF,
            defaultErrnoRet=LEAF,
            architectures=LEAF,
            flags=LEAF,
            syscalls=Items(obj(names=LEAF, action=LEAF, errnoRet=LEAF, args=LEAF)),
        ),
        rootfsPropagation=LEAF,
    ),
)

#: Why some unimplemented fields are missing, keyed by path pattern (``[*]`` for any index,
#: ``.*`` for any map key). Fields not listed get NOT_IMPLEMENTED.
REASONS: dict[str, str] = {
    "$.linux.resources.cpu.cpus": "the cpuset controller is not implemented",
    "$.linux.resources.cpu.mems": "the cpuset controller is not implemented",
    "$.linux.resources.hugepageLimits": "the simulated machine has no huge pages",
    "$.linux.resources.rdma": "the simulated machine has no RDMA devices",
    "$.linux.resources.network": "the net_cls/net_prio controllers do not exist in cgroup v2",
    "$.linux.resources.unified": "raw cgroup v2 files are not written; use the typed fields",
    "$.linux.sysctl": "the simulated kernel has no sysctl tree",
    "$.linux.netDevices": "moving host network devices into a container is not implemented",
    "$.linux.devices": "device node creation is not implemented (/dev has null, zero and console)",
    "$.linux.mountLabel": "no SELinux in the simulated kernel",
    "$.linux.intelRdt": "the simulated machine has no Intel RDT",
    "$.linux.personality": "personality(2) is not implemented",
    "$.linux.timeOffsets": "time namespace offsets are not set from config.json",
    "$.linux.memoryPolicy": "the simulated machine has one NUMA node",
    "$.linux.seccomp.listenerPath": "seccomp user notification is not implemented",
    "$.linux.seccomp.listenerMetadata": "seccomp user notification is not implemented",
    "$.mounts[*].uidMappings": "id-mapped mounts are not implemented",
    "$.mounts[*].gidMappings": "id-mapped mounts are not implemented",
    "$.process.apparmorProfile": "no AppArmor in the simulated kernel",
    "$.process.selinuxLabel": "no SELinux in the simulated kernel",
    "$.process.ioPriority": "I/O priorities are not implemented",
    "$.process.scheduler": "scheduling policies other than the fair class are not implemented",
    "$.process.oomScoreAdj": "the OOM killer does not weigh oom_score_adj",
    "$.process.execCPUAffinity": "CPU affinity is not implemented",
    "$.process.user.username": "username is for Windows containers",
    "$.process.commandLine": "commandLine is for Windows containers",
    "$.vm": "virtual-machine-based containers are the hypervisor backend's job",
    "$.windows": "Windows containers are not implemented",
    "$.solaris": "Solaris containers are not implemented",
    "$.zos": "z/OS containers are not implemented",
    "$.freebsd": "FreeBSD containers are not implemented",
}


def _requests_nothing(value: Any) -> bool:
    # An empty object or array, or null, asks for nothing, so there is nothing to ignore.
    return value is None or value == {} or value == []


def _reason(pattern: str) -> str:
    return REASONS.get(pattern, NOT_IMPLEMENTED)


def _walk(value: Any, node: Node, path: list[str | int], pattern: str, out: list[Unsupported]) -> None:
    if isinstance(node, Leaf):
        if node.accepts is not None and not node.accepts(value):
            out.append(Unsupported(json_path(path), node.reason or _reason(pattern)))
    elif isinstance(node, Obj):
        if not isinstance(value, dict):
            return  # the schema rejects it; nothing more to say here
        for key, member in value.items():
            sub_pattern = f"{pattern}{json_path([key])[1:]}"
            child = node.fields.get(key)
            if child is None:
                if not _requests_nothing(member):
                    out.append(Unsupported(json_path([*path, key]), _reason(sub_pattern)))
            else:
                _walk(member, child, [*path, key], sub_pattern, out)
    elif isinstance(node, Items):
        if isinstance(value, list):
            for index, item in enumerate(value):
                _walk(item, node.item, [*path, index], f"{pattern}[*]", out)
    elif isinstance(node, MapOf) and isinstance(value, dict):
        for key, member in value.items():
            _walk(member, node.value, [*path, key], f"{pattern}.*", out)


def unsupported_report(config: Mapping[str, Any], table: Obj = SUPPORTED) -> list[Unsupported]:
    """Every field present in ``config`` that ``table`` does not implement, in document order."""
    out: list[Unsupported] = []
    _walk(dict(config), table, [], "$", out)
    return out


def unsupported_fields(config: Mapping[str, Any], table: Obj = SUPPORTED) -> list[str]:
    """The JSON paths (``$.linux.netDevices``) of every unimplemented field present in ``config``."""
    return [item.path for item in unsupported_report(config, table)]
