"""Snapshot and restore of a whole machine, as plain data.

A snapshot is a dict of ints, strings, lists, dicts and bytes: the clock, every hart (registers,
pc, privilege, CSRs, counters, reservation, WFI state), every touched RAM page, and each
device's own ``snapshot()``. TLBs and the harts' fast-path caches are not architectural state:
restore invalidates them (as a real machine that loses its TLB contents behaves the same).
:func:`encode` turns a snapshot into bytes deterministically (canonical JSON, bytes as base64,
compressed), so ``encode(take(m))`` compared before and after a round trip is a byte-exact check;
later issues build VM snapshots and live migration on it.

Restoring into a standalone machine resets its clock to the snapshot's; a machine in a World
shares the World's clock, which never runs backwards, so there the clock stays where it is (time
moved on while the machine was saved, as for a VM restored later). Pending events are not
saved: devices re-arm theirs in ``restore`` (the CLINT re-schedules its timers).
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import TYPE_CHECKING, Any

from virtlevels.errors import ConfigError
from virtlevels.events import EventQueue

if TYPE_CHECKING:
    from virtlevels.machine.machine import PhysicalMachine

FORMAT = "virtlevels-machine-snapshot"
VERSION = 1


def take(machine: PhysicalMachine) -> dict[str, Any]:
    """The machine's whole state as plain data."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "now": machine.events.now,
        "harts": [h.snapshot() for h in machine.harts],
        "memory": machine.bus.memory.snapshot(),
        "devices": {name: dev.snapshot() for name, (_base, dev) in sorted(machine.devices.items())},
        "machine": {
            "exit_requested": machine.exit_requested,
            "exit_code": machine.exit_code,
            "idle_cycles": machine.idle_cycles,
            "charges": dict(sorted(machine.machine_charges.items())),
            "watched_pages": {str(k): v for k, v in sorted(machine.watched_pages.items())},
            "profile": machine.cost.name,
            "num_harts": machine.num_harts,
        },
    }


def restore(machine: PhysicalMachine, state: dict[str, Any]) -> None:
    """Put ``machine`` in the state ``state`` describes (same hart count and devices)."""
    if state.get("format") != FORMAT or state.get("version") != VERSION:
        raise ConfigError(f"not a version-{VERSION} machine snapshot (format={state.get('format')!r})")
    if len(state["harts"]) != len(machine.harts):
        raise ConfigError(f"snapshot has {len(state['harts'])} harts, the machine has {len(machine.harts)}")
    missing = set(state["devices"]) ^ set(machine.devices)
    if missing:
        raise ConfigError(f"snapshot and machine differ in devices: {', '.join(sorted(missing))}")
    now = int(state["now"])
    if machine.world is None:
        machine.events = EventQueue(now=now)  # pending events belong to the old timeline
    else:
        machine.events.advance(now)
    meta = state["machine"]
    machine.exit_requested = bool(meta["exit_requested"])
    machine.exit_code = None if meta["exit_code"] is None else int(meta["exit_code"])
    machine.idle_cycles = int(meta["idle_cycles"])
    machine.machine_charges = {str(k): int(v) for k, v in meta["charges"].items()}
    machine.watched_pages = {int(k): int(v) for k, v in meta["watched_pages"].items()}
    machine.bus.memory.restore({int(k): bytes(v) for k, v in state["memory"].items()})
    for hart, hs in zip(machine.harts, state["harts"], strict=True):
        hart.restore(hs)
    for name, dev_state in state["devices"].items():
        machine.devices[name][1].restore(dev_state)


def _plain(obj: Any) -> Any:
    if isinstance(obj, bytes | bytearray):
        return {"__bytes__": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _unplain(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__bytes__"}:
            return base64.b64decode(obj["__bytes__"])
        return {k: _unplain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unplain(v) for v in obj]
    return obj


def encode(state: dict[str, Any]) -> bytes:
    """Deterministic bytes for a snapshot (canonical JSON, zlib level 6)."""
    text = json.dumps(_plain(state), sort_keys=True, separators=(",", ":"))
    return zlib.compress(text.encode("utf-8"), 6)


def decode(data: bytes) -> dict[str, Any]:
    try:
        state: dict[str, Any] = _unplain(json.loads(zlib.decompress(data)))
    except (zlib.error, ValueError) as exc:
        raise ConfigError(f"not a machine snapshot: {exc}") from None
    # JSON turns int keys into strings; memory pages are keyed by page number.
    state["memory"] = {int(k): v for k, v in state["memory"].items()}
    return state
