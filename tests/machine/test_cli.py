"""``virtlevels machine run|asm|disasm``: exit statuses, UART on stdout, --json, --stats, --trace,
--harts, --input, engines, and one-line errors for bad input files.

Runs whose guest prints go through a subprocess (the UART echo writes bytes to stdout); the
others use the in-process ``run_cli`` fixture.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from virtlevels.machine.elf import load_elf
from virtlevels.testing import CliResult

REPO = Path(__file__).resolve().parents[2]

HELLO = r"""
    .equ UART, 0x10000000
    .equ FINISHER, 0x100000
    .globl _start
_start:
    li t0, UART
    la t1, message
1:  lbu t2, 0(t1)
    beqz t2, 2f
    sb t2, 0(t0)
    addi t1, t1, 1
    j 1b
2:  li t0, FINISHER
    li t1, 0x5555
    sw t1, 0(t0)
3:  j 3b
    .data
message:
    .asciz "hello\n"
"""

# An ECALL into a handler that fails through the test finisher with code 3.
ECALL_FAIL3 = r"""
    .globl _start
_start:
    la t0, handler
    csrw mtvec, t0
    ecall
handler:
    li t0, 0x100000
    li t1, (3 << 16) | 0x3333
    sw t1, 0(t0)
1:  j 1b
"""

HTIF_EXIT = r"""
    .globl _start
_start:
    la t0, tohost
    li t1, ({code} << 1) | 1
    sw t1, 0(t0)
    sw zero, 4(t0)
1:  j 1b
    .section .tohost, "aw", @progbits
    .balign 8
tohost: .dword 0
fromhost: .dword 0
"""

LOOP = "_start:\n    j _start\n"
WFI_FOREVER = "_start:\n    wfi\n    j _start\n"  # mie = 0: nothing can wake it

# Each hart prints 'A' + its hart id (a0); hart 0 waits for hart 1's flag, then passes.
TWO_HARTS = r"""
    .globl _start
_start:
    li t0, 0x10000000
    addi t1, a0, 'A'
    sb t1, 0(t0)
    la t2, flag
    bnez a0, 2f
1:  lw t3, 0(t2)
    beqz t3, 1b
    li t0, 0x100000
    li t1, 0x5555
    sw t1, 0(t0)
    j .
2:  li t3, 1
    sw t3, 0(t2)
3:  wfi
    j 3b
    .data
flag: .word 0
"""

# Echo UART input upper-cased until a newline (16550: LSR bit 0 = data ready).
UPCASE = r"""
    .globl _start
_start:
    li s0, 0x10000000
1:  lbu t0, 5(s0)
    andi t0, t0, 1
    beqz t0, 1b
    lbu t1, 0(s0)
    li t2, '\n'
    beq t1, t2, 2f
    addi t1, t1, 'A' - 'a'
    sb t1, 0(s0)
    j 1b
2:  sb t1, 0(s0)
    li t0, 0x100000
    li t1, 0x5555
    sw t1, 0(t0)
    j .
"""

RunCli = Callable[..., CliResult]
Write = Callable[[str, str], Path]

TRACE_LINE = re.compile(r"^core +0: M 0x[0-9a-f]{8} \(0x[0-9a-f]{8}\) \S.*$")


def fast_engine_missing() -> str | None:
    try:
        import virtlevels.machine.engines.fast  # noqa: F401
    except ImportError as exc:
        return f"the fast engine is not available: {exc}"
    return None


@pytest.fixture
def write(tmp_path: Path) -> Write:
    def write_file(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write_file


def cli(*args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """The CLI in a subprocess, with stdout as bytes (what the guest wrote to the UART)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "plugins")]))
    code = "from virtlevels.cli.main import main; raise SystemExit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], input=stdin, capture_output=True, env=env, timeout=120
    )


def assert_one_line_error(result: CliResult, *needles: str) -> None:
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("virtlevels: error: ")
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


# -- exit statuses --------------------------------------------------------------------------------
def test_passing_program_prints_uart_output_and_exits_0(write: Write) -> None:
    proc = cli("machine", "run", write("hello.S", HELLO))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"hello\n", b"")


