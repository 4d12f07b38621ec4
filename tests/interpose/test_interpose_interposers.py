"""The shipped interposers: ltrace-like tracer, faketime, fakeroot, fault injector; and hooks."""

from __future__ import annotations

from typing import Any

from virtlevels_interpose.hooks import When, hook
from virtlevels_interpose.interposers import FaultInjector, FaultRule, Tracer, parse_faketime
from virtlevels_interpose.linker import Linker, errno, libcall

from virtlevels.kernel.errno import EACCES, ENOMEM
from virtlevels.kernel.kernel import Kernel


def _run(prog: Any, envp: list[str] | None = None, setup: Any = None) -> tuple[Kernel, Any]:
    k = Kernel(hostname="h")
    Linker.of(k)
    k.install_program("/bin/prog", program=prog)
    k.write_file("/etc/secret", "s")
    if setup is not None:
        setup(k)
    t = k.spawn("/bin/prog", ["prog"], stdio=True, envp=envp or [])
    k.run()
    return k, t


def test_ltrace_lines_show_calls_arguments_and_results() -> None:
    tracer: list[Tracer] = []

    def prog() -> Any:
        n = yield from libcall.strlen("hello")
        yield from libcall.printf("%d\n", n)
        return 0

    k, t = _run(prog, setup=lambda k: tracer.append(Tracer(k).start(symbols=["strlen", "printf"])))
    pid = t.process.host_pid
    assert tracer[0].lines == [f'[pid {pid}] strlen("hello") = 5', f'[pid {pid}] printf("%d\\n", 5) = 2']
    assert k.console.decode() == "5\n"
    assert Linker.of(k).stats(pid)["interposer_calls"] == 4  # ENTER + EXIT for two calls


def test_faketime_offset_and_freeze_for_one_process() -> None:
    got: dict[str, int] = {}

    def prog() -> Any:
        got["time"] = yield from libcall.time(0)
        buf = bytearray(8)
        yield from libcall.gettimeofday(buf, 0)
        got["tv_sec"] = int.from_bytes(buf[:4], "little")
        return 0

    _run(prog)
    real = got["time"]
    _run(prog, ["LD_PRELOAD=libfaketime.so.1", "FAKETIME=+2d"])
    assert got["time"] == real + 2 * 86400 and got["tv_sec"] == real + 2 * 86400
    _run(prog, ["LD_PRELOAD=libfaketime.so.1", "FAKETIME=2008-12-24 08:15:42"])
    assert got["time"] == 1230106542 == got["tv_sec"]  # frozen
    assert parse_faketime("-1h30m").seconds == -5400


def test_fakeroot_uid_zero_and_chown_recorded_not_applied() -> None:
    got: dict[str, Any] = {}

    def prog() -> Any:
        got["uid"] = yield from libcall.getuid()
        got["chown"] = yield from libcall.chown("/etc/secret", 1000, 1000)
        out: list[Any] = []
        yield from libcall.stat("/etc/secret", out)
        got["st_uid"] = out[0].st_uid
        return 0

    k, _t = _run(prog, ["LD_PRELOAD=libfakeroot.so"])
    assert got["uid"] == 0 and got["chown"] == 0
    assert Linker.of(k).shared["fakeroot"] == {"/etc/secret": (1000, 1000)}
    assert got["st_uid"] == 1000  # fakeroot's stat shows the recorded owner
    # Without fakeroot, chown goes to the kernel (which has no fchownat: -1/ENOSYS) and the
    # file's owner is unchanged: the recorded chown was never applied.
    got.clear()
    _run(prog)
    assert got["chown"] == -1 and got["st_uid"] == 0


def test_fault_injector_malloc_nth_and_open_by_path() -> None:
    got: dict[str, Any] = {}
    inj: list[FaultInjector] = []

    def prog() -> Any:
        got["m"] = []
        for _ in range(4):
            got["m"].append((yield from libcall.malloc(8)))
        got["m_errno"] = errno()
        got["c"] = yield from libcall.calloc(2, 8)  # calloc's own malloc is the 5th call
        got["open_secret"] = yield from libcall.open("/etc/secret", 0)
        got["open_errno"] = errno()
        got["open_dev"] = yield from libcall.open("/dev/null", 0)
        return 0

    def setup(k: Kernel) -> None:
        fi = FaultInjector(k)
        fi.add(FaultRule("malloc", nth=3))
        fi.add(FaultRule.parse("open:path=/etc/*,errno=13"))
        inj.append(fi)

    _run(prog, setup=setup)
    m = got["m"]
    assert m[2] == 0 and all(m[i] for i in (0, 1, 3))
    assert got["c"] != 0
    assert got["open_secret"] == -1 and got["open_errno"] == EACCES
    assert got["open_dev"] >= 0
    assert [s for _p, s in inj[0].injected] == ["malloc", "open"]
    assert ENOMEM == 12


def test_hooks_enter_changes_args_exit_changes_result_per_process() -> None:
    got: dict[str, Any] = {}

    def prog() -> Any:
        got["len"] = yield from libcall.strlen("abc")
        got["pid"] = yield from libcall.getpid()
        return 0

    def setup(k: Kernel) -> None:
        hook(k, "strlen", lambda h, args: ["abcdefgh"], When.ENTER)
        hook(k, "getpid", lambda h, args, result: result + 1000, When.EXIT)

    k, t = _run(prog, setup=setup)
    assert got["len"] == 8
    assert got["pid"] == t.process.host_pid + 1000
