from __future__ import annotations

import pytest

from virtlevels.backend import GuestState, Lifecycle
from virtlevels.errors import LifecycleError


def test_lifecycle_allows_the_libvirt_like_path() -> None:
    lc = Lifecycle("vm:0")
    for verb, state in [("start", "running"), ("pause", "paused"), ("resume", "running"),
                        ("stop", "stopped"), ("start", "running"), ("destroy", "destroyed")]:
        assert lc.apply(verb).value == state
    assert lc.state is GuestState.DESTROYED


@pytest.mark.parametrize(("path", "verb", "state"), [
    ([], "pause", "defined"),
    (["start"], "resume", "running"),
    (["start", "stop"], "pause", "stopped"),
    (["destroy"], "start", "destroyed"),
])
def test_invalid_transition_names_the_state(path: list[str], verb: str, state: str) -> None:
    lc = Lifecycle("container:web")
    for v in path:
        lc.apply(v)
    with pytest.raises(LifecycleError, match=f"container:web: cannot {verb} in state '{state}'"):
        lc.apply(verb)
    assert lc.state.value == state  # nothing half-applied
