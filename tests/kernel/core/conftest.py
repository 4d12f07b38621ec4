from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from virtlevels.kernel.kernel import Kernel


@pytest.fixture
def kernel() -> Kernel:
    return Kernel(hostname="host")


@pytest.fixture
def run_prog() -> Callable[..., Any]:
    """Spawn ``prog`` (as init, or a child of init) and run the World until it settles."""

    def run(k: Kernel, prog: Any, *args: Any, until: int | None = None) -> Any:
        t = k.spawn(prog, args) if args else k.spawn(prog)
        k.run(until)
        return t

    return run
