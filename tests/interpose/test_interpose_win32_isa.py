"""A Win32-subset program run unchanged on the kernel; an ISA program calling through PLT stubs."""

from __future__ import annotations

from typing import Any

from virtlevels_interpose.hooks import When, hook
from virtlevels_interpose.linker import HOSTCALL_BASE, Linker, libcall, linked
from virtlevels_interpose.win32 import (
    CREATE_ALWAYS,
    ERROR_FILE_NOT_FOUND,
    GENERIC_READ,
    GENERIC_WRITE,
    INVALID_HANDLE_VALUE,
    KERNEL32,
    MEM_COMMIT,
    MEM_RELEASE,
    OPEN_EXISTING,
    PAGE_READWRITE,
    STD_OUTPUT_HANDLE,
)  # fmt: skip

from virtlevels.kernel.kernel import Kernel
from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.elf.writer import write_elf
from virtlevels.world import World


def test_win32_program_runs_on_the_kernel_and_its_cost_is_reported() -> None:
    got: dict[str, Any] = {}

    @linked(needed=[KERNEL32])
    def winprog() -> Any:
        out = yield from libcall.GetStdHandle(STD_OUTPUT_HANDLE)
        yield from libcall.WriteFile(out, b"hi\r\n", 4, 0, 0)
        h = yield from libcall.CreateFileA("C:\\tmp\\f.txt", GENERIC_WRITE, 0, 0, CREATE_ALWAYS, 0, 0)
        n: list[int] = []
        got["write"] = yield from libcall.WriteFile(h, b"payload", 7, n, 0)
        got["written"] = n[0]
        yield from libcall.CloseHandle(h)
        h = yield from libcall.CreateFileA("C:\\tmp\\f.txt", GENERIC_READ, 0, 0, OPEN_EXISTING, 0, 0)
        buf = bytearray(16)
        yield from libcall.ReadFile(h, buf, 16, n, 0)
        got["read"] = bytes(buf[: n[0]])
        first = yield from libcall.CloseHandle(h)
        got["close_twice"] = (first, (yield from libcall.CloseHandle(h)))
        bad = yield from libcall.CreateFileA("C:\\nope\\x", GENERIC_READ, 0, 0, OPEN_EXISTING, 0, 0)
        got["bad"] = (bad, (yield from libcall.GetLastError()))
        mem = yield from libcall.VirtualAlloc(0, 5000, MEM_COMMIT, PAGE_READWRITE)
        got["valloc"] = mem
        got["vfree"] = yield from libcall.VirtualFree(mem, 0, MEM_RELEASE)
        got["pid"] = yield from libcall.GetCurrentProcessId()
        t0 = yield from libcall.GetTickCount()
        yield from libcall.Sleep(250)
        got["ticks"] = (yield from libcall.GetTickCount()) - t0
        yield from libcall.ExitProcess(7)
        return 0

    k = Kernel(hostname="h")
    ld = Linker.of(k)
    k.install_program("/bin/winprog", program=winprog)
    t = k.spawn("/bin/winprog", ["winprog"], stdio=True)
    k.run()
    pid = t.process.host_pid
    assert k.console.decode() == "hi\r\n"
    assert k.read_file("/tmp/f.txt") == b"payload"
    assert got["write"] == 1 and got["written"] == 7 and got["read"] == b"payload"
    assert got["close_twice"] == (1, 0)
    assert got["bad"] == (INVALID_HANDLE_VALUE, ERROR_FILE_NOT_FOUND)
    assert got["valloc"] != 0 and got["vfree"] == 1
    assert got["pid"] == pid
    assert got["ticks"] >= 250
    assert k.exit_status[pid] == 7 << 8
    s = ld.stats(pid)
    assert s["translated_calls"] == s["total_calls"] > 15
    assert s["translated_cycles"] == s["translated_calls"] * ld.c["win32"] > 0
    assert "API translation" in ld.report(pid)


def _plt(name: str) -> str:
    # The RISC-V psABI's PLT entry: load the GOT word, jump with t1 as the link register.
    return f"""{name}_plt:
1:  auipc t3, %pcrel_hi(__vl_got_{name})
    lw t3, %pcrel_lo(1b)(t3)
    jalr t1, t3
"""


def _isa_kernel(syms: list[str], body: str, data: str) -> tuple[Kernel, Linker]:
    src = (
        "    .text\n    .globl _start\n_start:\n"
        + body
        + "".join(_plt(n) for n in syms)
        + "    .data\n"
        + data
        + "    .balign 4\n"
        + "".join(f"__vl_got_{n}: .word 0\n" for n in syms)
    )
    world = World(entry_points=False)
    k = Kernel(world, machine=virt_machine(world=world))
    ld = Linker.of(k)
    k.write_file("/bin/p", write_elf(assemble(src, base=0x10000)), 0o755)
    return k, ld


BODY = """
    la a0, fmt
    li a1, 42
    call printf_plt
    li a0, 16
    call malloc_plt
    mv s0, a0
    la a1, word
    call strcpy_plt
    mv a0, s0
    call strlen_plt
    call exit_plt
"""
DATA = 'fmt: .asciz "answer %d\\n"\nword: .asciz "seven!!"\n'


def test_isa_program_calls_libc_through_plt_stubs() -> None:
    k, ld = _isa_kernel(["printf", "malloc", "strcpy", "strlen", "exit"], BODY, DATA)
    t = k.spawn("/bin/p", ["p"], stdio=True)
    k.run()
    pid = t.process.host_pid
    assert k.console.decode() == "answer 42\n"
    assert k.exit_status[pid] == 7 << 8  # exit(strlen("seven!!"))
    s = ld.stats(pid)
    assert s["hostcall_traps"] == 5 and s["total_calls"] == 5
    assert s["bind_cycles"] == 5 * ld.c["bind"]
    assert s["plt_cycles"] > 0
    assert k.machine.stats()["cycles_by_category"]["library"] == 5 * ld.c["hostcall"]


def test_isa_hooks_and_unresolved_symbol() -> None:
    k, ld = _isa_kernel(["printf", "malloc", "strcpy", "strlen", "exit"], BODY, DATA)
    hook(k, "printf", lambda h, args: [args[0], 99, *args[2:]], When.ENTER)
    hook(k, "strlen", lambda h, *a: 3, When.REPLACE)
    t = k.spawn("/bin/p", ["p"], stdio=True)
    k.run()
    assert k.console.decode() == "answer 99\n"
    assert k.exit_status[t.process.host_pid] == 3 << 8
    # A program importing a symbol nobody defines: ld.so's error, exit 127, before main runs.
    k2, _ = _isa_kernel(["nosuchfn"], "    call nosuchfn_plt\n", "")
    t2 = k2.spawn("/bin/p", ["p"], stdio=True)
    k2.run()
    assert "undefined symbol: nosuchfn" in k2.console.decode()
    assert k2.exit_status[t2.process.host_pid] == 127 << 8
    assert HOSTCALL_BASE > 0x8000_0000  # the window is outside user space: only a trap reaches it
