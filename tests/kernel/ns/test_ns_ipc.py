"""System V message queues per IPC namespace (msgget(2), msgop(2), msgctl(2))."""

from __future__ import annotations

import attrs
import pytest

from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import (
    E2BIG,
    EACCES,
    EAGAIN,
    EEXIST,
    EIDRM,
    EINVAL,
    ENOENT,
    ENOMSG,
    EPERM,
    KernelError,
)  # fmt: skip
from virtlevels.kernel.ns import CLONE_NEWIPC, CLONE_NEWUSER, NsContext, copy_namespaces, create_initial
from virtlevels.kernel.ns.ipc import (
    IPC_CREAT,
    IPC_EXCL,
    IPC_NOWAIT,
    IPC_PRIVATE,
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    MSG_EXCEPT,
    MSG_NOERROR,
)  # fmt: skip
from virtlevels.kernel.wait import WouldBlock


def _errno(fn, *a, **kw):
    with pytest.raises(KernelError) as e:
        fn(*a, **kw)
    return e.value.errno


@pytest.fixture
def env():
    ctx = NsContext()
    root, p = create_initial(ctx)
    return root, p


def test_queues_are_per_namespace(env):
    root, p = env
    qid = p.ipc.msgget(0x1234, IPC_CREAT | 0o600, root)
    assert qid == 0
    _c, q = copy_namespaces(CLONE_NEWIPC, root, p)
    assert _errno(q.ipc.msgget, 0x1234, 0, root) == ENOENT  # the host's key is invisible
    assert _errno(q.ipc.msgsnd, qid, 1, b"x", IPC_NOWAIT, root) == EINVAL
    assert q.ipc.msgget(0x1234, IPC_CREAT | 0o600, root) == 0  # its own id space
    p.ipc.msgsnd(qid, 1, b"host", 0, root)
    assert _errno(q.ipc.msgrcv, 0, 100, 0, IPC_NOWAIT, root) == ENOMSG


def test_msgget_key_rules_and_ids(env):
    root, p = env
    a = p.ipc.msgget(IPC_PRIVATE, 0o600, root)
    b = p.ipc.msgget(IPC_PRIVATE, 0o600, root)
    assert (a, b) == (0, 1)
    k = p.ipc.msgget(42, IPC_CREAT | 0o644, root)
    assert p.ipc.msgget(42, 0, root) == k
    assert p.ipc.msgget(42, IPC_CREAT, root) == k
    assert _errno(p.ipc.msgget, 42, IPC_CREAT | IPC_EXCL, root) == EEXIST
    assert _errno(p.ipc.msgget, 43, 0, root) == ENOENT
    p.ipc.msgctl(a, IPC_RMID, root)
    c = p.ipc.msgget(IPC_PRIVATE, 0o600, root)
    assert c == 3  # cyclic index allocation
    alice = Credentials.user(1000, 1000, p.user)
    assert _errno(p.ipc.msgget, 42, 0o200, alice) == EACCES  # 0644 gives others no write


def test_type_selection(env):
    root, p = env
    q = p.ipc.msgget(IPC_PRIVATE, 0o600, root)
    for t, d in ((5, b"a"), (3, b"b"), (7, b"c"), (3, b"d"), (1, b"e")):
        p.ipc.msgsnd(q, t, d, 0, root)
    assert p.ipc.msgrcv(q, 10, 3, 0, root) == (3, b"b")  # first of type 3
    assert p.ipc.msgrcv(q, 10, 5, MSG_EXCEPT, root) == (7, b"c")  # first not of type 5
    assert p.ipc.msgrcv(q, 10, -4, 0, root) == (1, b"e")  # lowest type <= 4
    assert p.ipc.msgrcv(q, 10, -4, 0, root) == (3, b"d")
    assert p.ipc.msgrcv(q, 10, 0, 0, root) == (5, b"a")  # first of any
    assert _errno(p.ipc.msgrcv, q, 10, 0, IPC_NOWAIT, root) == ENOMSG


def test_sizes_e2big_and_noerror(env):
    root, p = env
    q = p.ipc.msgget(IPC_PRIVATE, 0o600, root)
    assert _errno(p.ipc.msgsnd, q, 0, b"x", 0, root) == EINVAL
    assert _errno(p.ipc.msgsnd, q, 1, b"x" * 8193, 0, root) == EINVAL
    p.ipc.msgsnd(q, 1, b"hello world", 0, root)
    assert _errno(p.ipc.msgrcv, q, 5, 0, 0, root) == E2BIG
    assert p.ipc.msgrcv(q, 5, 0, MSG_NOERROR, root) == (1, b"hello")


