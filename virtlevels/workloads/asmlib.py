"""The small runtime every assembly workload links with, and the build step (assemble + ELF).

Programs are RV32IMA user code for the Linux generic syscall ABI (a7 = number, a0-a5 = arguments,
a0 = result or -errno; include/uapi/asm-generic/unistd.h), loaded at 0x10000 like a static
executable. Each workload prints one line; the runtime assembles it in a buffer and writes it
with a single write(2), so the number of system calls does not depend on the line's length.

Runtime routines (leaf functions; they clobber only t0-t6, a0-a2 and a7):

``vl_cat(a0 = NUL-terminated string)``, ``vl_dec(a0 = unsigned)``, ``vl_hex(a0 = value,
a1 = digits)`` append to the line; ``vl_flush`` writes it to fd 1; ``vl_fail(a0 = code)`` writes
"FAIL <code>" to fd 2 and exits with status ``code`` (never returns).
"""

from __future__ import annotations

import functools

from virtlevels.kernel.signals import SIGCHLD
from virtlevels.kernel.syscalls import net as _net
from virtlevels.kernel.syscalls import numbers as _nr
from virtlevels.machine.asm import assemble
from virtlevels.machine.elf.writer import write_elf

BASE = 0x10000  # where a static RV32 Linux executable starts (ld's default text address)
LINE_MAX = 240  # bytes of output line (more is cut, never overflowed)


def _equs() -> str:
    nrs = dict(_nr.NUMBERS)
    nrs.update(socket=_net.NR_SOCKET, bind=_net.NR_BIND, sendto=_net.NR_SENDTO,
               recvfrom=_net.NR_RECVFROM, setsockopt=_net.NR_SETSOCKOPT)  # fmt: skip
    lines = [f"    .equ SYS_{name}, {nr}" for name, nr in sorted(nrs.items())]
    return "\n".join(lines) + "\n"


RUNTIME = f"""
    .text
# -- vl_cat(a0 = string): append a NUL-terminated string to the line ---------------------------
vl_cat:
    la    t0, vl_line_len
    lw    t1, 0(t0)
    la    t2, vl_line
    li    t3, {LINE_MAX}
1:  lbu   t4, 0(a0)
    beqz  t4, 2f
    bgeu  t1, t3, 2f
    add   t5, t2, t1
    sb    t4, 0(t5)
    addi  t1, t1, 1
    addi  a0, a0, 1
    j     1b
2:  sw    t1, 0(t0)
    ret

# -- vl_dec(a0 = unsigned): append its decimal digits -----------------------------------------
vl_dec:
    addi  sp, sp, -16
    addi  t6, sp, 15
    sb    zero, 0(t6)                  # digits are built backwards from the end of the frame
    li    t0, 10
1:  remu  t1, a0, t0
    divu  a0, a0, t0
    addi  t1, t1, '0'
    addi  t6, t6, -1
    sb    t1, 0(t6)
    bnez  a0, 1b
    mv    a0, t6
    mv    a2, ra
    call  vl_cat
    mv    ra, a2
    addi  sp, sp, 16
    ret

# -- vl_hex(a0 = value, a1 = digits 1..8): append lowercase hex, zero-padded ------------------
vl_hex:
    addi  sp, sp, -16
    addi  t6, sp, 15
    sb    zero, 0(t6)
1:  andi  t1, a0, 15
    srli  a0, a0, 4
    li    t2, 10
    bltu  t1, t2, 2f
    addi  t1, t1, 'a' - 10 - '0'
2:  addi  t1, t1, '0'
    addi  t6, t6, -1
    sb    t1, 0(t6)
    addi  a1, a1, -1
    bnez  a1, 1b
    mv    a0, t6
    mv    a2, ra
    call  vl_cat
    mv    ra, a2
    addi  sp, sp, 16
    ret

# -- vl_flush(): write(1, line, len) and empty the line ----------------------------------------
vl_flush:
    li    a0, 1
    la    a1, vl_line
    la    t0, vl_line_len
    lw    a2, 0(t0)
    sw    zero, 0(t0)
    li    a7, SYS_write
    ecall
    ret

# -- vl_fail(a0 = code): "FAIL <code>" on stderr, exit_group(code) -----------------------------
vl_fail:
    mv    s11, a0
    la    t0, vl_line_len
    sw    zero, 0(t0)
    la    a0, vl_fail_msg
    call  vl_cat
    mv    a0, s11
    call  vl_dec
    li    a0, 10
    la    t0, vl_line_len
    lw    t1, 0(t0)
    la    t2, vl_line
    add   t2, t2, t1
    sb    a0, 0(t2)
    addi  t1, t1, 1
    sw    t1, 0(t0)
    li    a0, 2
    la    a1, vl_line
    mv    a2, t1
    li    a7, SYS_write
    ecall
    mv    a0, s11
    li    a7, SYS_exit_group
    ecall

    .rodata
vl_fail_msg: .asciz "FAIL "
    .bss
    .balign 4
vl_line_len: .space 4
vl_line:     .space {LINE_MAX + 16}
"""

EXIT_0 = """
    li    a0, 0
    li    a7, SYS_exit_group
    ecall
"""

#: fork() as glibc makes it: clone(SIGCHLD, 0, 0, 0, 0) (clone(2)); a0 = child pid, 0 or -errno.
FORK = f"""
    li    a0, {SIGCHLD}
    li    a1, 0
    li    a2, 0
    li    a3, 0
    li    a4, 0
    li    a7, SYS_clone
    ecall
"""


def exit_or_fail(code_reg: str = "s11") -> str:
    """``EXIT_0``, then the ``fail`` label: ``vl_fail`` with the exit code held in ``code_reg``."""
    return f"""{EXIT_0}fail:
    mv    a0, {code_reg}
    call  vl_fail
"""


@functools.lru_cache(maxsize=64)
def build_elf(name: str, source: str) -> bytes:
    """Assemble ``source`` (which defines ``_start``) with the syscall numbers and the runtime,
    and return the ELF bytes (deterministic for a given source)."""
    text = _equs() + "    .text\n    .globl _start\n" + source + RUNTIME
    return write_elf(assemble(text, f"<workload {name}>", base=BASE))


def asciz(label: str, text: str) -> str:
    """A ``.asciz`` line for ``text`` (escaped for the assembler)."""
    esc = "".join(
        c if c.isprintable() and c not in '"\\' else f"\\{ord(c):03o}" for c in text
    )
    return f'{label}: .asciz "{esc}"\n'
