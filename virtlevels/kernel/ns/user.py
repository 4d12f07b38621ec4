"""User namespaces (user_namespaces(7); kernel/user_namespace.c).

A user namespace maps the uids/gids used inside it to *kernel* ids (the initial namespace's
view) through uid_map and gid_map, each written once through /proc/PID/uid_map|gid_map as lines
of ``inside outside count``. Credentials always hold kernel ids; system calls made inside a
namespace translate with :meth:`UserNamespace.make_kuid` (inside -> kernel) and
:meth:`UserNamespace.from_kuid_munged` (kernel -> inside, 65534 when unmapped).

Capabilities are scoped by user namespace (virtlevels.kernel.caps.ns_capable): the creator of a
namespace gets the full set inside it and none outside it.
"""

from __future__ import annotations

from typing import cast

import attrs

from virtlevels.graph import ResourceGraph
from virtlevels.kernel import caps
from virtlevels.kernel.caps import ALL_CAPS, CAP_SETFCAP, CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EINVAL, ENOSPC, EPERM, KernelError
from virtlevels.kernel.ns.common import NS_TYPES, Namespace, NsContext

U32_MAX = 0xFFFFFFFF
INVALID_ID = U32_MAX  # (u32)-1: "no mapping" (include/linux/uidgid.h, INVALID_UID)
OVERFLOW_UID = 65534  # /proc/sys/kernel/overflowuid: what an unmapped id reads as
OVERFLOW_GID = 65534
UID_GID_MAP_MAX_EXTENTS = 340  # user_namespaces(7): "the number of lines ... limited to 340"
UID_GID_MAP_MAX_BASE_EXTENTS = 5  # above this Linux keeps (and prints) the extents sorted
MAX_USER_NS_PARENT_LEVEL = 32  # create_user_ns: ENOSPC if the parent's level is > 32
PAGE_SIZE = 4096


@attrs.frozen
class Extent:
    first: int  # first id inside the namespace
    lower_first: int  # first *kernel* id it maps to (stored translated, as Linux does)
    count: int


@attrs.define
class IdMap:
    """A uid_map or gid_map: a list of extents (kernel/user_namespace.c, struct uid_gid_map)."""

    extents: list[Extent] = attrs.field(factory=list)

    def written(self) -> bool:
        return bool(self.extents)

    def map_id_down(self, id_: int, count: int = 1) -> int | None:
        """Inside id -> kernel id (map_id_range_down); None when [id, id+count) is not mapped."""
        for e in self.extents:
            if e.first <= id_ and id_ + count - 1 <= e.first + e.count - 1:
                return id_ - e.first + e.lower_first
        return None

    def map_id_up(self, kid: int) -> int | None:
        """Kernel id -> inside id (map_id_up); None when unmapped."""
        for e in self.extents:
            if e.lower_first <= kid <= e.lower_first + e.count - 1:
                return kid - e.lower_first + e.first
        return None

    def display_order(self) -> list[Extent]:
        if len(self.extents) > UID_GID_MAP_MAX_BASE_EXTENTS:
            return sorted(self.extents, key=lambda e: e.first)
        return list(self.extents)


def _ranges_overlap(a0: int, an: int, b0: int, bn: int) -> bool:
    return a0 <= b0 + bn - 1 and b0 <= a0 + an - 1


