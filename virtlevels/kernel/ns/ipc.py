"""IPC namespaces (ipc_namespaces(7)) with System V message queues (msgget(2), msgop(2), msgctl(2)).

Each IPC namespace has its own set of queue identifiers and keys, so a container cannot see
the host's queues. Queue ids are built as Linux does (ipc/util.c): ``seq * 32768 + index``, with
the index allocated cyclically and the sequence bumped when an index is reused.

Blocking: a send to a full queue or a receive with no matching message raises
``WouldBlock(queue)``; the kernel core parks the task and retries the call when woken. Waiters
parked on a queue that is then removed get EIDRM on their retry (Linux wakes them with EIDRM);
for that a removed queue keeps one "tombstone" per parked waiter, after which its id reads as
EINVAL like any unused id.
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.kernel.caps import CAP_IPC_OWNER, CAP_SYS_ADMIN, CAP_SYS_RESOURCE
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
    ENOSPC,
    ENOSYS,
    EPERM,
    KernelError,
)
from virtlevels.kernel.ns.common import NS_TYPES, Namespace, NsContext
from virtlevels.kernel.ns.user import UserNamespace, creds_user_ns, has_cap
from virtlevels.kernel.wait import WaitQueue, WouldBlock

# include/uapi/linux/ipc.h, msg.h
IPC_PRIVATE = 0
IPC_CREAT = 0o1000
IPC_EXCL = 0o2000
IPC_NOWAIT = 0o4000
IPC_RMID = 0
IPC_SET = 1
IPC_STAT = 2
IPC_INFO = 3
MSG_STAT = 11
MSG_INFO = 12
MSG_NOERROR = 0o10000
MSG_EXCEPT = 0o20000
MSG_COPY = 0o40000
# Defaults of /proc/sys/kernel/msgmax, msgmnb, msgmni (include/uapi/linux/msg.h).
MSGMAX = 8192
MSGMNB = 16384
MSGMNI = 32000
IPCMNI_SHIFT = 15  # ipc/util.h: id = (seq << 15) + index
IPCID_SEQ_MAX = (2**31 - 1) >> IPCMNI_SHIFT
S_IRUGO = 0o444
S_IWUGO = 0o222
S_IRWXUGO = 0o777


@attrs.define
class IpcPerm:
    """struct kern_ipc_perm; uid/gid/cuid/cgid are kernel ids."""

    key: int
    uid: int
    gid: int
    cuid: int
    cgid: int
    mode: int
    seq: int


@attrs.frozen
class MsqidDs:
    """struct msqid64_ds as IPC_STAT returns it, ids and pids in the caller's namespaces."""

    key: int
    uid: int
    gid: int
    cuid: int
    cgid: int
    mode: int
    seq: int
    msg_stime: int
    msg_rtime: int
    msg_ctime: int
    msg_cbytes: int
    msg_qnum: int
    msg_qbytes: int
    msg_lspid: int
    msg_lrpid: int


@attrs.frozen
class MsgInfo:
    """struct msginfo (IPC_INFO): the namespace's limits."""

    msgpool: int
    msgmap: int
    msgmax: int
    msgmnb: int
    msgmni: int
    msgssz: int
    msgtql: int
    msgseg: int


@attrs.define(eq=False)
class MsgQueue:
    id: int
    perm: IpcPerm
    qbytes: int
    ctime: int
    messages: list[tuple[int, bytes]] = attrs.field(factory=list)
    cbytes: int = 0
    stime: int = 0
    rtime: int = 0
    lspid: Any = 0  # a Pid (translated on IPC_STAT) or a plain number
    lrpid: Any = 0
    recv_wait: WaitQueue = attrs.field(factory=WaitQueue)
    send_wait: WaitQueue = attrs.field(factory=WaitQueue)


def _pid_nr(pid: Any, pid_ns: Any) -> int:
    if hasattr(pid, "nr_in"):
        return int(pid.nr_in(pid_ns)) if pid_ns is not None else int(pid.numbers[0][1])
    return int(pid)


