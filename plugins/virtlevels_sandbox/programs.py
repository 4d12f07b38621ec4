"""Small scripted programs for ``virtlevels sandbox run`` (installed as /bin/NAME in the kernel).

``probe CALL[:ARG...]...`` makes each system call by name with integer arguments and prints the
result (``-errno`` as ``EPERM``...), so a profile's decisions can be seen from inside a sandbox:
``virtlevels sandbox run --profile docker-default probe getpid unshare:0x04000000 personality:8``.
``fs OP:PATH...`` does the same for filesystem operations (read, write, mkdir, unlink, rmdir,
rename:OLD:NEW, exec), to see Landlock-like rules:
``virtlevels sandbox run --allow-read /etc --allow-write /tmp fs read:/etc/passwd write:/etc/x``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from virtlevels.kernel import errno as errnos
from virtlevels.kernel import scripted as sc
from virtlevels.kernel.vfs.constants import AT_FDCWD, AT_REMOVEDIR, O_CREAT, O_RDONLY, O_TRUNC, O_WRONLY
from virtlevels_sandbox import rv32names

Gen = Generator[Any, Any, Any]
_ERRNAMES = {v: k for k, v in vars(errnos).items() if k.startswith("E") and isinstance(v, int)}


def errname(result: int) -> str:
    return _ERRNAMES.get(-result, f"errno {-result}") if result < 0 else str(result)


def probe(*calls: str) -> Gen:
    """Each argument is NAME or NAME:ARG0:ARG1... (integers, any base)."""
    failed = 0
    for spec in calls:
        name, *raw = spec.split(":")
        nr = rv32names.lookup(name)
        if nr is None:
            try:
                nr = int(name, 0)
            except ValueError:
                yield sc.write(2, f"probe: unknown system call {name!r}\n")
                return 2
        args = [int(a, 0) for a in raw] + [0] * (6 - len(raw))  # an ecall always carries a0..a5
        r = yield sc.raw(nr, *args)
        failed += r < 0
        yield sc.write(1, f"{spec}: {errname(r)}\n")
    return 0 if not failed else 1


def echo(*words: str) -> Gen:
    yield sc.write(1, " ".join(words) + "\n")
    return 0


def cat(*paths: str) -> Gen:
    for p in paths:
        fd = yield sc.openat(AT_FDCWD, p, O_RDONLY)
        if fd < 0:
            yield sc.write(2, f"cat: {p}: {errname(fd)}\n")
            return 1
        while True:
            data = yield sc.read(fd, 4096)
            if not isinstance(data, bytes) or not data:
                break
            yield sc.write(1, data)
        yield sc.close(fd)
    return 0


def _fs_op(op: str, args: list[str]) -> Gen:
    if op == "read":
        fd = yield sc.openat(AT_FDCWD, args[0], O_RDONLY)
        if fd >= 0:
            data = yield sc.read(fd, 4096)
            yield sc.close(fd)
            return len(data) if isinstance(data, bytes) else data
        return fd
    if op == "write":
        fd = yield sc.openat(AT_FDCWD, args[0], O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd >= 0:
            n = yield sc.write(fd, (args[1] if len(args) > 1 else "x") + "\n")
            yield sc.close(fd)
            return n
        return fd
    if op == "mkdir":
        return (yield sc.mkdirat(AT_FDCWD, args[0], 0o755))
    if op == "unlink":
        return (yield sc.unlinkat(AT_FDCWD, args[0], 0))
    if op == "rmdir":
        return (yield sc.unlinkat(AT_FDCWD, args[0], AT_REMOVEDIR))
    if op == "rename":
        return (yield sc.renameat2(AT_FDCWD, args[0], AT_FDCWD, args[1], 0))
    if op == "exec":
        return (yield sc.execve(args[0], args, []))
    return None


def fs(*ops: str) -> Gen:
    """Each argument is OP:PATH[:ARG] with OP one of read, write, mkdir, unlink, rmdir, rename, exec."""
    failed = 0
    for spec in ops:
        op, *args = spec.split(":")
        r = (yield from _fs_op(op, args)) if args else None
        if r is None:
            yield sc.write(2, f"fs: bad operation {spec!r}\n")
            return 2
        failed += r < 0
        yield sc.write(1, f"{spec}: {errname(r)}\n")
    return 0 if not failed else 1


PROGRAMS = {"probe": probe, "echo": echo, "cat": cat, "fs": fs}


def install_programs(kernel: Any) -> None:
    for name, fn in PROGRAMS.items():
        kernel.install_program(f"/bin/{name}", name=f"sandbox.{name}", program=fn)
