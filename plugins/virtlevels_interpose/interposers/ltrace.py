"""A call tracer with ltrace(1)'s output: ``[pid N] name(args) = result``.

ENTER and EXIT hooks on every symbol (or the ``-e`` list), globally or for one process. String
arguments are shown quoted for the functions whose prototypes say so (ltrace reads them from
ltrace.conf; here a small table of the C library's), other arguments as integers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from virtlevels_interpose.hooks import Hook, HookCtx, When, hook, unhook

#: Which arguments are C strings (by position), as ltrace.conf's ``string`` types.
STRING_ARGS: dict[str, tuple[int, ...]] = {
    "open": (0,), "printf": (0,), "dprintf": (1,), "puts": (0,), "strlen": (0,), "strcmp": (0, 1),
    "strncmp": (0, 1), "strcpy": (1,), "strncpy": (1,), "strcat": (1,), "strchr": (0,), "strdup": (0,),
    "getenv": (0,), "setenv": (0, 1), "unsetenv": (0,), "execve": (0,), "execv": (0,), "chown": (0,),
    "stat": (0,), "atoi": (0,), "CreateFileA": (0,), "sprintf": (1,), "snprintf": (2,), "dlsym": (1,),
}  # fmt: skip


def _show(h: HookCtx, i: int, a: Any, name: str) -> str:
    if isinstance(a, (bytes, bytearray)):
        return repr(bytes(a))[1:]
    if isinstance(a, str):
        return '"' + a.encode("unicode_escape").decode() + '"'
    if i in STRING_ARGS.get(name, ()) and isinstance(a, int) and a:
        try:
            return '"' + h.text(a).encode("unicode_escape").decode() + '"'
        except Exception:  # noqa: BLE001 - a bad pointer is shown as a number, as ltrace does
            return hex(a)
    if isinstance(a, int):
        a &= 0xFFFFFFFF
        return str(a - (1 << 32) if a & 0x80000000 else a) if a < 0x10000 or a >= 0xFFFF0000 else hex(a)
    return repr(a)


@attrs.define(eq=False)
class Tracer:
    """Trace library calls: ``Tracer(kernel).start(pid=None, symbols=None)``; ``lines`` holds the
    output, ``output`` (a host file object) also gets it as it comes."""

    kernel: Any
    lines: list[str] = attrs.field(factory=list)
    output: Any = None
    _hooks: list[Hook] = attrs.field(factory=list)
    _pending: dict[int, list[str]] = attrs.field(factory=dict)

    def start(self, pid: int | None = None, symbols: Iterable[str] | None = None) -> Tracer:
        for sym in list(symbols) if symbols else ["*"]:
            self._hooks.append(hook(self.kernel, sym, self._enter, When.ENTER, pid=pid, label="ltrace"))
            self._hooks.append(hook(self.kernel, sym, self._exit, When.EXIT, pid=pid, label="ltrace"))
        return self

    def stop(self) -> None:
        for h in self._hooks:
            unhook(self.kernel, h)
        self._hooks.clear()

    def _enter(self, h: HookCtx, args: list[Any]) -> None:
        shown = ", ".join(_show(h, i, a, h.symbol) for i, a in enumerate(self._visible(h, args)))
        self._pending.setdefault(h.pid, []).append(f"[pid {h.pid}] {h.symbol}({shown})")

    def _visible(self, h: HookCtx, args: list[Any]) -> list[Any]:
        if not h.isa:
            return args
        # An ISA call passes a0-a7; show as many as the C library's definition takes.
        from virtlevels_interpose.linker import _arity

        d = h.c.defn
        n = _arity(d.fn) if d is not None and d.fn is not None else None
        if n is None:
            n = 1 + max(STRING_ARGS.get(h.symbol, (0,)))
        return args[:n]

    def _exit(self, h: HookCtx, args: list[Any], result: Any) -> None:
        stack = self._pending.get(h.pid) or [f"[pid {h.pid}] {h.symbol}(...)"]
        head = stack.pop()
        res = "<void>" if result is None else _show(h, -1, result, "")
        line = f"{head} = {res}"
        self.lines.append(line)
        if self.output is not None:
            self.output.write(line + "\n")
