"""Adams & Agesen microbenchmarks (issue 5 item 10): the kernel, the runner, the profiles, the table."""

from __future__ import annotations

import re

import pytest
from virtlevels_hypervisor.costs import HYPERVISOR_COSTS
from virtlevels_hypervisor.microbench import (
    BENCHMARKS,
    BenchResult,
    MicrobenchError,
    build_microbench,
    direction_checks,
    markdown_table,
    native_runner,
    patch_words,
    run_microbench,
    vm_runner,
)
from virtlevels_hypervisor.microbench.__main__ import main

from virtlevels.cost import list_profiles, load_profile, schema
from virtlevels.errors import ConfigError
from virtlevels.guests.layout import KERNEL_BASE
from virtlevels.machine.board import virt_machine

HV_KEYS = ("emulate_insn", "world_switch", "exit_hw", "trap_emulate", "shadow_update", "bt_translate_insn",
           "bt_callout", "hypercall", "hosted_exit")  # fmt: skip


def boot(image, profile: str = "default"):
    machine = virt_machine(profile=profile)
    machine.load(image)
    return machine.run(5_000_000)


def test_every_benchmark_runs_natively_with_positive_deterministic_cycles() -> None:
    first = run_microbench(native_runner(), iterations=16)
    again = run_microbench(native_runner(), iterations=16)
    assert list(first) == list(BENCHMARKS)
    for name, r in first.items():
        assert r.per_op > r.net > 0, name
        assert r.loop > 0
        assert again[name] == r, name  # the same image gives the same cycles


def test_twice_the_iterations_gives_the_same_cost_per_operation() -> None:
    # Boot, set-up and shutdown cancel in cycles(N) - cycles(0); what is left grows with N.
    n = run_microbench(native_runner("2006-p4"), iterations=12, subtract_loop=False)
    n2 = run_microbench(native_runner("2006-p4"), iterations=24, subtract_loop=False)
    for name in BENCHMARKS:
        assert n2[name].cycles_0 == n[name].cycles_0
        assert n[name].cycles_0 > 10 * n[name].per_op  # the boot is far from negligible ...
        assert abs(n2[name].per_op - n[name].per_op) <= 1.0, name  # ... and still cancels


@pytest.mark.parametrize("name", ["syscall", "pgfault", "divzero"])
def test_user_benchmarks_trap_once_per_operation(name: str) -> None:
    cause = {"syscall": "ecall_from_u", "pgfault": "load_page_fault", "divzero": "breakpoint"}[name]
    for n in (0, 7):
        result = boot(build_microbench(name, n))
        assert result.status == "pass" and result.uart == f"microbench: {name} ok\n"
        extra = 1 if name == "syscall" else 0  # the final exit() is an ecall too
        assert result.traps[cause] == n + 1 + extra  # the warm-up operation, then n more


def test_kernel_benchmarks_run_in_s_mode_without_traps() -> None:
    for name in ("in", "out", "cr8wr", "call/ret", "ptemod"):
        result = boot(build_microbench(name, 5))
        assert result.status == "pass", (name, result.uart)
        assert set(result.traps) <= {"ecall_from_s"}, (name, result.traps)  # only the SBI shutdown


def test_the_kernel_checks_its_own_results() -> None:
    bad = patch_words(build_microbench("syscall", 3), {"mb_bench": 99})
    result = boot(bad)
    assert (result.status, result.exit_code) == ("fail", 8)
    assert "FAIL" in result.uart
    with pytest.raises(MicrobenchError, match="ended fail"):
        run_microbench(lambda image: native_runner()(bad), ["syscall"], iterations=1)


