"""The C variant of ``compute`` (``lang=1``): the same algorithm as compute.py's assembly, built with
``riscv64-unknown-elf-gcc`` (Debian's gcc-riscv64-unknown-elf) as a freestanding static rv32im
executable. It prints the same line, so its equivalence with the assembly program is checkable.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from virtlevels.errors import ConfigError
from virtlevels.workloads.compute import ALPHABET, C_COMMA, NEXT, SEED, char_class

GCC = "riscv64-unknown-elf-gcc"
# Freestanding (no libc, no memset/memcpy calls), no gp-relative data (nothing sets gp) and no
# linker relaxation, text at 0x10000 like every other workload.
CFLAGS = ("-march=rv32im", "-mabi=ilp32", "-O2", "-static", "-nostdlib", "-ffreestanding",
          "-msmall-data-limit=0", "-fno-builtin", "-fno-pic", "-fno-tree-loop-distribute-patterns",
          "-Wl,--build-id=none", "-Wl,--no-relax", "-Wl,-Ttext=0x10000")  # fmt: skip

C_SOURCE = r"""
typedef unsigned int u32;
typedef unsigned char u8;

static long sys3(long n, long a, long b, long c) {
    register long a0 asm("a0") = a;
    register long a1 asm("a1") = b;
    register long a2 asm("a2") = c;
    register long a7 asm("a7") = n;
    asm volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a7) : "memory");
    return a0;
}

struct node { struct node *next; u32 value; };
static struct node nodes[NODES];
static u32 a[N * N], b[N * N];
static u8 buf[TEXT];
static const char alphabet[] = ALPHABET;
static const u8 classes[128] = { CLASSES };
static const u8 next_state[25] = { NEXT_STATE };
static u32 crc;
static char line[96];
static int len;

static void crc_word(u32 w) {
    for (int i = 0; i < 4; i++, w >>= 8) {
        crc ^= w & 0xff;
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0xA001u : crc >> 1;
    }
}

static void cat(const char *s) { while (*s) line[len++] = *s++; }

static void dec(u32 v) {
    char t[12]; int n = 0;
    do { t[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) line[len++] = t[--n];
}

static void hex4(u32 v) {
    for (int i = 3; i >= 0; i--) {
        u32 d = (v >> (4 * i)) & 15;
        line[len++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    }
}

void _start(void) {
    u32 x = SEED;
    for (int i = 0; i < NODES; i++) {
        x = x * 1103515245u + 12345u;
        nodes[i].value = x >> 16;
        nodes[i].next = i + 1 < NODES ? &nodes[i + 1] : 0;
    }
    for (int i = 0; i < N * N; i++) { x = x * 1103515245u + 12345u; a[i] = (x >> 16) & 255; }
    for (int i = 0; i < N * N; i++) { x = x * 1103515245u + 12345u; b[i] = (x >> 16) & 255; }
    for (int i = 0; i < TEXT; i++) { x = x * 1103515245u + 12345u; buf[i] = (u8)alphabet[(x >> 16) & 15]; }
    struct node *head = &nodes[0];
    u32 it;
    for (it = 0; it < ITER; it++) {
        struct node *prev = 0, *cur = head;
        while (cur) { struct node *nx = cur->next; cur->next = prev; prev = cur; cur = nx; }
        head = prev;
        u32 h = 0, cnt = 0;
        for (cur = head; cur; cur = cur->next) {
            h = h * 31 + cur->value;
            if ((cur->value & 7) == (it & 7)) cnt++;
        }
        head->value = (head->value + h) & 0xffff;
        crc_word(h + cnt);
        u32 msum = 0;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                u32 s = 0;
                for (int k = 0; k < N; k++) s += a[i * N + k] * b[k * N + j];
                msum += s;
            }
        a[it % N] = (a[it % N] + msum) & 255;
        crc_word(msum);
        buf[it % TEXT] = (u8)alphabet[(it * 7) & 15];
        u32 counts[5] = {0, 0, 0, 0, 0};
        u32 state = 0;
        for (int i = 0; i < TEXT; i++) {
            u32 c = classes[buf[i]];
            if (c == COMMA) { counts[state]++; state = 0; }
            else state = next_state[state * 5 + c];
        }
        counts[state]++;
        u32 sr = 0;
        for (int s = 0; s < 5; s++) sr += counts[s] << (6 * s);
        crc_word(sr);
    }
    cat("compute: iterations="); dec(it); cat(" crc=0x"); hex4(crc); cat("\n");
    sys3(64, 1, (long)line, len);
    sys3(94, 0, 0, 0);
    for (;;) {}
}
"""


def have_gcc() -> bool:
    return shutil.which(GCC) is not None


@functools.lru_cache(maxsize=16)
def build_c_elf(iterations: int, nodes: int, matrix: int, text: int) -> bytes:
    """Compile the C variant for these sizes; ConfigError when the cross compiler is missing or fails."""
    gcc = shutil.which(GCC)
    if gcc is None:
        raise ConfigError(f"workload 'compute': lang=1 needs {GCC} on PATH (Debian: gcc-riscv64-unknown-elf)")
    defines = {
        "ITER": f"{iterations}u", "NODES": str(nodes), "N": str(matrix), "TEXT": str(text),
        "SEED": f"{SEED}u", "ALPHABET": f'"{ALPHABET}"', "COMMA": str(C_COMMA),
        "CLASSES": ",".join(str(char_class(c)) for c in range(128)),
        "NEXT_STATE": ",".join(str(s) for row in NEXT for s in row),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vl-compute-") as tmp:
        src = Path(tmp) / "compute.c"
        out = Path(tmp) / "compute.elf"
        src.write_text(C_SOURCE)
        cmd = [gcc, *CFLAGS, *(f"-D{k}={v}" for k, v in defines.items()), "-o", str(out), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ConfigError(f"workload 'compute': {GCC} failed: {proc.stderr.strip()[:500]}")
        return out.read_bytes()
