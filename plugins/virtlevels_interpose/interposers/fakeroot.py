"""fakeroot: a process sees itself as root, and chown is recorded instead of applied.

``LD_PRELOAD=libfakeroot.so`` (or ``fakeroot`` in the CLI): getuid/geteuid/getgid/getegid return
0; chown records the owner in the shared database (``faked``, one per kernel, in
``Linker.shared["fakeroot"]``: path -> (uid, gid)) and returns 0 without calling the kernel;
stat reports the recorded owner (fakeroot(1): "files ... appear to be owned by root").
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import attrs

from virtlevels_interpose.linker import CallCtx, Library

FAKEROOT_NAME = "libfakeroot.so"
Gen = Generator[Any, Any, Any]


def faked_db(c: CallCtx) -> dict[str, tuple[int, int]]:
    return c.linker.shared.setdefault("fakeroot", {})  # type: ignore[no-any-return]


def make_fakeroot() -> Library:
    lib = Library(FAKEROOT_NAME, description="fakeroot: uid 0 and recorded chown")
    for name in ("getuid", "geteuid", "getgid", "getegid"):
        lib.functions[name] = lambda c: 0

    @lib.function("chown")
    def chown(c: CallCtx, path: Any, owner: int, group: int) -> int:
        db = faked_db(c)
        key = c.text(path)
        old = db.get(key, (0, 0))
        uid = old[0] if owner in (-1, 0xFFFFFFFF) else int(owner)
        gid = old[1] if group in (-1, 0xFFFFFFFF) else int(group)
        db[key] = (uid, gid)
        return 0

    @lib.function("stat")
    def stat(c: CallCtx, path: Any, buf: Any = 0) -> Gen:
        r = yield from c.next(path, buf)
        st = buf[0] if isinstance(buf, list) and buf else r
        key = c.text(path)
        if hasattr(st, "st_uid") and attrs.has(type(st)):
            uid, gid = faked_db(c).get(key, (0, 0))  # everything looks root-owned under fakeroot
            st = attrs.evolve(st, st_uid=uid, st_gid=gid)
            if isinstance(buf, list):
                buf[:] = [st]
                return r
            return st
        return r

    return lib
