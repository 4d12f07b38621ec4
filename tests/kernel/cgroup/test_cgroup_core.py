"""The cgroup2 hierarchy and its core files: formats, errors, the no-internal-process rule."""

from __future__ import annotations

import pytest

from virtlevels.graph import ResourceGraph
from virtlevels.kernel.cgroup import CgroupHierarchy, file_mode, files_of, read_file, write_file
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import (
    EACCES,
    EAGAIN,
    EBUSY,
    EEXIST,
    EINVAL,
    ENOENT,
    EOPNOTSUPP,
    EPERM,
    ERANGE,
    ESRCH,
    KernelError,
)  # fmt: skip
from virtlevels.kernel.ns import CLONE_NEWCGROUP, CLONE_NEWPID, NsContext, copy_namespaces, create_initial

ROOT = Credentials.root()


def _errno(fn, *a, **kw):
    with pytest.raises(KernelError) as e:
        fn(*a, **kw)
    return e.value.errno


@pytest.fixture
def h():
    return CgroupHierarchy(graph=ResourceGraph(), node_prefix="kernel:0/", block_devices=[(8, 0)])


def test_root_files_and_controllers(h):
    r = h.root
    assert read_file(r, "cgroup.controllers") == "cpu io memory pids\n"
    assert read_file(r, "cgroup.subtree_control") == "\n"
    names = files_of(r)
    assert "cgroup.procs" in names and "cpu.stat" in names and "memory.stat" in names and "io.stat" in names
    for missing in (
        "cpu.max",
        "cpu.weight",
        "memory.max",
        "memory.current",
        "pids.max",
        "cgroup.events",
        "io.max",
    ):
        assert missing not in names
        assert _errno(read_file, r, missing) == ENOENT


def test_child_gets_controller_files_only_when_parent_enables_them(h):
    a = h.mkdir(h.root, "a", ROOT)
    assert read_file(a, "cgroup.controllers") == "\n"
    assert _errno(read_file, a, "memory.max") == ENOENT
    write_file(h.root, "cgroup.subtree_control", "+memory +pids", ROOT)
    assert read_file(h.root, "cgroup.subtree_control") == "memory pids\n"
    assert read_file(a, "cgroup.controllers") == "memory pids\n"
    assert read_file(a, "memory.max") == "max\n" and read_file(a, "pids.max") == "max\n"
    assert "cpu.max" not in files_of(a)
    write_file(h.root, "cgroup.subtree_control", "-pids +cpu", ROOT)
    assert read_file(a, "cgroup.controllers") == "cpu memory\n"
    assert read_file(a, "cpu.max") == "max 100000\n" and read_file(a, "cpu.weight") == "100\n"


def test_subtree_control_errors(h):
    a = h.mkdir(h.root, "a", ROOT)
    b = h.mkdir(a, "b", ROOT)
    assert _errno(write_file, h.root, "cgroup.subtree_control", "+bogus", ROOT) == EINVAL
    assert _errno(write_file, h.root, "cgroup.subtree_control", "memory", ROOT) == EINVAL
    assert (
        _errno(write_file, a, "cgroup.subtree_control", "+memory", ROOT) == ENOENT
    )  # not in a's controllers
    write_file(h.root, "cgroup.subtree_control", "+memory", ROOT)
    write_file(a, "cgroup.subtree_control", "+memory", ROOT)
    assert read_file(b, "memory.current") == "0\n"
    # the parent cannot take memory away while a child distributes it
    assert _errno(write_file, h.root, "cgroup.subtree_control", "-memory", ROOT) == EBUSY


def test_no_internal_processes_rule(h):
    a = h.mkdir(h.root, "a", ROOT)
    leaf = h.mkdir(a, "leaf", ROOT)
    h.attach_task("t1", h.root, 1)
    write_file(h.root, "cgroup.subtree_control", "+cpu +memory", ROOT)  # the root is exempt
    h.migrate("t1", a)
    assert _errno(write_file, a, "cgroup.subtree_control", "+memory", ROOT) == EBUSY
    h.migrate("t1", leaf)
    write_file(a, "cgroup.subtree_control", "+memory", ROOT)
    # and nobody may move into a cgroup that distributes controllers
    assert _errno(write_file, a, "cgroup.procs", "1", ROOT) == EBUSY
    assert h.cgroup_of("t1") is leaf


