"""The default C library (``libc.so.6``) on the kernel's system calls.

Each function is ``fn(c, *args)`` (:class:`~virtlevels_interpose.linker.CallCtx` first) and may
yield system calls. Arguments are what a C caller passes: ints, and pointers, which for ISA
callers are addresses in the process and for scripted callers may also be Python values
(``str``/``bytes`` for strings and input buffers, a ``bytearray`` for an output buffer, lists
for argv). Results and errno follow the man pages: -1 (or NULL) and ``errno`` on failure.

malloc is a first-fit allocator over mmap'ed arenas (64 KiB; requests from 128 KiB get their own
mapping, glibc's M_MMAP_THRESHOLD, mallopt(3)); its bookkeeping is kept by the linker, not in
chunk headers in guest memory. free of a pointer malloc did not return, or a second free, aborts
(SIGABRT) as glibc's checks do.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from typing import Any

import attrs

from virtlevels.kernel import scripted as sys
from virtlevels.kernel import signals
from virtlevels.kernel.errno import EFAULT, EINVAL, ENOMEM, KernelError
from virtlevels.kernel.mm import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from virtlevels.kernel.syscalls import numbers as nr
from virtlevels.kernel.vfs.constants import AT_FDCWD
from virtlevels_interpose.linker import LIBC_NAME, RTLD_NEXT, CallCtx, Library

Gen = Generator[Any, Any, Any]

ARENA = 64 * 1024
MMAP_THRESHOLD = 128 * 1024
ALIGN = 16  # glibc's MALLOC_ALIGNMENT on RISC-V (2 * SIZE_SZ rounded up to 16 for long double)
# time.h clock ids (include/uapi/linux/time.h)
CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
WNOHANG = 1


@attrs.define
class Heap:
    """malloc's state: arenas (base, size), live chunks (addr -> size), free chunks."""

    arenas: list[tuple[int, int]] = attrs.field(factory=list)
    top: int = 0  # next free byte of the last arena
    end: int = 0
    chunks: dict[int, int] = attrs.field(factory=dict)
    free_list: list[tuple[int, int]] = attrs.field(factory=list)  # (addr, size), address order
    big: dict[int, int] = attrs.field(factory=dict)  # mmap'ed chunks: addr -> mapping length
    freed: set[int] = attrs.field(factory=set)

    def fork(self) -> Heap:
        return Heap(list(self.arenas), self.top, self.end, dict(self.chunks), list(self.free_list),
                    dict(self.big), set(self.freed))  # fmt: skip


def _heap(c: CallCtx) -> Heap:
    if c.lm.heap is None:
        c.lm.heap = Heap()
    return c.lm.heap  # type: ignore[no-any-return]


def _s32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def _syscall_result(c: CallCtx, r: Any) -> Any:
    """The libc wrapper's convention: -errno from the kernel becomes -1 and errno."""
    if isinstance(r, int) and -4096 < r < 0:
        c.errno = -r
        return -1
    return r


