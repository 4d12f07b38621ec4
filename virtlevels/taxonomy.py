"""The taxonomy of virtualization as data.

Levels, the objects that get virtualized, techniques, hypervisor types and Popek & Goldberg's
properties are values; a backend declares its place with a :class:`BackendInfo`, and every view
(``virtlevels levels``, the comparison's isolation column) is generated from those declarations.

Sources: G. J. Popek and R. P. Goldberg, "Formal Requirements for Virtualizable Third Generation
Architectures", CACM 17(7), 1974 (the three properties, Theorems 1-3); R. P. Goldberg,
"Architectural Principles for Virtual Computer Systems", 1973 (Type 1 and Type 2 monitors).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import attrs


class Level(enum.Enum):
    """An abstraction level at which an interface is virtualized, from the bottom up."""

    HARDWARE = "hardware"
    OS = "os"
    LIBRARY = "library"
    PROCESS = "process"
    SERVICE = "service"

    @property
    def title(self) -> str:
        return _LEVEL_TEXT[self][0]

    @property
    def virtualizes(self) -> str:
        return _LEVEL_TEXT[self][1]

    @property
    def interface(self) -> str:
        """The interface this level takes from below and offers again above."""
        return _LEVEL_TEXT[self][2]


_LEVEL_TEXT = {
    Level.HARDWARE: ("hardware", "a machine: harts, memory, devices", "the ISA and privileged instructions"),
    Level.OS: ("OS", "a kernel: pids, mounts, hostname, net, users, resources", "system calls"),
    Level.LIBRARY: ("library", "an API: the symbols a program links against", "library calls"),
    Level.PROCESS: ("process", "one process's view of the system", "system calls, filtered"),
    Level.SERVICE: ("service", "a network", "frames and packets"),
}


class VirtualObject(enum.Enum):
    """What is virtualized (the seed's list of objects)."""

    PLATFORM_VM = "platform virtual machine"
    APPLICATION_VM = "application virtual machine"
    DESKTOP_VM = "desktop virtual machine"
    NETWORK = "network"
    STORAGE = "storage"
    MEMORY = "memory"
    SERVICE = "service"


class Technique(enum.Enum):
    """How a level is virtualized. The first five are the hardware-level techniques."""

    FULL_EMULATION = "full emulation"
    TRAP_AND_EMULATE = "trap-and-emulate"
    BINARY_TRANSLATION = "binary translation"
    PARAVIRTUALIZATION = "paravirtualization"
    HARDWARE_ASSISTED = "hardware-assisted"
    NAMESPACES = "namespaces"
    CGROUPS = "control groups"
    PRELOAD_INTERPOSITION = "preload interposition"
    CALL_HOOKS = "call hooks"
    API_TRANSLATION = "API translation"
    SYSCALL_FILTERING = "system-call filtering"
    CAPABILITIES = "capabilities"
    RESOURCE_LIMITS = "resource limits"
    BRIDGING = "bridging and VLANs"
    ROUTING = "routing and NAT"
    OVERLAY = "overlay tunnels"

    @property
    def level(self) -> Level:
        return _TECHNIQUE_LEVEL[self]


_TECHNIQUE_LEVEL = {
    Technique.FULL_EMULATION: Level.HARDWARE,
    Technique.TRAP_AND_EMULATE: Level.HARDWARE,
    Technique.BINARY_TRANSLATION: Level.HARDWARE,
    Technique.PARAVIRTUALIZATION: Level.HARDWARE,
    Technique.HARDWARE_ASSISTED: Level.HARDWARE,
    Technique.NAMESPACES: Level.OS,
    Technique.CGROUPS: Level.OS,
    Technique.PRELOAD_INTERPOSITION: Level.LIBRARY,
    Technique.CALL_HOOKS: Level.LIBRARY,
    Technique.API_TRANSLATION: Level.LIBRARY,
    Technique.SYSCALL_FILTERING: Level.PROCESS,
    Technique.CAPABILITIES: Level.PROCESS,
    Technique.RESOURCE_LIMITS: Level.PROCESS,
    Technique.BRIDGING: Level.SERVICE,
    Technique.ROUTING: Level.SERVICE,
    Technique.OVERLAY: Level.SERVICE,
}

HARDWARE_TECHNIQUES: tuple[Technique, ...] = tuple(t for t in Technique if t.level is Level.HARDWARE)


class HypervisorType(enum.Enum):
    """Goldberg's two kinds of virtual machine monitor."""

    NATIVE = "native (Type 1)"
    HOSTED = "hosted (Type 2)"


class Property(enum.Enum):
    """Popek & Goldberg's three properties of a virtual machine monitor."""

    EQUIVALENCE = "equivalence"
    EFFICIENCY = "efficiency"
    RESOURCE_CONTROL = "resource control"


class Shared(enum.Enum):
    """What a guest shares with its host (the isolation a level gives up)."""

    HARDWARE = "hardware"
    HYPERVISOR = "hypervisor"
    KERNEL = "kernel"
    LIBRARIES = "libraries"
    FILESYSTEM = "filesystem"
    NETWORK = "network"
    ADDRESS_SPACE = "address space"


def _techniques(values: Iterable[Technique | str]) -> tuple[Technique, ...]:
    return tuple(Technique(v) for v in values)


def _objects(values: Iterable[VirtualObject | str]) -> tuple[VirtualObject, ...]:
    return tuple(VirtualObject(v) for v in values)


def _types(values: Iterable[HypervisorType | str]) -> tuple[HypervisorType, ...]:
    return tuple(HypervisorType(v) for v in values)


def _shares(values: Iterable[Shared | str]) -> frozenset[Shared]:
    return frozenset(Shared(v) for v in values)


def _keeps(values: Iterable[Property | str]) -> frozenset[Property]:
    return frozenset(Property(v) for v in values)


def _technique_keeps(
    values: Mapping[Technique | str, Iterable[Property | str]],
) -> Mapping[Technique, frozenset[Property]]:
    return {Technique(k): _keeps(v) for k, v in values.items()}


def _level(value: Level | str) -> Level:
    return Level(value)


@attrs.frozen
class BackendInfo:
    """Where a backend sits in the taxonomy, declared by the plugin that registers it.

    ``needs`` and ``offers`` name the interface a backend takes from its host and the one its
    guests offer (``machine``, ``kernel``, ``process``, ``network``), which is what lets
    backends stack: a backend that needs a kernel runs on any guest that offers one.
    """

    name: str
    level: Level = attrs.field(converter=_level)
    techniques: tuple[Technique, ...] = attrs.field(converter=_techniques, default=())
    objects: tuple[VirtualObject, ...] = attrs.field(converter=_objects, default=())
    hypervisor_types: tuple[HypervisorType, ...] = attrs.field(converter=_types, default=())
    shares: frozenset[Shared] = attrs.field(converter=_shares, default=frozenset())
    keeps: frozenset[Property] = attrs.field(converter=_keeps, default=frozenset())
    #: Where a technique keeps less (or more) than the backend as a whole: full emulation keeps
    #: equivalence and resource control but not efficiency.
    technique_keeps: Mapping[Technique, frozenset[Property]] = attrs.field(
        converter=_technique_keeps, factory=dict, hash=False
    )
    needs: str = "machine"
    offers: str = "machine"
    description: str = ""

    @techniques.validator
    def _check_techniques(self, _attribute: attrs.Attribute, value: tuple[Technique, ...]) -> None:  # type: ignore[type-arg]
        for technique in value:
            if technique.level is not self.level:
                raise ValueError(
                    f"backend {self.name!r}: technique {technique.value!r} belongs to the "
                    f"{technique.level.value} level, not {self.level.value}"
                )


@attrs.frozen
class TreeNode:
    """One node of a generated taxonomy view."""

    label: str
    backends: tuple[BackendInfo, ...] = ()
    children: tuple[TreeNode, ...] = ()
    technique: Technique | None = None  # a technique node: backends show what they keep with it

    def keeps(self, backend: BackendInfo) -> frozenset[Property]:
        if self.technique is not None and self.technique in backend.technique_keeps:
            return backend.technique_keeps[self.technique]
        return backend.keeps


def taxonomy_tree(backends: Iterable[BackendInfo]) -> TreeNode:
    """The taxonomy with each installed backend placed at the nodes it declares."""
    backends = sorted(backends, key=lambda b: b.name)
    levels = []
    for level in Level:
        at_level = tuple(b for b in backends if b.level is level)
        children: list[TreeNode] = []
        technique_nodes = tuple(
            TreeNode(t.value, tuple(b for b in at_level if t in b.techniques), technique=t)
            for t in Technique
            if t.level is level
        )
        children.append(TreeNode("techniques", children=technique_nodes))
        if level is Level.HARDWARE:
            children.append(
                TreeNode(
                    "hypervisor types",
                    children=tuple(
                        TreeNode(h.value, tuple(b for b in at_level if h in b.hypervisor_types))
                        for h in HypervisorType
                    ),
                )
            )
        objects = sorted({o for b in at_level for o in b.objects}, key=lambda o: o.value)
        if objects:
            children.append(
                TreeNode(
                    "objects",
                    children=tuple(
                        TreeNode(o.value, tuple(b for b in at_level if o in b.objects)) for o in objects
                    ),
                )
            )
        levels.append(TreeNode(f"{level.title} level: {level.virtualizes}", at_level, tuple(children)))
    return TreeNode("virtualization", children=tuple(levels))


def render_tree(root: TreeNode) -> str:
    """Plain-text drawing of a taxonomy tree, with each backend's Popek-Goldberg properties."""
    lines = [root.label]

    def describe(node: TreeNode) -> str:
        if not node.backends:
            return node.label
        names = ", ".join(
            f"{b.name} [{', '.join(p.value for p in Property if p in node.keeps(b)) or 'none'}]"
            for b in node.backends
        )
        return f"{node.label}: {names}"

    def walk(node: TreeNode, prefix: str) -> None:
        for i, child in enumerate(node.children):
            last = i == len(node.children) - 1
            lines.append(prefix + ("└── " if last else "├── ") + describe(child))
            walk(child, prefix + ("    " if last else "│   "))

    walk(root, "")
    return "\n".join(lines)


def tree_to_dict(node: TreeNode) -> dict[str, object]:
    """JSON-ready form of a taxonomy tree."""
    return {
        "label": node.label,
        "backends": [
            {"name": b.name, "keeps": sorted(p.value for p in node.keeps(b))} for b in node.backends
        ],
        "children": [tree_to_dict(c) for c in node.children],
    }
