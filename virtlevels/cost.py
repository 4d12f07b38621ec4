"""The cost model: how many cycles each action costs, loaded from a TOML profile.

Profiles ship as package data in ``virtlevels/profiles/`` (``default.toml``, ``modern-x86.toml``);
plugins add more through ``virtlevels_register_cost_profiles``. Every number in a shipped profile
carries a comment citing where it comes from; they are approximations of published figures, not
measurements of this simulator.

The schema is strict: a key the schema does not know is a :class:`~virtlevels.errors.ConfigError`
naming the file and the key, so a typo never silently becomes a default. It is also extensible:
a later subsystem (the hypervisor's VM exits, the kernel's syscalls, seccomp filters) declares its
own section with :func:`register_cost_keys`, giving defaults, and profiles may then set those keys.
Cycles are integers so that runs are bit-for-bit reproducible.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from virtlevels.errors import ConfigError

PROFILES_DIR = Path(__file__).parent / "profiles"

#: Cost classes of instructions (the ``cls`` column of encodings.py).
INSTRUCTION_CLASSES: tuple[str, ...] = (
    "alu", "shift", "mul", "div", "load", "store", "branch", "jump", "amo", "fence", "csr", "system",
)  # fmt: skip

_REQUIRED = object()

# section -> key -> default (``_REQUIRED`` means every profile must give it).
_SCHEMA: dict[str, dict[str, Any]] = {
    "profile": {"name": _REQUIRED, "description": ""},
    "instruction": {cls: _REQUIRED for cls in INSTRUCTION_CLASSES},
    "memory": {
        "tlb_hit": _REQUIRED,
        "tlb_miss": _REQUIRED,
        "page_walk_ref": _REQUIRED,
        "tlb_entries": _REQUIRED,
        "mmio_access": _REQUIRED,
    },
    "trap": {"entry": _REQUIRED, "return": _REQUIRED},
    "device": {
        "uart_byte": 0,
        "block_sector": 0,
        "nic_frame": 0,
        "htif_command": 0,
        "timer_event": 0,
    },
    "clock": {"timebase_divisor": _REQUIRED, "quantum": _REQUIRED},
    # The simulated kernel's own work per operation; shipped profiles cite their figures.
    "kernel": {"syscall": 150, "context_switch": 2000, "page_fault": 1000, "fork": 25000, "exec": 50000},
    # seccomp-BPF (the sandbox plugin): per filter run at syscall entry, and per BPF instruction executed.
    "seccomp": {"filter": 90, "bpf_insn": 6},
    # The library level (the interpose plugin's dynamic linker); shipped profiles cite their figures.
    "interpose": {"plt": 7, "hostcall": 20, "interposer": 10, "bind": 100, "win32": 60},
    # The hypervisor plugin's VMM costs (virtlevels_hypervisor.costs registers the same keys and
    # defaults); declared here because shipped profiles set them and load without the plugin.
    "hypervisor": {
        "emulate_insn": 40, "world_switch": 300, "exit_hw": 1000, "trap_emulate": 400, "shadow_update": 800,
        "bt_translate_insn": 200, "bt_callout": 60, "hypercall": 250, "hosted_exit": 2500,
        "vm_create": 2_000_000,
    },  # fmt: skip
}


def register_cost_keys(section: str, defaults: Mapping[str, int | str]) -> None:
    """Declare (or extend) a profile section; profiles that omit a key get its default.

    Registering the same key twice with the same default is harmless; a different default is an error.
    """
    keys = _SCHEMA.setdefault(section, {})
    for key, default in defaults.items():
        if key in keys and keys[key] is not _REQUIRED and keys[key] != default:
            raise ConfigError(f"cost key [{section}] {key} is already registered with default {keys[key]!r}")
        keys[key] = default


def schema() -> dict[str, dict[str, Any]]:
    """The known sections and keys (defaults; required keys map to None)."""
    return {s: {k: (None if v is _REQUIRED else v) for k, v in keys.items()} for s, keys in _SCHEMA.items()}


def _freeze(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


@attrs.frozen
class CostModel:
    """Cycles per action. ``sections`` holds every value, including plugin-registered sections."""

    name: str
    description: str
    source: str
    instruction: Mapping[str, int] = attrs.field(converter=_freeze, hash=False)
    tlb_hit: int
    tlb_miss: int
    page_walk_ref: int
    tlb_entries: int
    mmio_access: int
    trap_entry: int
    trap_return: int
    timebase_divisor: int
    quantum: int
    sections: Mapping[str, Mapping[str, Any]] = attrs.field(converter=_freeze, repr=False, hash=False)

    def get(self, section: str, key: str) -> Any:
        """A value from any section (including those registered by plugins)."""
        try:
            return self.sections[section][key]
        except KeyError:
            raise ConfigError(
                f"cost profile {self.name!r} ({self.source}) has no key [{section}] {key}"
            ) from None

    def instruction_cost(self, cls: str) -> int:
        try:
            return self.instruction[cls]
        except KeyError:
            raise ConfigError(
                f"cost profile {self.name!r} ({self.source}) has no cost for instruction class {cls!r}; "
                f"register it with register_cost_keys('instruction', {{{cls!r}: N}})"
            ) from None

    def device_cost(self, op: str) -> int:
        return int(self.get("device", op))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {s: dict(v) for s, v in self.sections.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> CostModel:
        """Validate ``data`` (parsed TOML) against the schema; errors name ``source`` and the key."""
        sections: dict[str, dict[str, Any]] = {}
        for section, values in data.items():
            if section not in _SCHEMA:
                known_sections = ", ".join(sorted(_SCHEMA))
                raise ConfigError(f"{source}: unknown section [{section}] (known: {known_sections})")
            if not isinstance(values, Mapping):
                raise ConfigError(f"{source}: [{section}] must be a table, got {values!r}")
            known = _SCHEMA[section]
            for key, value in values.items():
                if key not in known:
                    raise ConfigError(
                        f"{source}: unknown key [{section}] {key} (known: {', '.join(sorted(known))})"
                    )
                want_str = section == "profile"
                if want_str and not isinstance(value, str):
                    raise ConfigError(f"{source}: [{section}] {key} must be a string, got {value!r}")
                if not want_str and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                    raise ConfigError(
                        f"{source}: [{section}] {key} must be a non-negative integer (cycles), got {value!r}"
                    )
        for section, known in _SCHEMA.items():
            given = dict(data.get(section, {}))
            for key, default in known.items():
                if key not in given:
                    if default is _REQUIRED:
                        raise ConfigError(f"{source}: missing key [{section}] {key}")
                    given[key] = default
            sections[section] = given
        mem, clock, trap = sections["memory"], sections["clock"], sections["trap"]
        for key in ("tlb_entries",):
            if mem[key] < 1:
                raise ConfigError(f"{source}: [memory] {key} must be at least 1")
        for key in ("timebase_divisor", "quantum"):
            if clock[key] < 1:
                raise ConfigError(f"{source}: [clock] {key} must be at least 1")
        return cls(
            name=sections["profile"]["name"],
            description=sections["profile"]["description"],
            source=source,
            instruction=sections["instruction"],
            tlb_hit=mem["tlb_hit"],
            tlb_miss=mem["tlb_miss"],
            page_walk_ref=mem["page_walk_ref"],
            tlb_entries=mem["tlb_entries"],
            mmio_access=mem["mmio_access"],
            trap_entry=trap["entry"],
            trap_return=trap["return"],
            timebase_divisor=clock["timebase_divisor"],
            quantum=clock["quantum"],
            sections={s: _freeze(v) for s, v in sections.items()},
        )

    def evolve(self, **changes: Any) -> CostModel:
        """A copy with some top-level values changed (keeps ``sections`` in step)."""
        data = self.to_dict()
        where = {
            "tlb_hit": ("memory", "tlb_hit"), "tlb_miss": ("memory", "tlb_miss"),
            "page_walk_ref": ("memory", "page_walk_ref"), "tlb_entries": ("memory", "tlb_entries"),
            "mmio_access": ("memory", "mmio_access"), "trap_entry": ("trap", "entry"),
            "trap_return": ("trap", "return"), "timebase_divisor": ("clock", "timebase_divisor"),
            "quantum": ("clock", "quantum"), "name": ("profile", "name"),
        }  # fmt: skip
        for key, value in changes.items():
            if key == "instruction":
                data["instruction"].update(value)
            elif key in where:
                s, k = where[key]
                data[s][k] = value
            else:
                raise ConfigError(f"CostModel.evolve: unknown field {key!r}")
        return CostModel.from_dict(data, source=f"{self.source} (evolved)")


def list_profiles(extra: Mapping[str, Path] | None = None) -> dict[str, Path]:
    """Shipped profiles by name, plus ``extra`` (e.g. ``world.registry.cost_profiles``)."""
    found = {p.stem: p for p in sorted(PROFILES_DIR.glob("*.toml"))}
    if extra:
        found.update({name: Path(path) for name, path in extra.items()})
    return found


def load_profile(name_or_path: str | Path = "default", extra: Mapping[str, Path] | None = None) -> CostModel:
    """Load a profile by name (shipped or in ``extra``) or from a path to a TOML file."""
    profiles = list_profiles(extra)
    path: Path
    if isinstance(name_or_path, str) and name_or_path in profiles:
        path = profiles[name_or_path]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(
                f"unknown cost profile {str(name_or_path)!r} "
                f"(known: {', '.join(sorted(profiles))}; or give a path to a TOML file)"
            )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return CostModel.from_dict(data, source=str(path))
