"""The OCI container state and the lifecycle state machine of the runtime-spec (runtime.md).

virtlevels.backend.Lifecycle (defined/running/paused/stopped/destroyed) does not fit: OCI has
its own statuses (creating, created, running, stopped), ``kill`` changes no state by itself,
and a container stops when its process exits, not by a verb. So this is a small OCI-specific
machine with the same contract: an invalid operation raises LifecycleError naming the state.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from virtlevels.errors import ConfigError, LifecycleError
from virtlevels_containers.oci.validate import InvalidConfig, Issue, validate_state

#: The runtime-spec version this runtime writes into state documents.
OCI_VERSION = "1.2.0"

#: runc's rule for container ids (runtime.md "create": an id that is "not valid in any other
#: way" MUST be an error; the spec leaves the syntax to the runtime).
_ID = re.compile(r"[A-Za-z0-9_+.-]+\Z")


class Status(enum.Enum):
    """runtime.md "State": the status values."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"


def check_container_id(container_id: str) -> str:
    """The id unchanged, or a ConfigError: ids are letters, digits and ``_ + - .``, not ``.``/``..``."""
    if not _ID.match(container_id) or container_id in (".", ".."):
        raise ConfigError(f"invalid container id {container_id!r}: use letters, digits and _ + - .")
    return container_id


@attrs.frozen
class State:
    """runtime.md "State": what ``state ID`` prints. ``pid`` is required while created or running."""

    id: str
    status: Status
    bundle: str
    pid: int | None = None
    annotations: Mapping[str, str] = attrs.field(factory=dict)
    oci_version: str = OCI_VERSION

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": self.status.value,
        }
        if self.pid is not None:
            doc["pid"] = self.pid
        doc["bundle"] = self.bundle
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        return doc

    def to_json(self) -> str:
        """The state document, checked against state-schema.json and runtime.md's pid rule."""
        doc = self.to_dict()
        validate_state(doc, f"state of {self.id}")
        if self.status in (Status.CREATED, Status.RUNNING) and self.pid is None:
            # runtime.md "State": pid is REQUIRED when status is created or running on Linux.
            raise InvalidConfig(f"state of {self.id}", [Issue("$.pid", f"required when {self.status.value}")])
        return json.dumps(doc, indent=2, sort_keys=False)

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any], source: str = "state.json") -> State:
        doc = validate_state(data, source)
        return cls(
            id=doc["id"],
            status=Status(doc["status"]),
            bundle=doc["bundle"],
            pid=doc.get("pid"),
            annotations=dict(doc.get("annotations") or {}),
            oci_version=doc["ociVersion"],
        )


#: runtime.md "Operations" and "Lifecycle": the statuses an operation is allowed in and the status
#: it leads to (None: unchanged). ``created`` and ``exited`` are events the runtime reports, not
#: user verbs; ``exec`` is runc's, allowed while the container's process exists.
OPERATIONS: dict[str, tuple[frozenset[Status], Status | None]] = {
    # runtime.md "Lifecycle" step 2-3: create builds the environment, then the status is created.
    "created": (frozenset({Status.CREATING}), Status.CREATED),
    # runtime.md "start": starting a container that is not created MUST be an error.
    "start": (frozenset({Status.CREATED}), Status.RUNNING),
    # runtime.md "kill": signalling a container that is neither created nor running MUST fail.
    "kill": (frozenset({Status.CREATED, Status.RUNNING}), None),
    "exec": (frozenset({Status.CREATED, Status.RUNNING}), None),
    # runtime.md "Lifecycle" step 8: the container process exits (killed before start, too).
    "exited": (frozenset({Status.CREATED, Status.RUNNING}), Status.STOPPED),
    # runtime.md "delete": deleting a container that is not stopped MUST be an error.
    "delete": (frozenset({Status.STOPPED}), None),
    # A create that fails part-way: the container never existed (issue 4 item 8).
    "abort": (frozenset({Status.CREATING}), None),
}


@attrs.define
class ContainerLifecycle:
    """One container's status; each operation is checked first and has no effect if refused.

    ``history`` records (operation, status after) in order, so tests and reports can replay it.
    After ``delete`` or ``abort`` the container no longer exists and every operation fails.
    """

    id: str
    status: Status = Status.CREATING
    exists: bool = True
    history: list[tuple[str, Status]] = attrs.field(factory=list)

    def check(self, operation: str) -> Status | None:
        """The status ``operation`` leads to (None: unchanged), or LifecycleError if refused."""
        try:
            allowed, target = OPERATIONS[operation]
        except KeyError:
            raise LifecycleError(f"container {self.id}: unknown operation {operation!r}") from None
        if not self.exists:
            raise LifecycleError(f"container {self.id}: cannot {operation}: the container does not exist")
        if self.status not in allowed:
            raise LifecycleError(
                f"container {self.id}: cannot {operation} a container in state {self.status.value!r} "
                f"(allowed in: {', '.join(s.value for s in Status if s in allowed)})"
            )
        return target

    def apply(self, operation: str) -> Status:
        """Check, then perform: the new status (delete and abort end the container's existence)."""
        target = self.check(operation)
        if target is not None:
            self.status = target
        if operation in ("delete", "abort"):
            self.exists = False
        self.history.append((operation, self.status))
        return self.status

    def state(
        self, bundle: str, pid: int | None = None, annotations: Mapping[str, str] | None = None
    ) -> State:
        """runtime.md "state": the state of an existing container (querying a deleted one fails)."""
        if not self.exists:
            raise LifecycleError(f"container {self.id}: cannot query state: the container does not exist")
        return State(self.id, self.status, bundle, pid, dict(annotations or {}))
