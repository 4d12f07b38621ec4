"""User namespaces: id maps, their validation, setgroups, capability scoping."""

from __future__ import annotations

import pytest

from virtlevels.kernel import caps
from virtlevels.kernel.caps import CAP_NET_ADMIN, CAP_SETUID, CAP_SYS_ADMIN
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EINVAL, ENOSPC, EPERM, KernelError
from virtlevels.kernel.ns import CLONE_NEWUSER, NsContext, copy_namespaces, create_initial
from virtlevels.kernel.ns.user import OVERFLOW_UID, create_user_ns, creds_for_new_user_ns, parse_id_map


def _errno(fn, *a, **kw):
    with pytest.raises(KernelError) as e:
        fn(*a, **kw)
    return e.value.errno


def _setup():
    ctx = NsContext()
    root, proxy = create_initial(ctx)
    alice = Credentials.user(1000, 1000, root.user_ns)
    return ctx, root, proxy, alice


def test_initial_namespace_maps_everything():
    _ctx, root, p, _a = _setup()
    assert p.user.read_uid_map(p.user) == "         0          0 4294967295\n"
    assert p.user.make_kuid(12345) == 12345


def test_unprivileged_user_maps_root_inside_to_itself():
    _ctx, _root, p, alice = _setup()
    creds, proxy = copy_namespaces(CLONE_NEWUSER, alice, p)
    ns = proxy.user
    assert ns.owner == 1000 and ns.level == 1
    # Before the map is written, every id reads as the overflow id.
    assert ns.from_kuid_munged(1000) == OVERFLOW_UID
    ns.write_uid_map("0 1000 1\n", creds)
    ns.write_setgroups("deny", creds)
    ns.write_gid_map("0 1000 1", creds)
    assert ns.make_kuid(0) == 1000  # uid 0 inside is the unprivileged uid 1000 outside
    assert ns.from_kuid(1000) == 0
    assert ns.from_kuid_munged(0) == OVERFLOW_UID  # host root is unmapped inside
    assert ns.read_uid_map(ns) == "         0       1000          1\n"
    assert ns.read_uid_map(p.user) == "         0       1000          1\n"
    assert not ns.may_setgroups()


def test_capabilities_are_scoped_to_the_namespace():
    _ctx, _root, p, alice = _setup()
    creds, proxy = copy_namespaces(CLONE_NEWUSER, alice, p)
    ns = proxy.user
    assert creds.cap_effective == caps.ALL_CAPS
    assert caps.ns_capable(creds, ns, CAP_SYS_ADMIN)  # full set inside
    assert not caps.ns_capable(creds, p.user, CAP_SYS_ADMIN)  # nothing outside
    assert not caps.ns_capable(creds, p.user, CAP_NET_ADMIN)
    # The owner, still in the parent, has every capability in the child too.
    assert caps.ns_capable(alice, ns, CAP_SYS_ADMIN)
    bob = Credentials.user(2000, 2000, p.user)
    assert not caps.ns_capable(bob, ns, CAP_SYS_ADMIN)


def test_map_written_once():
    _ctx, _root, p, alice = _setup()
    creds, proxy = copy_namespaces(CLONE_NEWUSER, alice, p)
    proxy.user.write_uid_map("0 1000 1", creds)
    assert _errno(proxy.user.write_uid_map, "0 1000 1", creds) == EPERM


@pytest.mark.parametrize(
    "text",
    ["", "0 1000", "0 1000 0", "a 1000 1", "0 1000 1 junk", "0 1000 1\n0 2000 1", "4294967295 0 1",
     "0 4294967290 10", "0 1 5\n3 100 5"],
)  # fmt: skip
def test_malformed_maps_are_einval(text):
    assert _errno(parse_id_map, text) == EINVAL


def test_map_line_limit_is_340():
    ok = "".join(f"{i * 10} {i * 10} 1\n" for i in range(340))
    assert len(parse_id_map(ok)) == 340
    assert _errno(parse_id_map, ok + "5000 5000 1\n") == EINVAL


def test_unprivileged_writer_may_map_only_its_own_uid():
    _ctx, _root, p, alice = _setup()
    creds, proxy = copy_namespaces(CLONE_NEWUSER, alice, p)
    ns = proxy.user
    assert _errno(ns.write_uid_map, "0 2000 1", creds) == EPERM  # someone else's uid
    assert _errno(ns.write_uid_map, "0 1000 2", creds) == EPERM  # more than itself
    assert not ns.uid_map.written()


def test_gid_map_needs_setgroups_deny_for_unprivileged():
    _ctx, _root, p, alice = _setup()
    creds, proxy = copy_namespaces(CLONE_NEWUSER, alice, p)
    ns = proxy.user
    assert _errno(ns.write_gid_map, "0 1000 1", creds) == EPERM
    ns.write_setgroups("deny\n", creds)
    assert ns.read_setgroups() == "deny\n"
    assert _errno(ns.write_setgroups, "allow", creds) == EPERM  # deny is one-way
    assert _errno(ns.write_setgroups, "maybe", creds) == EINVAL
    ns.write_gid_map("0 1000 1", creds)