def _parse_u32(text: str, pos: int) -> tuple[int, int]:
    """simple_strtoul(base 10) on a u32: the value (0 if no digits) and the position after it."""
    end = pos
    while end < len(text) and text[end].isdigit():
        end += 1
    return (int(text[pos:end]) & U32_MAX if end > pos else 0), end


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def parse_id_map(text: str) -> list[Extent]:
    """Parse uid_map/gid_map text exactly as map_write does; KernelError(EINVAL) if malformed.

    user_namespaces(7), "Defining user and group ID mappings": each line is three numbers
    ``ID-inside-ns ID-outside-ns length``; ranges must not overlap; at most 340 lines.
    The outside ids here are still in the *parent's* numbering.
    """
    if len(text.encode()) >= PAGE_SIZE:
        raise KernelError(EINVAL, "map text must be shorter than a page")
    extents: list[Extent] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a final newline ends the last line; it does not start another
    if not lines:
        raise KernelError(EINVAL, "empty map")
    for n, line in enumerate(lines):
        p = _skip_spaces(line, 0)
        first, p = _parse_u32(line, p)
        if p >= len(line) or not line[p].isspace():
            raise KernelError(EINVAL, f"line {n + 1}: {line!r}")
        p = _skip_spaces(line, p)
        lower, p = _parse_u32(line, p)
        if p >= len(line) or not line[p].isspace():
            raise KernelError(EINVAL, f"line {n + 1}: {line!r}")
        p = _skip_spaces(line, p)
        count, p = _parse_u32(line, p)
        if _skip_spaces(line, p) != len(line):
            raise KernelError(EINVAL, f"line {n + 1}: trailing junk in {line!r}")
        if first == U32_MAX or lower == U32_MAX:
            raise KernelError(EINVAL, f"line {n + 1}: id 4294967295 is invalid")
        # Count must be non-zero and must not wrap either range (u32 arithmetic).
        if (first + count) & U32_MAX <= first or (lower + count) & U32_MAX <= lower:
            raise KernelError(EINVAL, f"line {n + 1}: bad count in {line!r}")
        for e in extents:
            if _ranges_overlap(e.first, e.count, first, count) or _ranges_overlap(
                e.lower_first, e.count, lower, count
            ):
                raise KernelError(EINVAL, f"line {n + 1}: overlaps an earlier line")
        if len(extents) == UID_GID_MAP_MAX_EXTENTS:
            raise KernelError(EINVAL, f"more than {UID_GID_MAP_MAX_EXTENTS} lines")
        extents.append(Extent(first, lower, count))
    return extents


def has_cap(creds: Credentials, ns: UserNamespace, cap: int) -> bool:
    """ns_capable with our concrete types; credentials without a user_ns live in the initial one."""
    if creds.user_ns is None:
        return bool(creds.cap_effective >> cap & 1)
    return caps.ns_capable(cast(caps.CredsLike, creds), cast(caps.UserNamespaceLike, ns), cap)


def as_like(ns: UserNamespace | None) -> caps.UserNamespaceLike | None:
    """Our UserNamespace as caps/creds type it (its ``parent`` is a read-only property, which the
    Protocol's settable attribute does not accept under mypy's invariance rule)."""
    return cast("caps.UserNamespaceLike | None", ns)


def creds_user_ns(creds: Credentials) -> UserNamespace | None:
    return cast("UserNamespace | None", creds.user_ns)


def in_userns(ancestor: UserNamespace, ns: UserNamespace | None) -> bool:
    """Whether ``ns`` is ``ancestor`` or one of its descendants (kernel/user_namespace.c, in_userns)."""
    while ns is not None:
        if ns is ancestor:
            return True
        ns = ns.parent
    return False