@attrs.define(eq=False)
class IpcNamespace(Namespace):
    TYPE = NS_TYPES["ipc"]

    msgmax: int = MSGMAX
    msgmnb: int = MSGMNB
    msgmni: int = MSGMNI
    queues: dict[int, MsgQueue] = attrs.field(factory=dict)  # index -> queue
    by_key: dict[int, MsgQueue] = attrs.field(factory=dict)
    _seq: int = 0
    _last_idx: int = -1
    _tombstones: dict[int, int] = attrs.field(factory=dict)  # removed id -> waiters still to tell

    def _release(self) -> None:
        for q in list(self.queues.values()):
            self._remove(q)

    def _now(self) -> int:
        return self.ctx.clock() // 1_000_000_000

    # -- permission (ipc/util.c) --------------------------------------------------------------
    def _ipcperms(self, p: IpcPerm, flag: int, creds: Credentials) -> bool:
        """ipcperms: True when access is *granted*."""
        requested = (flag >> 6) | (flag >> 3) | flag
        granted = p.mode
        if creds.euid in (p.cuid, p.uid):
            granted >>= 6
        elif creds.fsgid in (p.cgid, p.gid) or p.cgid in creds.groups or p.gid in creds.groups:
            granted >>= 3
        if requested & ~granted & 0o7:
            return self.owner_ns is not None and has_cap(creds, self.owner_ns, CAP_IPC_OWNER)
        return True

    def _is_owner_or_admin(self, p: IpcPerm, creds: Credentials) -> bool:
        """ipcctl_obtain_check: creator, owner, or CAP_SYS_ADMIN over the namespace."""
        if creds.euid in (p.cuid, p.uid):
            return True
        return self.owner_ns is not None and has_cap(creds, self.owner_ns, CAP_SYS_ADMIN)

    def _lookup(self, msqid: int) -> MsgQueue:
        if msqid < 0:
            raise KernelError(EINVAL, "negative msqid")
        left = self._tombstones.get(msqid)
        if left is not None:
            if left <= 1:
                del self._tombstones[msqid]
            else:
                self._tombstones[msqid] = left - 1
            raise KernelError(EIDRM, f"queue {msqid} was removed")
        q = self.queues.get(msqid & ((1 << IPCMNI_SHIFT) - 1))
        if q is None or q.id != msqid:
            raise KernelError(EINVAL, f"no queue {msqid}")
        return q

    # -- msgget(2) ----------------------------------------------------------------------------
    def msgget(self, key: int, msgflg: int, creds: Credentials) -> int:
        if key != IPC_PRIVATE:
            q = self.by_key.get(key)
            if q is not None:
                if msgflg & IPC_CREAT and msgflg & IPC_EXCL:
                    raise KernelError(EEXIST, f"key {key:#x} exists")
                if not self._ipcperms(q.perm, msgflg & S_IRWXUGO, creds):
                    raise KernelError(EACCES, f"no access to queue for key {key:#x}")
                return q.id
            if not msgflg & IPC_CREAT:
                raise KernelError(ENOENT, f"no queue for key {key:#x}")
        return self._newque(key, msgflg, creds)

    def _newque(self, key: int, msgflg: int, creds: Credentials) -> int:
        if len(self.queues) >= self.msgmni:
            raise KernelError(ENOSPC, "msgmni queues exist")
        # ipc_idr_alloc: cyclic index; reusing an index at or below the last one bumps seq.
        idx = next(
            (i for i in (*range(self._last_idx + 1, self.msgmni), *range(0, self._last_idx + 1))
             if i not in self.queues),
        )  # fmt: skip
        if idx <= self._last_idx:
            self._seq = 0 if self._seq + 1 >= IPCID_SEQ_MAX else self._seq + 1
        self._last_idx = idx
        qid = (self._seq << IPCMNI_SHIFT) + idx
        perm = IpcPerm(key, creds.euid, creds.egid, creds.euid, creds.egid, msgflg & S_IRWXUGO, self._seq)
        q = MsgQueue(qid, perm, self.msgmnb, self._now())
        self.queues[idx] = q
        if key != IPC_PRIVATE:
            self.by_key[key] = q
        return qid

    # -- msgsnd(2), msgrcv(2) -----------------------------------------------------------------
    def msgsnd(
        self, msqid: int, mtype: int, data: bytes, msgflg: int, creds: Credentials, pid: Any = 0
    ) -> None:
        """Queue a message; WouldBlock when full (EAGAIN with IPC_NOWAIT)."""
        if mtype < 1:
            raise KernelError(EINVAL, "mtype must be > 0")
        if len(data) > self.msgmax:
            raise KernelError(EINVAL, f"message longer than msgmax ({self.msgmax})")
        q = self._lookup(msqid)
        if not self._ipcperms(q.perm, S_IWUGO, creds):
            raise KernelError(EACCES, f"no write permission on queue {msqid}")
        # msg_fits_inqueue: both the byte count and the message count are bounded by qbytes.
        if len(data) + q.cbytes > q.qbytes or 1 + len(q.messages) > q.qbytes:
            if msgflg & IPC_NOWAIT:
                raise KernelError(EAGAIN, f"queue {msqid} is full")
            raise WouldBlock(q.send_wait)
        q.messages.append((mtype, bytes(data)))
        q.cbytes += len(data)
        q.lspid = pid
        q.stime = self._now()
        q.recv_wait.wake_all()

    def msgrcv(
        self, msqid: int, msgsz: int, msgtyp: int, msgflg: int, creds: Credentials, pid: Any = 0
    ) -> tuple[int, bytes]:
        """Take a message (``mtype``, ``data``) chosen by ``msgtyp`` as msgop(2) describes.

        msgtyp 0: the first message; > 0: the first of that type (or, with MSG_EXCEPT, the first
        of another type); < 0: the first of the lowest type <= |msgtyp|.
        """
        if msqid < 0 or msgsz < 0:
            raise KernelError(EINVAL, "bad msqid or msgsz")
        if msgflg & MSG_COPY:
            raise KernelError(ENOSYS, "MSG_COPY needs CONFIG_CHECKPOINT_RESTORE")
        q = self._lookup(msqid)
        if not self._ipcperms(q.perm, S_IRUGO, creds):
            raise KernelError(EACCES, f"no read permission on queue {msqid}")
        found = self._find(q, msgtyp, msgflg)
        if found is None:
            if msgflg & IPC_NOWAIT:
                raise KernelError(ENOMSG, f"no matching message on queue {msqid}")
            raise WouldBlock(q.recv_wait)
        mtype, data = q.messages[found]
        if len(data) > msgsz and not msgflg & MSG_NOERROR:
            raise KernelError(E2BIG, f"message of {len(data)} bytes exceeds msgsz {msgsz}")
        del q.messages[found]
        q.cbytes -= len(data)
        q.lrpid = pid
        q.rtime = self._now()
        q.send_wait.wake_all()
        return mtype, data[:msgsz]

    @staticmethod
    def _find(q: MsgQueue, msgtyp: int, msgflg: int) -> int | None:
        """ipc/msg.c find_msg with convert_mode's search modes."""
        if msgtyp == 0:
            return 0 if q.messages else None
        if msgtyp < 0:
            best: int | None = None
            limit = -msgtyp
            for i, (t, _d) in enumerate(q.messages):
                if t <= limit:
                    best, limit = i, t - 1  # keep looking for a strictly lower type
                    if t == 1:
                        break
            return best
        except_ = bool(msgflg & MSG_EXCEPT)
        for i, (t, _d) in enumerate(q.messages):
            if (t != msgtyp) if except_ else (t == msgtyp):
                return i
        return None

    # -- msgctl(2) ----------------------------------------------------------------------------
    def msgctl(
        self, msqid: int, cmd: int, creds: Credentials, buf: MsqidDs | None = None, pid_ns: Any = None
    ) -> MsqidDs | MsgInfo | int:
        """IPC_STAT (returns MsqidDs), IPC_SET (uses ``buf``'s uid, gid, mode, msg_qbytes),
        IPC_RMID, IPC_INFO/MSG_INFO (return MsgInfo). ``pid_ns`` translates lspid/lrpid."""
        if cmd in (IPC_INFO, MSG_INFO):
            nq = len(self.queues)
            nmsg = sum(len(q.messages) for q in self.queues.values())
            nbytes = sum(q.cbytes for q in self.queues.values())
            if cmd == MSG_INFO:
                return MsgInfo(nq, nmsg, self.msgmax, self.msgmnb, self.msgmni, 16, nbytes, 0xFFFF)
            return MsgInfo(self.msgmni * self.msgmnb // 1024, 16384, self.msgmax, self.msgmnb, self.msgmni,
                           16, 16384, 0xFFFF)  # fmt: skip
        if cmd == IPC_STAT:
            q = self._lookup(msqid)
            if not self._ipcperms(q.perm, S_IRUGO, creds):
                raise KernelError(EACCES, f"no read permission on queue {msqid}")
            return self._stat(q, creds, pid_ns)
        if cmd == IPC_SET:
            q = self._lookup(msqid)
            if not self._is_owner_or_admin(q.perm, creds):
                raise KernelError(EPERM, "only the owner, creator or CAP_SYS_ADMIN may IPC_SET")
            if buf is None:
                raise KernelError(EINVAL, "IPC_SET without a msqid_ds")
            if buf.msg_qbytes > self.msgmnb and not bool(creds.cap_effective >> CAP_SYS_RESOURCE & 1):
                raise KernelError(EPERM, "raising msg_qbytes above msgmnb needs CAP_SYS_RESOURCE")
            uns = creds_user_ns(creds)
            kuid = buf.uid if uns is None else uns.make_kuid(buf.uid)
            kgid = buf.gid if uns is None else uns.make_kgid(buf.gid)
            if kuid is None or kgid is None:
                raise KernelError(EINVAL, "uid/gid not mapped in the caller's user namespace")
            q.qbytes = buf.msg_qbytes
            q.perm.uid, q.perm.gid = kuid, kgid
            q.perm.mode = (q.perm.mode & ~S_IRWXUGO) | (buf.mode & S_IRWXUGO)
            q.ctime = self._now()
            q.send_wait.wake_all()  # more room, maybe; receivers recheck permission
            q.recv_wait.wake_all()
            return 0
        if cmd == IPC_RMID:
            q = self._lookup(msqid)
            if not self._is_owner_or_admin(q.perm, creds):
                raise KernelError(EPERM, "only the owner, creator or CAP_SYS_ADMIN may IPC_RMID")
            self._remove(q)
            return 0
        raise KernelError(EINVAL, f"unknown msgctl command {cmd}")

    def _stat(self, q: MsgQueue, creds: Credentials, pid_ns: Any) -> MsqidDs:
        uns: UserNamespace | None = creds_user_ns(creds)
        p = q.perm

        def u(k: int) -> int:
            return k if uns is None else uns.from_kuid_munged(k)

        def g(k: int) -> int:
            return k if uns is None else uns.from_kgid_munged(k)

        return MsqidDs(
            p.key, u(p.uid), g(p.gid), u(p.cuid), g(p.cgid), p.mode, p.seq, q.stime, q.rtime, q.ctime,
            q.cbytes, len(q.messages), q.qbytes, _pid_nr(q.lspid, pid_ns), _pid_nr(q.lrpid, pid_ns),
        )  # fmt: skip

    def _remove(self, q: MsgQueue) -> None:
        """freeque: drop the queue; every parked sender and receiver will see EIDRM."""
        del self.queues[q.id & ((1 << IPCMNI_SHIFT) - 1)]
        if self.by_key.get(q.perm.key) is q:
            del self.by_key[q.perm.key]
        waiters = len(q.recv_wait) + len(q.send_wait)
        if waiters:
            self._tombstones[q.id] = waiters
        q.recv_wait.wake_all()
        q.send_wait.wake_all()


def initial_ipc_ns(ctx: NsContext, user_ns: UserNamespace) -> IpcNamespace:
    return IpcNamespace(ctx, NS_TYPES["ipc"].init_ino, user_ns)


def create_ipc_ns(user_ns: UserNamespace, old: IpcNamespace) -> IpcNamespace:
    """A new, empty IPC namespace (ipc_namespaces(7): no objects are shared with the old one)."""
    return IpcNamespace(old.ctx, old.ctx.alloc_ino(), user_ns)
