"""fork through libc from an ISA program, an RV32 library, the backend's lifecycle, the CLI, the
resource graph's library nodes and the per-run cost report."""

from __future__ import annotations

import json
from typing import Any

import pytest
from virtlevels_interpose import plugin
from virtlevels_interpose.backend import InterposeSpec
from virtlevels_interpose.demos import DEMOS
from virtlevels_interpose.linker import Library, Linker

from virtlevels.errors import ConfigError, LifecycleError
from virtlevels.kernel.kernel import Kernel
from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.elf.writer import write_elf
from virtlevels.taxonomy import Level
from virtlevels.world import World


def _plt(name: str) -> str:
    return f"""{name}_plt:
1:  auipc t3, %pcrel_hi(__vl_got_{name})
    lw t3, %pcrel_lo(1b)(t3)
    jalr t1, t3
"""


def _program(syms: list[str], body: str, data: str = "", needed: tuple[str, ...] = ()) -> bytes:
    needs = "__vl_needed:\n" + "".join(f'    .asciz "{n}"\n' for n in needed) + '    .asciz ""\n'
    src = (
        "    .text\n    .globl _start\n_start:\n" + body + "".join(_plt(n) for n in syms)
        + "    .data\n" + data + (needs if needed else "") + "    .balign 4\n"
        + "".join(f"__vl_got_{n}: .word 0\n" for n in syms)
    )  # fmt: skip
    return write_elf(assemble(src, base=0x10000))


def _machine_kernel(world: World | None = None) -> Kernel:
    world = world or World(entry_points=False)
    return Kernel(world, machine=virt_machine(world=world))


FORK_BODY = """
    call fork_plt
    mv s0, a0
    beqz s0, child
    mv a0, s0
    la a1, status
    li a2, 0
    call waitpid_plt
    sub s1, a0, s0
    la a0, status
    lw a0, 0(a0)
    srli a0, a0, 8
    addi a0, a0, 10
    add a0, a0, s1
    call exit_plt
child:
    la a0, msg
    call printf_plt
    li a0, 3
    call exit_plt
"""


def test_isa_fork_through_libc_child_returns_zero_and_parent_waits():
    k = _machine_kernel()
    ld = Linker.of(k)
    data = 'msg: .asciz "in child\\n"\n    .balign 4\nstatus: .word 0\n'
    k.write_file("/bin/p", _program(["fork", "waitpid", "exit", "printf"], FORK_BODY, data), 0o755)
    t = k.spawn("/bin/p", ["p"], stdio=True)
    k.run()
    # The child saw 0 from fork, printed and exited 3; the parent got its pid back from waitpid
    # (s1 = 0) and status 3 << 8: exit(3 + 10).
    assert k.console.decode() == "in child\n"
    assert k.exit_status[t.process.host_pid] == 13 << 8
    child_pids = [pid for pid in ld.by_pid if pid != t.process.host_pid]
    assert len(child_pids) == 1 and ld.stats(child_pids[0])["calls"] == {"printf": 1, "exit": 1}


LIB_SRC = """
    .text
    .globl triple
triple:
    slli t0, a0, 1
    add a0, a0, t0
    ret
"""


def _rv32_library() -> Library:
    image = assemble(LIB_SRC, base=0x3000_0000)
    return Library("libtriple.so", image=image)


def test_rv32_library_is_resolved_and_called_directly_and_shows_in_the_graph():
    world = World(entry_points=False)
    world.register_plugin(plugin, "interpose")
    k = _machine_kernel(world)
    ld = Linker.of(k)
    ld.register(_rv32_library(), path="/lib/libtriple.so")
    body = "    li a0, 14\n    call triple_plt\n    call exit_plt\n"
    k.write_file("/bin/p", _program(["triple", "exit"], body, needed=("libtriple.so",)), 0o755)
    t = k.spawn("/bin/p", ["p"], stdio=True)
    pid = t.process.host_pid
    g = world.graph
    # spawn execs the program: ld.so mapped the RV32 library and libc, and the graph shows both.
    names = sorted(g.attrs(n)["name"] for n in g.nodes("library"))
    codes = sorted(g.attrs(n)["code"] for n in g.nodes("library"))
    maps = sorted(b for _a, b, d in g.g.out_edges(t.process.graph_id, data=True) if d["kind"] == "maps_to")
    k.run()
    assert names == ["libc.so.6", "libtriple.so"] and codes == ["python", "rv32"]
    assert maps == sorted(ld.library_node(n) for n in names)
    assert k.exit_status[pid] == 42 << 8  # triple(14), computed by RV32 code in the library
    s = ld.stats(pid)
    # triple's GOT word holds its address: no host-call trap for it, only for exit (a Python function).
    assert s["hostcall_traps"] == 1 and s["calls"] == {"exit": 1}
    assert s["bind_cycles"] == 2 * ld.c["bind"]
    # The process is gone: so are its library nodes.
    assert g.nodes("library") == []


