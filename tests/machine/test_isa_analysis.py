"""Popek-Goldberg analysis: declared classes, Theorems 1 and 3, the empirical check, the CLI."""

from __future__ import annotations

import json

import pytest

import virtlevels
from virtlevels.machine.isa import x86like
from virtlevels.machine.isa.analysis import (
    ExplainedPgClass,
    analyze,
    declared_classes,
    representative,
    table_for,
)
from virtlevels.machine.isa.encodings import Encoding
from virtlevels.machine.isa.semantics import Fields, Op
from virtlevels.machine.isa.table import Instruction, InstructionTable, PgClass
from virtlevels.registry import IsaExtension, Registry

T1_VIOLATORS = ["popf", "pushf", "smsw", "sgdt", "sidt", "sldt", "str", "rdcs", "verr", "verw"]
T3_VIOLATORS = ["pushf", "smsw", "sgdt", "sidt", "sldt", "str"]


def x86_table() -> InstructionTable:
    table = InstructionTable()
    x86like.apply(table)
    return table


def test_rv32ima_satisfies_theorems_1_and_3() -> None:
    result = analyze(InstructionTable())
    assert result.theorem1.holds and result.theorem1.violators == ()
    assert result.theorem3.holds and result.theorem3.violators == ()
    assert result.theorem1.line() == (
        "Theorem 1: holds — every sensitive instruction is privileged: a trap-and-emulate VMM can be built"
    )
    csrrw = result.row("csrrw").declared
    assert csrrw.privileged and csrrw.control_sensitive and csrrw.user_sensitive
    assert result.row("add").declared.innocuous and not result.row("add").declared.user_sensitive
    assert result.row("ebreak").declared.names() == ("privileged", "innocuous")


def test_x86like_fails_theorem_1_and_3_with_exactly_the_expected_violators() -> None:
    result = analyze(x86_table())
    assert result.profile == "x86-like"
    assert not result.theorem1.holds and result.theorem1.names == T1_VIOLATORS
    assert not result.theorem3.holds and result.theorem3.names == T3_VIOLATORS
    expected = "Theorem 1: fails — sensitive but unprivileged: " + ", ".join(T1_VIOLATORS)
    assert result.theorem1.line() == expected
    popf = result.theorem1.violators[0]
    assert popf.models == "POPF" and "U-mode" in popf.why
    # mode-only sensitivity is harmless under a hybrid monitor: popf, rdcs, verr break only Theorem 1
    assert not result.row("popf").declared.user_sensitive


@pytest.mark.parametrize("make", [InstructionTable, x86_table], ids=["rv32ima", "x86-like"])
def test_empirical_classes_match_the_declared_ones(make) -> None:  # type: ignore[no-untyped-def]
    result = analyze(make(), empirical=True)
    assert result.mismatches == {}
    for row in result.rows:
        assert row.empirical is not None and row.empirical.classes == row.declared, row.name
    assert result.row("csrrw").empirical.user_trap == "illegal_instruction"  # type: ignore[union-attr]
    assert result.row("ecall").empirical.user_trap == "ecall_from_u"  # type: ignore[union-attr]
    assert "changes tlb" in result.row("sfence.vma").empirical.evidence  # type: ignore[union-attr]
    assert result.row("add").empirical.evidence == ()  # type: ignore[union-attr]


def test_every_representative_decodes_to_its_own_row() -> None:
    table = x86_table()
    for ins in table.instructions:
        assert table.lookup(representative(ins)) is ins, ins.name


# -- the empirical check catches a dishonest table ------------------------------------------------
def _leaky_stvec(f: Fields) -> Op:
    rd = f.rd

    def op(h, x, pc):  # type: ignore[no-untyped-def]
        x[rd] = h.csr.stvec
        return pc + 4

    return op


def _set_sie_anywhere(f: Fields) -> Op:
    def op(h, x, pc):  # type: ignore[no-untyped-def]
        h.csr.mstatus |= 2
        return pc + 4

    return op


LEAK = Encoding("leak", "I", 0x0000705B, 0xFFFFF07F, "rd", "csr", "test")  # custom-2
STI = Encoding("sti", "I", 0x0000605B, 0xFFFFFFFF, "", "csr", "test")


def test_the_empirical_check_reports_a_table_that_lies() -> None:
    table = InstructionTable()
    table.extend([
        Instruction(LEAK, _leaky_stvec, PgClass()),  # claims innocuous, reads stvec
        Instruction(STI, _set_sie_anywhere, PgClass(privileged=True, control_sensitive=True)),  # never traps
    ])  # fmt: skip
    result = analyze(table, empirical=True)
    assert result.mismatches == {
        "leak": ("behaviour-sensitive", "user-sensitive", "innocuous"),
        "sti": ("privileged",),  # and user-sensitive as declared: it changes SIE in U-mode
    }
    assert result.theorem1.holds  # the verdict follows the declarations; --empirical shows they are wrong


