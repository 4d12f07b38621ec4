"""Landlock-like filesystem rules (landlock(7), landlock_create_ruleset(2), landlock_add_rule(2),
landlock_restrict_self(2); security/landlock/fs.c).

A *ruleset* says which filesystem access rights it handles and, for file hierarchies, which of
them are allowed beneath (``LANDLOCK_RULE_PATH_BENEATH``). ``landlock_restrict_self`` stacks a
copy of it as a new *layer* of the calling thread's *domain*: the domain lives in the
credentials (``Credentials.security``), so fork and execve keep it and nothing removes a layer —
a process can only tighten it. An access is allowed when every layer that handles the right
finds a rule granting it on the object or one of its ancestors (walking up through the mounts
to the real root). A denied access fails with EACCES, as Landlock's does.

The checks run in the VFS's LSM seam (``Vfs.security_hooks``): open (READ_FILE/READ_DIR,
WRITE_FILE, TRUNCATE for O_TRUNC), execve (EXECUTE, besides READ_FILE for the open that execve
makes), truncate, mkdir/mknod/symlink/link/O_CREAT (MAKE_* on the parent), unlink/rmdir
(REMOVE_* on the parent) and rename (REMOVE_* on the old parent, MAKE_* on the new one).

The three system calls (riscv32 numbers 444-446) are added to the kernel's system call table
by :func:`install`. Not modelled: LANDLOCK_ACCESS_FS_REFER's EXDEV rule for reparenting renames
and links (they are checked as a remove plus a make), IOCTL_DEV and network rules (ABI 4+).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import attrs

from virtlevels.kernel.caps import CAP_SYS_ADMIN
from virtlevels.kernel.errno import E2BIG, EACCES, EBADF, EBADFD, EFAULT, EINVAL, ENOMSG, EPERM, KernelError
from virtlevels.kernel.ns.user import has_cap
from virtlevels.kernel.vfs.constants import (
    O_ACCMODE,
    O_PATH,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    S_IFBLK,
    S_IFCHR,
    S_IFDIR,
    S_IFIFO,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
    S_IFSOCK,
)

# include/uapi/linux/landlock.h
LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
LANDLOCK_RULE_PATH_BENEATH = 1
ACCESS_FS_EXECUTE = 1 << 0
ACCESS_FS_WRITE_FILE = 1 << 1
ACCESS_FS_READ_FILE = 1 << 2
ACCESS_FS_READ_DIR = 1 << 3
ACCESS_FS_REMOVE_DIR = 1 << 4
ACCESS_FS_REMOVE_FILE = 1 << 5
ACCESS_FS_MAKE_CHAR = 1 << 6
ACCESS_FS_MAKE_DIR = 1 << 7
ACCESS_FS_MAKE_REG = 1 << 8
ACCESS_FS_MAKE_SOCK = 1 << 9
ACCESS_FS_MAKE_FIFO = 1 << 10
ACCESS_FS_MAKE_BLOCK = 1 << 11
ACCESS_FS_MAKE_SYM = 1 << 12
ACCESS_FS_REFER = 1 << 13
ACCESS_FS_TRUNCATE = 1 << 14
#: The ABI this model offers (TRUNCATE came with ABI 3) and the rights it knows.
ABI_VERSION = 3
ACCESS_FS_ALL = (1 << 15) - 1
#: Rights that make sense on a file (a PATH_BENEATH rule on a non-directory may hold only these).
ACCESS_FILE = ACCESS_FS_EXECUTE | ACCESS_FS_WRITE_FILE | ACCESS_FS_READ_FILE | ACCESS_FS_TRUNCATE
#: Landlock's limit on stacked layers (LANDLOCK_MAX_NUM_LAYERS).
MAX_LAYERS = 16

NR_CREATE_RULESET = 444
NR_ADD_RULE = 445
NR_RESTRICT_SELF = 446

ACCESS_NAMES = {
    ACCESS_FS_EXECUTE: "execute",
    ACCESS_FS_WRITE_FILE: "write_file",
    ACCESS_FS_READ_FILE: "read_file",
    ACCESS_FS_READ_DIR: "read_dir",
    ACCESS_FS_REMOVE_DIR: "remove_dir",
    ACCESS_FS_REMOVE_FILE: "remove_file",
    ACCESS_FS_MAKE_CHAR: "make_char",
    ACCESS_FS_MAKE_DIR: "make_dir",
    ACCESS_FS_MAKE_REG: "make_reg",
    ACCESS_FS_MAKE_SOCK: "make_sock",
    ACCESS_FS_MAKE_FIFO: "make_fifo",
    ACCESS_FS_MAKE_BLOCK: "make_block",
    ACCESS_FS_MAKE_SYM: "make_sym",
    ACCESS_FS_REFER: "refer",
    ACCESS_FS_TRUNCATE: "truncate",
}
_MAKE = {
    S_IFREG: ACCESS_FS_MAKE_REG,
    S_IFDIR: ACCESS_FS_MAKE_DIR,
    S_IFCHR: ACCESS_FS_MAKE_CHAR,
    S_IFBLK: ACCESS_FS_MAKE_BLOCK,
    S_IFIFO: ACCESS_FS_MAKE_FIFO,
    S_IFSOCK: ACCESS_FS_MAKE_SOCK,
    S_IFLNK: ACCESS_FS_MAKE_SYM,
}

#: What the sandbox's allow lists grant (as the landlock sandboxer's read-only / read-write sets).
#: execve opens the file for reading (FMODE_READ) as well as for execution, so exec needs both.
ALLOW_READ = ACCESS_FS_READ_FILE | ACCESS_FS_READ_DIR
ALLOW_WRITE = (
    ACCESS_FS_WRITE_FILE
    | ACCESS_FS_REMOVE_DIR
    | ACCESS_FS_REMOVE_FILE
    | ACCESS_FS_MAKE_CHAR
    | ACCESS_FS_MAKE_DIR
    | ACCESS_FS_MAKE_REG
    | ACCESS_FS_MAKE_SOCK
    | ACCESS_FS_MAKE_FIFO
    | ACCESS_FS_MAKE_BLOCK
    | ACCESS_FS_MAKE_SYM
    | ACCESS_FS_TRUNCATE
)
ALLOW_EXEC = ACCESS_FS_EXECUTE | ACCESS_FS_READ_FILE
#: What a sandbox with any allow list handles: every right but REFER (not modelled).
HANDLED_BY_SANDBOX = ACCESS_FS_ALL & ~ACCESS_FS_REFER


def access_names(mask: int) -> list[str]:
    return [name for bit, name in ACCESS_NAMES.items() if mask & bit]


@attrs.frozen
class Layer:
    """One landlock_restrict_self: the rights it handles and its rules (inode id -> (inode, allowed))."""

    handled: int
    rules: dict[int, tuple[Any, int]]


@attrs.frozen
class Domain:
    """A thread's Landlock domain: its layers, oldest first (kept in ``Credentials.security``)."""

    layers: tuple[Layer, ...] = ()