def test_finisher_failure_code_is_the_exit_status(run_cli: RunCli, write: Write) -> None:
    result = run_cli("machine", "run", str(write("fail3.S", ECALL_FAIL3)))
    assert (result.exit_code, result.stdout) == (3, "")


@pytest.mark.parametrize(("code", "status"), [(0, 0), (5, 5), (256, 1), (258, 2)])
def test_htif_failing_test_number_is_the_exit_status(
    run_cli: RunCli, write: Write, code: int, status: int
) -> None:
    # cli.py: the failure code mod 256, and 1 where that would read as success.
    result = run_cli("machine", "run", str(write("htif.S", HTIF_EXIT.format(code=code))))
    assert result.exit_code == status


def test_instruction_limit_exits_124(run_cli: RunCli, write: Write) -> None:
    result = run_cli("machine", "run", "--max-instructions", "1000", "--json", str(write("loop.S", LOOP)))
    assert result.exit_code == 124
    data = json.loads(result.stdout)
    assert (data["status"], data["instructions"], data["exit_status"]) == ("limit", 1000, 124)


def test_wfi_with_interrupts_disabled_exits_125(run_cli: RunCli, write: Write) -> None:
    result = run_cli("machine", "run", "--json", str(write("wfi.S", WFI_FOREVER)))
    assert result.exit_code == 125
    assert json.loads(result.stdout)["status"] == "wfi-deadlock"


# -- reports --------------------------------------------------------------------------------------
def test_json_output(run_cli: RunCli, write: Write) -> None:
    result = run_cli("machine", "run", "--json", str(write("hello.S", HELLO)))
    assert result.exit_code == 0
    data = json.loads(result.stdout)  # the UART goes inside the JSON, not before it
    assert set(data) >= {
        "status",
        "exit_code",
        "exit_status",
        "instructions",
        "cycles",
        "cycles_by_category",
        "instructions_by_class",
        "traps",
        "uart",
        "engine",
        "profile",
    }
    assert (data["status"], data["exit_code"], data["exit_status"]) == ("pass", 0, 0)
    assert (data["uart"], data["engine"], data["profile"]) == ("hello\n", "interp", "default")
    assert data["instructions"] == sum(data["instructions_by_class"].values()) > 0
    assert data["cycles"] == sum(data["cycles_by_category"].values()) > 0
    assert data["cycles_by_category"]["mmio"] > 0  # six UART writes and the finisher


def test_json_is_deterministic(run_cli: RunCli, write: Write) -> None:
    path = str(write("hello.S", HELLO))
    assert (
        run_cli("machine", "run", "--json", path).stdout == run_cli("machine", "run", "--json", path).stdout
    )


def test_stats_on_stderr(run_cli: RunCli, write: Write) -> None:
    result = run_cli("machine", "run", "--stats", str(write("fail3.S", ECALL_FAIL3)))
    assert (result.exit_code, result.stdout) == (3, "")
    err = result.stderr
    for heading in (
        "status: fail (code 3)",
        "instructions: ",
        "cycles: ",
        "cycles by category:",
        "instructions by class:",
        "traps:",
    ):
        assert heading in err
    assert re.search(r"^  ecall_from_m +1$", err, re.MULTILINE)
    assert re.search(r"^  csr +1$", err, re.MULTILINE)  # the csrw mtvec
    # Seven instructions retire; the ECALL raises an exception instead (Priv 3.1.11: not retired).
    assert "instructions: 7\n" in err and "system" not in err


def test_trace_lists_instructions_and_the_trap(run_cli: RunCli, write: Write) -> None:
    path = write("fail3.S", ECALL_FAIL3)
    result = run_cli("machine", "run", "--trace", str(path))
    assert result.exit_code == 3
    lines = result.stderr.splitlines()
    trap_lines = [line for line in lines if "exception" in line]
    insn_lines = [line for line in lines if line not in trap_lines]
    assert insn_lines and all(TRACE_LINE.match(line) for line in insn_lines), lines
    assert insn_lines[0] == "core   0: M 0x80000000 (0x00000297) auipc\tt0,0x0"
    assert any(line.endswith(" ecall") for line in insn_lines)
    # la (2) + csrw: the ecall is the fourth instruction
    assert trap_lines == ["core   0: exception ecall_from_m, epc 0x8000000c, tval 0x00000000, M->M"]
    assert lines.index(trap_lines[0]) == 4  # logged right after the ecall's own line


