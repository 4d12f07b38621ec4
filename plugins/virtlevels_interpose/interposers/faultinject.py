"""A fault injector: make library calls fail by rule (as libfiu's fiu-run or failmalloc do).

``FaultInjector(kernel).add(FaultRule("malloc", nth=3))`` makes the third malloc of every process
return NULL with errno ENOMEM; ``FaultRule("open", path="/etc/*", errno=EACCES)`` makes opens of
matching paths fail with -1/EACCES. Rules count per process and are deterministic: ``nth`` (that
call only), ``every`` (each k-th), ``after`` (every call after the first k), or all calls.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Generator
from typing import Any

import attrs

from virtlevels.errors import ConfigError
from virtlevels.kernel.errno import EIO, ENOMEM
from virtlevels_interpose.hooks import Hook, HookCtx, When, hook, unhook

Gen = Generator[Any, Any, Any]

#: What a failing call returns, by symbol (malloc(3): NULL; open(2): -1).
FAIL_VALUE = {"malloc": 0, "calloc": 0, "realloc": 0, "strdup": 0, "VirtualAlloc": 0, "CreateFileA": -1}
DEFAULT_ERRNO = {"malloc": ENOMEM, "calloc": ENOMEM, "realloc": ENOMEM, "strdup": ENOMEM}


@attrs.frozen
class FaultRule:
    symbol: str
    errno: int | None = None
    nth: int | None = None
    every: int | None = None
    after: int | None = None
    path: str | None = None  # glob on the first (string) argument, for open-like calls
    pid: int | None = None

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        """``SYMBOL[:N]`` (the N-th call) or ``SYMBOL:every=K`` / ``after=K`` / ``path=GLOB`` /
        ``errno=E`` joined with commas, e.g. ``malloc:3`` or ``open:path=/etc/*,errno=13``."""
        sym, _, rest = text.partition(":")
        if not sym:
            raise ConfigError(f"--fail {text!r}: no symbol")
        kw: dict[str, Any] = {}
        for part in [p for p in rest.split(",") if p]:
            k, eq, v = part.partition("=")
            if not eq:
                k, v = "nth", part
            if k not in ("nth", "every", "after", "path", "errno"):
                raise ConfigError(f"--fail {text!r}: unknown key {k!r} (nth, every, after, path, errno)")
            try:
                kw[k] = v if k == "path" else int(v)
            except ValueError:
                raise ConfigError(f"--fail {text!r}: {k} must be an integer, got {v!r}") from None
        return cls(sym, **kw)

    def fires(self, n: int) -> bool:
        if self.nth is not None:
            return n == self.nth
        if self.every is not None:
            return self.every > 0 and n % self.every == 0
        if self.after is not None:
            return n > self.after
        return True


@attrs.define(eq=False)
class FaultInjector:
    kernel: Any
    counts: dict[tuple[int, int, int], int] = attrs.field(factory=dict)  # (rule, pid) -> calls
    injected: list[tuple[int, str]] = attrs.field(factory=list)  # (pid, symbol) of each failure
    _hooks: list[Hook] = attrs.field(factory=list)
    _rules: list[FaultRule] = attrs.field(factory=list)

    def add(self, rule: FaultRule) -> FaultRule:
        idx = len(self._rules)
        self._rules.append(rule)

        def replace(h: HookCtx, *args: Any) -> Gen:
            if rule.path is not None:
                if not args or not fnmatch.fnmatchcase(h.text(args[0]), rule.path):
                    return (yield from h.next(*args))
            key = (idx, h.pid, 0)
            n = self.counts[key] = self.counts.get(key, 0) + 1
            if not rule.fires(n):
                return (yield from h.next(*args))
            self.injected.append((h.pid, h.symbol))
            h.set_errno(rule.errno if rule.errno is not None else DEFAULT_ERRNO.get(h.symbol, EIO))
            return FAIL_VALUE.get(h.symbol, -1)

        self._hooks.append(hook(self.kernel, rule.symbol, replace, When.REPLACE, pid=rule.pid, label="fault"))
        return rule

    def clear(self) -> None:
        for h in self._hooks:
            unhook(self.kernel, h)
        self._hooks.clear()
        self._rules.clear()
