"""clone/unshare/setns over the eight namespaces: flags, permissions, inodes, graph, refcounts."""

from __future__ import annotations

import pytest

from virtlevels.graph import ResourceGraph
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EINVAL, EPERM, KernelError
from virtlevels.kernel.ns import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    NS_TYPES,
    NsContext,
    copy_namespaces,
    create_initial,
    setns,
    unshare_namespaces,
)  # fmt: skip
from virtlevels.kernel.ns.common import CLONE_THREAD, PROC_DYNAMIC_FIRST

ALL_NEW = (
    CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP
    | CLONE_NEWTIME
)  # fmt: skip


def _errno(fn, *a, **kw):
    with pytest.raises(KernelError) as e:
        fn(*a, **kw)
    return e.value.errno


def _setup(graph=None):
    ctx = NsContext(graph=graph, node_prefix="kernel:0/")
    root, proxy = create_initial(ctx)
    return ctx, root, proxy


def test_flag_values_and_initial_inodes():
    assert {n: t.flag for n, t in NS_TYPES.items()} == {
        "cgroup": 0x02000000, "ipc": 0x08000000, "mnt": 0x00020000, "net": 0x40000000, "pid": 0x20000000,
        "time": 0x00000080, "user": 0x10000000, "uts": 0x04000000,
    }  # fmt: skip
    _ctx, _root, p = _setup()
    assert p.uts.proc_link() == "uts:[4026531838]"
    assert p.ipc.inode == 0xEFFFFFFF and p.user.inode == 0xEFFFFFFD and p.pid_for_children.inode == 0xEFFFFFFC
    assert p.cgroup.inode == 0xEFFFFFFB and p.time.inode == 0xEFFFFFFA


def test_new_namespaces_get_deterministic_unique_inodes():
    def run():
        _ctx, root, p = _setup()
        _c, q = copy_namespaces(ALL_NEW, root, p)
        return [ns.proc_link() for ns in q.proc_ns(q.pid_for_children).values()]

    first = run()
    assert first == run()
    inos = {int(s.split("[")[1][:-1]) for s in first}
    assert (
        min(inos) >= PROC_DYNAMIC_FIRST and len(inos) == 8
    )  # pid==pid_for_children, time==time_for_children


def test_unprivileged_needs_user_namespace_for_others():
    _ctx, _root, p = _setup()
    alice = Credentials.user(1000, 1000, p.user)
    assert _errno(copy_namespaces, CLONE_NEWUTS, alice, p) == EPERM
    assert _errno(copy_namespaces, CLONE_NEWNET | CLONE_NEWPID, alice, p) == EPERM
    creds, q = copy_namespaces(CLONE_NEWUSER | CLONE_NEWUTS | CLONE_NEWNET, alice, p)
    assert q.uts is not p.uts and q.net is not p.net and q.ipc is p.ipc
    assert q.uts.owner_ns is q.user and q.net.owner_ns is q.user  # owned by the new user ns
    assert creds.user_ns is q.user


def test_failed_clone_leaves_nothing_behind():
    g = ResourceGraph()
    ctx, root, p = _setup(g)
    before = set(g.g.nodes)
    _c, q = copy_namespaces(CLONE_NEWPID, root, p)
    # a second CLONE_NEWPID before a child entered: EINVAL, after the user ns and others were made
    assert _errno(unshare_namespaces, ALL_NEW, root, q, active_pid_ns=p.pid_for_children) == EINVAL
    q.put()
    assert set(g.g.nodes) == before
    assert set(ctx.live) == {ns.inode for ns in p.namespaces()} | {p.pid_for_children.inode}


def test_clone_flag_combinations():
    _ctx, root, p = _setup()
    assert _errno(copy_namespaces, CLONE_NEWPID | CLONE_THREAD, root, p) == EINVAL
    assert _errno(copy_namespaces, CLONE_NEWUSER | 0x200, root, p) == EINVAL  # CLONE_FS
    assert _errno(copy_namespaces, CLONE_NEWIPC | 0x40000, root, p) == EINVAL  # CLONE_SYSVSEM


def test_no_flags_shares_the_proxy():
    _ctx, root, p = _setup()
    c, q = copy_namespaces(0, root, p)
    assert q is p and c is root and p.refcount == 2


def test_unshare_pid_affects_children_only_and_only_once():
    _ctx, root, p = _setup()
    active = p.pid_for_children
    _c, q = unshare_namespaces(CLONE_NEWPID, root, p, active_pid_ns=active)
    assert q.pid_for_children is not active and q.pid_for_children.parent is active
    assert _errno(unshare_namespaces, CLONE_NEWPID, root, q, active_pid_ns=active) == EINVAL


def test_unshare_time_then_fork_enters_and_freezes():
    _ctx, root, p = _setup()
    _c, q = unshare_namespaces(CLONE_NEWTIME, root, p)
    assert q.time is p.time and q.time_for_children is not p.time
    q.time_for_children.write_offsets("monotonic 100 0", root)
    _c2, child = copy_namespaces(0, root, q)  # fork
    assert child.time is q.time_for_children and child.time.frozen_offsets


def test_graph_nodes_edges_and_removal():
    g = ResourceGraph()
    _ctx, root, p = _setup(g)
    alice = Credentials.user(1000, 1000, p.user)
    _c, q = copy_namespaces(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWUTS, alice, p)
    uid = q.user.node_id
    assert g.attrs(q.uts.node_id) == {"kind": "namespace", "type": "uts", "inode": q.uts.inode}
    kinds = {(a, b): d["kind"] for a, b, d in g.g.edges(data=True)}
    assert kinds[(q.uts.node_id, uid)] == "maps_to"
    assert kinds[(uid, p.user.node_id)] == "part_of"
    assert kinds[(q.pid_for_children.node_id, p.pid_for_children.node_id)] == "part_of"
    q.put()
    assert uid not in g and q.uts.node_id not in g and p.uts.node_id in g


def test_setns_permissions_and_pid_rules():
    _ctx, root, p = _setup()
    alice = Credentials.user(1000, 1000, p.user)
    ac, aq = copy_namespaces(CLONE_NEWUSER | CLONE_NEWUTS | CLONE_NEWPID, alice, p)
    # root joins alice's uts namespace
    c, q = setns(aq.uts, root, p, nstype=CLONE_NEWUTS)
    assert q.uts is aq.uts
    assert _errno(setns, aq.uts, root, p, nstype=CLONE_NEWNET) == EINVAL
    # alice inside her namespace cannot join the host's uts namespace
    assert _errno(setns, p.uts, ac, aq) == EPERM
    assert _errno(setns, p.pid_for_children, ac, aq, active_pid_ns=aq.pid_for_children) == EPERM
    # even with the capabilities, a pid namespace must be the caller's or a descendant
    _rc, rq = copy_namespaces(CLONE_NEWPID, root, p)
    assert _errno(setns, p.pid_for_children, root, rq, active_pid_ns=rq.pid_for_children) == EINVAL
    c2, q2 = setns(aq.pid_for_children, root, p, active_pid_ns=p.pid_for_children)
    assert q2.pid_for_children is aq.pid_for_children
    # joining a user namespace gives its full capability set; not one's own
    c3, q3 = setns(aq.user, root, p)
    assert c3.user_ns is aq.user and q3.user is aq.user
    assert _errno(setns, aq.user, c3, q3) == EINVAL
