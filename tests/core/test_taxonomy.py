from __future__ import annotations

import pytest

from virtlevels.taxonomy import (
    HARDWARE_TECHNIQUES,
    BackendInfo,
    HypervisorType,
    Level,
    Property,
    Technique,
    render_tree,
    taxonomy_tree,
)


def test_seed_taxonomy_values() -> None:
    assert [lvl.value for lvl in Level] == ["hardware", "os", "library", "process", "service"]
    assert [t.value for t in HARDWARE_TECHNIQUES] == [
        "full emulation", "trap-and-emulate", "binary translation", "paravirtualization", "hardware-assisted",
    ]
    assert [h.value for h in HypervisorType] == ["native (Type 1)", "hosted (Type 2)"]
    assert {p.value for p in Property} == {"equivalence", "efficiency", "resource control"}


def test_tree_is_generated_from_declarations() -> None:
    hv = BackendInfo(
        "hv", "hardware", techniques=["trap-and-emulate", "hardware-assisted"],
        hypervisor_types=["native (Type 1)"], keeps=["equivalence", "resource control"],
        objects=["platform virtual machine"],
    )
    text = render_tree(taxonomy_tree([hv]))
    assert "├── trap-and-emulate: hv [equivalence, resource control]" in text
    assert "full emulation: hv" not in text
    assert "native (Type 1): hv" in text
    assert "platform virtual machine: hv" in text
    for level in Level:
        assert f"{level.title} level" in text


def test_backend_technique_must_belong_to_its_level() -> None:
    with pytest.raises(ValueError, match="belongs to the os level, not hardware"):
        BackendInfo("bad", Level.HARDWARE, techniques=[Technique.NAMESPACES])
    with pytest.raises(ValueError):
        BackendInfo("bad", "no-such-level")


def test_a_technique_can_keep_less_than_its_backend() -> None:
    from virtlevels.taxonomy import BackendInfo, render_tree, taxonomy_tree

    info = BackendInfo(
        name="vmm", level="hardware", techniques=["full emulation", "trap-and-emulate"],
        keeps=["equivalence", "efficiency", "resource control"],
        technique_keeps={"full emulation": ["equivalence", "resource control"]},
    )  # fmt: skip
    text = render_tree(taxonomy_tree([info]))
    assert "full emulation: vmm [equivalence, resource control]" in text
    assert "trap-and-emulate: vmm [equivalence, efficiency, resource control]" in text
