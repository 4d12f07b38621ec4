"""virtlevels: the taxonomy of virtualization, runnable.

One simulated RISC-V machine and one backend per level of virtualization (hardware, OS,
library, process, service), each a pluggy plugin, all in one :class:`World`.
Importing this package imports no plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from virtlevels.plugins import hookimpl  # noqa: E402

__all__ = ["World", "hookimpl", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels.world import World


def __getattr__(name: str) -> Any:
    # The World pulls in networkx; load it on first use so `import virtlevels` stays light.
    if name == "World":
        from virtlevels.world import World

        return World
    raise AttributeError(f"module 'virtlevels' has no attribute {name!r}")