def test_procs_and_events(h):
    a = h.mkdir(h.root, "a", ROOT)
    assert read_file(a, "cgroup.events") == "populated 0\nfrozen 0\n"
    h.attach_task("t1", h.root, 1)
    h.attach_task("t2", h.root, 2)
    write_file(a, "cgroup.procs", "2\n", ROOT)
    assert read_file(a, "cgroup.procs") == "2\n"
    assert read_file(h.root, "cgroup.procs") == "1\n"
    assert read_file(a, "cgroup.events") == "populated 1\nfrozen 0\n"
    write_file(a, "cgroup.procs", "0", ROOT, task="t1")  # "0" is the writer itself
    assert read_file(a, "cgroup.procs") == "2\n1\n"
    assert _errno(write_file, a, "cgroup.procs", "99", ROOT) == ESRCH
    assert _errno(write_file, a, "cgroup.procs", "abc", ROOT) == EINVAL
    write_file(a, "cgroup.freeze", "1", ROOT)
    assert read_file(a, "cgroup.events") == "populated 1\nfrozen 1\n"
    assert _errno(write_file, a, "cgroup.freeze", "2", ROOT) == ERANGE
    h.exit_task("t1")
    h.exit_task("t2")
    assert read_file(a, "cgroup.events") == "populated 0\nfrozen 1\n"


def test_procs_shown_in_readers_pid_namespace():
    ctx = NsContext()
    root, p = create_initial(ctx)
    host = p.pid_for_children
    h = CgroupHierarchy()
    hp = host.alloc_pid("init")
    h.attach_task("init", h.root, hp)
    _c, q = copy_namespaces(CLONE_NEWPID, root, p)
    cp = q.pid_for_children.alloc_pid("cinit")
    a = h.mkdir(h.root, "ctr", ROOT)
    h.attach_task("cinit", a, cp)
    assert read_file(a, "cgroup.procs") == "2\n"
    assert read_file(a, "cgroup.procs", pid_ns=q.pid_for_children) == "1\n"
    assert read_file(h.root, "cgroup.procs", pid_ns=q.pid_for_children) == "0\n"  # invisible: 0, as Linux
    # from inside, the host's init cannot be named
    assert _errno(write_file, a, "cgroup.procs", "2", ROOT, pid_ns=q.pid_for_children) == ESRCH


def test_mkdir_rmdir(h):
    a = h.mkdir(h.root, "a", ROOT)
    assert _errno(h.mkdir, h.root, "a", ROOT) == EEXIST
    assert _errno(h.mkdir, h.root, "cgroup.procs", ROOT) == EEXIST
    assert _errno(h.mkdir, h.root, "x/y", ROOT) == EINVAL
    assert _errno(h.mkdir, h.root, "x\ny", ROOT) == EINVAL
    b = h.mkdir(a, "b", ROOT)
    assert _errno(h.rmdir, a) == EBUSY  # has a child
    h.attach_task("t", b, 5)
    assert _errno(h.rmdir, b) == EBUSY  # populated
    h.release_task("t")
    h.rmdir(b)
    h.rmdir(a)
    assert h.lookup("/a") is None and _errno(h.rmdir, h.root) == EBUSY
    assert _errno(read_file, a, "cgroup.procs") == ENOENT


def test_graph_nodes(h):
    g = h.graph
    a = h.mkdir(h.root, "a", ROOT)
    b = h.mkdir(a, "b", ROOT)
    assert b.node_id == "kernel:0/cgroup:/a/b"
    assert g.kind(b.node_id) == "cgroup"
    assert [(x, y, d["kind"]) for x, y, d in g.g.out_edges(b.node_id, data=True)] == [
        (b.node_id, a.node_id, "part_of")
    ]
    h.rmdir(b)
    assert b.node_id not in g


