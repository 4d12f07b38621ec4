"""UTS namespaces (uts_namespaces(7)): hostname and NIS domain name, and what uname(2) returns."""

from __future__ import annotations

import attrs

from virtlevels.kernel.caps import CAP_SYS_ADMIN
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EINVAL, EPERM, KernelError
from virtlevels.kernel.ns.common import NS_TYPES, Namespace, NsContext
from virtlevels.kernel.ns.user import UserNamespace, has_cap

NEW_UTS_LEN = 64  # include/uapi/linux/utsname.h, __NEW_UTS_LEN (each field is 65 bytes with the NUL)


@attrs.frozen
class Utsname:
    """struct new_utsname, as uname(2) fills it."""

    sysname: bytes
    nodename: bytes
    release: bytes
    version: bytes
    machine: bytes
    domainname: bytes


@attrs.define(eq=False)
class UtsNamespace(Namespace):
    TYPE = NS_TYPES["uts"]

    sysname: bytes = b"Linux"
    nodename: bytes = b"(none)"  # init/version.c: UTS_NODENAME defaults to "(none)"
    release: bytes = b"6.6.0-virtlevels"
    version: bytes = b"#1 SMP"
    machine: bytes = b"riscv32"
    domainname: bytes = b"(none)"

    def uname(self) -> Utsname:
        return Utsname(self.sysname, self.nodename, self.release, self.version, self.machine, self.domainname)

    def _check(self, name: bytes | str, creds: Credentials) -> bytes:
        # kernel/sys.c sethostname: permission first (CAP_SYS_ADMIN over the UTS namespace's
        # owner), then the length.
        if self.owner_ns is not None and not has_cap(creds, self.owner_ns, CAP_SYS_ADMIN):
            raise KernelError(EPERM, "CAP_SYS_ADMIN needed in the UTS namespace's user namespace")
        raw = name.encode() if isinstance(name, str) else bytes(name)
        if len(raw) > NEW_UTS_LEN:
            raise KernelError(EINVAL, f"name longer than {NEW_UTS_LEN} bytes")
        return raw

    def sethostname(self, name: bytes | str, creds: Credentials) -> None:
        self.nodename = self._check(name, creds)

    def setdomainname(self, name: bytes | str, creds: Credentials) -> None:
        self.domainname = self._check(name, creds)

    @property
    def hostname(self) -> str:
        return self.nodename.decode(errors="replace")


def initial_uts_ns(ctx: NsContext, user_ns: UserNamespace) -> UtsNamespace:
    return UtsNamespace(ctx, NS_TYPES["uts"].init_ino, user_ns)


def clone_uts_ns(user_ns: UserNamespace, old: UtsNamespace) -> UtsNamespace:
    """A copy of ``old`` owned by ``user_ns`` (copy_utsname: the new one starts with the old names)."""
    return UtsNamespace(
        old.ctx, old.ctx.alloc_ino(), user_ns, sysname=old.sysname, nodename=old.nodename,
        release=old.release, version=old.version, machine=old.machine, domainname=old.domainname,
    )  # fmt: skip