@attrs.define(eq=False)
class UserNamespace(Namespace):
    """A user namespace. ``owner``/``group`` are the creator's effective ids (kernel ids)."""

    TYPE = NS_TYPES["user"]

    level: int = 0
    owner: int = 0
    group: int = 0
    uid_map: IdMap = attrs.field(factory=IdMap)
    gid_map: IdMap = attrs.field(factory=IdMap)
    setgroups_allowed: bool = True  # /proc/PID/setgroups; inherited from the parent
    parent_could_setfcap: bool = False  # the creator had CAP_SETFCAP (user_namespaces(7))

    @property
    def parent(self) -> UserNamespace | None:
        """The parent user namespace, which is also this namespace's owner."""
        return self.owner_ns

    def _link_graph(self, g: ResourceGraph) -> None:
        if self.owner_ns is not None:
            g.link(self.node_id, self.owner_ns.node_id, "part_of")

    # -- id translation (include/linux/uidgid.h) -------------------------------------------------
    def make_kuid(self, uid: int) -> int | None:
        return self.uid_map.map_id_down(uid)

    def make_kgid(self, gid: int) -> int | None:
        return self.gid_map.map_id_down(gid)

    def from_kuid(self, kuid: int) -> int | None:
        return self.uid_map.map_id_up(kuid)

    def from_kgid(self, kgid: int) -> int | None:
        return self.gid_map.map_id_up(kgid)

    def from_kuid_munged(self, kuid: int) -> int:
        v = self.uid_map.map_id_up(kuid)
        return OVERFLOW_UID if v is None else v

    def from_kgid_munged(self, kgid: int) -> int:
        v = self.gid_map.map_id_up(kgid)
        return OVERFLOW_GID if v is None else v

    def kuid_has_mapping(self, kuid: int) -> bool:
        return self.uid_map.map_id_up(kuid) is not None

    def kgid_has_mapping(self, kgid: int) -> bool:
        return self.gid_map.map_id_up(kgid) is not None

    def may_setgroups(self) -> bool:
        """userns_may_setgroups: setgroups(2) is allowed once gid_map is set and setgroups is "allow"."""
        return self.gid_map.written() and self.setgroups_allowed

    # -- /proc/PID/uid_map, gid_map, setgroups ----------------------------------------------------
    def read_uid_map(self, reader_ns: UserNamespace) -> str:
        return self._read_map(self.uid_map, reader_ns)

    def read_gid_map(self, reader_ns: UserNamespace) -> str:
        return self._read_map(self.gid_map, reader_ns)

    def _read_map(self, m: IdMap, reader_ns: UserNamespace) -> str:
        # kernel/user_namespace.c, uid_m_show: outside ids are shown in the reader's namespace,
        # or in the parent's when the reader is inside this namespace.
        lower_ns = reader_ns
        if lower_ns is self and self.parent is not None:
            lower_ns = self.parent
        out = []
        for e in m.display_order():
            lower = lower_ns._map_of(m is self.uid_map).map_id_up(e.lower_first)
            out.append(f"{e.first:10d} {INVALID_ID if lower is None else lower:10d} {e.count:10d}\n")
        return "".join(out)

    def _map_of(self, uid: bool) -> IdMap:
        return self.uid_map if uid else self.gid_map

    def write_uid_map(self, text: str, writer: Credentials, opener: Credentials | None = None) -> None:
        self._write_map(text, writer, opener or writer, uid=True)

    def write_gid_map(self, text: str, writer: Credentials, opener: Credentials | None = None) -> None:
        self._write_map(text, writer, opener or writer, uid=False)

    def _write_map(self, text: str, writer: Credentials, opener: Credentials, *, uid: bool) -> None:
        """map_write and new_idmap_permitted (kernel/user_namespace.c), in Linux's order of checks."""
        parent = self.parent
        if parent is None:
            raise KernelError(EPERM, "the initial user namespace's maps are fixed")
        seq_ns = creds_user_ns(opener)
        # proc_uid_map_write: the opener must be in this namespace or its parent.
        if seq_ns is not self and seq_ns is not parent:
            raise KernelError(EPERM, "writer must be in the namespace or its parent")
        m = self._map_of(uid)
        if m.written():
            raise KernelError(EPERM, "uid_map/gid_map may be written only once")
        if not has_cap(opener, self, CAP_SYS_ADMIN):
            raise KernelError(EPERM, "opener lacks CAP_SYS_ADMIN in the target namespace")
        extents = parse_id_map(text)
        cap_setid = CAP_SETUID if uid else CAP_SETGID
        if uid and not self._verify_root_map(extents, opener):
            raise KernelError(EPERM, "mapping parent uid 0 needs CAP_SETFCAP")
        if not self._idmap_permitted(extents, writer, opener, cap_setid):
            raise KernelError(EPERM, "not permitted to write this mapping")
        parent_map = parent._map_of(uid)
        translated = []
        for e in extents:
            # The outside ids must themselves be mapped in the parent (rule 3).
            k = parent_map.map_id_down(e.lower_first, e.count)
            if k is None:
                raise KernelError(EPERM, f"outside ids {e.lower_first}+{e.count} unmapped in parent")
            translated.append(Extent(e.first, k, e.count))
        m.extents = translated

    def _idmap_permitted(
        self, extents: list[Extent], writer: Credentials, opener: Credentials, cap_setid: int
    ) -> bool:
        parent = self.parent
        assert parent is not None
        # Rule 4 (unprivileged case): a single line of length 1 mapping the opener's own
        # effective id; for gid_map only after setgroups was set to "deny" (Linux 3.19).
        if len(extents) == 1 and extents[0].count == 1 and opener.euid == self.owner:
            lower = extents[0].lower_first
            if cap_setid == CAP_SETUID:
                if parent.make_kuid(lower) == opener.euid:
                    return True
            elif not self.setgroups_allowed and parent.make_kgid(lower) == opener.egid:
                return True
        # Otherwise both the writer and the opener need CAP_SETUID/CAP_SETGID over the parent.
        return has_cap(writer, parent, cap_setid) and has_cap(opener, parent, cap_setid)

    def _verify_root_map(self, extents: list[Extent], opener: Credentials) -> bool:
        """verify_root_map: mapping the parent's uid 0 needs CAP_SETFCAP (user_namespaces(7), 5.12)."""
        parent = self.parent
        assert parent is not None
        if not any(e.lower_first == 0 for e in extents):
            return True
        if creds_user_ns(opener) is self:
            # Writing one's own map after unshare: the creator must have had CAP_SETFCAP.
            return self.parent_could_setfcap
        return has_cap(opener, parent, CAP_SETFCAP)

    def read_setgroups(self) -> str:
        return "allow\n" if self.setgroups_allowed else "deny\n"

    def write_setgroups(self, text: str, writer: Credentials) -> None:
        """proc_setgroups_write: "allow" or "deny"; deny is one-way and must precede gid_map."""
        if not has_cap(writer, self, CAP_SYS_ADMIN):
            raise KernelError(EPERM, "setgroups needs CAP_SYS_ADMIN in the namespace")
        if len(text.encode()) >= 8:
            raise KernelError(EINVAL, f"bad setgroups value {text!r}")
        s = text.strip()
        if s == "allow":
            if not self.setgroups_allowed:
                raise KernelError(EPERM, "setgroups was set to deny; it cannot be re-allowed")
        elif s == "deny":
            if self.gid_map.written():
                raise KernelError(EPERM, "setgroups cannot be denied after gid_map is written")
            self.setgroups_allowed = False
        else:
            raise KernelError(EINVAL, f"bad setgroups value {text!r}")


