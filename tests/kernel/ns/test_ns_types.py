"""UTS, net, mnt, cgroup and time namespaces."""

from __future__ import annotations

import pytest

from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EACCES, EINVAL, ENODEV, EPERM, ERANGE, KernelError
from virtlevels.kernel.ns import (
    CLONE_NEWCGROUP,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    NetworkStack,
    NsContext,
    copy_namespaces,
    create_initial,
    relative_cgroup_path,
    unshare_namespaces,
)  # fmt: skip
from virtlevels.kernel.ns.time import CLOCK_BOOTTIME, CLOCK_MONOTONIC, CLOCK_REALTIME


def _errno(fn, *a, **kw):
    with pytest.raises(KernelError) as e:
        fn(*a, **kw)
    return e.value.errno


def _setup(**kw):
    ctx = NsContext(**kw)
    root, proxy = create_initial(ctx, **{k: v for k, v in kw.items() if k in ()})
    return ctx, root, proxy


def test_hostname_is_per_namespace():
    _ctx, root, p = _setup()
    p.uts.sethostname("host", root)
    _c, q = copy_namespaces(CLONE_NEWUTS, root, p)
    assert q.uts.hostname == "host"  # starts as a copy
    q.uts.sethostname(b"box", root)
    assert (p.uts.hostname, q.uts.hostname) == ("host", "box")
    assert q.uts.uname().nodename == b"box" and q.uts.uname().sysname == b"Linux"
    q.uts.setdomainname("example", root)
    assert p.uts.domainname == b"(none)"


def test_hostname_limits_and_permission():
    _ctx, root, p = _setup()
    p.uts.sethostname("x" * 64, root)
    assert _errno(p.uts.sethostname, "x" * 65, root) == EINVAL
    alice = Credentials.user(1000, 1000, p.user)
    assert _errno(p.uts.sethostname, "mine", alice) == EPERM
    # in her own user+uts namespace she may
    ac, aq = copy_namespaces(CLONE_NEWUSER | CLONE_NEWUTS, alice, p)
    aq.uts.sethostname("mine", ac)
    assert _errno(p.uts.sethostname, "escape", ac) == EPERM  # host's hostname does not leak to her


def test_new_net_namespace_has_only_loopback_down():
    _ctx, root, p = _setup()
    assert isinstance(p.net.stack, NetworkStack)
    assert [(i.name, i.up, i.addresses) for i in p.net.stack.interfaces()] == [
        ("lo", True, ("127.0.0.1/8", "::1/128"))
    ]
    _c, q = copy_namespaces(CLONE_NEWNET, root, p)
    lo = q.net.stack.interfaces()[0]
    assert (lo.name, lo.index, lo.up, lo.addresses, lo.mtu) == ("lo", 1, False, (), 65536)
    q.net.stack.set_link_up("lo", True)
    assert q.net.stack.interfaces()[0].addresses == ("127.0.0.1/8", "::1/128")
    assert _errno(q.net.stack.set_link_up, "eth0", True) == ENODEV
    stack = q.net.stack
    q.put()
    assert stack.closed


def test_net_stack_factory_seam():
    made = []

    class Fake:
        def __init__(self, ns):
            made.append(ns)

        def interfaces(self):
            return []

        def set_link_up(self, name, up):
            pass

        def close(self):
            pass

    ctx = NsContext(net_stack_factory=Fake)
    root, p = create_initial(ctx)
    _c, q = copy_namespaces(CLONE_NEWNET, root, p)
    assert made == [p.net, q.net] and isinstance(q.net.stack, Fake)


