"""Guest MIPS of the two engines: ``python benchmarks/machine_mips.py [--quick]``.

Workloads:
  (a) a tight integer loop (counter, accumulator, xor; a branch) in M-mode;
  (b) a load/store loop over a 16 KiB array in S-mode under Sv32 paging (the program builds its
      page table, turns on satp and drops to S with mret);
  (c) a C program (sieve, insertion sort, CRC-32) built with riscv64-unknown-elf-gcc, when present.

Each row is run through ``PhysicalMachine.run`` (so the machine's per-quantum bookkeeping is
included) with the default profile (quantum 1000) and with the quantum raised to 10000, which
shows the engine's own speed. The best of three timings is reported. Wall-clock numbers are for
reading, never for tests.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from virtlevels.cost import load_profile
from virtlevels.machine.asm import assemble
from virtlevels.machine.elf.loader import load_elf_file
from virtlevels.machine.image import Image
from virtlevels.machine.machine import PhysicalMachine

TIGHT = """
.text
.globl _start
_start:
    li t0, 0
    li t1, {n}
    li t2, 0
1:  addi t0, t0, 1
    add t2, t2, t0
    xori t2, t2, 0x55
    bne t0, t1, 1b
    la a0, tohost
    li a1, 1
    sw a1, 0(a0)
    sw zero, 4(a0)
2:  j 2b
.data
.align 6
tohost: .word 0, 0
fromhost: .word 0, 0
"""

LOADSTORE_SV32 = """
.text
.globl _start
_start:
    la t0, root           # one megapage, identity, R W X A D (kernel only)
    li t1, 0x200000CF
    li t2, 0x800          # entry 0x200: VA 0x8000_0000
    add t2, t0, t2
    sw t1, 0(t2)
    srli t0, t0, 12
    li t1, 0x80000000     # MODE = Sv32
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    la t0, smain
    csrw mepc, t0
    li t0, 0x800          # MPP = S
    csrw mstatus, t0
    mret
smain:
    li s0, {n}            # passes over the array
outer:
    la t0, array
    li t1, 16384
    add t1, t0, t1
inner:
    lw t3, 0(t0)
    add t3, t3, s0
    sw t3, 0(t0)
    lw t4, 4(t0)
    xor t4, t4, t3
    sw t4, 4(t0)
    addi t0, t0, 8
    bne t0, t1, inner
    addi s0, s0, -1
    bnez s0, outer
    la a0, tohost
    li a1, 1
    sw a1, 0(a0)
    sw zero, 4(a0)
2:  j 2b
.data
.align 6
tohost: .word 0, 0
fromhost: .word 0, 0
.align 12
root: .space 4096
array: .space 16384
"""

C_START = """
    .section .text.start
    .globl _start
_start:
    la sp, stack_top
    call main
    la t0, tohost
    slli a0, a0, 1
    ori a0, a0, 1
    sw a0, 0(t0)
    sw zero, 4(t0)
1:  j 1b
    .data
    .align 6
    .globl tohost
tohost: .word 0, 0
fromhost: .word 0, 0
    .bss
    .align 4
    .space 16384
stack_top:
"""

C_PROGRAM = r"""
#define N 8192
static unsigned char sieve[N];
static int arr[600];
static unsigned crc_table[256];

static unsigned crc32(const unsigned char *p, int n) {
    unsigned c = 0xFFFFFFFFu;
    for (int i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

int main(void) {
    for (unsigned i = 0; i < 256; i++) {
        unsigned c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
    unsigned total = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++) sieve[i] = 1;
        for (int i = 2; i * i < N; i++)
            if (sieve[i])
                for (int j = i * i; j < N; j += i) sieve[j] = 0;
        int primes = 0;
        for (int i = 2; i < N; i++) primes += sieve[i];
        unsigned seed = 12345u + round;
        for (int i = 0; i < 600; i++) { seed = seed * 1103515245u + 12345u; arr[i] = (int)(seed >> 8); }
        for (int i = 1; i < 600; i++) {
            int v = arr[i], j = i - 1;
            while (j >= 0 && arr[j] > v) { arr[j + 1] = arr[j]; j--; }
            arr[j + 1] = v;
        }
        total += primes + crc32(sieve, N) + (unsigned)arr[300] / 7u;
    }
    return total == 0;  /* 0 = pass */
}
"""


def _tight(n: int) -> Image:
    return assemble(TIGHT.format(n=n), origins={".data": 0x8001_0000})


def _loadstore(n: int) -> Image:
    return assemble(LOADSTORE_SV32.format(n=n), origins={".data": 0x8001_0000})


def _c_program(rounds: int, workdir: Path) -> Image | None:
    gcc = shutil.which("riscv64-unknown-elf-gcc")
    if gcc is None:
        return None
    (workdir / "start.S").write_text(C_START)
    (workdir / "prog.c").write_text(C_PROGRAM)
    out = workdir / "prog.elf"
    cmd = [
        gcc, "-march=rv32ima_zicsr_zifencei", "-mabi=ilp32", "-O2", "-nostdlib", "-static",
        "-fno-tree-loop-distribute-patterns",  # no memset calls: there is no libc
        f"-DROUNDS={rounds}", "-Wl,-Ttext=0x80000000", "-o", str(out),
        str(workdir / "start.S"), str(workdir / "prog.c"),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return load_elf_file(out)


def measure(image: Image, engine: str, quantum: int, limit: int, repeat: int) -> tuple[float, int, str]:
    """Best-of-``repeat`` guest MIPS (instructions / wall second) of running ``image``."""
    profile = load_profile("default").evolve(quantum=quantum)
    best = float("inf")
    n = 0
    status = ""
    for _ in range(repeat):
        m = PhysicalMachine(profile=profile)
        m.load(image)
        t0 = time.perf_counter()
        r = m.run(max_instructions=limit, engine=engine)
        dt = time.perf_counter() - t0
        best = min(best, dt)
        n, status = r.instructions, r.status
    return n / best / 1e6, n, status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    repeat = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        c_image = _c_program(3, Path(tmp))
    rows: list[tuple[str, Image | None, int, int]] = [
        # name, image, fast-engine instruction limit, interpreter limit
        ("(a) tight integer loop", _tight(10_000_000), 40_000_000 // scale, 3_000_000 // scale),
        ("(b) load/store loop, Sv32, S-mode", _loadstore(1000), 20_000_000 // scale, 2_000_000 // scale),
        ("(c) C program (gcc -O2)", c_image, 20_000_000 // scale, 2_000_000 // scale),
    ]
    print(f"{'workload':36} {'quantum':>7} {'interp MIPS':>12} {'fast MIPS':>10} {'speedup':>8}")
    for name, image, fast_n, interp_n in rows:
        if image is None:
            print(f"{name:36} skipped: riscv64-unknown-elf-gcc not found")
            continue
        for quantum in (load_profile("default").quantum, 10_000):
            i_mips, _n, _s = measure(image, "interp", quantum, interp_n, repeat)
            f_mips, _n, _s = measure(image, "fast", quantum, fast_n, repeat)
            print(f"{name:36} {quantum:>7} {i_mips:>12.2f} {f_mips:>10.2f} {f_mips / i_mips:>7.1f}x")


if __name__ == "__main__":
    main()
