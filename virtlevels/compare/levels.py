"""Level specs: short strings naming where a workload runs, and the rules for stacking them.

Grammar (issue 8 item 2)::

    level  := layer ("@" layer)*          the left layer runs on the one to its right
    layer  := "native"
            | "hw:" technique [":hosted" | ":native"]
            | "os:container"
            | "process:" profile          docker-default, unconfined, or a JSON profile file
            | "library:" interposer       ltrace, faketime, fakeroot

``os:container@hw:hw`` is a container inside a VM; ``hw:trap@hw:trap`` a VM in a VM (Popek &
Goldberg 1974, Theorem 2). Each layer needs an interface from below and offers one above, as the
backends declare (:class:`virtlevels.taxonomy.BackendInfo` ``needs``/``offers``): a hypervisor
needs a machine and offers a machine (on which the runner boots the simulated kernel, so it also
offers a kernel); containers, sandboxes and interposers need a kernel and offer a process. A stack
whose layer needs what the layer below does not offer is refused with the reason.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from virtlevels.errors import ConfigError

#: Canonical hardware techniques and the names users may also write for them.
TECHNIQUES: dict[str, tuple[str, ...]] = {
    "emulate": ("emulation", "full-emulation", "full emulation"),
    "trap": ("trap-and-emulate",),
    "bt": ("binary-translation", "binary translation"),
    "pv": ("paravirt", "paravirtualization"),
    "hw": ("hardware-assisted", "hardware"),
}
INTERPOSERS = ("ltrace", "faketime", "fakeroot")
PROFILES = ("docker-default", "unconfined")
#: Backend each layer kind is realised by (``world.registry.backends[name]``).
BACKEND_OF = {"hw": "hypervisor", "os": "containers", "process": "sandbox", "library": "interpose"}
#: Inner techniques a hypervisor inside a VM can use: its VMM must be guest software of the outer
#: VM, and the VM's vCPUs do not offer the H extension (no nested hardware assistance is modelled).
NESTED_INNER = ("emulate", "trap", "bt", "pv")


class LevelError(ConfigError):
    """A level spec that cannot be read or cannot be built (the message says why)."""


def canonical_technique(name: str, where: str) -> str:
    key = name.strip().lower()
    for canon, aliases in TECHNIQUES.items():
        if key == canon or key in aliases:
            return canon
    raise LevelError(f"level {where!r}: unknown technique {name!r} (known: {', '.join(TECHNIQUES)})")


@attrs.frozen
class Layer:
    """One layer of a level: ``kind`` (native, hw, os, process, library) and its ``name``."""

    kind: str
    name: str = ""
    hosted: bool = False

    @property
    def needs(self) -> str | None:
        return {"native": None, "hw": "machine"}.get(self.kind, "kernel")

    @property
    def offers(self) -> frozenset[str]:
        if self.kind in ("native", "hw"):
            return frozenset({"machine", "kernel"})
        return frozenset({"process"})

    @property
    def backend(self) -> str | None:
        return BACKEND_OF.get(self.kind)

    def __str__(self) -> str:
        if self.kind == "native":
            return "native"
        return f"{self.kind}:{self.name}" + (":hosted" if self.hosted else "")


def _parse_layer(text: str, where: str) -> Layer:
    t = text.strip()
    if t == "native":
        return Layer("native")
    kind, sep, rest = t.partition(":")
    if not sep or not rest:
        raise LevelError(
            f"level {where!r}: cannot read layer {text!r} (expected native, hw:TECHNIQUE[:hosted], "
            "os:container, process:PROFILE or library:INTERPOSER)"
        )
    if kind == "hw":
        tech, _, mode = rest.partition(":")
        if mode not in ("", "native", "hosted"):
            raise LevelError(f"level {where!r}: hypervisor mode must be native or hosted, not {mode!r}")
        return Layer("hw", canonical_technique(tech, where), hosted=mode == "hosted")
    if kind == "os":
        if rest != "container":
            raise LevelError(f"level {where!r}: the OS level offers os:container, not os:{rest}")
        return Layer("os", "container")
    if kind == "process":
        if rest not in PROFILES and not Path(rest).is_file():
            raise LevelError(
                f"level {where!r}: seccomp profile {rest!r} is neither {' nor '.join(PROFILES)} "
                "nor an existing JSON file"
            )
        return Layer("process", rest)
    if kind == "library":
        if rest not in INTERPOSERS:
            known = ", ".join(INTERPOSERS)
            raise LevelError(f"level {where!r}: unknown interposer {rest!r} (known: {known})")
        return Layer("library", rest)
    raise LevelError(
        f"level {where!r}: unknown level kind {kind!r} (known: native, hw, os, process, library)"
    )


@attrs.frozen
class LevelSpec:
    """A parsed level: ``layers`` from the bottom (on the physical machine) to the top."""

    text: str
    layers: tuple[Layer, ...]

    @classmethod
    def parse(cls, text: str) -> LevelSpec:
        if not isinstance(text, str) or not text.strip():
            raise LevelError(f"empty level spec {text!r}")
        parts = text.split("@")
        if any(not p.strip() for p in parts):
            raise LevelError(f"level {text!r}: empty layer around '@'")
        layers = tuple(_parse_layer(p, text) for p in reversed(parts))
        if len(layers) > 1 and any(layer.kind == "native" for layer in layers):
            raise LevelError(f"level {text!r}: 'native' is the bare machine; it cannot be part of a stack")
        _check_stack(text, layers)
        return cls("@".join(str(x) for x in reversed(layers)), layers)

    @property
    def is_native(self) -> bool:
        return self.layers == (Layer("native"),)

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(sorted({b for layer in self.layers if (b := layer.backend) is not None}))

    def __str__(self) -> str:
        return self.text


def _check_stack(text: str, layers: tuple[Layer, ...]) -> None:
    """Each layer must get what it needs from the one below (the bottom gets a physical machine)."""
    below: frozenset[str] = frozenset({"machine", "kernel"})
    below_name = "the native host"
    hw_seen = 0
    for layer in layers:
        need = layer.needs
        if need is not None and need not in below:
            why = (
                " (its guest is a process environment: nothing that needs a kernel or a machine runs on it)"
                if "process" in below
                else ""
            )
            raise LevelError(
                f"level {text!r}: {layer} needs a {need}, but {below_name} offers only a "
                f"{' and a '.join(sorted(below))}{why}"
            )
        if layer.kind == "hw":
            if hw_seen and layer.name not in NESTED_INNER:
                raise LevelError(
                    f"level {text!r}: {layer} cannot run inside a VM: the VM's vCPUs do not offer the "
                    f"H extension (nested inner techniques: {', '.join(NESTED_INNER)})"
                )
            if hw_seen and layer.hosted:
                raise LevelError(
                    f"level {text!r}: {layer}: a hosted hypervisor is modelled only on the physical host"
                )
            hw_seen += 1
        below, below_name = layer.offers, str(layer)


def parse_level(text: str | LevelSpec) -> LevelSpec:
    return text if isinstance(text, LevelSpec) else LevelSpec.parse(text)


#: The levels ``virtlevels compare`` runs by default, when their backends are installed.
DEFAULT_LEVELS: tuple[str, ...] = (
    "native",
    "library:ltrace",
    "process:docker-default",
    "os:container",
    "hw:emulate",
    "hw:trap",
    "hw:bt",
    "hw:pv",
    "hw:hw",
    "hw:trap:hosted",
    "os:container@hw:hw",
    "hw:trap@hw:trap",
)


def installed_levels(backends: dict[str, object] | set[str]) -> list[str]:
    """:data:`DEFAULT_LEVELS` whose backends are all installed."""
    have = set(backends)
    return [t for t in DEFAULT_LEVELS if set(LevelSpec.parse(t).backends) <= have]
