"""An example virtlevels plugin: a workload and a library-level backend.

The backend interposes on one call of a scripted workload, the way an LD_PRELOAD library
interposes on a symbol: the guest offers the same ``greet`` interface, with its own behaviour.
"""

from __future__ import annotations

from typing import Any

import attrs

import virtlevels
from virtlevels.backend import Lifecycle
from virtlevels.registry import Registry, Workload
from virtlevels.taxonomy import BackendInfo, Level, Property, Shared, Technique

__version__ = "0.1.0"


def _hello(greet: Any = None) -> str:
    """The workload: calls ``greet`` (from the level it runs at) or the plain default."""
    return (greet or (lambda name: f"hello, {name}"))("world")


@attrs.define
class GreeterGuest:
    """A guest whose ``greet`` symbol is interposed with a prefix."""

    id: str
    prefix: str
    lifecycle: Lifecycle = attrs.field(factory=lambda: Lifecycle("greeter"))
    calls: int = 0

    def greet(self, name: str) -> str:
        self.calls += 1
        return f"{self.prefix}hello, {name}"

    def start(self) -> None:
        self.lifecycle.apply("start")

    def pause(self) -> None:
        self.lifecycle.apply("pause")

    def resume(self) -> None:
        self.lifecycle.apply("resume")

    def stop(self) -> None:
        self.lifecycle.apply("stop")

    def destroy(self) -> None:
        self.lifecycle.apply("destroy")

    def snapshot(self) -> bytes:
        return f"{self.prefix}\0{self.calls}".encode()

    def stats(self) -> dict[str, Any]:
        return {"calls": self.calls}

    def run(self, workload: Workload) -> Any:
        return workload.build(greet=self.greet)


@attrs.define
class GreeterBackend:
    info: BackendInfo = BackendInfo(
        name="greeter",
        level=Level.LIBRARY,
        techniques=[Technique.CALL_HOOKS],
        shares=[Shared.HARDWARE, Shared.KERNEL, Shared.ADDRESS_SPACE],
        keeps=[Property.EFFICIENCY],
        needs="process",
        offers="process",
        description="prefixes every greeting (an example third-party backend)",
    )
    count: int = 0

    def define(self, host: Any, spec: dict[str, Any]) -> GreeterGuest:
        self.count += 1
        return GreeterGuest(id=f"greeter:{self.count - 1}", prefix=str(spec.get("prefix", "[virtual] ")))


@virtlevels.hookimpl
def virtlevels_register_workloads(registry: Registry) -> None:
    registry.add_workload(Workload("hello", "calls greet('world') once", _hello, tags=("example",)))


@virtlevels.hookimpl
def virtlevels_register_backends(registry: Registry) -> None:
    registry.add_backend(GreeterBackend())
