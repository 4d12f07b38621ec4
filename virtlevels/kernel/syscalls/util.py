"""Helpers the handlers share: signed arguments, the caller's user memory, id translation."""

from __future__ import annotations

from typing import Any

from virtlevels.kernel.errno import EINVAL, KernelError
from virtlevels.kernel.usermem import UserMemory


def s32(x: int) -> int:
    """A register value as a signed 32-bit int (fds, pids, AT_FDCWD arrive as u32 from ISA code)."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def u32(x: int) -> int:
    return x & 0xFFFFFFFF


def mem(t: Any) -> UserMemory:
    """The user memory of the calling task (the scripted shim, or the ISA process's page tables)."""
    if t.kind == "isa":
        return t.mm.hw.user_memory()  # type: ignore[no-any-return]
    return t.umem  # type: ignore[no-any-return]


def user_ns(t: Any) -> Any:
    return t.nsproxy.user


def to_kuid(t: Any, uid: int) -> int:
    k = user_ns(t).make_kuid(uid)
    if k is None:
        raise KernelError(EINVAL, f"uid {uid} has no mapping in the caller's user namespace")
    return int(k)


def to_kgid(t: Any, gid: int) -> int:
    k = user_ns(t).make_kgid(gid)
    if k is None:
        raise KernelError(EINVAL, f"gid {gid} has no mapping in the caller's user namespace")
    return int(k)
