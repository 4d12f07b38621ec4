"""Task credentials (include/linux/cred.h; credentials(7)).

Uids and gids here are *kernel* ids (the initial user namespace's view); a user namespace's
maps translate them for display and for system calls made inside it.
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.kernel.caps import ALL_CAPS, UserNamespaceLike


@attrs.define
class Credentials:
    uid: int = 0
    gid: int = 0
    euid: int = 0
    egid: int = 0
    suid: int = 0
    sgid: int = 0
    fsuid: int = 0
    fsgid: int = 0
    groups: tuple[int, ...] = ()
    cap_inheritable: int = 0
    cap_permitted: int = ALL_CAPS
    cap_effective: int = ALL_CAPS
    cap_bounding: int = ALL_CAPS
    cap_ambient: int = 0
    no_new_privs: bool = False
    user_ns: UserNamespaceLike | None = None
    #: SECBIT_KEEP_CAPS (prctl PR_SET_KEEPCAPS): permitted survives leaving uid 0; execve clears it.
    keep_caps: bool = False
    #: LSM blobs (cred->security): an LSM plugin's per-credential state, e.g. the sandbox plugin's
    #: Landlock domain. copy() shares it, so fork and execve keep it, as Landlock's domain does.
    security: Any = None

    def copy(self) -> Credentials:
        """A new credentials object (fork gives the child its own copy, as copy_creds does)."""
        return attrs.evolve(self)

    @classmethod
    def root(cls, user_ns: UserNamespaceLike | None = None) -> Credentials:
        return cls(user_ns=user_ns)

    @classmethod
    def user(cls, uid: int, gid: int, user_ns: UserNamespaceLike | None = None) -> Credentials:
        """An unprivileged user: no capabilities (capabilities(7), "Effect of user ID changes")."""
        return cls(uid, gid, uid, gid, uid, gid, uid, gid, (), 0, 0, 0, ALL_CAPS, 0, False, user_ns)
