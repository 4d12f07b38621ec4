"""The contract every level backend keeps: one guest lifecycle whatever the level.

As libvirt does for hypervisors, a backend *defines* a guest on a host from a typed spec, and
the guest is then started, paused, resumed, stopped, snapshotted and destroyed through the same
verbs at every level. The comparison harness, the CLI and third-party plugins drive levels only
through these protocols.
"""

from __future__ import annotations

import enum
from typing import Any, Protocol, runtime_checkable

import attrs

from virtlevels.errors import LifecycleError
from virtlevels.taxonomy import BackendInfo


class GuestState(enum.Enum):
    DEFINED = "defined"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    DESTROYED = "destroyed"


#: Allowed transitions: verb -> (states it may be called in, state it leads to).
TRANSITIONS: dict[str, tuple[frozenset[GuestState], GuestState]] = {
    "start": (frozenset({GuestState.DEFINED, GuestState.STOPPED}), GuestState.RUNNING),
    "pause": (frozenset({GuestState.RUNNING}), GuestState.PAUSED),
    "resume": (frozenset({GuestState.PAUSED}), GuestState.RUNNING),
    "stop": (frozenset({GuestState.RUNNING, GuestState.PAUSED}), GuestState.STOPPED),
    "destroy": (
        frozenset({GuestState.DEFINED, GuestState.RUNNING, GuestState.PAUSED, GuestState.STOPPED}),
        GuestState.DESTROYED,
    ),
}


@attrs.define
class Lifecycle:
    """The state machine shared by every guest; an invalid verb names the current state."""

    what: str
    state: GuestState = GuestState.DEFINED
    history: list[tuple[str, GuestState]] = attrs.field(factory=list)

    def check(self, verb: str) -> GuestState:
        """The state ``verb`` leads to, or a LifecycleError if it is not allowed now."""
        try:
            allowed, target = TRANSITIONS[verb]
        except KeyError:
            raise LifecycleError(f"{self.what}: unknown lifecycle verb {verb!r}") from None
        if self.state not in allowed:
            raise LifecycleError(
                f"{self.what}: cannot {verb} in state {self.state.value!r} "
                f"(allowed in: {', '.join(sorted(s.value for s in allowed))})"
            )
        return target

    def apply(self, verb: str) -> GuestState:
        """Check, then move to the verb's target state."""
        self.state = self.check(verb)
        self.history.append((verb, self.state))
        return self.state


@runtime_checkable
class Guest(Protocol):
    """What a backend's ``define`` returns: a VM, a container, a sandboxed process, a network..."""

    id: str
    lifecycle: Lifecycle

    def start(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def stop(self) -> None: ...
    def destroy(self) -> None: ...
    def snapshot(self) -> bytes: ...
    def stats(self) -> dict[str, Any]: ...
    def run(self, workload: Any) -> Any: ...


@runtime_checkable
class Backend(Protocol):
    """A node of the taxonomy made runnable. ``host`` offers what ``info.needs`` names."""

    info: BackendInfo

    def define(self, host: Any, spec: Any) -> Guest: ...