def test_full_queue_blocks_and_wakes(env):
    root, p = env
    q = p.ipc.msgget(IPC_PRIVATE, 0o600, root)
    for _ in range(2):
        p.ipc.msgsnd(q, 1, b"x" * 8192, 0, root)  # 16384 bytes: msgmnb reached
    assert _errno(p.ipc.msgsnd, q, 1, b"y", IPC_NOWAIT, root) == EAGAIN
    with pytest.raises(WouldBlock) as wb:
        p.ipc.msgsnd(q, 1, b"y", 0, root)
    woken = []
    wb.value.queue.add(lambda: woken.append(True))
    p.ipc.msgrcv(q, 8192, 0, 0, root)
    assert woken == [True]
    p.ipc.msgsnd(q, 1, b"y", 0, root)  # the retry succeeds


def test_receive_blocks_until_send(env):
    root, p = env
    q = p.ipc.msgget(IPC_PRIVATE, 0o600, root)
    with pytest.raises(WouldBlock) as wb:
        p.ipc.msgrcv(q, 100, 2, 0, root)
    woken = []
    wb.value.queue.add(lambda: woken.append(1))
    p.ipc.msgsnd(q, 2, b"ping", 0, root)
    assert woken == [1]
    assert p.ipc.msgrcv(q, 100, 2, 0, root) == (2, b"ping")


def test_rmid_wakes_waiters_with_eidrm(env):
    root, p = env
    q = p.ipc.msgget(IPC_PRIVATE, 0o600, root)
    with pytest.raises(WouldBlock) as wb:
        p.ipc.msgrcv(q, 100, 0, 0, root)
    woken = []
    wb.value.queue.add(lambda: woken.append(1))
    p.ipc.msgctl(q, IPC_RMID, root)
    assert woken == [1]
    assert _errno(p.ipc.msgrcv, q, 100, 0, 0, root) == EIDRM  # the parked receiver's retry
    assert _errno(p.ipc.msgrcv, q, 100, 0, 0, root) == EINVAL  # later callers: no such queue


def test_stat_set_and_permissions(env):
    root, p = env
    alice = Credentials.user(1000, 1000, p.user)
    q = p.ipc.msgget(IPC_PRIVATE, 0o600, alice)
    p.ipc.msgsnd(q, 1, b"abc", 0, alice, pid=77)
    st = p.ipc.msgctl(q, IPC_STAT, alice)
    assert (st.uid, st.cuid, st.mode, st.msg_qnum, st.msg_cbytes, st.msg_qbytes, st.msg_lspid) == (
        1000, 1000, 0o600, 1, 3, 16384, 77,
    )  # fmt: skip
    bob = Credentials.user(2000, 2000, p.user)
    assert _errno(p.ipc.msgctl, q, IPC_STAT, bob) == EACCES
    assert _errno(p.ipc.msgsnd, q, 1, b"x", 0, bob) == EACCES
    assert _errno(p.ipc.msgctl, q, IPC_RMID, bob) == EPERM
    bigger = attrs.evolve(st, msg_qbytes=20000, mode=0o666)
    assert _errno(p.ipc.msgctl, q, IPC_SET, alice, bigger) == EPERM  # above msgmnb needs CAP_SYS_RESOURCE
    p.ipc.msgctl(q, IPC_SET, alice, attrs.evolve(st, msg_qbytes=100, mode=0o666))
    p.ipc.msgsnd(q, 1, b"x", 0, bob)  # now world-writable
    st2 = p.ipc.msgctl(q, IPC_STAT, bob)
    assert (st2.msg_qbytes, st2.mode) == (100, 0o666)
    p.ipc.msgctl(q, IPC_RMID, root)  # root may always


def test_ids_in_stat_are_shown_in_callers_user_namespace(env):
    root, p = env
    alice = Credentials.user(1000, 1000, p.user)
    ac, aq = copy_namespaces(CLONE_NEWUSER | CLONE_NEWIPC, alice, p)
    aq.user.write_uid_map("0 1000 1", ac)
    q = aq.ipc.msgget(IPC_PRIVATE, 0o600, ac)
    assert aq.ipc.msgctl(q, IPC_STAT, ac).uid == 0  # alice is root inside
    assert aq.ipc.msgctl(q, IPC_STAT, root).uid == 1000
