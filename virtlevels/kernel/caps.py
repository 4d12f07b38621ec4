"""Linux capabilities (include/uapi/linux/capability.h; capabilities(7)).

Capability sets are ints used as bit sets. Whether a task has a capability is always asked
*relative to a user namespace* (user_namespaces(7), "Capabilities"): a task has capability C in
namespace N if its effective set holds C and it lives in N or an ancestor of N, or if it lives
in N's parent and its effective uid owns N (then it has every capability in N).
"""

from __future__ import annotations

from typing import Protocol

CAP_CHOWN = 0
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
CAP_FOWNER = 3
CAP_FSETID = 4
CAP_KILL = 5
CAP_SETGID = 6
CAP_SETUID = 7
CAP_SETPCAP = 8
CAP_LINUX_IMMUTABLE = 9
CAP_NET_BIND_SERVICE = 10
CAP_NET_BROADCAST = 11
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
CAP_IPC_LOCK = 14
CAP_IPC_OWNER = 15
CAP_SYS_MODULE = 16
CAP_SYS_RAWIO = 17
CAP_SYS_CHROOT = 18
CAP_SYS_PTRACE = 19
CAP_SYS_PACCT = 20
CAP_SYS_ADMIN = 21
CAP_SYS_BOOT = 22
CAP_SYS_NICE = 23
CAP_SYS_RESOURCE = 24
CAP_SYS_TIME = 25
CAP_SYS_TTY_CONFIG = 26
CAP_MKNOD = 27
CAP_LEASE = 28
CAP_AUDIT_WRITE = 29
CAP_AUDIT_CONTROL = 30
CAP_SETFCAP = 31
CAP_MAC_OVERRIDE = 32
CAP_MAC_ADMIN = 33
CAP_SYSLOG = 34
CAP_WAKE_ALARM = 35
CAP_BLOCK_SUSPEND = 36
CAP_AUDIT_READ = 37
CAP_PERFMON = 38
CAP_BPF = 39
CAP_CHECKPOINT_RESTORE = 40

_CAPS = sorted((v, n) for n, v in globals().items() if n.startswith("CAP_") and isinstance(v, int))
CAP_NAMES: tuple[str, ...] = tuple(n for _v, n in _CAPS)
CAP_BY_NAME: dict[str, int] = {name: i for i, name in enumerate(CAP_NAMES)}
CAP_LAST_CAP = CAP_CHECKPOINT_RESTORE
ALL_CAPS = (1 << (CAP_LAST_CAP + 1)) - 1


def cap_from_name(name: str) -> int:
    """``"SYS_ADMIN"``, ``"CAP_SYS_ADMIN"`` or ``"sys_admin"`` -> 21; ValueError if unknown."""
    key = name.upper()
    if not key.startswith("CAP_"):
        key = "CAP_" + key
    try:
        return CAP_BY_NAME[key]
    except KeyError:
        raise ValueError(f"unknown capability {name!r}") from None


def capset_from_names(names: list[str] | tuple[str, ...]) -> int:
    mask = 0
    for n in names:
        mask |= 1 << cap_from_name(n)
    return mask


def capset_names(mask: int) -> list[str]:
    return [CAP_NAMES[i] for i in range(len(CAP_NAMES)) if mask >> i & 1]


class UserNamespaceLike(Protocol):
    """What the capability rules need of a user namespace."""

    @property
    def parent(self) -> UserNamespaceLike | None: ...

    @property
    def owner(self) -> int:
        """The effective uid (a kernel uid) of the namespace's creator."""
        ...


class CredsLike(Protocol):
    euid: int  # kernel uid (host view)
    cap_effective: int
    user_ns: UserNamespaceLike


def ns_capable(creds: CredsLike, target: UserNamespaceLike, cap: int) -> bool:
    """Whether ``creds`` has ``cap`` in user namespace ``target`` (kernel/capability.c, cap_capable)."""
    ns: UserNamespaceLike | None = target
    while ns is not None:
        if ns is creds.user_ns:
            return bool(creds.cap_effective >> cap & 1)
        # The owner of ns, living in ns's parent, has every capability in ns.
        if ns.parent is creds.user_ns and ns.owner == creds.euid:
            return True
        ns = ns.parent
    return False