def test_setgroups_cannot_be_denied_after_gid_map():
    _ctx, root, p, alice = _setup()
    _c, proxy = copy_namespaces(CLONE_NEWUSER, alice, p)
    ns = proxy.user
    ns.write_gid_map("0 100000 65536", root)  # privileged writer in the parent
    assert _errno(ns.write_setgroups, "deny", root) == EPERM
    assert ns.may_setgroups()


def test_privileged_parent_maps_a_range():
    _ctx, root, p, alice = _setup()
    _c, proxy = copy_namespaces(CLONE_NEWUSER, alice, p)
    ns = proxy.user
    ns.write_uid_map("0 100000 65536\n", root)
    assert ns.make_kuid(0) == 100000 and ns.make_kuid(65535) == 165535 and ns.make_kuid(65536) is None
    # A third party without CAP_SETUID in the parent may not.
    _c2, proxy2 = copy_namespaces(CLONE_NEWUSER, alice, p)
    bob = Credentials.user(2000, 2000, p.user)
    assert _errno(proxy2.user.write_uid_map, "0 1000 1", bob) == EPERM


def test_mapping_parent_root_needs_cap_setfcap():
    _ctx, _root, p, _alice = _setup()
    admin = Credentials.root(p.user)
    admin.cap_effective &= ~(1 << caps.CAP_SETFCAP)
    creds, proxy = copy_namespaces(CLONE_NEWUSER, admin, p)
    # Writing its own map from inside: the creator lacked CAP_SETFCAP, so uid 0 outside is refused.
    assert _errno(proxy.user.write_uid_map, "0 0 1", creds) == EPERM


def test_nested_maps_translate_through_parents():
    _ctx, root, p, alice = _setup()
    c1, p1 = copy_namespaces(CLONE_NEWUSER, alice, p)
    p1.user.write_uid_map("0 100000 1000", root)
    p1.user.write_gid_map("0 100000 1000", root)
    inside_root = creds_for_new_user_ns(c1, p1.user)
    inside_root.euid = inside_root.uid = inside_root.egid = inside_root.gid = 100000  # root inside
    c2, p2 = copy_namespaces(CLONE_NEWUSER, inside_root, p1)
    p2.user.write_uid_map("0 10 5", c1)  # the owner-in-parent writes (outside ids in p1's numbering)
    assert p2.user.make_kuid(0) == 100010
    assert p2.user.read_uid_map(p.user) == "         0     100010          5\n"
    assert p2.user.read_uid_map(p1.user) == "         0         10          5\n"
    # ids unmapped in the parent cannot be used
    _c3, p3 = copy_namespaces(CLONE_NEWUSER, inside_root, p1)
    assert _errno(p3.user.write_uid_map, "0 5000 1", c1) == EPERM


def test_writer_must_be_in_namespace_or_parent():
    _ctx, root, p, alice = _setup()
    c1, p1 = copy_namespaces(CLONE_NEWUSER, alice, p)
    p1.user.write_uid_map("0 1000 1", root)
    p1.user.write_gid_map("0 1000 1", root)
    _c2, p2 = copy_namespaces(CLONE_NEWUSER, c1, p1)
    assert _errno(p2.user.write_uid_map, "0 1000 1", root) == EPERM  # root is in the grandparent


def test_creator_ids_must_be_mapped_and_nesting_is_limited():
    _ctx, _root, p, alice = _setup()
    c, proxy = copy_namespaces(CLONE_NEWUSER, alice, p)
    # alice's uid 1000 is not mapped inside (no uid_map yet): she cannot nest further
    assert _errno(create_user_ns, c) == EPERM
    creds = Credentials.root(p.user)
    levels = 0
    with pytest.raises(KernelError) as e:
        for _ in range(40):
            ns = create_user_ns(creds)
            ns.write_uid_map("0 0 1", creds)  # written from the parent, with CAP_SETUID there
            ns.write_gid_map("0 0 1", creds)
            creds = creds_for_new_user_ns(creds, ns)
            levels += 1
    assert e.value.errno == ENOSPC
    assert levels == 33  # create_user_ns fails when the parent's level is above 32


def test_gid_map_from_inside_needs_setgroups_deny_even_for_root():
    _ctx, root, p, _alice = _setup()
    ns = create_user_ns(root)
    inside = creds_for_new_user_ns(root, ns)
    ns.write_uid_map("0 0 1", inside)  # own euid, and the creator had CAP_SETFCAP
    assert _errno(ns.write_gid_map, "0 0 1", inside) == EPERM  # no CAP_SETGID in the parent


def test_setuid_inside_needs_cap_in_that_namespace():
    _ctx, _root, p, alice = _setup()
    creds, proxy = copy_namespaces(CLONE_NEWUSER, alice, p)
    assert caps.ns_capable(creds, proxy.user, CAP_SETUID)
    assert not caps.ns_capable(alice, p.user, CAP_SETUID)
