"""examples/machine_hello.py runs, and docs/machine.md stays true: its Python examples run, its
memory map and exit statuses match the code, and its C example builds with gcc and runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from virtlevels.machine import cli as machine_cli
from virtlevels.machine.board import virt_machine
from virtlevels.machine.elf import load_elf
from virtlevels.machine.memmap import MEMORY_MAP

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "machine_hello.py"
GUIDE = REPO / "docs" / "machine.md"
GCC = "riscv64-unknown-elf-gcc"


def fast_engine_missing() -> str | None:
    try:
        import virtlevels.machine.engines.fast  # noqa: F401
    except ImportError as exc:
        return f"the fast engine is not available: {exc}"
    return None


def fenced_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", GUIDE.read_text(), re.MULTILINE | re.DOTALL)


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "plugins")]))
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    "engine",
    ["interp", pytest.param("fast", marks=pytest.mark.skipif(fast_engine_missing() is not None,
                                                             reason=str(fast_engine_missing())))],
)  # fmt: skip
def test_machine_hello_example(engine: str) -> None:
    proc = run_example("--engine", engine)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "Hello from RV32!"
    assert re.fullmatch(
        rf"status: pass, \d+ instructions, \d+ cycles \(default profile, {engine} engine\)", lines[1]
    )
    categories = dict(line.split() for line in lines[2:])
    assert {"machine", "mmio"} <= set(categories)


def test_machine_hello_example_is_deterministic_across_engines_and_profiles() -> None:
    interp = run_example()
    assert interp.stdout == run_example().stdout
    slow = run_example("--profile", "modern-x86")
    assert slow.returncode == 0
    # Same instructions, different cycles: the profile prices them.
    count = re.compile(r"(\d+) instructions, (\d+) cycles")
    (n1, c1), (n2, c2) = (count.search(p.stdout).groups() for p in (interp, slow))  # type: ignore[union-attr]
    assert n1 == n2 and c1 != c2


def test_guide_python_examples_run() -> None:
    blocks = fenced_blocks("python")
    assert len(blocks) == 2  # "From Python" and "Snapshot and restore"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], "docs/machine.md", "exec"), namespace)  # noqa: S102 - our own docs
    # The snapshot block continues from the first one's machine.
    machine = virt_machine()
    machine.load(namespace["image"])  # type: ignore[arg-type]
    namespace["machine"] = machine
    exec(compile(blocks[1], "docs/machine.md", "exec"), namespace)  # noqa: S102


def test_guide_memory_map_matches_memmap() -> None:
    rows = {line.split("|")[1].strip(): line for line in GUIDE.read_text().splitlines()
            if line.startswith("| ") and line.count("`0x") >= 2}  # fmt: skip
    assert set(rows) == {region.name for region in MEMORY_MAP}
    for region in MEMORY_MAP:
        assert f"`0x{region.base:08x}` | `0x{region.size:x}`" in rows[region.name]


def test_guide_lists_every_exit_status() -> None:
    text = GUIDE.read_text()
    for status in (0, 1, machine_cli.EXIT_LIMIT, machine_cli.EXIT_DEADLOCK):
        assert re.search(rf"^\| {status} \|", text, re.MULTILINE), status
    for option in ("--engine", "--max-instructions", "--harts", "--profile", "--trace", "--stats", "--json",
                   "--input", "--ram", "--trace-traps"):  # fmt: skip
        assert f"`{option}" in text


@pytest.mark.skipif(
    shutil.which(GCC) is None, reason=f"{GCC} not installed (apt install gcc-riscv64-unknown-elf)"
)
def test_guide_c_example_builds_and_runs(tmp_path: Path) -> None:
    (tmp_path / "link.ld").write_text(fenced_blocks("ld")[0])
    (tmp_path / "start.S").write_text(fenced_blocks("asm")[0])
    (tmp_path / "main.c").write_text(fenced_blocks("c")[0])
    flags = re.search(r"riscv64-unknown-elf-gcc (.*?) \\\n\s+(.*?) -o fib.elf", GUIDE.read_text())
    assert flags is not None
    cmd = [GCC, *flags.group(1).split(), *flags.group(2).split(), "-o", "fib.elf"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    machine = virt_machine()
    machine.load(load_elf((tmp_path / "fib.elf").read_bytes(), "fib.elf"))
    result = machine.run(max_instructions=2_000_000)
    assert (result.status, result.uart) == ("pass", "fib(20) = 6765\n")
