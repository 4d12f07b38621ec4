"""Helpers for the sandbox tests: kernels with seccomp, an init, and scripted probes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(ROOT / "plugins"))

from virtlevels_sandbox import seccomp as sec  # noqa: E402

from virtlevels.kernel import scripted as sc  # noqa: E402
from virtlevels.kernel.kernel import Kernel  # noqa: E402
from virtlevels.world import World  # noqa: E402


def init_prog() -> Any:
    while True:
        r = yield sc.wait4(-1)
        if not isinstance(r, tuple):
            return 0


def kernel(**kw: Any) -> Kernel:
    k = Kernel(World(entry_points=False), **kw)
    sec.install(k)
    k.spawn(init_prog, name="init")
    return k


def run_prog(k: Kernel, prog: Any, *args: Any, **spawn: Any) -> Any:
    """Spawn a scripted program, run the World, return its task."""
    t = k.spawn(prog, list(args), **spawn) if args else k.spawn(prog, **spawn)
    k.run()
    return t
