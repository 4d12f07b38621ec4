"""A dynamic linker in the exec path (what ld.so is to a Linux process).

One :class:`Linker` serves a kernel: it fills the kernel's symbol-resolver seams
(``Kernel.exec_hooks`` and ``Kernel.hostcalls``). At every execve it builds the new program's
:class:`LinkMap` (its symbol scope, in ld.so(8)'s order):

1. the objects named by ``LD_PRELOAD`` (colon- or space-separated, in order; a missing one is
   reported on stderr and ignored, as ld.so does),
2. the program itself (its exported symbols interpose on every library's),
3. its needed libraries, breadth first (DT_NEEDED order, then theirs),
4. the default C library (``libc.so.6``, :mod:`virtlevels_interpose.libc`).

A symbol resolves to its first definition in that scope; ``dlsym(RTLD_NEXT, name)`` to the first
one after the caller's object (dlsym(3)). The link map belongs to the address space
(``AddressSpace.linkmap``): fork copies it, execve builds a new one.

Libraries are Python modules (a :class:`Library` of functions ``fn(c, *args)``, plain or
generator functions that yield the kernel's system calls) or RV32 code (an assembled image loaded
at its link address). Programs reach them two ways:

* **Scripted programs** (generators) call ``yield from libcall.NAME(*args)``
  (:data:`libcall`), which resolves NAME in the calling process's link map and runs it; the
  PLT indirection and the library's own cost are charged as user time (``burn``).
* **ISA programs** call through PLT stubs: ``call NAME@plt`` where the stub is
  ``auipc t3, %pcrel_hi(got); lw t3, %pcrel_lo(1b)(t3); jalr t1, t3`` (the RISC-V psABI's PLT
  entry). The GOT word, a label ``__vl_got_NAME`` in the program, is filled at exec (eager
  binding, as with ``LD_BIND_NOW``): with the RV32 function's address, or, for a function the
  host implements, with a slot in the **host-call window** (:data:`HOSTCALL_BASE`, in the
  machine's native region, mapped in no user page table). The jump there is a real
  instruction-fetch page fault; the kernel hands it to :meth:`Linker._hostcall`, which runs the
  function with a0-a7 as arguments, puts the result in a0 and returns to ``ra``. A library call
  that blocks in a system call sleeps and resumes where it stopped when woken.

Needed libraries of an ISA program are C strings after the label ``__vl_needed`` (ending with an
empty string). Costs are the profile's ``[interpose]`` section, counted per process and in total
(:meth:`Linker.stats`).
"""

from __future__ import annotations

import inspect
import re
import weakref
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any

import attrs

from virtlevels.errors import VirtlevelsError
from virtlevels.kernel import scripted as sys
from virtlevels.kernel import signals
from virtlevels.kernel.errno import EFAULT, KernelError
from virtlevels.kernel.mm import MAP_ANONYMOUS, MAP_PRIVATE, PROT_EXEC, PROT_READ, PROT_WRITE, Vma
from virtlevels.kernel.scripted import Burn, IoVec, Obj, Out, Syscall, Touch
from virtlevels.kernel.wait import WouldBlock
from virtlevels.machine.image import PF_R, PF_W, PF_X, Image
from virtlevels.machine.memmap import NATIVE_BASE

M32 = 0xFFFFFFFF
#: dlfcn.h: glibc's RTLD_DEFAULT ((void *) 0) and RTLD_NEXT ((void *) -1l).
RTLD_DEFAULT = 0
RTLD_NEXT = -1
#: The host-call window: PLT targets of host-implemented functions (4 bytes a slot). It is in the
#: machine's native region (above USER_TOP), which no user page table maps, so a jump there is an
#: instruction page fault that the kernel passes to the linker. Slot 0 is ld.so's error exit.
HOSTCALL_BASE = NATIVE_BASE + 0x8000
HOSTCALL_END = NATIVE_BASE + 0xF000
#: The linker's scratch area in an ISA process ("[ld.so]"): errno at its base, then the buffers
#: host functions hand to system calls.
SCRATCH_BASE = 0x7F00_0000
SCRATCH_SIZE = 0x40000
ERRNO_ADDR = SCRATCH_BASE
LIBRARY_MAGIC = b"#!vl-library "
GOT_PREFIX = "__vl_got_"
NEEDED_SYMBOL = "__vl_needed"
LIBC_NAME = "libc.so.6"
#: ld.so's exit status when it cannot start a program (ld.so(8); "command not found" is 127 too).
LDSO_EXIT = 127

Func = Callable[..., Any]

COST_KEYS = ("plt", "hostcall", "interposer", "bind", "win32")


class LinkError(VirtlevelsError):
    """A library or symbol problem the host side caused (bad library definition, bad hook)."""


# -- libraries and link maps ------------------------------------------------------------------------
@attrs.define(eq=False)
class Library:
    """A shared object: Python functions and/or an RV32 image (position-dependent, loaded at its
    link addresses), the libraries it needs, and an optional extra cost key charged per call
    (``win32`` for the API-translation layer)."""

    name: str
    functions: dict[str, Func] = attrs.field(factory=dict)
    needed: tuple[str, ...] = ()
    image: Image | None = None
    cost_key: str | None = None
    description: str = ""

    def symbols(self) -> list[str]:
        names = set(self.functions)
        if self.image is not None:
            names |= set(image_exports(self.image))
        return sorted(names)

    def function(self, name: str) -> Callable[[Func], Func]:
        """Decorator: define ``name`` in this library."""

        def deco(fn: Func) -> Func:
            self.functions[name] = fn
            return fn

        return deco


def image_exports(image: Image) -> dict[str, int]:
    """An RV32 object's dynamic symbols: its labels, as if linked with ``-rdynamic``, except the
    linker's own (``__vl_*``) and reserved names (leading ``_`` or ``.``)."""
    return {n: a for n, a in image.symbols.items() if not n.startswith(("_", "."))}


