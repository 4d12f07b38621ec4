"""The one system call table (number -> handler, name, argument count) and the entry filter seam.

Both kinds of process enter here: an ISA process's ECALL gives the number in a7 and arguments
in a0..a5 (the RISC-V Linux convention), a scripted process's :class:`~virtlevels.kernel.scripted.Syscall`
carries them after its Python values were copied into its user-memory shim. Handlers have the
signature ``handler(kernel, task, *args) -> int`` and raise ``KernelError`` for failures
(turned into ``-errno`` at exit) or ``WouldBlock`` to sleep and be restarted.

Filters (the sandbox plugin's seccomp) run before the handler, in order; each is
``filter(task, nr, args, ip) -> None | FilterVerdict``; the first verdict that is not "allow"
decides. An empty chain costs one truth test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from virtlevels.kernel.syscalls.numbers import NAMES

Handler = Callable[..., int]

#: Verdict actions (seccomp(2) SECCOMP_RET_*): allow, errno (fail with ``errno``), kill_thread,
#: kill_process, trap (SIGSYS), log (allow and record), trace (treated as errno ENOSYS, no tracer).
ACTIONS = ("allow", "errno", "kill_thread", "kill_process", "trap", "log", "trace")


@attrs.frozen
class FilterVerdict:
    action: str
    errno: int = 0
    data: int = 0

    def __attrs_post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown filter action {self.action!r} (known: {', '.join(ACTIONS)})")


SyscallFilter = Callable[[Any, int, tuple[int, ...], int], "FilterVerdict | None"]


@attrs.frozen
class SyscallEntry:
    nr: int
    name: str
    nargs: int
    handler: Handler


@attrs.define
class SyscallTable:
    entries: dict[int, SyscallEntry] = attrs.field(factory=dict)

    def register(self, nr: int, handler: Handler, nargs: int, name: str | None = None) -> None:
        self.entries[nr] = SyscallEntry(nr, name or NAMES.get(nr, f"syscall_{nr}"), nargs, handler)

    def get(self, nr: int) -> SyscallEntry | None:
        return self.entries.get(nr)

    def copy(self) -> SyscallTable:
        return SyscallTable(dict(self.entries))

    def names(self) -> list[str]:
        return [e.name for _n, e in sorted(self.entries.items())]


_DEFAULT = SyscallTable()


def syscall(nr: int, nargs: int) -> Callable[[Handler], Handler]:
    """Decorator: register a handler in the default table."""

    def deco(fn: Handler) -> Handler:
        _DEFAULT.register(nr, fn, nargs)
        return fn

    return deco


def default_table() -> SyscallTable:
    """A fresh copy of the table with every built-in handler (importing the handler modules)."""
    import importlib

    for mod in ("fs", "mem", "misc", "proc", "net"):  # they register their handlers on import
        importlib.import_module(f"virtlevels.kernel.syscalls.{mod}")

    return _DEFAULT.copy()