@attrs.define(eq=False)
class Ruleset:
    """What a ruleset descriptor holds (struct landlock_ruleset), editable until it is enforced."""

    handled: int
    rules: dict[int, tuple[Any, int]] = attrs.field(factory=dict)

    def add(self, inode: Any, allowed: int) -> None:
        old = self.rules.get(id(inode))
        self.rules[id(inode)] = (inode, allowed | (old[1] if old is not None else 0))


@attrs.define(eq=False)
class RulesetOps:
    """The file operations of a ruleset descriptor: none (read/write are EINVAL)."""

    ruleset: Ruleset
    seekable = False

    def read(self, f: Any, size: int) -> bytes:
        raise KernelError(EINVAL, "read on a Landlock ruleset")

    def write(self, f: Any, data: bytes) -> int:
        raise KernelError(EINVAL, "write on a Landlock ruleset")

    def release(self, f: Any) -> None:
        pass


@attrs.define
class LandlockStats:
    checks: int = 0
    denied: int = 0
    #: (operation, missing access rights) of the first denials, for reports.
    denials: list[tuple[str, list[str]]] = attrs.field(factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"checks": self.checks, "denied": self.denied}


# -- the access check ----------------------------------------------------------------------------------
def _allowed_beneath(layer: Layer, path: Any) -> int:
    """The union of the layer's rights granted on ``path`` or any ancestor, across mounts."""
    rules = layer.rules
    got = 0
    d, m = path.dentry, path.mnt
    for _ in range(4096):  # a bound on the walk: a dentry tree is finite, but a bug must not hang
        rule = rules.get(id(d.inode))
        if rule is not None and rule[0] is d.inode:
            got |= rule[1]
        if d is m.root:
            if m.parent is None or m.mountpoint is None:
                break
            d, m = m.mountpoint, m.parent
            continue
        if d.is_root:
            break
        d = d.up()
    return got


def check(domain: Domain, path: Any, access: int) -> int:
    """The rights of ``access`` that some layer handles and does not grant on ``path`` (0: allowed)."""
    missing = 0
    for layer in domain.layers:
        need = access & layer.handled
        if need:
            missing |= need & ~_allowed_beneath(layer, path)
    return missing