def image_imports(image: Image) -> dict[str, int]:
    """GOT words: ``__vl_got_NAME`` labels -> their addresses."""
    return {n[len(GOT_PREFIX) :]: a for n, a in image.symbols.items() if n.startswith(GOT_PREFIX)}


def image_read(image: Image, addr: int, size: int) -> bytes:
    for seg in image.segments:
        if seg.addr <= addr < seg.addr + len(seg.data):
            off = addr - seg.addr
            return bytes(seg.data[off : off + size])
    return b""


def image_needed(image: Image) -> tuple[str, ...]:
    """The NUL-separated names after ``__vl_needed``, up to an empty one (our DT_NEEDED)."""
    addr = image.symbols.get(NEEDED_SYMBOL)
    if addr is None:
        return ()
    out: list[str] = []
    blob = image_read(image, addr, 4096)
    for part in blob.split(b"\0"):
        if not part:
            break
        out.append(part.decode())
    return tuple(out)


@attrs.define(eq=False)
class LoadedObject:
    """One entry of a link map (struct link_map): where a definition comes from."""

    name: str
    kind: str  # "preload", "program", "needed", "libc"
    functions: dict[str, Func]
    addrs: dict[str, int]  # RV32 definitions (absolute addresses in the process)
    cost_key: str | None = None
    image: Image | None = None

    def defines(self, name: str) -> bool:
        return name in self.functions or name in self.addrs


@attrs.frozen
class Definition:
    """Where a symbol resolved: the object, its index in the scope, and the code."""

    name: str
    obj: LoadedObject
    index: int
    fn: Func | None = None
    addr: int | None = None


@attrs.define
class CallStats:
    """Per-process (and total) library-level accounting, in calls and cycles."""

    calls: dict[str, int] = attrs.field(factory=dict)
    #: Calls through a PLT entry (the indirection through the GOT), and their cycles.
    plt_calls: int = 0
    plt_cycles: int = 0
    hostcall_cycles: int = 0
    interposer_calls: int = 0
    interposer_cycles: int = 0
    translated_calls: int = 0
    translated_cycles: int = 0
    bind_cycles: int = 0
    hostcall_traps: int = 0

    def total_cycles(self) -> int:
        return (self.plt_cycles + self.hostcall_cycles + self.interposer_cycles + self.translated_cycles
                + self.bind_cycles)  # fmt: skip

    def add(self, other: CallStats) -> None:
        for k, v in other.calls.items():
            self.calls[k] = self.calls.get(k, 0) + v
        self.plt_calls += other.plt_calls
        self.plt_cycles += other.plt_cycles
        self.hostcall_cycles += other.hostcall_cycles
        self.interposer_calls += other.interposer_calls
        self.interposer_cycles += other.interposer_cycles
        self.translated_calls += other.translated_calls
        self.translated_cycles += other.translated_cycles
        self.bind_cycles += other.bind_cycles
        self.hostcall_traps += other.hostcall_traps

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": dict(sorted(self.calls.items())), "total_calls": sum(self.calls.values()),
            "plt_calls": self.plt_calls, "plt_cycles": self.plt_cycles,
            "hostcall_cycles": self.hostcall_cycles,
            "interposer_calls": self.interposer_calls, "interposer_cycles": self.interposer_cycles,
            "translated_calls": self.translated_calls, "translated_cycles": self.translated_cycles,
            "bind_cycles": self.bind_cycles, "hostcall_traps": self.hostcall_traps,
            "total_cycles": self.total_cycles(),
        }  # fmt: skip


@attrs.define(eq=False)
class SparseMemory:
    """A scripted process's heap contents (the kernel keeps no bytes for scripted processes):
    what malloc'ed pointers hold, page by page."""

    pages: dict[int, bytearray] = attrs.field(factory=dict)

    def read(self, addr: int, size: int) -> bytes:
        out = bytearray()
        while size > 0:
            page, off = divmod(addr, 4096)
            n = min(size, 4096 - off)
            buf = self.pages.get(page)
            out += buf[off : off + n] if buf is not None else bytes(n)
            addr += n
            size -= n
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            page, off = divmod(addr + pos, 4096)
            n = min(len(data) - pos, 4096 - off)
            buf = self.pages.setdefault(page, bytearray(4096))
            buf[off : off + n] = data[pos : pos + n]
            pos += n

    def copy(self) -> SparseMemory:
        return SparseMemory({p: bytearray(b) for p, b in self.pages.items()})


@attrs.define(eq=False)
class LinkMap:
    """A process's symbol scope and the C library's per-process state (heap, environment,
    errno). It lives in the address space, so it survives fork (copied) and execve replaces it."""

    program: str
    objects: list[LoadedObject]
    isa: bool = False
    #: ISA: host-call slots (index -> (symbol, first scope index searched)); slot 0 is ld.so's exit.
    slots: list[tuple[str, int]] = attrs.field(factory=lambda: [("", 0)])
    slot_of: dict[tuple[str, int], int] = attrs.field(factory=dict)
    #: ISA: GOT words to (re)bind: (address, symbol, the importing object's index).
    got: list[tuple[int, str, int]] = attrs.field(factory=list)
    env: dict[str, str] = attrs.field(factory=dict)
    env_ptrs: dict[str, int] = attrs.field(factory=dict)
    errno: int = 0
    memory: SparseMemory = attrs.field(factory=SparseMemory)
    #: malloc's bookkeeping, owned by libc (virtlevels_interpose.libc.Heap).
    heap: Any = None
    #: Per-process hooks (hooks.Hook), copied at fork, dropped at execve.
    hooks: list[Any] = attrs.field(factory=list)
    #: Other per-process state libraries keep (the Win32 handle table...), copied at fork.
    ext: dict[str, Any] = attrs.field(factory=dict)
    stats: CallStats = attrs.field(factory=CallStats)
    error: str | None = None  # ld.so could not start the program: the message
    warnings: list[str] = attrs.field(factory=list)
    scratch_top: int = ERRNO_ADDR + 16

    def fork(self) -> LinkMap:
        import copy

        child = LinkMap(
            self.program, list(self.objects), self.isa, list(self.slots), dict(self.slot_of), list(self.got),
            dict(self.env), dict(self.env_ptrs), self.errno, self.memory.copy(),
            self.heap.fork() if self.heap is not None else None, list(self.hooks),
            {k: (v.fork() if hasattr(v, "fork") else copy.deepcopy(v)) for k, v in self.ext.items()},
        )  # fmt: skip
        return child

    def index_of(self, obj: LoadedObject) -> int:
        for i, o in enumerate(self.objects):
            if o is obj:
                return i
        raise LinkError(f"{obj.name} is not in the link map of {self.program}")

    def lookup(self, name: str, start: int = 0) -> Definition | None:
        """The first definition of ``name`` in the scope from index ``start`` (RTLD_NEXT: the
        caller's index + 1)."""
        for i in range(max(0, start), len(self.objects)):
            o = self.objects[i]
            fn = o.functions.get(name)
            if fn is not None:
                return Definition(name, o, i, fn=fn)
            addr = o.addrs.get(name)
            if addr is not None:
                return Definition(name, o, i, addr=addr)
        return None

    def object_named(self, name: str) -> LoadedObject | None:
        for o in self.objects:
            if o.name == name:
                return o
        return None


