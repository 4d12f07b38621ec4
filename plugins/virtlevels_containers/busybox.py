"""The built-in "busybox-like" image: small scripted programs that use only system calls.

Each program is a scripted process (a generator issuing the kernel's system calls), so what it
sees inside a container is exactly what the namespaces and cgroups give it. The image's files
are ``#!scripted NAME`` stubs in /bin; the programs themselves are registered on the kernel by
:func:`register_busybox`. There is no shell: a container runs one program with its arguments.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from typing import Any

from virtlevels.kernel import scripted as sys
from virtlevels.kernel.errno import EAGAIN
from virtlevels.kernel.vfs.constants import AT_FDCWD, O_APPEND, O_CREAT, O_DIRECTORY, O_RDONLY, O_WRONLY

Gen = Generator[Any, Any, Any]

MIB = 1 << 20
PAGE = 4096
# mmap(2) flags and protections (asm-generic/mman-common.h).
_PROT_RW = 0x1 | 0x2
_MAP_PRIVATE_ANON = 0x02 | 0x20


def _out(text: str | bytes, fd: int = 1) -> sys.Syscall:
    return sys.write(fd, text)


def _err(prog: str, what: str, result: int) -> sys.Syscall:
    return sys.write(2, f"{prog}: {what}: errno {-result}\n")


def _read_all(fd: int) -> Gen:
    data = bytearray()
    while True:
        chunk = yield sys.read(fd, 4096)
        if isinstance(chunk, int):
            return chunk if not data else bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk


def read_path(path: str) -> Gen:
    """Read a whole file: bytes, or -errno."""
    fd = yield sys.openat(AT_FDCWD, path, O_RDONLY)
    if fd < 0:
        return fd
    data = yield from _read_all(fd)
    yield sys.close(fd)
    return data


def list_dir(path: str) -> Gen:
    """Directory entry names (without . and ..), or -errno: getdents64 records (linux_dirent64)."""
    fd = yield sys.openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY)
    if fd < 0:
        return fd
    names: list[str] = []
    while True:
        buf = yield sys.getdents64(fd, 4096)
        if isinstance(buf, int):
            yield sys.close(fd)
            return buf
        if not buf:
            break
        pos = 0
        while pos < len(buf):
            reclen = struct.unpack_from("<H", buf, pos + 16)[0]
            name = buf[pos + 19 : pos + reclen].split(b"\0", 1)[0].decode()
            if name not in (".", ".."):
                names.append(name)
            pos += reclen
    yield sys.close(fd)
    return names


# -- the programs ------------------------------------------------------------------------------------
def true(*_args: str) -> Gen:
    return 0
    yield  # a generator


def false(*_args: str) -> Gen:
    return 1
    yield


def echo(*args: str) -> Gen:
    yield _out(" ".join(args) + "\n")
    return 0


def cat(*paths: str) -> Gen:
    status = 0
    for path in paths or ("-",):
        if path == "-":
            data = yield from _read_all(0)
        else:
            data = yield from read_path(path)
        if isinstance(data, int):
            yield _err("cat", path, data)
            status = 1
            continue
        yield _out(data)
    return status


def hostname(*args: str) -> Gen:
    if args:
        r = yield sys.sethostname(args[0])
        if r < 0:
            yield _err("hostname", "sethostname", r)
            return 1
        return 0
    uts = yield sys.uname()
    yield _out(uts["nodename"] + "\n")
    return 0


def id_(*_args: str) -> Gen:
    uid = yield sys.getuid()
    gid = yield sys.getgid()
    yield _out(f"uid={uid} gid={gid}\n")
    return 0


def ps(*_args: str) -> Gen:
    """PID and command of every process /proc shows (the reader's pid namespace, via its /proc)."""
    names = yield from list_dir("/proc")
    if isinstance(names, int):
        yield _err("ps", "/proc", names)
        return 1
    yield _out("PID CMD\n")
    for pid in sorted((n for n in names if n.isdigit()), key=int):
        comm = yield from read_path(f"/proc/{pid}/comm")
        if isinstance(comm, int):
            continue  # it exited meanwhile
        yield _out(f"{pid} {comm.decode().strip()}\n")
    return 0


def sleep(seconds: str = "1", *_args: str) -> Gen:
    yield sys.nanosleep(int(float(seconds) * 1_000_000_000))
    return 0


def touch(*paths: str) -> Gen:
    status = 0
    for path in paths:
        fd = yield sys.openat(AT_FDCWD, path, O_WRONLY | O_CREAT, 0o644)
        if fd < 0:
            yield _err("touch", path, fd)
            status = 1
        else:
            yield sys.close(fd)
    return status


def ls(*paths: str) -> Gen:
    status = 0
    for path in paths or (".",):
        names = yield from list_dir(path)
        if isinstance(names, int):
            yield _err("ls", path, names)
            status = 1
            continue
        yield _out("".join(n + "\n" for n in sorted(names)))
    return status


def spin(cycles: str = "0", *_args: str) -> Gen:
    """Burn CPU: ``cycles`` in chunks of 100k (0: forever, as ``yes > /dev/null``)."""
    total = int(cycles)
    done = 0
    while total == 0 or done < total:
        yield sys.burn(100_000)
        done += 100_000
    return 0


def memhog(mib: str = "1", *_args: str) -> Gen:
    """Map and touch ``mib`` MiB of anonymous memory, page by page, then report it."""
    size = int(float(mib) * MIB)
    addr = yield sys.mmap(0, size, _PROT_RW, _MAP_PRIVATE_ANON)
    if addr < 0 and addr > -4096:
        yield _err("memhog", "mmap", addr)
        return 1
    addr &= 0xFFFFFFFF
    for off in range(0, size, 64 * PAGE):
        yield sys.touch(addr + off, min(64 * PAGE, size - off))
    yield _out(f"touched {mib} MiB\n")
    return 0


def _child_sleeps() -> Gen:
    yield sys.nanosleep(3_600_000_000_000)
    return 0


def forkbomb(*_args: str) -> Gen:
    """Fork until the kernel says EAGAIN; print how many children were made."""
    n = 0
    while True:
        r = yield sys.fork(_child_sleeps)
        if r < 0:
            yield _out(f"forked {n} children, then errno {-r}{' (EAGAIN)' if r == -EAGAIN else ''}\n")
            return 0 if r == -EAGAIN else 1
        n += 1


def kill(*args: str) -> Gen:
    """kill [-SIG] PID..."""
    sig = 15
    pids = list(args)
    if pids and pids[0].startswith("-"):
        sig = int(pids.pop(0)[1:])
    status = 0
    for pid in pids:
        r = yield sys.kill(int(pid), sig)
        if r < 0:
            yield _err("kill", pid, r)
            status = 1
    return status


def write(path: str, *words: str) -> Gen:
    """write PATH TEXT...: append TEXT to PATH (as ``echo TEXT >> PATH``)."""
    fd = yield sys.openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    if fd < 0:
        yield _err("write", path, fd)
        return 1
    r = yield sys.write(fd, " ".join(words) + "\n")
    yield sys.close(fd)
    if r < 0:
        yield _err("write", path, r)
        return 1
    return 0


def readlink(*paths: str) -> Gen:
    status = 0
    for path in paths:
        r = yield sys.readlinkat(AT_FDCWD, path)
        if isinstance(r, int):
            yield _err("readlink", path, r)
            status = 1
        else:
            yield _out(r + "\n")
    return status


#: name -> program; the image's /bin holds one stub per name.
PROGRAMS: dict[str, Any] = {
    "true": true,
    "false": false,
    "echo": echo,
    "cat": cat,
    "hostname": hostname,
    "id": id_,
    "ps": ps,
    "sleep": sleep,
    "touch": touch,
    "ls": ls,
    "spin": spin,
    "yes": spin,
    "memhog": memhog,
    "forkbomb": forkbomb,
    "kill": kill,
    "write": write,
    "readlink": readlink,
}

#: The program names as the kernel registers them (prefixed, so they cannot clash with others').
PREFIX = "busybox."


def register_busybox(kernel: Any) -> None:
    """Make the busybox programs known to ``kernel`` (idempotent)."""
    for name, program in PROGRAMS.items():
        kernel.register_program(PREFIX + name, program)


def busybox_files() -> dict[str, bytes]:
    """The image's files: path (relative to the root) -> contents. Directories end in '/'."""
    files: dict[str, bytes] = {d: b"" for d in ("bin/", "etc/", "proc/", "sys/", "dev/", "tmp/", "root/")}
    for name in PROGRAMS:
        files[f"bin/{name}"] = b"#!scripted " + (PREFIX + name).encode() + b"\n"
    files["etc/hostname"] = b"busybox\n"
    files["etc/passwd"] = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    return files
