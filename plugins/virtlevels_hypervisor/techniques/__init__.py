"""The five techniques of hardware-level virtualization (issue 5 item 2), by name."""

from __future__ import annotations

import importlib
from typing import Any

from virtlevels.errors import ConfigError

#: name -> "module:Class" (imported on first use so a technique's cost is paid only when used).
TECHNIQUES: dict[str, str] = {
    "emulate": "virtlevels_hypervisor.techniques.emulate:EmulateTechnique",
    "trap": "virtlevels_hypervisor.techniques.trap:TrapTechnique",
    "bt": "virtlevels_hypervisor.techniques.bt:BtTechnique",
    "pv": "virtlevels_hypervisor.techniques.pv:PvTechnique",
    "hw": "virtlevels_hypervisor.techniques.hw:HwTechnique",
}

#: Long names accepted wherever a technique is named.
ALIASES = {
    "full-emulation": "emulate", "emulation": "emulate", "trap-and-emulate": "trap",
    "binary-translation": "bt", "paravirtualization": "pv", "paravirt": "pv",
    "hardware-assisted": "hw", "hardware": "hw",
}  # fmt: skip


def canonical(name: str) -> str:
    key = ALIASES.get(name, name)
    if key not in TECHNIQUES:
        known = ", ".join([*TECHNIQUES, *ALIASES])
        raise ConfigError(f"unknown virtualization technique {name!r} (known: {known})")
    return key


def make_technique(name: str, **options: Any) -> Any:
    """A fresh technique instance for one VM."""
    module, cls = TECHNIQUES[canonical(name)].split(":")
    return getattr(importlib.import_module(module), cls)(**options)
