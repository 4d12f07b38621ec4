"""Interposition API in the style of Qiling's ``ql.os.set_api(name, fn, QL_INTERCEPT.ENTER|EXIT|CALL)``.

A hook is attached to a symbol name (or a glob such as ``"str*"``, or ``"*"``) and runs on every
call of that symbol through the PLT, in a process (``pid=``) or in all of them:

* ``ENTER``: ``fn(h, args) -> None | new_args`` sees the arguments (a list) and may change them;
* ``EXIT``: ``fn(h, args, result) -> None | new_result`` sees the result and may change it;
* ``REPLACE``: ``fn(h, *args) -> result`` runs instead of the definition; ``h.next(*args)``
  (a generator: ``yield from``) calls the definition it replaces.

``fn`` may be a generator function (it may then ``yield`` system calls, or ``yield from
h.call(...)``). Each hook run is charged ``[interpose] interposer`` cycles. From a plugin or a
script::

    from virtlevels_interpose.hooks import hook, When
    hook(kernel, "getuid", lambda h, *a: 0, When.REPLACE, pid=p.host_pid)

Per-process hooks live in the process's link map: a fork child inherits them, execve drops them.
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Callable, Generator
from typing import Any

import attrs

from virtlevels_interpose.linker import CallCtx, Linker, LinkError


class When(enum.Enum):
    ENTER = "enter"
    EXIT = "exit"
    REPLACE = "replace"


@attrs.frozen(eq=False)
class Hook:
    symbol: str
    fn: Callable[..., Any]
    when: When
    pid: int | None = None
    label: str = ""

    def matches(self, name: str) -> bool:
        if self.symbol == name:
            return True
        return any(ch in self.symbol for ch in "*?[") and fnmatch.fnmatchcase(name, self.symbol)


@attrs.define(eq=False)
class HookCtx:
    """What a hook function gets: the call being made and ways to continue it."""

    c: CallCtx
    symbol: str
    pid: int

    @property
    def kernel(self) -> Any:
        return self.c.kernel

    @property
    def task(self) -> Any:
        return self.c.task

    @property
    def isa(self) -> bool:
        return self.c.isa

    @property
    def env(self) -> dict[str, str]:
        return self.c.lm.env

    def next(self, *args: Any) -> Generator[Any, Any, Any]:
        """Run the definition this REPLACE hook stands in for."""
        d = self.c.defn
        if d is None:
            raise LinkError(f"{self.symbol}: no definition to continue to")
        return self.c.linker._run_definition(self.c, d, list(args))

    def call(self, name: str, *args: Any) -> Generator[Any, Any, Any]:
        return self.c.call(name, *args)

    def set_errno(self, errno: int) -> None:
        self.c.errno = errno

    def text(self, x: Any) -> str:
        return self.c.text(x)


def hook(
    kernel: Any,
    symbol: str,
    fn: Callable[..., Any],
    when: When | str = When.ENTER,
    *,
    pid: int | None = None,
    label: str = "",
) -> Hook:
    """Install a hook on ``kernel``'s linker; returns it (pass it to :func:`unhook`)."""
    if not symbol:
        raise LinkError("hook: empty symbol name")
    try:
        w = When(when) if isinstance(when, str) else when
    except ValueError:
        raise LinkError(f"hook {symbol!r}: when must be enter, exit or replace, not {when!r}") from None
    return Linker.of(kernel).add_hook(Hook(symbol, fn, w, pid, label))


def unhook(kernel: Any, h: Hook) -> None:
    Linker.of(kernel).remove_hook(h)
