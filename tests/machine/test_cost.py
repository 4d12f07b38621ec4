"""Cost profiles: shipped profiles load and cite sources; the schema is strict but extensible."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from virtlevels.cost import (
    INSTRUCTION_CLASSES,
    CostModel,
    list_profiles,
    load_profile,
    register_cost_keys,
    schema,
)
from virtlevels.errors import ConfigError
from virtlevels.machine.isa.encodings import ENCODINGS


def test_shipped_profiles() -> None:
    names = set(list_profiles())
    assert {"default", "modern-x86"} <= names
    for name in ("default", "modern-x86"):
        model = load_profile(name)
        assert model.name == name
        assert set(model.instruction) >= set(INSTRUCTION_CLASSES)
        assert model.tlb_entries >= 1 and model.quantum >= 1 and model.timebase_divisor >= 1


def test_every_encoding_class_has_a_cost() -> None:
    model = load_profile("default")
    for e in ENCODINGS:
        assert model.instruction_cost(e.cls) >= 0


@pytest.mark.parametrize("name", ["default", "modern-x86"])
def test_every_number_cites_a_source(name: str) -> None:
    for line in list_profiles()[name].read_text().splitlines():
        if re.match(r"\s*[a-z_]+\s*=\s*\d", line):
            assert "#" in line and len(line.split("#", 1)[1].strip()) > 10, line


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.toml"
    p.write_text(text)
    return p


def base_text() -> str:
    return list_profiles()["default"].read_text()


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    p = write(tmp_path, base_text().replace("[memory]", "[memory]\ntlb_hits = 3"))
    with pytest.raises(ConfigError, match=r"p\.toml: unknown key \[memory\] tlb_hits"):
        load_profile(p)


def test_unknown_section_and_missing_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown section \[warp_drive\]"):
        load_profile(write(tmp_path, base_text() + "\n[warp_drive]\nvm_exit = 1000\n"))
    with pytest.raises(ConfigError, match=r"missing key \[instruction\] div"):
        load_profile(write(tmp_path, re.sub(r"\ndiv = .*", "", base_text())))


@pytest.mark.parametrize("value", ["-1", "1.5", "true", '"x"'])
def test_values_must_be_non_negative_integers(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"\[instruction\] alu must be a non-negative integer"):
        load_profile(write(tmp_path, re.sub(r"\nalu = 1", f"\nalu = {value}", base_text())))


def test_bad_toml_and_unknown_profile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_profile(write(tmp_path, "[profile\n"))
    with pytest.raises(ConfigError, match="unknown cost profile 'nope'"):
        load_profile("nope")


def test_registered_sections_are_accepted_with_defaults(tmp_path: Path) -> None:
    register_cost_keys("testsection", {"vm_exit": 1200, "vm_entry": 800})
    try:
        model = load_profile("default")
        assert model.get("testsection", "vm_exit") == 1200
        p = write(tmp_path, base_text() + "\n[testsection]\nvm_exit = 5\n")
        assert load_profile(p).get("testsection", "vm_exit") == 5
        with pytest.raises(ConfigError, match="already registered"):
            register_cost_keys("testsection", {"vm_exit": 1})
        assert schema()["testsection"]["vm_entry"] == 800
    finally:
        from virtlevels import cost

        del cost._SCHEMA["testsection"]


def test_missing_key_lookup_is_a_clear_error() -> None:
    model = load_profile("default")
    with pytest.raises(ConfigError, match=r"no key \[device\] warp_drive"):
        model.get("device", "warp_drive")
    with pytest.raises(ConfigError, match="no cost for instruction class 'x86'"):
        model.instruction_cost("x86")


def test_evolve_keeps_sections_in_step() -> None:
    model = load_profile("default").evolve(quantum=7, instruction={"div": 2})
    assert model.quantum == 7 and model.get("clock", "quantum") == 7
    assert model.instruction["div"] == 2
    assert isinstance(CostModel.from_dict(model.to_dict()), CostModel)


def test_profiles_change_cycles_not_behaviour() -> None:
    from encode import enc, flatten, li, machine_with

    prog = flatten(li(1, 100), enc("mul", rd=2, rs1=1, rs2=1), enc("div", rd=3, rs1=2, rs2=1),
                   enc("addi", rd=1, rs1=1, imm=-1), enc("bne", rs1=1, rs2=0, imm=-12))  # fmt: skip
    results = {}
    for name in ("default", "modern-x86"):
        m = machine_with(prog, profile=name)
        r = m.run(max_instructions=401)
        results[name] = (r, list(m.harts[0].x))
    (ra, xa), (rb, xb) = results["default"], results["modern-x86"]
    assert xa == xb and ra.instructions == rb.instructions
    assert ra.cycles != rb.cycles
    d = load_profile("default")
    assert ra.cycles == sum(d.instruction[c] * n for c, n in ra.instructions_by_class.items())