def parse_preload(value: str) -> list[str]:
    """LD_PRELOAD: "A list of ... shared objects ... separated by spaces or colons" (ld.so(8))."""
    return [p for p in re.split(r"[:\s]+", value) if p]


def env_dict(envp: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in envp:
        k, sep, v = item.partition("=")
        if sep and k not in out:
            out[k] = v
    return out


def linked(needed: Sequence[str] = (), exports: dict[str, Func] | None = None) -> Callable[[Any], Any]:
    """Mark a scripted program with the libraries it needs (DT_NEEDED) and the symbols it
    exports (which interpose on the libraries', as an executable's do)."""

    def deco(prog: Any) -> Any:
        prog.vl_needed = tuple(needed)
        prog.vl_exports = dict(exports or {})
        return prog

    return deco


# -- calls ---------------------------------------------------------------------------------------------
@attrs.define(eq=False)
class CallCtx:
    """What a library function gets as its first argument ``c``."""

    linker: Linker
    task: Any
    lm: LinkMap
    name: str
    defn: Definition | None
    isa: bool

    @property
    def kernel(self) -> Any:
        return self.linker.kernel

    @property
    def obj(self) -> LoadedObject | None:
        return self.defn.obj if self.defn is not None else None

    # errno is per process here (one thread per process is the common case; TLS is not modelled)
    @property
    def errno(self) -> int:
        return self.lm.errno

    @errno.setter
    def errno(self, value: int) -> None:
        self.lm.errno = value
        if self.isa:
            try:
                self.mem_write(ERRNO_ADDR, (value & M32).to_bytes(4, "little"))
            except KernelError:
                pass

    def fail(self, errno: int, result: int = -1) -> int:
        """Set errno, return the C failure value."""
        self.errno = errno
        return result

    # -- memory -----------------------------------------------------------------------------------
    def _mem(self) -> Any:
        if self.isa:
            return self.task.mm.hw.user_memory(self.task)
        return self.lm.memory

    def mem_read(self, addr: int, size: int) -> bytes:
        if addr == 0:
            raise KernelError(EFAULT, "NULL pointer")
        return bytes(self._mem().read(addr & M32, size))

    def mem_write(self, addr: int, data: bytes) -> None:
        if addr == 0:
            raise KernelError(EFAULT, "NULL pointer")
        self._mem().write(addr & M32, bytes(data))

    def cstr(self, x: Any, limit: int = 1 << 16) -> bytes:
        """A C string argument: a str/bytes (scripted) or a pointer (read up to the NUL)."""
        if isinstance(x, str):
            return x.encode("utf-8", errors="surrogateescape")
        if isinstance(x, (bytes, bytearray, memoryview)):
            b = bytes(x)
            nul = b.find(0)
            return b if nul < 0 else b[:nul]
        if x is None or x == 0:
            raise KernelError(EFAULT, "NULL string")
        out = bytearray()
        addr = int(x) & M32
        while len(out) < limit:
            n = 64 - (addr + len(out)) % 64
            chunk = self.mem_read(addr + len(out), n)
            nul = chunk.find(0)
            if nul >= 0:
                return bytes(out + chunk[:nul])
            out += chunk
        return bytes(out)

    def text(self, x: Any) -> str:
        return self.cstr(x).decode("utf-8", errors="surrogateescape")

    def read(self, x: Any, size: int) -> bytes:
        """``size`` bytes of a buffer argument (bytes, or a pointer)."""
        if isinstance(x, (bytes, bytearray, memoryview)):
            return bytes(x[:size])
        if isinstance(x, str):
            return x.encode()[:size]
        return self.mem_read(int(x), size) if size > 0 else b""

    def write(self, dst: Any, data: bytes) -> None:
        """Store into an output buffer argument (a bytearray, or a pointer)."""
        if isinstance(dst, bytearray):
            dst[: len(data)] = data
            return
        if isinstance(dst, memoryview):
            dst[: len(data)] = data
            return
        self.mem_write(int(dst), data)

    def strarray(self, x: Any) -> list[str]:
        """A NULL-terminated ``char *[]`` (argv/envp): a list (scripted) or a pointer."""
        if x is None or (isinstance(x, int) and x == 0):
            return []
        if isinstance(x, (list, tuple)):
            return [s if isinstance(s, str) else self.text(s) for s in x]
        out: list[str] = []
        addr = int(x)
        while len(out) < 4096:
            p = int.from_bytes(self.mem_read(addr + 4 * len(out), 4), "little")
            if p == 0:
                break
            out.append(self.text(p))
        return out

    # -- calling other symbols ------------------------------------------------------------------------
    def call(self, name: str, *args: Any) -> Generator[Any, Any, Any]:
        """Call ``name`` as resolved in the process's scope (through the PLT: hooks apply)."""
        return self.linker.invoke(self.task, self.lm, name, args, isa=self.isa)

    def next(self, *args: Any) -> Generator[Any, Any, Any]:
        """Call the next definition of the current symbol (``dlsym(RTLD_NEXT, name)(args)``)."""
        return self.call_next(self.name, *args)

    def call_next(self, name: str, *args: Any) -> Generator[Any, Any, Any]:
        start = self.defn.index + 1 if self.defn is not None else 0
        return self.linker.invoke(self.task, self.lm, name, args, isa=self.isa, start=start)

    def dlsym(self, handle: int, name: str) -> Definition | None:
        """dlsym(3) from this function's object: RTLD_NEXT searches after it, RTLD_DEFAULT all."""
        start = (self.defn.index + 1 if self.defn is not None else 0) if handle == RTLD_NEXT else 0
        return self.lm.lookup(name, start)

    def getenv(self, name: str) -> str | None:
        return self.lm.env.get(name)


def _arity(fn: Func) -> int | None:
    """Positional parameters after ``c`` (None: it takes ``*args``)."""
    cached = getattr(fn, "_vl_arity", -2)
    if cached != -2:
        return cached  # type: ignore[no-any-return]
    n: int | None = 0
    for p in list(inspect.signature(fn).parameters.values())[1:]:
        if p.kind is p.VAR_POSITIONAL:
            n = None
            break
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            assert n is not None
            n += 1
    try:
        fn._vl_arity = n  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return n


def run_value(x: Any) -> Generator[Any, Any, Any]:
    """Drive ``x`` if it is a generator (a function that made system calls), else return it."""
    if inspect.isgenerator(x):
        return (yield from x)
    return x


@attrs.define(eq=False)
class _InFlight:
    """An ISA host call in progress (it slept in a system call)."""

    gen: Generator[Any, Any, Any]
    ra: int
    addr: int
    pending: Syscall | None = None
    send: Any = None


_LINKERS: weakref.WeakSet[Linker] = weakref.WeakSet()


class Linker:
    """The dynamic linker of one kernel (``Linker.of(kernel)`` installs it once)."""

    def __init__(self, kernel: Any) -> None:
        from virtlevels_interpose import libc

        self.kernel = kernel
        cost = kernel.cost
        self.c = {key: int(cost.get("interpose", key)) for key in COST_KEYS}
        self._stub_cycles = sum(cost.instruction_cost(cls) for cls in ("alu", "load", "jump"))
        self.libraries: dict[str, Library] = {}
        self.hooks: list[Any] = []  # global hooks (hooks.Hook)
        self.totals = CallStats()
        self.by_pid: dict[int, CallStats] = {}
        self._inflight: dict[Any, _InFlight] = {}
        #: shared state of interposers across processes (fakeroot's faked database...).
        self.shared: dict[str, Any] = {}
        self._graph_nodes: set[str] = set()
        self.libc = libc.make_libc()
        self.register(self.libc)
        from virtlevels_interpose.interposers import make_fakeroot, make_faketime
        from virtlevels_interpose.win32 import make_kernel32

        for lib in (make_faketime(), make_fakeroot(), make_kernel32()):
            self.register(lib)
        kernel.exec_hooks.append(self._on_exec)
        kernel.hostcalls.append(self._hostcall)
        _LINKERS.add(self)

    @classmethod
    def of(cls, kernel: Any) -> Linker:
        """The kernel's linker, installed on first use."""
        ld = getattr(kernel, "_virtlevels_linker", None)
        if ld is None:
            ld = cls(kernel)
            kernel._virtlevels_linker = ld
        return ld  # type: ignore[no-any-return]

    # -- the library registry (what /lib holds) ----------------------------------------------------
    def register(self, lib: Library, path: str | None = None) -> Library:
        """Make ``lib`` loadable by its name (ld.so's search finds it) and, with ``path``, by path:
        a file ``#!vl-library NAME`` (RV32 libraries: their ELF) is written there."""
        self.libraries[lib.name] = lib
        if path is not None:
            if lib.image is not None and not lib.functions:
                from virtlevels.machine.elf import write_elf

                self.kernel.write_file(path, write_elf(lib.image), 0o755)
            else:
                self.kernel.write_file(path, LIBRARY_MAGIC + lib.name.encode() + b"\n", 0o755)
        return lib

    def find_library(self, spec: str, task: Any = None) -> Library | None:
        """ld.so's search: a name with a slash is a path; otherwise the registered sonames, then
        /lib and /usr/lib in the process's filesystem view."""
        if "/" not in spec:
            lib = self.libraries.get(spec)
            if lib is not None:
                return lib
            paths = [f"/lib/{spec}", f"/usr/lib/{spec}"]
        else:
            paths = [spec]
        for path in paths:
            try:
                data = self.kernel.read_file(path, task)
            except KernelError:
                continue
            if data.startswith(LIBRARY_MAGIC):
                name = data[len(LIBRARY_MAGIC) :].split(b"\n", 1)[0].strip().decode()
                return self.libraries.get(name)
            if data.startswith(b"\x7fELF"):
                from virtlevels.machine.elf import load_elf

                try:
                    image = load_elf(data, path)
                except VirtlevelsError:
                    return None
                return Library(path.rsplit("/", 1)[-1], image=image, needed=image_needed(image))
        return None

    # -- hooks ------------------------------------------------------------------------------------------
    def add_hook(self, hook: Any) -> Any:
        """Install a global hook, or a per-process one (``hook.pid`` set)."""
        if hook.pid is None:
            self.hooks.append(hook)
        else:
            t = self._task_of_pid(hook.pid)
            if t is None:
                raise LinkError(f"no process {hook.pid} to hook {hook.symbol!r} in")
            self.linkmap(t).hooks.append(hook)
        self._rebind_all()
        return hook

    def remove_hook(self, hook: Any) -> None:
        if hook in self.hooks:
            self.hooks.remove(hook)
        for p in self.kernel.processes:
            lm = p.leader.mm.linkmap if p.leader is not None else None
            if lm is not None and hook in lm.hooks:
                lm.hooks.remove(hook)
        self._rebind_all()

    def hooks_for(self, lm: LinkMap, name: str) -> list[Any]:
        return [h for h in [*self.hooks, *lm.hooks] if h.matches(name)]

    def _task_of_pid(self, pid: int) -> Any:
        for p in self.kernel.processes:
            if p.host_pid == pid and p.leader is not None and not p.zombie:
                return p.leader
        return None

    # -- building link maps --------------------------------------------------------------------------
    def linkmap(self, t: Any) -> LinkMap:
        """The task's link map (one is built, libc only, for a program started without execve)."""
        lm = t.mm.linkmap
        if lm is None:
            lm = self._build(t, t.comm, {}, (), None, t.envp)
            t.mm.linkmap = lm
            self.graph_sync()
        return lm  # type: ignore[no-any-return]

    def _on_exec(self, t: Any, path: str, program: Any) -> None:
        image = None
        if isinstance(program, (bytes, bytearray)):
            from virtlevels.machine.elf import load_elf

            image = load_elf(bytes(program), path)
            exports: dict[str, Any] = dict(image_exports(image))
            needed = image_needed(image)
        else:
            exports = dict(getattr(program, "vl_exports", {}))
            needed = tuple(getattr(program, "vl_needed", ()))
        lm = self._build(t, path, exports, needed, image, t.envp)
        t.mm.linkmap = lm
        self.graph_sync()
        for w in lm.warnings:
            self._stderr(t, w)
        if lm.error is not None:
            self._fail_start(t, lm)

    def _build(
        self,
        t: Any,
        program: str,
        exports: dict[str, Any],
        needed: Sequence[str],
        image: Image | None,
        envp: Sequence[str],
    ) -> LinkMap:
        env = env_dict(envp)
        isa = t.kind == "isa"
        prog_name = program.rsplit("/", 1)[-1]
        lm = LinkMap(program, [], isa=isa, env=env)
        errors: list[str] = []
        # 1. LD_PRELOAD (ld.so(8): missing objects are reported and ignored).
        for spec in parse_preload(env.get("LD_PRELOAD", "")):
            lib = self.find_library(spec, t)
            if lib is None:
                lm.warnings.append(
                    f"ERROR: ld.so: object '{spec}' from LD_PRELOAD cannot be preloaded "
                    "(cannot open shared object file): ignored.\n"
                )
                continue
            self._load(t, lm, lib, "preload", errors)
        # 2. the program.
        funcs = {k: v for k, v in exports.items() if callable(v)}
        addrs = {k: int(v) for k, v in exports.items() if isinstance(v, int)}
        lm.objects.append(LoadedObject(prog_name, "program", funcs, addrs, image=image))
        # 3. needed libraries, breadth first, each once.
        queue = list(needed)
        seen: set[str] = set()
        while queue:
            spec = queue.pop(0)
            if spec in seen or spec == LIBC_NAME:
                continue
            seen.add(spec)
            lib = self.find_library(spec, t)
            if lib is None:
                errors.append(
                    f"{prog_name}: error while loading shared libraries: {spec}: "
                    "cannot open shared object file: No such file or directory\n"
                )
                break
            self._load(t, lm, lib, "needed", errors)
            queue.extend(lib.needed)
        # 4. the C library.
        if lm.object_named(LIBC_NAME) is None:
            self._load(t, lm, self.libc, "libc", errors)
        if isa and not errors:
            self._map_scratch(t)
            for i, o in enumerate(lm.objects):
                if o.image is not None:
                    for sym, addr in image_imports(o.image).items():
                        lm.got.append((addr, sym, i))
            missing = [s for _a, s, _i in lm.got if lm.lookup(s) is None]
            if missing:
                errors.append(
                    f"{prog_name}: symbol lookup error: {prog_name}: undefined symbol: {missing[0]}\n"
                )
            else:
                self._bind(t, lm)
        if errors:
            lm.error = errors[0]
        return lm

    def _load(self, t: Any, lm: LinkMap, lib: Library, kind: str, errors: list[str]) -> None:
        if lm.object_named(lib.name) is not None:
            return
        addrs: dict[str, int] = {}
        if lib.image is not None:
            if t.kind != "isa":
                errors.append(f"{lib.name}: RV32 code cannot be loaded into a scripted process\n")
                return
            try:
                self._map_image(t, lib.image, lib.name)
            except LinkError as exc:
                errors.append(f"{lib.name}: {exc}\n")
                return
            addrs = image_exports(lib.image)
        lm.objects.append(LoadedObject(lib.name, kind, dict(lib.functions), addrs, lib.cost_key, lib.image))

    def _map_image(self, t: Any, image: Image, name: str) -> None:
        """mmap a position-dependent RV32 library at its link addresses (as prelink would)."""
        mm = t.mm
        for seg in image.segments:
            start = seg.addr & ~0xFFF
            end = (seg.addr + max(seg.memsize, len(seg.data)) + 0xFFF) & ~0xFFF
            if end > 0x8000_0000 or mm.overlaps(start, end):
                raise LinkError(f"cannot map segment 0x{start:08x}-0x{end:08x}: address range in use")
        for seg in image.segments:
            start = seg.addr & ~0xFFF
            end = (seg.addr + max(seg.memsize, len(seg.data)) + 0xFFF) & ~0xFFF
            prot = (PROT_READ if seg.flags & PF_R else 0) | (PROT_WRITE if seg.flags & PF_W else 0)
            prot |= PROT_EXEC if seg.flags & PF_X else 0
            mm.insert(Vma(start, end, prot, MAP_PRIVATE, name=name))
            if seg.data:
                mm.hw.user_memory(t, force=True).write(seg.addr, seg.data)

    def _map_scratch(self, t: Any) -> None:
        mm = t.mm
        if not mm.overlaps(SCRATCH_BASE, SCRATCH_BASE + SCRATCH_SIZE):
            mm.insert(Vma(SCRATCH_BASE, SCRATCH_BASE + SCRATCH_SIZE, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, name="[ld.so]"))  # fmt: skip

    def _slot(self, lm: LinkMap, name: str, start: int) -> int:
        key = (name, start)
        i = lm.slot_of.get(key)
        if i is None:
            i = len(lm.slots)
            if HOSTCALL_BASE + 4 * i >= HOSTCALL_END:
                raise LinkError("host-call window full")
            lm.slots.append(key)
            lm.slot_of[key] = i
        return HOSTCALL_BASE + 4 * i

    def target(self, lm: LinkMap, name: str, start: int = 0) -> int:
        """What a GOT word (or dlsym) holds for ``name``: an RV32 definition's address when
        nothing hooks it, else a host-call slot."""
        d = lm.lookup(name, start)
        if d is not None and d.addr is not None and not (start == 0 and self.hooks_for(lm, name)):
            return d.addr
        return self._slot(lm, name, start)

    def _bind(self, t: Any, lm: LinkMap) -> None:
        """Fill every GOT word (eager binding, LD_BIND_NOW), charging ld.so's lookups to exec."""
        um = t.mm.hw.user_memory(t, force=True)
        for addr, sym, _i in lm.got:
            um.write(addr, self.target(lm, sym).to_bytes(4, "little"))
        cycles = self.c["bind"] * len(lm.got)
        if cycles:
            self.kernel.charge_extra(cycles)
            lm.stats.bind_cycles += cycles
            self._stats(t).bind_cycles += cycles
            self.totals.bind_cycles += cycles

    def _rebind_all(self) -> None:
        """Hooks changed: GOTs that point straight at RV32 code are re-pointed (or back)."""
        for p in self.kernel.processes:
            t = p.leader
            if t is None or t.dead or t.mm.linkmap is None or not t.mm.linkmap.isa or t.mm.hw is None:
                continue
            lm = t.mm.linkmap
            if lm.error is not None:
                continue
            um = t.mm.hw.user_memory(t, force=True)
            for addr, sym, _i in lm.got:
                um.write(addr, self.target(lm, sym).to_bytes(4, "little"))

    # -- ld.so's failures -------------------------------------------------------------------------------
    def _stderr(self, t: Any, msg: str) -> None:
        try:
            f = t.files.get(2)
        except KernelError:
            return
        try:
            self.kernel.vfs.write(f, msg.encode())
        except KernelError:
            pass

    def _fail_start(self, t: Any, lm: LinkMap) -> None:
        """ld.so runs in the process before main: it prints the error and exits 127."""
        msg = lm.error or ""
        if t.kind == "isa":
            t.context.pc = HOSTCALL_BASE  # slot 0: ld.so's error exit
            return

        def ldso_error() -> Generator[Any, Any, Any]:
            yield sys.write(2, msg)
            yield sys.exit_group(LDSO_EXIT)

        old = t.gen
        t.gen = ldso_error()
        t.started = False
        if old is not None:
            self.kernel._close_gen(old)

    # -- the call path ----------------------------------------------------------------------------------
    def _stats(self, t: Any) -> CallStats:
        pid = t.process.host_pid
        s = self.by_pid.get(pid)
        if s is None:
            s = self.by_pid[pid] = CallStats()
        return s

    def _account(
        self, t: Any, lm: LinkMap, field: str, cycles: int, calls_field: str | None = None, calls: int = 1
    ) -> None:
        for s in (lm.stats, self._stats(t), self.totals):
            setattr(s, field, getattr(s, field) + cycles)
            if calls_field is not None:
                setattr(s, calls_field, getattr(s, calls_field) + calls)

    def invoke(
        self,
        t: Any,
        lm: LinkMap,
        name: str,
        args: Sequence[Any],
        *,
        isa: bool = False,
        start: int = 0,
        via_plt: bool = True,
    ) -> Generator[Any, Any, Any]:
        """Call ``name`` in ``t``'s scope (from ``start``: RTLD_NEXT); a generator to drive.

        ENTER hooks may change the arguments, a REPLACE hook runs instead of the definition (its
        ``c.next`` reaches the definition), EXIT hooks may change the result. Hooks run on calls
        through the PLT only (start 0), not on RTLD_NEXT calls an interposer makes itself.
        """
        defn = lm.lookup(name, start)
        hooks = self.hooks_for(lm, name) if start == 0 else []
        replace = [h for h in hooks if h.when.value == "replace"]
        if defn is None and not replace:
            prog = lm.program.rsplit("/", 1)[-1]
            msg = f"{prog}: symbol lookup error: {prog}: undefined symbol: {name}\n"
            yield sys.write(2, msg)
            yield sys.exit_group(LDSO_EXIT)
            return -1
        for s in (lm.stats, self._stats(t), self.totals):
            s.calls[name] = s.calls.get(name, 0) + 1
        cycles = 0
        if via_plt and start == 0 and not isa:
            # ISA callers executed the stub's real instructions; a scripted caller is charged them.
            # (An RTLD_NEXT call goes through the pointer dlsym returned, not through a PLT entry.)
            cycles += self.c["plt"]
            self._account(t, lm, "plt_cycles", self.c["plt"], "plt_calls")
        elif via_plt and start == 0:
            # Reported, not charged again: the stub's auipc + lw + jalr ran as user instructions.
            self._account(t, lm, "plt_cycles", self._stub_cycles, "plt_calls")
        if defn is not None and defn.fn is not None:
            cycles += self.c["hostcall"]
            self._account(t, lm, "hostcall_cycles", self.c["hostcall"])
        if defn is not None and defn.obj.cost_key:
            extra = self.c.get(defn.obj.cost_key, 0)
            cycles += extra
            self._account(t, lm, "translated_cycles", extra, "translated_calls")
        if hooks:
            hc = self.c["interposer"] * len(hooks)
            cycles += hc
            self._account(t, lm, "interposer_cycles", hc, "interposer_calls", len(hooks))
        if cycles:
            yield Burn(cycles)
        c = CallCtx(self, t, lm, name, defn, isa)
        args = list(args)
        if not hooks:  # the common call: straight to the definition (it exists: checked above)
            assert defn is not None
            return (yield from self._run_definition(c, defn, args))
        from virtlevels_interpose.hooks import HookCtx

        hctx = HookCtx(c, name, t.process.host_pid)
        for h in hooks:
            if h.when.value == "enter":
                new = yield from run_value(h.fn(hctx, args))
                if new is not None:
                    args = list(new)
        if replace:
            result = yield from run_value(replace[0].fn(hctx, *args))
        else:
            assert defn is not None
            result = yield from self._run_definition(c, defn, args)
        for h in hooks:
            if h.when.value == "exit":
                new = yield from run_value(h.fn(hctx, args, result))
                if new is not None:
                    result = new
        return result

    def _run_definition(self, c: CallCtx, defn: Definition, args: list[Any]) -> Generator[Any, Any, Any]:
        if defn.fn is not None:
            n = _arity(defn.fn)
            if c.isa and n is not None:
                args = args[:n]
            return (yield from run_value(defn.fn(c, *args)))
        # An RV32 definition reached through a host call (it is hooked): a tail call into it.
        if not c.isa:
            raise LinkError(f"{defn.name} is RV32 code in {defn.obj.name}; a scripted program cannot run it")
        return _TailCall(int(defn.addr or 0), args)

    # -- ISA host calls -------------------------------------------------------------------------------
    def _hostcall(self, t: Any, addr: int) -> bool:
        if not HOSTCALL_BASE <= addr < HOSTCALL_END or addr & 3:
            return False
        lm = t.mm.linkmap
        if lm is None or not lm.isa:
            return False
        k = self.kernel
        ctx = t.context
        st = self._inflight.pop(t, None)
        if st is None or st.addr != addr:
            slot = (addr - HOSTCALL_BASE) // 4
            if slot >= len(lm.slots):
                return False
            ra = ctx.regs[1]
            if slot == 0:
                gen = self._ldso_exit(lm)
            else:
                name, start = lm.slots[slot]
                args = list(ctx.regs[10:18])
                gen = self.invoke(t, lm, name, args, isa=True, start=start)
            st = _InFlight(gen, ra, addr)
            for s in (lm.stats, self._stats(t), self.totals):
                s.hostcall_traps += 1
        h = k.isa.harts[t.cpu]
        while True:
            if st.pending is not None:
                op: Any = st.pending
            else:
                try:
                    op = st.gen.send(st.send)
                except StopIteration as stop:
                    self._isa_return(t, ctx, st, stop.value)
                    return True
                except KernelError as exc:
                    if exc.errno == EFAULT:  # a bad pointer in a library function: SIGSEGV
                        k.send_signal(t.process, signals.SIGSEGV)
                        return True
                    raise
                st.send = None
            if isinstance(op, Burn):
                h.charge("library", max(0, op.cycles))
                continue
            if isinstance(op, Touch):
                st.send = 0
                continue
            if not isinstance(op, Syscall):
                raise LinkError(f"library function yielded {op!r}, not a system call")
            # The call site's pc: seccomp sees it, and a fork child returns (0) at ra.
            ctx.pc = (st.ra - 4) & M32
            try:
                result = self._isa_syscall(t, lm, op)
            except WouldBlock as wb:
                st.pending = op
                ctx.pc = addr  # re-entered (and resumed) when the task wakes
                self._inflight[t] = st
                k.sleep_on(t, wb.queue)
                h.charge("kernel", k.c_syscall)
                return True
            st.pending = None
            for category, cycles in k.syscall_charges():
                h.charge(category, cycles)
            if t.dead or t.kind != "isa" or t.context is not ctx:
                self._close(st.gen)
                return True  # it exited, or execve replaced the program
            if t.pending_kill or t.exit_after_syscall is not None:
                ctx.pc = addr
                self._close(st.gen)
                return True
            st.send = result

    @staticmethod
    def _close(gen: Any) -> None:
        try:
            gen.close()
        except Exception:  # noqa: BLE001 - a library's cleanup cannot stop the kernel
            pass

    def _isa_return(self, t: Any, ctx: Any, st: _InFlight, value: Any) -> None:
        if isinstance(value, _TailCall):
            for i, a in enumerate(value.args[:8]):
                ctx.regs[10 + i] = int(a) & M32
            ctx.regs[1] = st.ra
            ctx.pc = value.addr & M32
            return
        if value is None:
            value = 0
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int):
            raise LinkError(f"a library function returned {value!r} to an ISA program (an int is needed)")
        ctx.regs[10] = value & M32
        ctx.pc = st.ra & M32

    def _ldso_exit(self, lm: LinkMap) -> Generator[Any, Any, Any]:
        yield sys.write(2, lm.error or "ld.so: cannot start the program\n")
        yield sys.exit_group(LDSO_EXIT)
        return 0

    def _isa_syscall(self, t: Any, lm: LinkMap, op: Syscall) -> Any:
        """A library function's system call for an ISA process: Python values go through the
        linker's scratch area in the process's memory, as ld.so's own buffers would."""
        um = t.mm.hw.user_memory(t)
        top = [ERRNO_ADDR + 16]
        outs: list[tuple[int, int]] = []

        def alloc(data: bytes) -> int:
            a = (top[0] + 7) & ~7
            if a + len(data) > SCRATCH_BASE + SCRATCH_SIZE:
                raise KernelError(EFAULT, "library call arguments too large for ld.so's scratch area")
            um.write(a, data)
            top[0] = a + len(data)
            return a

        def marshal(a: Any) -> int:
            if isinstance(a, bool):
                return int(a)
            if isinstance(a, int):
                return a & M32
            if isinstance(a, (bytes, bytearray)):
                return alloc(bytes(a)) if a else alloc(b"\0")
            if isinstance(a, str):
                return alloc(a.encode("utf-8", errors="surrogateescape") + b"\0")
            if isinstance(a, Out):
                p = alloc(bytes(a.size))
                outs.append((p, a.size))
                return p
            if isinstance(a, (list, tuple)):
                ptrs = [marshal(x) for x in a] + [0]
                return alloc(b"".join(p.to_bytes(4, "little") for p in ptrs))
            if isinstance(a, IoVec):
                vec = bytearray()
                for b in a.bufs:
                    p = marshal(b)
                    size = b.size if isinstance(b, Out) else len(b)
                    vec += p.to_bytes(4, "little") + size.to_bytes(4, "little")
                return alloc(bytes(vec))
            if a is None:
                return 0
            if isinstance(a, Obj):
                raise LinkError("an ISA process's library call cannot pass a Python object to the kernel")
            raise LinkError(f"cannot pass {a!r} to a system call")

        args = tuple(marshal(a) for a in op.args)
        args = args + (0,) * (6 - len(args))
        result = self.kernel.syscall(t, op.nr, args, t.context.pc)
        if op.decode is None:
            return result
        if t.dead or t.mm.hw is None:
            return result
        return op.decode(result, [um.read(p, n) for p, n in outs])

    # -- the resource graph -------------------------------------------------------------------------------
    def library_node(self, name: str) -> str:
        return f"{self.kernel.node_id}/lib/{name}"

    def graph_sync(self) -> None:
        """Make the World's graph show the libraries mapped now: one ``library`` node per loaded
        object of this kernel (``runs_on`` the kernel), ``process --maps_to--> library`` for every
        live process whose link map holds it; a library no process maps any more is removed.
        Called at exec, on process events (the plugin's hook) and when stats are read."""
        g = self.kernel.world.graph
        want: dict[str, set[str]] = {}
        info: dict[str, tuple[str, LoadedObject]] = {}
        for p in self.kernel.processes:
            t = p.leader
            if p.zombie or t is None or p.graph_id is None or p.graph_id not in g:
                continue
            lm = t.mm.linkmap
            if lm is None:
                continue
            for o in lm.objects:
                if o.kind == "program":
                    continue
                nid = self.library_node(o.name)
                want.setdefault(p.graph_id, set()).add(nid)
                info.setdefault(nid, (o.name, o))
        mine = set(self._graph_nodes)
        for nid, (name, o) in info.items():
            if nid not in g:
                g.add(nid, "library", name=name, code="rv32" if o.image is not None else "python",
                      symbols=len(o.functions) + len(o.addrs))  # fmt: skip
                g.link(nid, self.kernel.node_id, "runs_on")
            self._graph_nodes.add(nid)
        for pid_node, libs in want.items():
            have = {b for _a, b, d in g.g.out_edges(pid_node, data=True)
                    if d["kind"] == "maps_to" and b in mine | set(info)}  # fmt: skip
            for nid in have - libs:
                g.unlink(pid_node, nid, "maps_to")
            for nid in libs - have:
                g.link(pid_node, nid, "maps_to")
        for nid in list(self._graph_nodes):
            if nid not in info:
                if nid in g:
                    g.remove(nid)
                self._graph_nodes.discard(nid)

    # -- reports ---------------------------------------------------------------------------------------
    def stats(self, pid: int | None = None) -> dict[str, Any]:
        """Library-level costs: of one process (by host pid) or of the whole run."""
        s = self.totals if pid is None else self.by_pid.get(pid, CallStats())
        return s.to_dict()

    def report(self, pid: int | None = None) -> str:
        d = self.stats(pid)
        lines = [
            f"library calls      {d['total_calls']}",
            f"  PLT indirection  {d['plt_cycles']} cycles ({d['plt_calls']} calls through the PLT)",
            f"  host functions   {d['hostcall_cycles']} cycles ({d['hostcall_traps']} host-call traps)",
            f"  interposers      {d['interposer_cycles']} cycles ({d['interposer_calls']} hook calls)",
            f"  API translation  {d['translated_cycles']} cycles ({d['translated_calls']} calls)",
            f"  symbol binding   {d['bind_cycles']} cycles",
            f"  total            {d['total_cycles']} cycles",
        ]
        return "\n".join(lines)