def test_mount_namespace_clones_the_tree():
    class Tree:
        def __init__(self, n=0):
            self.n = n
            self.destroyed = False
            self.clone_args = None

        def clone(self, *, less_privileged=False, user_ns=None):
            self.clone_args = (less_privileged, user_ns)
            return Tree(self.n + 1), {"old": "new"}

        def set_graph_id(self, node_id):
            self.graph_id = node_id

        def destroy(self):
            self.destroyed = True

    ctx = NsContext()
    root, p = create_initial(ctx, mount_tree=Tree())
    _c, q = copy_namespaces(CLONE_NEWNS, root, p)
    assert q.mnt.tree is not p.mnt.tree and q.mnt.tree.n == 1
    assert p.mnt.tree.clone_args == (False, p.user)  # same owner: not a less privileged copy
    assert q.mnt.take_mapping() == {"old": "new"} and q.mnt.mapping == {}
    # A copy made together with a new user namespace is owned by it, so it is less privileged.
    _c2, r = copy_namespaces(CLONE_NEWNS | CLONE_NEWUSER, root, p)
    assert p.mnt.tree.clone_args == (True, r.user) and r.mnt.owner_ns is r.user
    tree = r.mnt.tree
    r.put()
    assert tree.destroyed and r.mnt.dead  # the last reference unmounts the tree


@pytest.mark.parametrize(
    ("path", "root", "shown"),
    [("/", "/", "/"), ("/a/b", "/", "/a/b"), ("/a/b", "/a", "/b"), ("/a", "/a", "/"),
     ("/c", "/a/b", "/../../c"), ("/a/c", "/a/b", "/../c"), ("/", "/a", "/..")],
)  # fmt: skip
def test_cgroup_namespace_path_rendering(path, root, shown):
    assert relative_cgroup_path(path, root) == shown


def test_cgroup_namespace_roots_at_creator_cgroup():
    class Cg:
        def __init__(self, path):
            self.path = path

    _ctx, root, p = _setup()
    _c, q = copy_namespaces(CLONE_NEWCGROUP, root, p, cgroup=Cg("/ctr/app"))
    assert q.cgroup.proc_cgroup_line(Cg("/ctr/app")) == "0::/\n"
    assert q.cgroup.proc_cgroup_line(Cg("/ctr/app/worker")) == "0::/worker\n"
    assert q.cgroup.proc_cgroup_line(Cg("/ctr/other")) == "0::/../other\n"
    assert p.cgroup.proc_cgroup_line(Cg("/ctr/app")) == "0::/ctr/app\n"


def test_time_namespace_offsets_and_clock_translation():
    _ctx, root, p = _setup()
    _c, q = unshare_namespaces(CLONE_NEWTIME, root, p)
    t = q.time_for_children
    assert t.read_offsets() == "monotonic           0         0\nboottime            0         0\n"
    t.write_offsets(
        "monotonic 86400 0\nboottime -5 500000000\n", root, monotonic_now=10**9, boottime_now=10**10
    )
    assert t.read_offsets() == "monotonic       86400         0\nboottime           -5 500000000\n"
    assert t.to_ns_time(CLOCK_MONOTONIC, 7) == 86400 * 10**9 + 7
    assert t.to_ns_time(CLOCK_BOOTTIME, 10**10) == 10**10 - 4_500_000_000
    assert t.to_ns_time(CLOCK_REALTIME, 123) == 123  # realtime is not virtualized
    assert t.from_ns_time(CLOCK_MONOTONIC, t.to_ns_time(CLOCK_MONOTONIC, 99)) == 99
    # numeric clock ids are accepted too
    t.write_offsets("1 5 0", root)
    assert t.monotonic == (5, 0)


def test_time_offsets_validation():
    _ctx, root, p = _setup()
    _c, q = unshare_namespaces(CLONE_NEWTIME, root, p)
    t = q.time_for_children
    assert _errno(t.write_offsets, "realtime 5 0", root) == EINVAL
    assert _errno(t.write_offsets, "monotonic 5 1000000000", root) == EINVAL
    assert _errno(t.write_offsets, "monotonic five 0", root) == EINVAL
    assert _errno(t.write_offsets, "monotonic -100 0", root, monotonic_now=10**9) == ERANGE
    alice = Credentials.user(1000, 1000, p.user)
    assert _errno(t.write_offsets, "monotonic 5 0", alice) == EPERM
    _c2, child = copy_namespaces(0, root, q)  # a process enters: offsets freeze
    assert _errno(t.write_offsets, "monotonic 5 0", root) == EACCES
    assert child.time is t
