"""Fixtures for the assembler/ELF/disassembler tests, including the GNU binutils reference."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import attrs
import pytest

PREFIX = "riscv64-unknown-elf-"
AS_FLAGS = ["-march=rv32ima_zicsr_zifencei", "-mabi=ilp32", "-mno-relax"]


@attrs.frozen
class GnuToolchain:
    """The Debian riscv64-unknown-elf binutils, used as the reference implementation."""

    workdir: Path

    def tool(self, name: str) -> str:
        path = shutil.which(PREFIX + name)
        assert path is not None
        return path

    def assemble(self, source: str, name: str = "prog", *, ld_args: tuple[str, ...] = ()) -> Path:
        """Assemble with GNU as and link at 0x80000000; returns the executable's path."""
        src = self.workdir / f"{name}.S"
        obj = self.workdir / f"{name}.o"
        elf = self.workdir / f"{name}.elf"
        src.write_text(source)
        self.run("as", *AS_FLAGS, str(src), "-o", str(obj))
        self.run("ld", "-m", "elf32lriscv", "-Ttext=0x80000000", *ld_args, str(obj), "-o", str(elf))
        return elf

    def run(self, tool: str, *args: str) -> str:
        proc = subprocess.run([self.tool(tool), *args], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise AssertionError(f"{PREFIX}{tool} failed: {proc.stderr}")
        return proc.stdout

    def objdump_body(self, elf: Path, *args: str) -> list[str]:
        """objdump -d output from the first 'Disassembly of section' on, without section banners."""
        out = self.run("objdump", "-d", *args, str(elf)).splitlines()
        start = next(i for i, line in enumerate(out) if line.startswith("Disassembly of section"))
        body = [line for line in out[start + 1 :] if not line.startswith("Disassembly of section")]
        while body and not body[-1]:
            body.pop()
        return body


@pytest.fixture
def gnu_toolchain(tmp_path: Path) -> GnuToolchain:
    """GNU binutils for RISC-V, or skip with the reason (CI installs binutils-riscv64-unknown-elf)."""
    missing = [t for t in ("as", "ld", "objdump") if shutil.which(PREFIX + t) is None]
    if missing:
        pytest.skip(
            f"GNU RISC-V toolchain not installed ({', '.join(PREFIX + t for t in missing)} missing; "
            "apt install binutils-riscv64-unknown-elf)"
        )
    return GnuToolchain(tmp_path)
