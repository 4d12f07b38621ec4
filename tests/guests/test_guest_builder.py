"""Building teachos images: program linking, errors, the ELF path through the CLI, and QEMU."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from guest_helpers import run_teachos

from virtlevels.errors import AssemblyError, ConfigError
from virtlevels.guests import UserProgram, boot_teachos, build_teachos, link_user_program, program_names
from virtlevels.guests import layout as L
from virtlevels.guests.__main__ import main as guests_main
from virtlevels.guests.builder import _assemble_parts
from virtlevels.machine.board import virt_machine
from virtlevels.machine.elf import load_elf
from virtlevels.testing import CliResult


def test_shipped_programs_are_listed() -> None:
    assert {"hello", "counter", "getpid-loop", "memtouch", "fault"} <= set(program_names())


def test_image_starts_in_the_firmware_and_places_each_process_in_its_region() -> None:
    image = build_teachos(["hello", "counter"])
    assert image.entry == L.FW_BASE
    assert image.symbols["_start"] == L.KERNEL_BASE  # the kernel's entry is FW_JUMP_ADDR
    by_name = {s.name: s.addr for s in image.segments}
    assert by_name["hello.text"] == L.USER_REGION_BASE + L.USER_BASE
    assert by_name["counter.text"] == L.USER_REGION_BASE + L.USER_REGION_SIZE + L.USER_BASE


def test_user_program_groups_get_their_own_pages_and_permissions() -> None:
    linked = link_user_program(UserProgram("p", """
        .globl _start
    _start: j _start
        .rodata
    r: .word 1
        .data
    d: .word 2
        .bss
    b: .space 8000
    """), 2)
    region = L.USER_REGION_BASE + 2 * L.USER_REGION_SIZE
    R, W, X = 2, 4, 8
    assert linked.mappings == (
        (0x10000, region + 0x10000, 1, R | X),
        (0x11000, region + 0x11000, 1, R),
        (0x12000, region + 0x12000, 3, R | W),  # .data and .bss (8000 bytes) share RW pages
        (L.USER_STACK_TOP - 4 * 4096, region + L.USER_STACK_PHYS_OFFSET, 4, R | W),
    )
    assert linked.entry == 0x10000
    assert linked.heap_start == 0x15000


def test_unknown_program_name_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown user program 'nope'.*hello"):
        build_teachos(["nope"])


def test_assembly_error_in_a_user_program_names_its_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.S"
    bad.write_text(".globl _start\n_start:\n    addi a0, a0, 4096\n")
    with pytest.raises(AssemblyError, match=r"bad\.S:3: .*4096"):
        build_teachos([bad])


def test_assembly_errors_in_concatenated_kernel_files_name_the_original_file() -> None:
    parts = [("one.S", "nop\nnop\n"), ("two.S", "nop\nbogus x1\n")]
    with pytest.raises(AssemblyError, match=r"^two\.S:2: "):
        _assemble_parts(parts, "all.S", L.KERNEL_BASE)


def test_too_many_programs_and_oversized_programs_are_refused() -> None:
    with pytest.raises(ConfigError, match="1 to 8 user programs, got 9"):
        build_teachos(["hello"] * 9)
    with pytest.raises(ConfigError, match="big.S.*outside the user image area"):
        build_teachos([UserProgram("big", ".globl _start\n_start: nop\n.data\n.space 0x100000\n", "big.S")])


def test_boot_refuses_a_machine_with_too_little_ram() -> None:
    with pytest.raises(ConfigError, match="at least 16 MiB"):
        boot_teachos(virt_machine(ram_size=8 << 20), build_teachos(["hello"]))


def test_more_processes_than_two_run_round_robin() -> None:
    result = run_teachos(["counter"] * 3 + ["hello"])
    assert result.status == "pass"
    assert sorted(result.uart.splitlines()) == sorted(
        [f"counter {p}: {i}" for p in (1, 2, 3) for i in range(1, 5)] + ["hello from teachos"])


def test_built_elf_runs_with_virtlevels_machine_run(
    tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    elf = tmp_path / "teachos.elf"
    assert guests_main(["build", "-o", str(elf), "--pv", "hello", "getpid-loop"]) == 0
    image = load_elf(elf.read_bytes(), str(elf))
    assert image.entry == L.FW_BASE
    res = run_cli("machine", "run", str(elf), "--json")
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["uart"] == "hello from teachos\ngetpid-loop: 200 calls\n"


def test_guests_cli_run_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert guests_main(["run", "fault"]) == 139
    assert "killed" in capsys.readouterr().out
    assert guests_main(["list"]) == 0
    assert "memtouch" in capsys.readouterr().out.split()
    assert guests_main(["run", "nonexistent"]) == 1
    assert "unknown user program" in capsys.readouterr().err


QEMU = shutil.which("qemu-system-riscv32")


@pytest.mark.skipif(QEMU is None, reason="qemu-system-riscv32 is not installed")
@pytest.mark.parametrize("paravirt", [False, True], ids=["native", "pv"])
def test_same_image_on_qemu_virt_gives_the_same_output(tmp_path: Path, paravirt: bool) -> None:
    # QEMU's timer runs on the host's clock, so preemption points differ: a long timer interval
    # (10 s) lets each program run to completion in pid order on both.
    programs = ["hello", "fault", "memtouch", "getpid-loop"]
    ours = run_teachos(programs, paravirt=paravirt, timer_interval=10**8)
    elf = tmp_path / "teachos.elf"
    pv = ["--pv"] if paravirt else []
    assert guests_main(["build", "-o", str(elf), "--timer-interval", str(10**8), *pv, *programs]) == 0
    assert QEMU is not None
    proc = subprocess.run(
        [QEMU, "-machine", "virt", "-m", "128M", "-smp", "1", "-bios", str(elf), "-nographic",
         "-monitor", "none", "-serial", "stdio"],
        capture_output=True, timeout=60, check=False,
    )
    assert proc.stdout.decode() == ours.uart
    assert proc.returncode == ours.exit_code == 139


def test_a_custom_arch_file_replaces_the_privileged_operations() -> None:
    # The hook an ISA profile uses to build teachos with its own instructions: here, the native
    # arch file with a marker, to show that the given source is what gets assembled.
    from importlib import resources

    native = resources.files("virtlevels.guests.teachos").joinpath("arch_native.S").read_text()
    custom = native.replace("arch_idle:\n", "arch_idle:\narch_custom_marker:\n")
    image = build_teachos(["hello"], arch_source=custom)
    assert "arch_custom_marker" in image.symbols
    assert image.source.startswith("teachos-custom")
    with pytest.raises(AssemblyError, match=r"^<arch source>:1: "):
        build_teachos(["hello"], arch_source="bogus instruction\n")