def test_image_boots_behind_the_firmware_and_keeps_the_parameters_in_the_kernel_part() -> None:
    image = build_microbench("ptemod", 42)
    assert image.entry < KERNEL_BASE  # the firmware's reset vector
    kernel = [s for s in image.segments if s.addr >= KERNEL_BASE]
    addr = image.symbols["mb_iters"]
    seg = next(s for s in kernel if s.addr <= addr < s.addr + len(s.data))
    assert int.from_bytes(seg.data[addr - seg.addr : addr - seg.addr + 4], "little") == 42


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="iterations"):
        run_microbench(native_runner(), ["syscall"], iterations=0)
    with pytest.raises(ConfigError, match="unknown microbenchmark 'getpid'"):
        run_microbench(native_runner(), ["getpid"], iterations=1)
    with pytest.raises(ConfigError, match="iterations"):
        build_microbench("in", -1)


def test_the_same_image_runs_in_a_vm_and_costs_more_there() -> None:
    # The VMM loads only the kernel part and acts as the SBI firmware (full emulation here).
    benches = ["syscall", "ptemod"]
    native = run_microbench(native_runner(), benches, iterations=4)
    emulated = run_microbench(vm_runner("emulate"), benches, iterations=4)
    for name in benches:
        assert emulated[name].net > native[name].net > 0


def test_profiles_cite_every_hypervisor_number() -> None:
    assert "2006-p4" in list_profiles()
    for name in ("2006-p4", "modern-x86", "default"):
        model = load_profile(name)
        assert set(HV_KEYS) <= set(model.sections["hypervisor"]), name
        text = list_profiles()[name].read_text()
        assert "[hypervisor]" in text
        for line in text.splitlines():
            if re.match(r"\s*[a-z_]+\s*=\s*\d", line):
                assert "#" in line and len(line.split("#", 1)[1].strip()) > 10, (name, line)
    p4, modern = load_profile("2006-p4"), load_profile("modern-x86")
    assert p4.get("hypervisor", "exit_hw") > modern.get("hypervisor", "exit_hw")  # VT-x exits got cheaper
    assert p4.timebase_divisor == 380  # 3.8 GHz over a 10 MHz timebase


def test_core_schema_and_plugin_agree_on_hypervisor_defaults() -> None:
    core = schema()["hypervisor"]
    for key in HV_KEYS:
        assert core[key] == HYPERVISOR_COSTS[key], key


def test_profiles_change_cycles_in_the_expected_direction() -> None:
    benches = ["syscall", "call/ret"]
    p4 = run_microbench(native_runner("2006-p4"), benches, iterations=4)
    modern = run_microbench(native_runner("modern-x86"), benches, iterations=4)
    assert p4["syscall"].net > modern["syscall"].net  # Netburst traps are slower than Skylake's
    assert p4["call/ret"].net == modern["call/ret"].net  # both charge 2 cycles per jump


def test_table_and_direction_checks() -> None:
    def r(name: str, net: float) -> BenchResult:
        return BenchResult(name, BENCHMARKS[name].mode, 10, int(net * 10) + 1000, 1000, 0.0)

    results = {"native": {"syscall": r("syscall", 100), "ptemod": r("ptemod", 10)},
               "hw": {"syscall": r("syscall", 110), "ptemod": r("ptemod", 9)},
               "trap": {"ptemod": r("ptemod", 500)}}  # fmt: skip
    table = markdown_table(results)
    lines = table.splitlines()
    assert lines[0].startswith("| benchmark | our operation | native | hw | trap | paper native")
    assert "| syscall |" in lines[2] and "| 100 | 110 |" in lines[2] and "n/f" in lines[2]
    checks = "\n".join(direction_checks(results))
    assert "syscall: hw is 1.10x native" in checks and "close to native: matches" in checks
    assert "ptemod: trap is 50.00x native" in checks and "far above native: matches" in checks


def test_cli_prints_a_markdown_table_and_reports_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--table", "--benches", "syscall,callret", "--iterations", "4", "--no-paper"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| benchmark | our operation | native |"
    assert out[2].startswith("| syscall |") and out[3].startswith("| call/ret |")
    assert main(["--columns", "bogus"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown microbenchmark column 'bogus'" in err