def test_library_nodes_link_to_the_processes_that_map_them():
    world = World(entry_points=False)
    world.register_plugin(plugin, "interpose")
    k = Kernel(world)
    ld = Linker.of(k)
    seen: dict[str, Any] = {}

    def child() -> Any:
        yield from ()
        return 0

    def prog() -> Any:
        from virtlevels_interpose.linker import libcall as lc

        yield from lc.getpid()
        g = world.graph
        me = k.current.process.graph_id
        seen["libs"] = sorted(g.attrs(b)["name"] for _a, b, d in g.g.out_edges(me, data=True)
                              if d["kind"] == "maps_to")  # fmt: skip
        pid = yield from lc.fork(child)
        seen["child_maps"] = [
            sorted(g.attrs(b)["name"] for _a, b, d in g.g.out_edges(n, data=True) if d["kind"] == "maps_to")
            for n, a in g.iter_kind("process") if a["pid"] == pid
        ]
        yield from lc.waitpid(pid, 0, 0)
        return 0

    k.install_program("/bin/prog", program=prog)
    k.spawn("/bin/prog", ["prog"], stdio=True, envp=["LD_PRELOAD=libfaketime.so.1"])
    k.run()
    assert seen["libs"] == ["libc.so.6", "libfaketime.so.1"]
    assert seen["child_maps"] == [["libc.so.6", "libfaketime.so.1"]]  # fork keeps the link map
    kinds = {world.graph.kind(n) for n in world.graph.nodes()}
    assert "library" not in kinds  # every process exited
    assert ld.libraries["libc.so.6"].name == "libc.so.6"


def test_backend_lifecycle_through_the_registry():
    world = World(entry_points=False)
    world.register_plugin(plugin, "interpose")
    backend = world.registry.backends["interpose"]
    assert backend.info.level is Level.LIBRARY
    k = Kernel(world)
    k.install_program("/bin/hello", program=DEMOS["hello"])
    g = backend.define(k, {"program": "/bin/hello", "ltrace": True, "faketime": "@2001-02-03 04:05:06"})
    assert g.lifecycle.state.value == "defined"
    g.start()
    assert g.lifecycle.state.value == "running"
    with pytest.raises(LifecycleError):
        g.pause()
    with pytest.raises(LifecycleError):
        g.snapshot()
    k.run()
    st = g.stats()
    assert st["exit_status"] == 0 and "time 981173106" in k.console.decode()
    # Six calls through the PLT; faketime's time() reaches libc's with RTLD_NEXT, not through the PLT.
    assert st["library"]["plt_calls"] == 6 and st["library"]["total_calls"] == 7
    assert st["library"]["interposer_calls"] == 2 * 6  # the tracer's ENTER and EXIT hooks on each call
    assert any(line.startswith("[pid") and "printf(" in line for line in st["ltrace"])
    g.stop()
    g.destroy()
    assert g.lifecycle.state.value == "destroyed"
    with pytest.raises(ConfigError):
        backend.define(k, {"program": "/bin/hello", "bogus": 1})
    with pytest.raises(ConfigError):
        backend.define(k, {"program": "/bin/hello", "fail": ["malloc:every=x"]})
    assert InterposeSpec("/bin/x", fakeroot=True).environment() == ["LD_PRELOAD=libfakeroot.so"]


def test_cli_run_json_reports_plt_and_interposer_costs(run_cli):
    r = run_cli("interpose", "run", "--json", "--ltrace", "hello", plugins=[plugin])
    assert r.exit_code == 0, r.stderr
    out, _sep, js = r.stdout.partition("{")
    assert out.startswith("hello from pid")
    doc = json.loads("{" + js)
    lib = doc["library"]
    assert lib["plt_calls"] == 6 and lib["interposer_calls"] == 12
    assert lib["interposer_cycles"] == 12 * Linker.of(Kernel()).c["interposer"]
    assert "printf(" in r.stderr  # ltrace lines
    r = run_cli("interpose", "run", "--fail", "malloc:1", "hello", plugins=[plugin])
    assert "malloc -> (nil)" in r.stdout and "PLT indirection" in r.stdout
    r = run_cli("interpose", "run", "nosuchdemo", plugins=[plugin])
    assert r.exit_code != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = run_cli("interpose", "libs", "libc.so.6", plugins=[plugin])
    assert "printf" in r.stdout.split()


def test_cli_runs_an_rv32_assembly_program(run_cli, tmp_path):
    src = tmp_path / "prog.S"
    body = "    la a0, fmt\n    li a1, 5\n    call printf_plt\n    li a0, 4\n    call exit_plt\n"
    src.write_text(
        "    .text\n    .globl _start\n_start:\n" + body + _plt("printf") + _plt("exit")
        + '    .data\nfmt: .asciz "five %d\\n"\n    .balign 4\n'
        + "__vl_got_printf: .word 0\n__vl_got_exit: .word 0\n"
    )  # fmt: skip
    r = run_cli("interpose", "run", "--json", str(src), plugins=[plugin])
    assert r.exit_code == 4 and r.stdout.startswith("five 5\n")
    doc = json.loads(r.stdout[r.stdout.index("{"):])
    assert doc["library"]["hostcall_traps"] == 2 and doc["library"]["plt_calls"] == 2
    assert doc["cycles_by_category"]["library"] == 2 * Linker.of(Kernel()).c["hostcall"]