def test_max_depth_and_descendants(h):
    write_file(h.root, "cgroup.max.depth", "1", ROOT)
    a = h.mkdir(h.root, "a", ROOT)
    assert _errno(h.mkdir, a, "b", ROOT) == EAGAIN
    write_file(h.root, "cgroup.max.depth", "max", ROOT)
    write_file(a, "cgroup.max.descendants", "1", ROOT)
    h.mkdir(a, "b", ROOT)
    assert _errno(h.mkdir, a, "c", ROOT) == EAGAIN
    assert (
        read_file(a, "cgroup.max.descendants") == "1\n" and read_file(h.root, "cgroup.max.depth") == "max\n"
    )
    assert _errno(write_file, a, "cgroup.max.depth", "-1", ROOT) == ERANGE
    assert read_file(h.root, "cgroup.stat") == "nr_descendants 2\nnr_dying_descendants 0\n"


def test_file_permissions_and_read_only_files(h):
    a = h.mkdir(h.root, "a", ROOT)
    write_file(h.root, "cgroup.subtree_control", "+memory", ROOT)
    assert file_mode(a, "memory.max") == 0o644 and file_mode(a, "memory.current") == 0o444
    assert file_mode(a, "cgroup.kill") == 0o200
    assert _errno(write_file, a, "memory.current", "5", ROOT) == EACCES
    assert _errno(read_file, a, "cgroup.kill") == EACCES
    assert _errno(write_file, a, "no.such.file", "5", ROOT) == ENOENT
    alice = Credentials.user(1000, 1000)
    assert _errno(write_file, a, "memory.max", "1M", alice) == EACCES
    assert _errno(h.mkdir, a, "mine", alice) == EACCES
    assert _errno(write_file, a, "cgroup.type", "domain", ROOT) == EINVAL
    assert _errno(write_file, a, "cgroup.type", "threaded", ROOT) == EOPNOTSUPP


def test_delegation_and_migration_permission(h):
    alice = Credentials.user(1000, 1000)
    deleg = h.mkdir(h.root, "user", ROOT)
    h.chown(deleg, 1000, 1000, ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"])
    work = h.mkdir(deleg, "work", alice)  # alice may now create cgroups below
    assert (work.uid, work.files_uid) == (1000, 1000)
    h.attach_task("a1", deleg, 10)
    write_file(work, "cgroup.procs", "10", alice)  # common ancestor is "user": writable by alice
    h.attach_task("r1", h.root, 11)
    # moving a process from the root needs write access to the root's cgroup.procs
    assert _errno(write_file, work, "cgroup.procs", "11", alice) == EACCES
    assert h.cgroup_of("r1") is h.root


def test_cgroup_namespace_delegation_boundary(h):
    ctx = NsContext()
    root, p = create_initial(ctx, root_cgroup=h.root)
    ctr = h.mkdir(h.root, "ctr", ROOT)
    inner = h.mkdir(ctr, "inner", ROOT)
    h.attach_task("c", ctr, 20)
    h.attach_task("out", h.root, 21)
    _c, q = copy_namespaces(CLONE_NEWCGROUP, root, p, cgroup=ctr)
    write_file(h.root, "cgroup.subtree_control", "+memory", ROOT)
    # the namespace root's own limits are not writable from inside (nsdelegate)
    assert _errno(write_file, ctr, "memory.max", "1M", ROOT, cgroup_ns=q.cgroup) == EPERM
    # moving a process from outside the namespace in: ENOENT
    assert _errno(write_file, inner, "cgroup.procs", "21", ROOT, cgroup_ns=q.cgroup) == ENOENT
    write_file(inner, "cgroup.procs", "20", ROOT, cgroup_ns=q.cgroup)
    assert q.cgroup.proc_cgroup_line(h.cgroup_of("c")) == "0::/inner\n"


def test_kill_calls_back_for_every_task_in_subtree(h):
    killed = []
    h.on_kill = killed.append
    a = h.mkdir(h.root, "a", ROOT)
    b = h.mkdir(a, "b", ROOT)
    h.attach_task("x", a, 1)
    h.attach_task("y", b, 2)
    write_file(a, "cgroup.kill", "1", ROOT)
    assert killed == ["x", "y"]
    assert _errno(write_file, a, "cgroup.kill", "0", ROOT) == ERANGE