def test_trace_traps_only(run_cli: RunCli, write: Write) -> None:
    result = run_cli("machine", "run", "--trace-traps", str(write("fail3.S", ECALL_FAIL3)))
    assert result.stderr.splitlines() == [
        "core   0: exception ecall_from_m, epc 0x8000000c, tval 0x00000000, M->M"
    ]


# -- harts, input, engines ------------------------------------------------------------------------
def test_two_harts_each_write(write: Write) -> None:
    proc = cli("machine", "run", "--harts", "2", write("harts.S", TWO_HARTS))
    assert proc.returncode == 0
    assert sorted(proc.stdout) == sorted(b"AB")


def test_one_hart_does_not_print_for_two(run_cli: RunCli, write: Write) -> None:
    # With one hart nobody sets the flag: hart 0 spins until the limit.
    result = run_cli(
        "machine", "run", "--json", "--max-instructions", "5000", str(write("harts.S", TWO_HARTS))
    )
    data = json.loads(result.stdout)
    assert (result.exit_code, data["uart"]) == (124, "A")


def test_input_file_feeds_the_uart(write: Write) -> None:
    typed = write("typed.txt", "virt\nignored")
    proc = cli("machine", "run", "--input", typed, write("upcase.S", UPCASE))
    assert (proc.returncode, proc.stdout) == (0, b"VIRT\n")


def test_input_from_stdin(write: Write) -> None:
    proc = cli("machine", "run", "--input", "-", write("upcase.S", UPCASE), stdin=b"abc\n")
    assert (proc.returncode, proc.stdout) == (0, b"ABC\n")


@pytest.mark.skipif(fast_engine_missing() is not None, reason=str(fast_engine_missing()))
def test_fast_engine_runs_the_same(run_cli: RunCli, write: Write) -> None:
    path = str(write("hello.S", HELLO))
    proc = cli("machine", "run", "--engine", "fast", path)
    assert (proc.returncode, proc.stdout) == (0, b"hello\n")
    fast = json.loads(run_cli("machine", "run", "--engine", "fast", "--json", path).stdout)
    interp = json.loads(run_cli("machine", "run", "--json", path).stdout)
    assert fast.pop("engine") == "fast"
    interp.pop("engine")
    assert fast == interp  # same instructions, cycles and categories


def test_unknown_engine_is_a_usage_error(run_cli: RunCli, write: Write) -> None:
    result = run_cli("machine", "run", "--engine", "jit", str(write("loop.S", LOOP)))
    assert result.exit_code != 0 and "Traceback" not in result.stderr


# -- asm and disasm -------------------------------------------------------------------------------
def test_asm_writes_an_elf_that_disasm_lists_and_runs(run_cli: RunCli, write: Write, tmp_path: Path) -> None:
    src = write("hello.S", HELLO)
    elf = tmp_path / "hello.elf"
    result = run_cli("machine", "asm", str(src), "-o", str(elf))
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    image = load_elf(elf.read_bytes(), str(elf))
    assert image.entry == 0x8000_0000 and "message" in image.symbols
    listing = run_cli("machine", "disasm", str(elf))
    assert listing.exit_code == 0
    lines = listing.stdout.splitlines()
    assert "80000000 <_start>:" in lines
    assert any(re.match(r"^80000000:\t100002b7 +\tlui\tt0,0x10000$", line) for line in lines), lines
    assert any("<message>" in line for line in lines)  # la's target is named
    # The ELF runs like the source.
    proc = cli("machine", "run", elf)
    assert (proc.returncode, proc.stdout) == (0, b"hello\n")