def required_access(op: str, path: Any, arg: int) -> int:
    """What an operation at the LSM seam needs (security/landlock/fs.c hooks)."""
    if op == "open":
        if arg & O_PATH:
            return 0
        acc = arg & O_ACCMODE
        need = 0
        if acc in (O_RDONLY, O_RDWR):
            need |= ACCESS_FS_READ_DIR if path.dentry.inode.is_dir else ACCESS_FS_READ_FILE
        if acc in (O_WRONLY, O_RDWR):
            need |= ACCESS_FS_WRITE_FILE
        if arg & O_TRUNC:
            need |= ACCESS_FS_TRUNCATE
        return need
    if op == "exec":
        return ACCESS_FS_EXECUTE
    if op == "truncate":
        return ACCESS_FS_TRUNCATE
    if op in ("mkdir", "mknod", "symlink", "link", "rename_to"):
        return _MAKE.get(arg & S_IFMT, ACCESS_FS_MAKE_REG)
    if op in ("unlink", "rmdir", "rename_from"):
        return ACCESS_FS_REMOVE_DIR if arg & S_IFMT == S_IFDIR else ACCESS_FS_REMOVE_FILE
    return 0


# -- per kernel ----------------------------------------------------------------------------------------
@attrs.define(eq=False)
class KernelLandlock:
    kernel: Any
    stats: LandlockStats = attrs.field(factory=LandlockStats)
    _anon_sb: Any = None

    def hook(self, creds: Any, op: str, path: Any, arg: int) -> None:
        domain = creds.security
        if not isinstance(domain, Domain) or not domain.layers:
            return
        need = required_access(op, path, arg)
        if not need:
            return
        self.stats.checks += 1
        missing = check(domain, path, need)
        if missing:
            self.stats.denied += 1
            names = access_names(missing)
            if len(self.stats.denials) < 256:
                self.stats.denials.append((op, names))
            raise KernelError(EACCES, f"Landlock: {op} needs {', '.join(names)}")

    def anon_inode(self, creds: Any) -> Any:
        """An inode for a ruleset descriptor (anon_inode_getfd's "[landlock-ruleset]")."""
        if self._anon_sb is None:
            from virtlevels.kernel.vfs.synthetic import SynDir, SyntheticFS

            core = self.kernel.vfs.core
            sb = core.new_sb(SyntheticFS(SynDir(), "anon_inodefs"), "anon_inodefs", source="anon_inodefs")
            sb.fs.make_root(sb)
            self._anon_sb = sb
        return self._anon_sb.new_inode(0o600, creds.fsuid, creds.fsgid)

    # -- the system calls ------------------------------------------------------------------------------
    def sys_create_ruleset(self, k: Any, t: Any, attr: int, size: int, flags: int) -> int:
        from virtlevels.kernel.syscalls.util import mem
        from virtlevels.kernel.vfs.file import OpenFile

        if flags == LANDLOCK_CREATE_RULESET_VERSION:
            if attr or size:
                raise KernelError(EINVAL, "LANDLOCK_CREATE_RULESET_VERSION takes no attributes")
            return ABI_VERSION
        if flags:
            raise KernelError(EINVAL, f"landlock_create_ruleset flags {flags:#x}")
        if size < 8:
            raise KernelError(EINVAL, "struct landlock_ruleset_attr is 8 bytes or more")
        if attr == 0:
            raise KernelError(EFAULT, "NULL ruleset attributes")
        raw = mem(t).read(attr, min(size, 16))
        handled = struct.unpack_from("<Q", raw)[0]
        if size >= 16 and struct.unpack_from("<Q", raw, 8)[0]:
            raise KernelError(EINVAL, "network rules (handled_access_net) are not supported")
        if handled & ~ACCESS_FS_ALL:
            raise KernelError(EINVAL, f"unknown access rights {handled & ~ACCESS_FS_ALL:#x}")
        if not handled:
            raise KernelError(ENOMSG, "a ruleset must handle some access right")
        inode = self.anon_inode(t.creds)
        f = OpenFile(inode, RulesetOps(Ruleset(handled)), O_RDWR)
        inode.open_count += 1
        try:
            return int(t.files.install(f, cloexec=True))
        except KernelError:
            f.put()
            raise

    def sys_add_rule(self, k: Any, t: Any, rfd: int, rule_type: int, attr: int, flags: int) -> int:
        from virtlevels.kernel.syscalls.util import mem, s32

        if flags:
            raise KernelError(EINVAL, f"landlock_add_rule flags {flags:#x}")
        rs = _ruleset_of(t, rfd)
        if rule_type != LANDLOCK_RULE_PATH_BENEATH:
            raise KernelError(EINVAL, f"rule type {rule_type}")
        if attr == 0:
            raise KernelError(EFAULT, "NULL rule attributes")
        # struct landlock_path_beneath_attr { __u64 allowed_access; __s32 parent_fd; } (packed)
        allowed, parent_fd = struct.unpack("<Qi", mem(t).read(attr, 12))
        if not allowed:
            raise KernelError(ENOMSG, "a rule must allow some access right")
        if allowed & ~rs.handled:
            raise KernelError(EINVAL, "a rule may only allow rights its ruleset handles")
        f = t.files.get(s32(parent_fd))
        if f.path is None:
            raise KernelError(EBADF, "parent_fd is not a file of the filesystem")
        if not f.inode.is_dir and allowed & ~ACCESS_FILE:
            raise KernelError(EINVAL, "directory rights on a file")
        rs.add(f.inode, allowed)
        return 0

    def sys_restrict_self(self, k: Any, t: Any, rfd: int, flags: int) -> int:
        if flags:
            raise KernelError(EINVAL, f"landlock_restrict_self flags {flags:#x}")
        # landlock_restrict_self(2): no_new_privs, or CAP_SYS_ADMIN in the caller's user namespace.
        if not t.creds.no_new_privs and not has_cap(t.creds, t.nsproxy.user, CAP_SYS_ADMIN):
            raise KernelError(EPERM, "Landlock needs no_new_privs or CAP_SYS_ADMIN")
        rs = _ruleset_of(t, rfd)
        old = t.creds.security if isinstance(t.creds.security, Domain) else Domain()
        if len(old.layers) >= MAX_LAYERS:
            raise KernelError(E2BIG, f"more than {MAX_LAYERS} Landlock layers")
        layer = Layer(rs.handled, dict(rs.rules))  # a copy: later rules do not change the domain
        creds = t.creds.copy()
        creds.security = Domain((*old.layers, layer))
        t.creds = creds
        return 0


