"""The OCI state document and the runtime-spec lifecycle (runtime.md "State", "Lifecycle", "Operations")."""

from __future__ import annotations

import json

import pytest
from virtlevels_containers.oci.state import (
    OPERATIONS,
    ContainerLifecycle,
    State,
    Status,
    check_container_id,
)
from virtlevels_containers.oci.validate import InvalidConfig, validate_state

from virtlevels.errors import ConfigError, LifecycleError


def test_state_json_is_valid_against_the_schema() -> None:
    state = State("c1", Status.RUNNING, "/bundles/c1", pid=42, annotations={"org.example": "v"})
    text = state.to_json()
    doc = json.loads(text)
    assert doc == {
        "ociVersion": "1.2.0",
        "id": "c1",
        "status": "running",
        "pid": 42,
        "bundle": "/bundles/c1",
        "annotations": {"org.example": "v"},
    }
    assert validate_state(text) == doc
    assert State.from_json(text) == state


def test_stopped_state_needs_no_pid() -> None:
    doc = json.loads(State("c1", Status.STOPPED, "/b").to_json())
    assert "pid" not in doc and "annotations" not in doc


def test_pid_is_required_while_created_or_running() -> None:
    with pytest.raises(InvalidConfig, match=r"state of c1: \$.pid: required when created"):
        State("c1", Status.CREATED, "/b").to_json()


def test_state_schema_rejects_a_negative_pid() -> None:
    with pytest.raises(InvalidConfig, match=r"\$.pid: -1 is less than the minimum of 0"):
        State("c1", Status.RUNNING, "/b", pid=-1).to_json()


def test_from_json_rejects_unknown_status() -> None:
    with pytest.raises(InvalidConfig, match=r"s.json: \$.status: 'paused' is not one of"):
        State.from_json('{"ociVersion": "1.0.0", "id": "a", "status": "paused", "bundle": "/b"}', "s.json")


def test_container_ids() -> None:
    for good in ("c1", "my_container.v2", "a+b-c"):
        assert check_container_id(good) == good
    for bad in ("", "..", "a/b", "has space", "é"):
        with pytest.raises(ConfigError, match="invalid container id"):
            check_container_id(bad)


def test_the_normal_lifecycle() -> None:
    life = ContainerLifecycle("c1")
    assert life.status is Status.CREATING
    assert life.apply("created") is Status.CREATED
    assert life.apply("kill") is Status.CREATED  # a signal changes no state by itself
    assert life.apply("start") is Status.RUNNING
    assert life.apply("exec") is Status.RUNNING
    assert life.apply("exited") is Status.STOPPED
    assert life.state("/b").status is Status.STOPPED
    life.apply("delete")
    assert life.exists is False
    assert life.history == [
        ("created", Status.CREATED),
        ("kill", Status.CREATED),
        ("start", Status.RUNNING),
        ("exec", Status.RUNNING),
        ("exited", Status.STOPPED),
        ("delete", Status.STOPPED),
    ]


def test_killed_before_start_stops() -> None:
    life = ContainerLifecycle("c1")
    life.apply("created")
    life.apply("kill")
    assert life.apply("exited") is Status.STOPPED


@pytest.mark.parametrize(
    ("path", "operation", "state"),
    [
        ([], "start", "creating"),
        (["created", "start"], "start", "running"),
        (["created", "start", "exited"], "start", "stopped"),
        (["created", "start", "exited"], "kill", "stopped"),
        (["created"], "delete", "created"),
        (["created", "start"], "delete", "running"),
        ([], "kill", "creating"),
        (["created", "start", "exited"], "exec", "stopped"),
        (["created"], "created", "created"),
        (["created"], "abort", "created"),
    ],
)
def test_invalid_operations_name_the_state_and_change_nothing(path, operation, state) -> None:
    life = ContainerLifecycle("c1")
    for op in path:
        life.apply(op)
    before = (life.status, list(life.history), life.exists)
    with pytest.raises(
        LifecycleError, match=rf"container c1: cannot {operation} a container in state '{state}'"
    ):
        life.apply(operation)
    assert (life.status, life.history, life.exists) == before


def test_delete_message_lists_allowed_states() -> None:
    life = ContainerLifecycle("web")
    life.apply("created")
    with pytest.raises(LifecycleError) as info:
        life.apply("delete")
    assert (
        str(info.value) == "container web: cannot delete a container in state 'created' (allowed in: stopped)"
    )


def test_a_failed_create_leaves_no_container() -> None:
    life = ContainerLifecycle("c1")
    life.apply("abort")
    assert life.exists is False
    with pytest.raises(LifecycleError, match="cannot start: the container does not exist"):
        life.apply("start")
    with pytest.raises(LifecycleError, match="cannot query state"):
        life.state("/b")


def test_deleted_container_refuses_everything() -> None:
    life = ContainerLifecycle("c1")
    for op in ("created", "start", "exited", "delete"):
        life.apply(op)
    for op in OPERATIONS:
        with pytest.raises(LifecycleError, match="does not exist"):
            life.apply(op)


def test_unknown_operation() -> None:
    with pytest.raises(LifecycleError, match="unknown operation 'pause'"):
        ContainerLifecycle("c1").apply("pause")


def test_state_of_a_running_container() -> None:
    life = ContainerLifecycle("c1")
    life.apply("created")
    state = life.state("/bundles/c1", pid=7, annotations={"a": "b"})
    assert json.loads(state.to_json())["status"] == "created"
