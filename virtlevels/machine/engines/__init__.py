"""Execution engines: objects that run a hart for a budget of steps.

An engine has a ``name`` and ``run(hart, budget) -> int``: execute at most ``budget`` steps
(a step is a retired instruction or an exception taken) and return how many were done. It
stops early when the hart waits for an interrupt (``hart.wfi``) or the machine asked to stop
(``hart.machine.exit_requested``). Interrupts are taken at the start of ``run`` and after any
instruction of a sync class (see :data:`virtlevels.machine.isa.table.SYNC_CLASSES`).

``interp`` is the plain interpreter; ``fast`` (a block translator) is loaded lazily if present.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from virtlevels.machine.hart import Hart


class Engine(Protocol):
    name: str

    def run(self, hart: Hart, budget: int) -> int: ...


# name -> "module:attribute" of a zero-argument factory
ENGINES: dict[str, str] = {
    "interp": "virtlevels.machine.engines.interp:Interpreter",
    "fast": "virtlevels.machine.engines.fast:FastEngine",
}


def get_engine(name: str) -> Engine:
    from virtlevels.errors import ConfigError

    target = ENGINES.get(name)
    if target is None:
        raise ConfigError(f"unknown engine {name!r} (known: {', '.join(sorted(ENGINES))})")
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"engine {name!r} is not available: {exc}") from None
    engine: Engine = getattr(module, attr)()
    return engine