def test_disasm_of_source_matches_disasm_of_its_elf(run_cli: RunCli, write: Write, tmp_path: Path) -> None:
    src = write("hello.S", HELLO)
    elf = tmp_path / "hello.elf"
    run_cli("machine", "asm", str(src), "-o", str(elf))
    assert run_cli("machine", "disasm", str(src)).stdout == run_cli("machine", "disasm", str(elf)).stdout


@pytest.mark.skipif(
    shutil.which("riscv64-unknown-elf-objdump") is None,
    reason="riscv64-unknown-elf-objdump not installed (apt install binutils-riscv64-unknown-elf)",
)
def test_gnu_objdump_reads_our_elf(run_cli: RunCli, write: Write, tmp_path: Path) -> None:
    elf = tmp_path / "hello.elf"
    run_cli("machine", "asm", str(write("hello.S", HELLO)), "-o", str(elf))
    proc = subprocess.run(
        ["riscv64-unknown-elf-objdump", "-d", str(elf)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "file format elf32-littleriscv" in proc.stdout
    ours = run_cli("machine", "disasm", str(elf)).stdout.splitlines()
    gnu = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(gnu) if line.startswith("Disassembly of section .text"))
    # objdump -d lists only .text; our listing of the same file starts with the same lines.
    body = [line for line in gnu[start + 1 :] if line]
    listed = [line for line in ours if line]
    assert len(body) > 10 and listed[: len(body)] == body


def test_asm_with_base(run_cli: RunCli, write: Write, tmp_path: Path) -> None:
    elf = tmp_path / "high.elf"
    assert (
        run_cli(
            "machine", "asm", str(write("loop.S", LOOP)), "-o", str(elf), "--base", "0x80100000"
        ).exit_code
        == 0
    )
    assert load_elf(elf.read_bytes(), str(elf)).entry == 0x8010_0000


# -- bad input ------------------------------------------------------------------------------------
def test_malformed_elf_is_one_line_error(run_cli: RunCli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.elf"
    bad.write_bytes(b"\x7fELF\x01\x01\x01garbage")
    assert_one_line_error(run_cli("machine", "run", str(bad)), "bad.elf", "truncated")
    assert_one_line_error(run_cli("machine", "disasm", str(bad)), "bad.elf")


def test_elf_for_another_machine_is_one_line_error(run_cli: RunCli, tmp_path: Path) -> None:
    # A 64-bit ELF header (EI_CLASS = 2): the loader names the problem.
    header = bytearray(64)
    header[:7] = b"\x7fELF\x02\x01\x01"
    bad = tmp_path / "rv64.elf"
    bad.write_bytes(bytes(header))
    assert_one_line_error(run_cli("machine", "run", str(bad)), "rv64.elf")


@pytest.mark.parametrize("verb", ["run", "asm", "disasm"])
def test_assembly_error_names_file_line_and_text(run_cli: RunCli, write: Write, verb: str) -> None:
    src = write("bad.S", "_start:\n    nop\n    addi a0, a0, 5000\n")
    args = ["machine", verb, str(src)] + (["-o", str(src.with_suffix(".elf"))] if verb == "asm" else [])
    result = run_cli(*args)
    assert_one_line_error(result, "bad.S:3:", "addi a0, a0, 5000")
    assert not src.with_suffix(".elf").exists()


def test_unknown_instruction_error(run_cli: RunCli, write: Write) -> None:
    result = run_cli("machine", "run", str(write("typo.S", "_start:\n    adi a0, a0, 1\n")))
    assert_one_line_error(result, "typo.S:2:", "adi")


def test_missing_file_is_one_line_error(run_cli: RunCli, tmp_path: Path) -> None:
    assert_one_line_error(run_cli("machine", "run", str(tmp_path / "nothing.elf")), "nothing.elf")


def test_binary_that_is_not_elf_or_text(run_cli: RunCli, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\xff\xfe\x00\x80" * 8)
    assert_one_line_error(run_cli("machine", "run", str(blob)), "blob.bin")


def test_uart_output_in_process(run_cli: RunCli, write: Write) -> None:
    # With stdout replaced by a text stream, the UART echo decodes instead of writing bytes.
    result = run_cli("machine", "run", str(write("hello.S", HELLO)))
    assert (result.exit_code, result.stdout) == (0, "hello\n")