def _ruleset_of(t: Any, fd: int) -> Ruleset:
    from virtlevels.kernel.syscalls.util import s32

    f = t.files.get(s32(fd))
    if not isinstance(f.ops, RulesetOps):
        raise KernelError(EBADFD, f"fd {fd} is not a Landlock ruleset")
    return f.ops.ruleset


def install(kernel: Any) -> KernelLandlock:
    """Give ``kernel`` Landlock: the three system calls and the VFS hook (idempotent)."""
    kl = getattr(kernel, "_virtlevels_landlock", None)
    if kl is not None:
        return kl  # type: ignore[no-any-return]
    kl = KernelLandlock(kernel)
    kernel._virtlevels_landlock = kl
    kernel.syscalls.register(NR_CREATE_RULESET, kl.sys_create_ruleset, 3, "landlock_create_ruleset")
    kernel.syscalls.register(NR_ADD_RULE, kl.sys_add_rule, 4, "landlock_add_rule")
    kernel.syscalls.register(NR_RESTRICT_SELF, kl.sys_restrict_self, 2, "landlock_restrict_self")
    kernel.vfs.security_hooks.append(kl.hook)
    return kl


def stats(kernel: Any) -> LandlockStats:
    kl = getattr(kernel, "_virtlevels_landlock", None)
    return kl.stats if kl is not None else LandlockStats()


def domain_of(t: Any) -> Domain | None:
    d = t.creds.security
    return d if isinstance(d, Domain) else None


# -- scripted helpers ------------------------------------------------------------------------------------
def create_ruleset(handled: int) -> Any:
    from virtlevels.kernel.scripted import Syscall

    return Syscall(NR_CREATE_RULESET, (struct.pack("<Q", handled), 8, 0))


def abi_version() -> Any:
    from virtlevels.kernel.scripted import Syscall

    return Syscall(NR_CREATE_RULESET, (0, 0, LANDLOCK_CREATE_RULESET_VERSION))


def add_rule(ruleset_fd: int, allowed: int, parent_fd: int) -> Any:
    from virtlevels.kernel.scripted import Syscall

    attr = struct.pack("<Qi", allowed, parent_fd)
    return Syscall(NR_ADD_RULE, (ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, attr, 0))


def restrict_self(ruleset_fd: int) -> Any:
    from virtlevels.kernel.scripted import Syscall

    return Syscall(NR_RESTRICT_SELF, (ruleset_fd, 0))


def merge_rules(rules: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Paths with the union of their rights, in first-seen order."""
    out: dict[str, int] = {}
    for path, access in rules:
        out[path] = out.get(path, 0) | access
    return list(out.items())
