"""The World: one clock and event queue, one resource graph, one plugin host, one seeded random source.

Everything simulated lives in a World. Two Worlds built from the same inputs and seed behave
identically, bit for bit: the clock is an integer count of cycles, ties in the event queue are
broken by insertion order, and all randomness comes from :attr:`World.rng`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from virtlevels.events import EventHandle, EventQueue
from virtlevels.graph import ResourceGraph
from virtlevels.plugins import PluginHost
from virtlevels.registry import Registry


@attrs.define(eq=False)
class World:
    """A simulated world.

    ``entry_points=False`` loads only the core's built-in plugins (useful in tests);
    ``disable`` overrides ``VIRTLEVELS_DISABLE_PLUGINS``.
    """

    seed: int = 0
    entry_points: bool = attrs.field(default=True, kw_only=True)
    disable: Iterable[str] | None = attrs.field(default=None, kw_only=True)
    graph: ResourceGraph = attrs.field(factory=ResourceGraph, init=False)
    events: EventQueue = attrs.field(factory=EventQueue, init=False)
    plugins: PluginHost = attrs.field(factory=PluginHost, init=False)
    rng: random.Random = attrs.field(init=False)
    _registry: Registry | None = attrs.field(default=None, init=False)
    _ids: dict[str, int] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.plugins.load(entry_points=self.entry_points, disable=self.disable)
        self.graph.add("world", "world", seed=self.seed)
        self.plugins.call_each("virtlevels_world_created", world=self)

    # -- time --------------------------------------------------------------------------------
    @property
    def now(self) -> int:
        """The World's clock, in cycles."""
        return self.events.now

    def schedule(self, time: int, callback: Callable[[], object], *, priority: int = 0) -> EventHandle:
        return self.events.schedule(time, callback, priority=priority)

    def run(self, until: int | None = None) -> int:
        """Run queued events up to ``until`` cycles (all if None)."""
        return self.events.run(until)

    # -- plugins -----------------------------------------------------------------------------
    @property
    def registry(self) -> Registry:
        """What the plugins registered; built on first use."""
        if self._registry is None:
            self._registry = self.plugins.build_registry()
        return self._registry

    def refresh_registry(self) -> Registry:
        """Rebuild the registry (after registering a plugin in code)."""
        self._registry = None
        return self.registry

    def register_plugin(self, plugin: Any, name: str | None = None) -> str:
        name = self.plugins.register(plugin, name)
        self._registry = None
        return name

    def unregister_plugin(self, name: str) -> None:
        self.plugins.unregister(name)
        self._registry = None

    def observer(self, name: str) -> Callable[..., None] | None:
        """The notifier of observer hook ``name`` (``"trap"``, ``"syscall"``...), or None if unused."""
        return self.plugins.observer(name)  # type: ignore[no-any-return]

    # -- naming ------------------------------------------------------------------------------
    def new_id(self, kind: str, parent: str | None = None) -> str:
        """A stable, deterministic id such as ``machine:0`` or ``machine:0/hart:1``."""
        key = f"{parent}/{kind}" if parent else kind
        n = self._ids.get(key, 0)
        self._ids[key] = n + 1
        return f"{key}:{n}"