def test_user_sensitivity_rules() -> None:
    assert declared_classes(PgClass(privileged=True, control_sensitive=True)).user_sensitive
    assert not declared_classes(PgClass(privileged=True)).user_sensitive
    assert declared_classes(PgClass(behaviour_sensitive=True)).user_sensitive  # unspecified: conservative
    said_no = ExplainedPgClass(behaviour_sensitive=True, user_sensitive=False)
    assert not declared_classes(said_no).user_sensitive
    assert not declared_classes(ExplainedPgClass(user_sensitive=True)).user_sensitive  # not sensitive at all


def test_table_for_rejects_unknown_profiles() -> None:
    from virtlevels.errors import ConfigError

    assert table_for("x86-like").profile == "x86-like"
    with pytest.raises(ConfigError, match=r"unknown ISA profile or extension 'sparc' \(known: rv32ima, "):
        table_for("sparc")


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_analyze_rv32ima(run_cli) -> None:
    result = run_cli("isa", "analyze")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Popek-Goldberg classes of profile rv32ima (70 instructions)" in out
    header = next(line for line in out.splitlines() if line.startswith("instruction"))
    assert header.split() == ["instruction", "ext", "privileged", "control-sensitive", "behaviour-sensitive",
                              "user-sensitive", "innocuous"]  # fmt: skip
    sret = next(line for line in out.splitlines() if line.startswith("sret "))
    assert sret.split() == ["sret", "priv", "yes", "yes", "yes", "yes", "-"]
    assert ("Theorem 1: holds — every sensitive instruction is privileged: "
            "a trap-and-emulate VMM can be built\n") in out  # fmt: skip
    assert ("Theorem 3: holds — every user-sensitive instruction is privileged: "
            "a hybrid VMM can be built\n") in out  # fmt: skip


def test_cli_analyze_x86like_text_and_empirical(run_cli) -> None:
    result = run_cli("isa", "analyze", "--profile", "x86-like", "--empirical")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Theorem 1: fails — sensitive but unprivileged: " + ", ".join(T1_VIOLATORS) in out
    assert "Theorem 3: fails — user-sensitive but unprivileged: " + ", ".join(T3_VIOLATORS) in out
    assert "  popf (models POPF): " in out
    assert "empirical check: 0 mismatch(es)" in out
    popf = next(line for line in out.splitlines() if line.startswith("popf "))
    assert popf.split() == ["popf", "x86-like", "-", "yes", "yes", "-", "-", "no", "CB", "yes"]
    assert "Robin and C. E. Irvine" in out and "CACM 17(7), 1974" in out


def test_cli_analyze_json(run_cli) -> None:
    result = run_cli("isa", "analyze", "--profile", "x86-like", "--json")
    data = json.loads(result.stdout)
    assert data["profile"] == "x86-like" and data["empirical"] is None
    assert [v["name"] for v in data["theorem1"]["violators"]] == T1_VIOLATORS
    assert [v["name"] for v in data["theorem3"]["violators"]] == T3_VIOLATORS
    assert data["theorem1"]["holds"] is False and data["theorem3"]["holds"] is False
    rows = {r["name"]: r for r in data["instructions"]}
    assert rows["smsw"]["declared"] == {"privileged": False, "control-sensitive": False,
                                        "behaviour-sensitive": True, "user-sensitive": True,
                                        "innocuous": False}  # fmt: skip
    assert rows["smsw"]["models"] == "SMSW"
    emp = json.loads(run_cli("isa", "analyze", "--json", "--empirical").stdout)
    assert emp["theorem1"]["holds"] is True and emp["empirical"]["mismatches"] == {}
    assert emp["instructions"][0]["empirical"]["classes"]["innocuous"] is True


def test_cli_unknown_profile_is_one_line(run_cli) -> None:
    result = run_cli("isa", "analyze", "--profile", "vax")
    assert result.exit_code == 1
    assert result.stderr.startswith("virtlevels: error: unknown ISA profile or extension 'vax'")
    assert len(result.stderr.splitlines()) == 1


class LyingPlugin:
    @virtlevels.hookimpl
    def virtlevels_register_isa_extensions(self, registry: Registry) -> None:
        registry.add_isa_extension(IsaExtension(
            "leaky", "an instruction that claims to be innocuous",
            lambda table: table.extend([Instruction(LEAK, _leaky_stvec, PgClass())]),
        ))  # fmt: skip


def test_cli_list_and_a_third_party_extension(run_cli) -> None:
    out = run_cli("isa", "list", plugins=[LyingPlugin()]).stdout
    assert "rv32ima (profile, from builtin; 70 instructions)" in out
    assert "x86-like (profile, from builtin; 80 instructions, 10 added)" in out
    assert "leaky (extension, from " in out
    rows = json.loads(run_cli("isa", "list", "--json").stdout)
    assert [(r["name"], r["kind"]) for r in rows] == [("rv32ima", "profile"), ("x86-like", "profile")]
    # an add-on extension is analysed on top of a profile; the empirical check exposes its lie
    result = run_cli("isa", "analyze", "--extension", "leaky", "--empirical", plugins=[LyingPlugin()])
    assert result.exit_code == 1
    assert "empirical check: 1 mismatch(es): leak" in result.stdout
    assert "Theorem 1: holds" in result.stdout