def initial_user_ns(ctx: NsContext) -> UserNamespace:
    """init_user_ns: maps every id to itself (``0 0 4294967295``), owned by uid 0."""
    ns = UserNamespace(ctx, NS_TYPES["user"].init_ino, None)
    ns.uid_map.extents = [Extent(0, 0, U32_MAX)]
    ns.gid_map.extents = [Extent(0, 0, U32_MAX)]
    return ns


def create_user_ns(creds: Credentials, *, chrooted: bool = False) -> UserNamespace:
    """A new user namespace whose parent is the creator's (create_user_ns).

    Needs no capability. Fails with ENOSPC beyond the nesting limit and EPERM if the creator is
    chrooted or its effective ids have no mapping in the parent.
    """
    parent = creds_user_ns(creds)
    if parent is None:
        raise KernelError(EINVAL, "credentials have no user namespace")
    if parent.level > MAX_USER_NS_PARENT_LEVEL:
        raise KernelError(ENOSPC, "user namespaces nested too deeply")
    if chrooted:
        raise KernelError(EPERM, "a chrooted process cannot create a user namespace")
    if not parent.kuid_has_mapping(creds.euid) or not parent.kgid_has_mapping(creds.egid):
        raise KernelError(EPERM, "creator's ids are unmapped in the parent namespace")
    return UserNamespace(
        parent.ctx,
        parent.ctx.alloc_ino(),
        parent,
        level=parent.level + 1,
        owner=creds.euid,
        group=creds.egid,
        setgroups_allowed=parent.setgroups_allowed,
        parent_could_setfcap=bool(creds.cap_effective >> CAP_SETFCAP & 1),
    )


def creds_for_new_user_ns(creds: Credentials, ns: UserNamespace) -> Credentials:
    """The creator's credentials after creating/entering ``ns`` (set_cred_user_ns).

    user_namespaces(7): "the child process ... has a complete set of capabilities in the new user
    namespace". Ids are unchanged kernel ids (they read as 65534 until uid_map is written).
    """
    new = creds.copy()
    new.user_ns = as_like(ns)
    new.cap_inheritable = 0
    new.cap_permitted = ALL_CAPS
    new.cap_effective = ALL_CAPS
    new.cap_bounding = ALL_CAPS
    new.cap_ambient = 0
    new.keep_caps = False  # securebits return to SECUREBITS_DEFAULT (set_cred_user_ns)
    return new
