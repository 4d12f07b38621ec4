"""Symbol resolution order (LD_PRELOAD, program, needed, libc), RTLD_NEXT, fork and execve."""

from __future__ import annotations

from typing import Any

from virtlevels_interpose.linker import Library, Linker, libcall, linked, parse_preload

from virtlevels.kernel import scripted as sys
from virtlevels.kernel.kernel import Kernel


def _kernel() -> tuple[Kernel, Linker]:
    k = Kernel(hostname="h")
    return k, Linker.of(k)


def _tagger(name: str, tag: str) -> Library:
    """A library whose getpid adds ``tag`` to a log and calls the next definition."""
    lib = Library(name)

    @lib.function("getpid")
    def getpid(c: Any) -> Any:
        c.lm.ext.setdefault("order", []).append(tag)
        d = c.dlsym(-1, "getpid")  # RTLD_NEXT
        assert d is not None
        return (yield from c.next())

    @lib.function("whoami")
    def whoami(c: Any) -> str:
        return tag

    return lib


def test_parse_preload_colons_and_spaces() -> None:
    assert parse_preload("a.so:b.so  c.so") == ["a.so", "b.so", "c.so"]
    assert parse_preload("") == []


def test_two_preloads_then_program_then_needed_then_libc() -> None:
    k, ld = _kernel()
    for name, tag in (("liba.so", "A"), ("libb.so", "B"), ("libneed.so", "N")):
        ld.register(_tagger(name, tag))
    seen: dict[str, Any] = {}

    def prog_getpid(c: Any) -> Any:
        c.lm.ext.setdefault("order", []).append("P")
        return (yield from c.next())

    @linked(needed=["libneed.so"], exports={"getpid": prog_getpid})
    def prog() -> Any:
        seen["pid"] = yield from libcall.getpid()
        seen["who"] = yield from libcall.whoami()
        t = Linker.of(k).kernel.current
        seen["order"] = list(t.mm.linkmap.ext["order"])
        seen["scope"] = [o.name for o in t.mm.linkmap.objects]
        return 0

    k.install_program("/bin/prog", program=prog)
    k.spawn("/bin/prog", ["prog"], envp=["LD_PRELOAD=libb.so liba.so"])
    k.run()
    assert seen["scope"] == ["libb.so", "liba.so", "prog", "libneed.so", "libc.so.6"]
    # Every definition ran once, in scope order, each reaching the next with RTLD_NEXT; libc's
    # getpid made the system call.
    assert seen["order"] == ["B", "A", "P", "N"]
    assert seen["pid"] == 1
    assert seen["who"] == "B"  # the first preload's definition wins


def test_missing_preload_is_ignored_with_a_warning_missing_needed_exits_127() -> None:
    k, ld = _kernel()
    ran: list[int] = []

    def ok() -> Any:
        ran.append((yield from libcall.getpid()))
        return 0

    @linked(needed=["libnothere.so"])
    def bad() -> Any:
        ran.append(-1)
        yield sys.getpid()
        return 0

    k.install_program("/bin/ok", program=ok)
    t1 = k.spawn("/bin/ok", ["ok"], stdio=True, envp=["LD_PRELOAD=/lib/nope.so"])
    k.run()
    # A separate kernel: when pid 1 exits, everything else in its pid namespace is killed.
    k2, _ = _kernel()
    k2.install_program("/bin/bad", program=bad)
    t2 = k2.spawn("/bin/bad", ["bad"], stdio=True)
    k2.run()
    out = k.console.decode() + k2.console.decode()
    assert "object '/lib/nope.so' from LD_PRELOAD cannot be preloaded" in out
    assert "libnothere.so: cannot open shared object file" in out
    assert ran == [t1.process.host_pid]  # bad's main never ran
    assert k.exit_status[t1.process.host_pid] == 0
    assert k2.exit_status[t2.process.host_pid] == 127 << 8


def test_link_map_survives_fork_and_is_rebuilt_by_execve() -> None:
    k, ld = _kernel()
    ld.register(_tagger("liba.so", "A"))
    seen: dict[str, Any] = {}

    def after_exec() -> Any:
        seen["exec_who"] = yield from libcall.getenv("LD_PRELOAD")
        t = k.current
        seen["exec_scope"] = [o.name for o in t.mm.linkmap.objects]
        return 0

    def child() -> Any:
        t = k.current
        seen["child_scope"] = [o.name for o in t.mm.linkmap.objects]
        seen["child_who"] = yield from libcall.whoami()
        p = yield from libcall.malloc(10)
        seen["child_malloc"] = p
        seen["child_env"] = yield from libcall.getenv("X")
        yield sys.execve("/bin/after", ["after"], [])
        return 1

    def parent() -> Any:
        yield from libcall.setenv("X", "set-before-fork", 1)
        seen["parent_malloc"] = yield from libcall.malloc(10)
        pid = yield from libcall.fork(child)
        yield from libcall.waitpid(pid, 0, 0)
        return 0

    k.install_program("/bin/after", program=after_exec)
    k.install_program("/bin/parent", program=parent)
    k.spawn("/bin/parent", ["parent"], envp=["LD_PRELOAD=liba.so"])
    k.run()
    assert seen["child_scope"] == ["liba.so", "parent", "libc.so.6"]
    assert seen["child_who"] == "A"
    assert seen["child_env"] == "set-before-fork"  # setenv's environment is copied by fork
    # The heap's state is copied: the child's next chunk follows the parent's first one.
    assert seen["child_malloc"] > seen["parent_malloc"]
    # execve with an empty environment: no preload any more, the scope is rebuilt.
    assert seen["exec_scope"] == ["after", "libc.so.6"]
    assert seen["exec_who"] is None