@attrs.frozen
class _TailCall:
    addr: int
    args: list[Any]


# -- the scripted programs' entry: ``yield from libcall.printf("%d\n", 5)`` ------------------------
def current_task() -> tuple[Linker, Any]:
    """The task running now (the one kernel in the World that is mid-step) and its linker."""
    for ld in list(_LINKERS):
        t = ld.kernel.current
        if t is not None:
            return ld, t
    raise LinkError("a library call outside a running process (no kernel is running a task)")


class _LibCall:
    """``libcall.NAME(*args)``: a generator calling NAME through the current process's PLT."""

    def __getattr__(self, name: str) -> Callable[..., Generator[Any, Any, Any]]:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)

        def call(*args: Any) -> Generator[Any, Any, Any]:
            return call_symbol(name, *args)

        call.__name__ = name
        return call

    def __call__(self, name: str, *args: Any) -> Generator[Any, Any, Any]:
        return call_symbol(name, *args)


def call_symbol(name: str, *args: Any) -> Generator[Any, Any, Any]:
    ld, t = current_task()
    lm = ld.linkmap(t)
    return (yield from ld.invoke(t, lm, name, args))


libcall = _LibCall()


def errno() -> int:
    """The calling process's errno (after a failed library call)."""
    ld, t = current_task()
    return ld.linkmap(t).errno


def getenv_of(t: Any, name: str) -> str | None:
    lm = t.mm.linkmap
    return lm.env.get(name) if lm is not None else None