def make_libc() -> Library:
    lib = Library(LIBC_NAME, description="the C library on the kernel's system calls")
    f = lib.function

    # -- files ------------------------------------------------------------------------------------
    @f("open")
    def open_(c: CallCtx, path: Any, flags: int = 0, mode: int = 0o666) -> Gen:
        r = yield sys.openat(AT_FDCWD, c.text(path), flags, mode)
        return _syscall_result(c, r)

    @f("read")
    def read(c: CallCtx, fd: int, buf: Any, count: int) -> Gen:
        r = yield sys.read(_s32(fd), count)
        if isinstance(r, bytes):
            if r:
                c.write(buf, r)
            return len(r)
        return _syscall_result(c, r)

    @f("write")
    def write(c: CallCtx, fd: int, buf: Any, count: int | None = None) -> Gen:
        data = c.read(buf, len(buf) if count is None and not isinstance(buf, int) else int(count or 0))
        r = yield sys.write(_s32(fd), data)
        return _syscall_result(c, r)

    @f("close")
    def close(c: CallCtx, fd: int) -> Gen:
        r = yield sys.close(_s32(fd))
        return _syscall_result(c, r)

    @f("lseek")
    def lseek(c: CallCtx, fd: int, offset: int, whence: int) -> Gen:
        r = yield sys.lseek(_s32(fd), _s32(offset), whence)
        return _syscall_result(c, r)

    @f("chown")
    def chown(c: CallCtx, path: Any, owner: int, group: int) -> Gen:
        # fchownat(2); the kernel may not offer it (ENOSYS), which is what fakeroot papers over.
        r = yield sys.raw(nr.fchownat, AT_FDCWD, c.text(path), owner, group, 0)
        return _syscall_result(c, r)

    @f("stat")
    def stat(c: CallCtx, path: Any, buf: Any = 0) -> Gen:
        r = yield sys.newfstatat(AT_FDCWD, c.text(path), 0)
        if isinstance(r, int):
            return _syscall_result(c, r)
        if isinstance(buf, list):
            buf[:] = [r]
        return 0 if not isinstance(buf, int) or buf else r

    # -- memory -----------------------------------------------------------------------------------
    @f("malloc")
    def malloc(c: CallCtx, size: int) -> Gen:
        return (yield from _malloc(c, int(size)))

    @f("free")
    def free(c: CallCtx, ptr: int) -> Gen:
        yield from _free(c, int(ptr or 0))
        return None

    @f("calloc")
    def calloc(c: CallCtx, nmemb: int, size: int) -> Gen:
        total = int(nmemb) * int(size)
        if total >= 1 << 31:
            return c.fail(ENOMEM, 0)  # calloc(3): the multiplication would overflow
        p = yield from c.call("malloc", total)
        if p:
            c.mem_write(p, bytes(total))
        return p

    @f("realloc")
    def realloc(c: CallCtx, ptr: int, size: int) -> Gen:
        ptr, size = int(ptr or 0), int(size)
        if ptr == 0:
            return (yield from c.call("malloc", size))
        if size == 0:
            yield from c.call("free", ptr)
            return 0
        h = _heap(c)
        old = h.chunks.get(ptr)
        if old is None:
            yield from _abort(c, "realloc(): invalid pointer")
            return 0
        if size <= old:
            return ptr
        new = yield from c.call("malloc", size)
        if not new:
            return 0
        c.mem_write(new, c.mem_read(ptr, old))
        yield from c.call("free", ptr)
        return new

    # -- strings (string.h) --------------------------------------------------------------------------
    @f("strlen")
    def strlen(c: CallCtx, s: Any) -> int:
        return len(c.cstr(s))

    @f("strcmp")
    def strcmp(c: CallCtx, a: Any, b: Any) -> int:
        x, y = c.cstr(a), c.cstr(b)
        return (x > y) - (x < y)

    @f("strncmp")
    def strncmp(c: CallCtx, a: Any, b: Any, n: int) -> int:
        x, y = c.cstr(a)[:n], c.cstr(b)[:n]
        return (x > y) - (x < y)

    @f("strcpy")
    def strcpy(c: CallCtx, dst: Any, src: Any) -> Any:
        c.write(dst, c.cstr(src) + b"\0")
        return dst

    @f("strncpy")
    def strncpy(c: CallCtx, dst: Any, src: Any, n: int) -> Any:
        s = c.cstr(src)[:n]
        c.write(dst, s + bytes(n - len(s)))  # strncpy(3) pads with NULs
        return dst

    @f("strcat")
    def strcat(c: CallCtx, dst: Any, src: Any) -> Any:
        if isinstance(dst, bytearray):
            n = dst.find(0)
            dst[n : n + len(c.cstr(src)) + 1] = c.cstr(src) + b"\0"
            return dst
        n = len(c.cstr(dst))
        c.mem_write(int(dst) + n, c.cstr(src) + b"\0")
        return dst

    @f("strchr")
    def strchr(c: CallCtx, s: Any, ch: int) -> Any:
        b = c.cstr(s)
        i = (b + b"\0").find(bytes([ch & 0xFF]))
        if i < 0:
            return 0
        return int(s) + i if isinstance(s, int) else i

    @f("strdup")
    def strdup(c: CallCtx, s: Any) -> Gen:
        b = c.cstr(s) + b"\0"
        p = yield from c.call("malloc", len(b))
        if p:
            c.mem_write(p, b)
        return p

    @f("memcpy")
    def memcpy(c: CallCtx, dst: Any, src: Any, n: int) -> Any:
        c.write(dst, c.read(src, n))
        return dst

    @f("memset")
    def memset(c: CallCtx, dst: Any, ch: int, n: int) -> Any:
        c.write(dst, bytes([ch & 0xFF]) * n)
        return dst

    @f("memcmp")
    def memcmp(c: CallCtx, a: Any, b: Any, n: int) -> int:
        x, y = c.read(a, n), c.read(b, n)
        return (x > y) - (x < y)

    @f("atoi")
    def atoi(c: CallCtx, s: Any) -> int:
        txt = c.text(s).strip()
        sign, i = 1, 0
        if txt[:1] in "+-" and txt:
            sign, i = (-1 if txt[0] == "-" else 1), 1
        j = i
        while j < len(txt) and txt[j].isdigit():
            j += 1
        return sign * int(txt[i:j]) if j > i else 0

    # -- formatted output (stdio.h) ---------------------------------------------------------------------
    @f("printf")
    def printf(c: CallCtx, fmt: Any, *args: Any) -> Gen:
        return (yield from _write_all(c, 1, format_c(c, fmt, args)))

    @f("dprintf")
    def dprintf(c: CallCtx, fd: int, fmt: Any, *args: Any) -> Gen:
        return (yield from _write_all(c, _s32(fd), format_c(c, fmt, args)))

    @f("puts")
    def puts(c: CallCtx, s: Any) -> Gen:
        r = yield from _write_all(c, 1, c.cstr(s) + b"\n")
        return r if r < 0 else 1

    @f("sprintf")
    def sprintf(c: CallCtx, buf: Any, fmt: Any, *args: Any) -> int:
        out = format_c(c, fmt, args)
        c.write(buf, out + b"\0")
        return len(out)

    @f("snprintf")
    def snprintf(c: CallCtx, buf: Any, size: int, fmt: Any, *args: Any) -> int:
        out = format_c(c, fmt, args)
        if size > 0:
            c.write(buf, out[: size - 1] + b"\0")
        return len(out)  # snprintf(3): the length it would have written

    # -- time -----------------------------------------------------------------------------------------
    @f("clock_gettime")
    def clock_gettime(c: CallCtx, clk: int, tp: Any = 0) -> Gen:
        ns = yield sys.clock_gettime(clk)
        if ns < 0:
            return _syscall_result(c, ns)
        if tp:
            c.write(tp, struct.pack("<iI", *divmod(ns, 1_000_000_000)))
            return 0
        return ns if not c.isa else 0

    # time() and gettimeofday() read the clock directly (glibc uses the vDSO, not its own
    # clock_gettime through the PLT), so an interposer on one does not shift the others twice.
    @f("time")
    def time(c: CallCtx, tloc: Any = 0) -> Gen:
        ns = yield sys.clock_gettime(CLOCK_REALTIME)
        if ns < 0:
            return _syscall_result(c, ns)
        sec = ns // 1_000_000_000
        if tloc:
            c.write(tloc, struct.pack("<i", sec))
        return sec

    @f("gettimeofday")
    def gettimeofday(c: CallCtx, tv: Any = 0, tz: Any = 0) -> Gen:
        ns = yield sys.clock_gettime(CLOCK_REALTIME)
        if ns < 0:
            return _syscall_result(c, ns)
        sec, nsec = divmod(ns, 1_000_000_000)
        if tv:
            c.write(tv, struct.pack("<iI", sec, nsec // 1000))
        return 0

    @f("sleep")
    def sleep(c: CallCtx, seconds: int) -> Gen:
        r = yield sys.nanosleep(int(seconds) * 1_000_000_000)
        return 0 if r == 0 else int(seconds)

    @f("usleep")
    def usleep(c: CallCtx, usec: int) -> Gen:
        r = yield sys.nanosleep(int(usec) * 1000)
        return _syscall_result(c, r)

    # -- environment ------------------------------------------------------------------------------------
    @f("getenv")
    def getenv(c: CallCtx, name: Any) -> Gen:
        key = c.text(name)
        val = c.lm.env.get(key)
        if val is None:
            return 0 if c.isa else None
        if not c.isa:
            return val
        p = c.lm.env_ptrs.get(key)
        if p is None:
            p = yield from c.call("malloc", len(val.encode()) + 1)
            if not p:
                return 0
            c.mem_write(p, val.encode() + b"\0")
            c.lm.env_ptrs[key] = p
        return p

    @f("setenv")
    def setenv(c: CallCtx, name: Any, value: Any, overwrite: int = 1) -> int:
        key = c.text(name)
        if not key or "=" in key:
            return c.fail(EINVAL)  # setenv(3)
        if key in c.lm.env and not overwrite:
            return 0
        c.lm.env[key] = c.text(value)
        c.lm.env_ptrs.pop(key, None)
        return 0

    @f("unsetenv")
    def unsetenv(c: CallCtx, name: Any) -> int:
        key = c.text(name)
        if not key or "=" in key:
            return c.fail(EINVAL)
        c.lm.env.pop(key, None)
        c.lm.env_ptrs.pop(key, None)
        return 0

    # -- processes --------------------------------------------------------------------------------------
    @f("getpid")
    def getpid(c: CallCtx) -> Gen:
        return (yield sys.getpid())

    @f("getppid")
    def getppid(c: CallCtx) -> Gen:
        return (yield sys.getppid())

    @f("getuid")
    def getuid(c: CallCtx) -> Gen:
        return (yield sys.getuid())

    @f("geteuid")
    def geteuid(c: CallCtx) -> Gen:
        return (yield sys.geteuid())

    @f("getgid")
    def getgid(c: CallCtx) -> Gen:
        return (yield sys.getgid())

    @f("getegid")
    def getegid(c: CallCtx) -> Gen:
        return (yield sys.getegid())

    @f("fork")
    def fork(c: CallCtx, child: Any = None, *args: Any) -> Gen:
        """fork(2). A scripted caller passes the child's entry function (a scripted child cannot
        continue its parent's generator, as with clone(2)'s fn); an ISA child returns 0."""
        if c.isa:
            r = yield sys.raw(nr.clone, signals.SIGCHLD, 0, 0, 0, 0)
        else:
            if child is None:
                return c.fail(EINVAL)
            r = yield sys.fork(child, *args)
        return _syscall_result(c, r)

    @f("execve")
    def execve(c: CallCtx, path: Any, argv: Any = 0, envp: Any = 0) -> Gen:
        r = yield sys.execve(c.text(path), c.strarray(argv), c.strarray(envp))
        return _syscall_result(c, r)

    @f("execv")
    def execv(c: CallCtx, path: Any, argv: Any = 0) -> Gen:
        # exec(3): the new program gets the caller's environment (``environ``), setenv included.
        env = [f"{k}={v}" for k, v in c.lm.env.items()]
        r = yield sys.execve(c.text(path), c.strarray(argv), env)
        return _syscall_result(c, r)

    @f("waitpid")
    def waitpid(c: CallCtx, pid: int, status: Any = 0, options: int = 0) -> Gen:
        r = yield sys.wait4(_s32(pid), options)
        if isinstance(r, tuple):
            cpid, st = r
            if status:
                if isinstance(status, list):
                    status[:] = [st]
                else:
                    c.write(status, struct.pack("<i", st))
            return cpid
        return _syscall_result(c, r)

    @f("exit")
    def exit_(c: CallCtx, code: int = 0) -> Gen:
        yield sys.exit_group(int(code) & 0xFF)
        return 0

    @f("_exit")
    def _exit(c: CallCtx, code: int = 0) -> Gen:
        yield sys.exit_group(int(code) & 0xFF)
        return 0

    @f("abort")
    def abort(c: CallCtx) -> Gen:
        yield from _abort(c, "")
        return 0

    # -- dlfcn.h ------------------------------------------------------------------------------------------
    @f("dlsym")
    def dlsym(c: CallCtx, handle: int, name: Any) -> Any:
        """dlsym(3). Called from the program, RTLD_NEXT searches after the program's object."""
        sym = c.text(name)
        handle = _s32(handle) if isinstance(handle, int) else handle
        prog = next((i for i, o in enumerate(c.lm.objects) if o.kind == "program"), 0)
        start = prog + 1 if handle == RTLD_NEXT else 0
        d = c.lm.lookup(sym, start)
        if d is None:
            return 0 if c.isa else None
        if c.isa:
            return c.linker.target(c.lm, sym, start)
        return SymbolRef(sym, start)

    @f("__errno_location")
    def errno_location(c: CallCtx) -> Any:
        from virtlevels_interpose.linker import ERRNO_ADDR

        return ERRNO_ADDR if c.isa else c.lm.errno

    return lib


@attrs.frozen
class SymbolRef:
    """What dlsym returns to a scripted program: ``yield from ref(*args)`` calls it."""

    name: str
    start: int

    def __call__(self, *args: Any) -> Gen:
        from virtlevels_interpose.linker import current_task

        ld, t = current_task()
        return (yield from ld.invoke(t, ld.linkmap(t), self.name, args, start=self.start))


# -- malloc ---------------------------------------------------------------------------------------------
def _round(n: int) -> int:
    return (max(n, 1) + ALIGN - 1) & ~(ALIGN - 1)


def _mmap(c: CallCtx, length: int) -> Gen:
    r = yield sys.mmap(0, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    r &= 0xFFFFFFFF
    if r >= 0xFFFFF000:
        return 0
    return r


def _malloc(c: CallCtx, size: int) -> Gen:
    h = _heap(c)
    if size < 0 or size >= 1 << 31:
        return c.fail(ENOMEM, 0)
    need = _round(size)
    if need >= MMAP_THRESHOLD:
        length = (need + 4095) & ~4095
        p = yield from _mmap(c, length)
        if not p:
            return c.fail(ENOMEM, 0)
        h.big[p] = length
        h.chunks[p] = need
        h.freed.discard(p)
        return p
    for i, (addr, sz) in enumerate(h.free_list):
        if sz >= need:
            if sz - need >= ALIGN:
                h.free_list[i] = (addr + need, sz - need)
            else:
                need = sz
                del h.free_list[i]
            h.chunks[addr] = need
            h.freed.discard(addr)
            return addr
    if h.top + need > h.end:
        length = max(ARENA, (need + 4095) & ~4095)
        base = yield from _mmap(c, length)
        if not base:
            return c.fail(ENOMEM, 0)
        if h.end > h.top:
            h.free_list.append((h.top, h.end - h.top))
        h.arenas.append((base, length))
        h.top, h.end = base, base + length
    p = h.top
    h.top += need
    h.chunks[p] = need
    h.freed.discard(p)
    return p


def _free(c: CallCtx, ptr: int) -> Gen:
    if ptr == 0:
        return
    h = _heap(c)
    size = h.chunks.pop(ptr, None)
    if size is None:
        yield from _abort(c, "free(): double free detected in tcache 2" if ptr in h.freed
                          else "free(): invalid pointer")  # fmt: skip
        return
    h.freed.add(ptr)
    big = h.big.pop(ptr, None)
    if big is not None:
        yield sys.munmap(ptr, big)
        return
    h.free_list.append((ptr, size))
    h.free_list.sort()
    merged: list[tuple[int, int]] = []
    for a, s in h.free_list:  # coalesce neighbours
        if merged and merged[-1][0] + merged[-1][1] == a:
            merged[-1] = (merged[-1][0], merged[-1][1] + s)
        else:
            merged.append((a, s))
    h.free_list = merged


def _abort(c: CallCtx, msg: str) -> Gen:
    if msg:
        yield sys.write(2, msg + "\n")
    pid = yield sys.getpid()
    yield sys.kill(pid, signals.SIGABRT)
    yield sys.exit_group(128 + signals.SIGABRT)


def _write_all(c: CallCtx, fd: int, data: bytes) -> Gen:
    r = yield sys.write(fd, data)
    return _syscall_result(c, r)


# -- printf's format (C11 7.21.6.1) -----------------------------------------------------------------------
def format_c(c: CallCtx, fmt: Any, args: tuple[Any, ...] | list[Any]) -> bytes:
    """Format ``%[flags][width][.precision][length]conv`` for d i u x X o c s p % (and the length
    modifiers hh h l ll z, ll taking an aligned register pair from ISA callers, as the RISC-V
    psABI passes 64-bit variadic arguments)."""
    f = c.cstr(fmt)
    out = bytearray()
    ai = 0
    i = 0

    def next_arg() -> Any:
        nonlocal ai
        if ai >= len(args):
            return 0
        ai += 1
        return args[ai - 1]

    while i < len(f):
        ch = f[i]
        if ch != 0x25:  # '%'
            out.append(ch)
            i += 1
            continue
        i += 1
        flags = ""
        while i < len(f) and chr(f[i]) in "-+ #0":
            flags += chr(f[i])
            i += 1
        width = ""
        if i < len(f) and f[i] == ord("*"):
            width = str(_s32(int(next_arg())))
            i += 1
        while i < len(f) and chr(f[i]).isdigit():
            width += chr(f[i])
            i += 1
        prec: int | None = None
        if i < len(f) and f[i] == ord("."):
            i += 1
            p = ""
            while i < len(f) and chr(f[i]).isdigit():
                p += chr(f[i])
                i += 1
            prec = int(p or "0")
        length = ""
        while i < len(f) and chr(f[i]) in "hlzjt":
            length += chr(f[i])
            i += 1
        if i >= len(f):
            break
        conv = chr(f[i])
        i += 1
        if conv == "%":
            out += b"%"
            continue
        if conv in "diuxXo":
            v = next_arg()
            if length in ("ll", "j") and c.isa:
                if ai % 2 == 0:  # the pair starts at an even register (a1 is odd: skip it)
                    v = next_arg()
                hi = next_arg()
                v = (int(v) & 0xFFFFFFFF) | (int(hi) << 32)
                bits = 64
            else:
                bits = 64 if length in ("ll", "j") else 32
            v = int(v)
            if conv in "di":
                v &= (1 << bits) - 1
                if v >> (bits - 1):
                    v -= 1 << bits
                if length == "hh":
                    v = ((v & 0xFF) ^ 0x80) - 0x80
                elif length == "h":
                    v = ((v & 0xFFFF) ^ 0x8000) - 0x8000
            else:
                v &= (1 << bits) - 1
                if length == "hh":
                    v &= 0xFF
                elif length == "h":
                    v &= 0xFFFF
            out += _fmt_int(v, conv, flags, width, prec).encode()
            continue
        if conv == "c":
            body = bytes([int(next_arg()) & 0xFF])
        elif conv == "s":
            a = next_arg()
            body = b"(null)" if (a is None or (isinstance(a, int) and a == 0)) else c.cstr(a)
            if prec is not None:
                body = body[:prec]
        elif conv == "p":
            a = int(next_arg())
            body = (f"0x{a & 0xFFFFFFFF:x}" if a else "(nil)").encode()
        else:
            body = b"%" + conv.encode()
        w = int(width) if width else 0
        pad = b" " * max(0, w - len(body))
        out += body + pad if "-" in flags else pad + body
    return bytes(out)


def _fmt_int(v: int, conv: str, flags: str, width: str, prec: int | None) -> str:
    neg = v < 0
    mag = -v if neg else v
    spec = {"d": "d", "i": "d", "u": "d", "x": "x", "X": "X", "o": "o"}[conv]
    digits = format(mag, spec)
    if prec is not None:
        digits = "" if prec == 0 and mag == 0 else digits.rjust(prec, "0")
    prefix = (
        "-"
        if neg
        else ("+" if "+" in flags and conv in "di" else (" " if " " in flags and conv in "di" else ""))
    )
    if "#" in flags and mag:
        prefix += {"x": "0x", "X": "0X", "o": "0"}.get(conv, "")
    w = int(width) if width else 0
    body = prefix + digits
    if len(body) >= w:
        return body
    if "-" in flags:
        return body.ljust(w)
    if "0" in flags and prec is None:
        return prefix + digits.rjust(w - len(prefix), "0")
    return body.rjust(w)


def check_pointer(c: CallCtx, p: int) -> None:
    if not p:
        raise KernelError(EFAULT, "NULL pointer")
