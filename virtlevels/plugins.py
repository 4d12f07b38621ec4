"""The plugin host: one pluggy manager per World, loading the ``virtlevels`` entry points.

Load order (documented in docs/plugins.md):
1. built-in plugins: the core's own modules (:data:`CORE_PLUGINS`) and the entry points of the
   ``virtlevels`` distribution itself (the backends under plugins/), sorted by name;
2. third-party entry points, sorted by name;
3. plugins registered in code with :meth:`PluginHost.register`, in that order.

A plugin that fails to import, or raises inside a hook, is recorded as a :class:`PluginFailure`
under its name and the others go on. ``VIRTLEVELS_DISABLE_PLUGINS`` is a comma-separated list
of plugin names not to load; ``*`` disables every plugin that is not built in.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from importlib import metadata
from typing import Any

import attrs
import pluggy

from virtlevels import hookspecs
from virtlevels.errors import PluginError
from virtlevels.registry import Registry

ENTRY_POINT_GROUP = "virtlevels"
DISTRIBUTION = "virtlevels"
DISABLE_ENV = "VIRTLEVELS_DISABLE_PLUGINS"

#: Core modules that are plugins of their own (as pytest's built-in features are).
CORE_PLUGINS: tuple[str, ...] = ("virtlevels.builtin",)

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)


@attrs.frozen
class PluginFailure:
    """A plugin that failed: at import (``where="load"``) or inside a hook (the hook's name)."""

    plugin: str
    where: str
    error: str


@attrs.frozen
class PluginRecord:
    """What ``virtlevels plugins`` shows for one plugin."""

    name: str
    version: str
    builtin: bool
    hooks: tuple[str, ...]
    module: str


def disabled_from_env(environ: dict[str, str] | None = None) -> frozenset[str]:
    raw = (os.environ if environ is None else environ).get(DISABLE_ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


@attrs.define
class PluginHost:
    """A pluggy PluginManager with load-order bookkeeping and failure isolation."""

    pm: pluggy.PluginManager = attrs.field(init=False)
    records: dict[str, PluginRecord] = attrs.field(factory=dict)
    failures: list[PluginFailure] = attrs.field(factory=list)
    order: list[str] = attrs.field(factory=list)
    disabled: frozenset[str] = frozenset()

    def __attrs_post_init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)

    # -- loading -----------------------------------------------------------------------------
    def load(self, *, entry_points: bool = True, disable: Iterable[str] | None = None) -> None:
        """Register the core plugins, then (optionally) the entry points."""
        self.disabled = frozenset(disable) if disable is not None else disabled_from_env()
        for modname in CORE_PLUGINS:
            self._register_module(modname.rsplit(".", 1)[-1], modname, builtin=True, version=_core_version())
        if entry_points:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
        # A name provided by two distributions loads once (the first sorted), as pip would shadow it.
        seen: set[str] = set()
        builtin_eps = [ep for ep in eps if _dist_name(ep) == DISTRIBUTION]
        third_party = [ep for ep in eps if _dist_name(ep) != DISTRIBUTION]
        for ep in builtin_eps + third_party:
            if ep.name in seen:
                continue
            seen.add(ep.name)
            builtin = _dist_name(ep) == DISTRIBUTION
            if ep.name in self.disabled or ("*" in self.disabled and not builtin):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's, not ours
                self.failures.append(PluginFailure(ep.name, "load", f"{type(exc).__name__}: {exc}"))
                continue
            dist = ep.dist
            version = dist.version if dist is not None else "?"
            self._register(ep.name, plugin, builtin=builtin, version=version)

    def _register_module(self, name: str, modname: str, *, builtin: bool, version: str) -> None:
        try:
            module = importlib.import_module(modname)
        except Exception as exc:  # noqa: BLE001
            self.failures.append(PluginFailure(name, "load", f"{type(exc).__name__}: {exc}"))
            return
        self._register(name, module, builtin=builtin, version=version)

    def _register(self, name: str, plugin: Any, *, builtin: bool, version: str) -> None:
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - e.g. a hookimpl with unknown arguments
            self.failures.append(PluginFailure(name, "load", f"{type(exc).__name__}: {exc}"))
            return
        hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
        module = getattr(plugin, "__name__", type(plugin).__module__)
        self.records[name] = PluginRecord(name, version, builtin, hooks, module)
        self.order.append(name)

    def register(self, plugin: Any, name: str | None = None) -> str:
        """Register a plugin object in code (after the entry points); returns its name.

        A plugin object that is already registered (an installed plugin's module, loaded through its
        entry point) is not registered twice: its existing name is returned."""
        if self.pm.is_registered(plugin):
            return str(self.pm.get_name(plugin))
        name = name or getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{id(plugin):x}"
        if name in self.records:
            raise PluginError(f"a plugin named {name!r} is already registered")
        before = len(self.failures)
        self._register(name, plugin, builtin=False, version=getattr(plugin, "__version__", "-"))
        if len(self.failures) > before:
            failure = self.failures.pop()
            raise PluginError(f"plugin {name!r} cannot be registered: {failure.error}")
        return name

    def unregister(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.records.pop(name, None)
        if name in self.order:
            self.order.remove(name)

    # -- calling -----------------------------------------------------------------------------
    def implementations(self, hook: str) -> list[tuple[str, Any, tuple[str, ...]]]:
        """(plugin name, function, argument names) for a hook, in load order."""
        caller = getattr(self.pm.hook, hook)
        rank = {name: i for i, name in enumerate(self.order)}
        impls = [(impl.plugin_name, impl.function, tuple(impl.argnames)) for impl in caller.get_hookimpls()]
        return sorted(impls, key=lambda item: rank.get(item[0], len(rank)))

    def call_each(self, hook: str, registry: Registry | None = None, **kwargs: Any) -> list[Any]:
        """Call every implementation in load order; a raising plugin is recorded and skipped."""
        results = []
        if registry is not None:
            kwargs["registry"] = registry
        for name, function, argnames in self.implementations(hook):
            if registry is not None:
                registry.current_plugin = name
            try:
                # As pluggy does, pass an implementation only the arguments it names.
                results.append(function(**{a: kwargs[a] for a in argnames}))
            except Exception as exc:  # noqa: BLE001 - isolate the failing plugin
                self.failures.append(PluginFailure(name, hook, f"{type(exc).__name__}: {exc}"))
        if registry is not None:
            registry.current_plugin = "<code>"
        return results

    def build_registry(self) -> Registry:
        registry = Registry()
        for hook in hookspecs.REGISTRATION_HOOKS:
            self.call_each(hook, registry=registry)
        return registry

    def observer(self, short_name: str) -> Any | None:
        """A callable that notifies every implementation of an observer hook, or None if there are none."""
        hook = hookspecs.OBSERVER_HOOKS.get(short_name)
        if hook is None:
            raise PluginError(f"no observer hook {short_name!r} (known: {sorted(hookspecs.OBSERVER_HOOKS)})")
        impls = self.implementations(hook)
        if not impls:
            return None
        failures = self.failures

        def notify(**kwargs: Any) -> None:
            for name, function, argnames in impls:
                try:
                    function(**{a: kwargs[a] for a in argnames})
                except Exception as exc:  # noqa: BLE001
                    failures.append(PluginFailure(name, hook, f"{type(exc).__name__}: {exc}"))

        return notify


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = ep.dist
    return (dist.metadata["Name"] or "").lower().replace("_", "-") if dist is not None else ""


def _core_version() -> str:
    from virtlevels import __version__

    return __version__
