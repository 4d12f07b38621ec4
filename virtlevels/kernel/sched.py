"""The scheduler: per-CPU run queues with CFS-like weighted fair sharing and cgroup CPU control.

kernel/sched/fair.c, simplified: every runnable entity has a *vruntime* that advances by
``runtime * 1024 / weight``; the CPU runs the entity with the smallest. Group scheduling is
hierarchical: a cgroup is an entity (weight from cpu.weight: ``weight * 1024 / 100``, as
sched_weight_from_cgroup) in its parent's queue, with its own queue of tasks and child groups,
so cgroups share CPU by cpu.weight whatever their number of tasks. Task weights come from
nice via sched_prio_to_weight. Bandwidth (cpu.max) is the cgroup package's accounting: a
throttled group is skipped when picking, and a task's slice is cut to its group's remaining
runtime so a quota is never overrun.

Simplifications (documented in docs/kernel.md): a fixed base slice instead of CFS's latency
target / EEVDF deadlines; no wake-up preemption (a woken task waits for the running slice to
end); a task is placed on a CPU at fork/wake (the least loaded) and does not migrate otherwise.
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.kernel.cgroup import cpu as cgcpu

NICE_0_LOAD = 1024
#: kernel/sched/core.c sched_prio_to_weight, nice -20 .. 19.
SCHED_PRIO_TO_WEIGHT = (
    88761, 71755, 56483, 46273, 36291,
    29154, 23254, 18705, 14949, 11916,
    9548, 7620, 6100, 4904, 3906,
    3121, 2501, 1991, 1586, 1277,
    1024, 820, 655, 526, 423,
    335, 272, 215, 172, 137,
    110, 87, 70, 56, 45,
    36, 29, 23, 18, 15,
)  # fmt: skip
SCHED_LATENCY_NS = 6_000_000  # sysctl_sched_latency: sleeper credit is half of it (place_entity)


def nice_to_weight(nice: int) -> int:
    return SCHED_PRIO_TO_WEIGHT[max(-20, min(19, nice)) + 20]


def cgroup_shares(weight: int) -> int:
    """sched_weight_from_cgroup: cpu.weight 100 is NICE_0_LOAD."""
    return max(2, (weight * NICE_0_LOAD + 50) // 100)


@attrs.define(eq=False)
class Entity:
    """A sched_entity: a task, or a cgroup's share of one CPU (then ``rq`` is its queue)."""

    seq: int
    task: Any = None
    cgroup: Any = None
    rq: RunQueue | None = None  # for group entities: the queue it owns
    parent_rq: RunQueue | None = None
    vruntime: int = 0
    on_rq: bool = False

    def weight(self) -> int:
        if self.task is not None:
            return nice_to_weight(self.task.nice)
        cg = self.cgroup
        return cgroup_shares(cg.cpu.weight) if cg.has("cpu") else NICE_0_LOAD


@attrs.define(eq=False)
class RunQueue:
    """A cfs_rq: the entities queued at one level of the hierarchy on one CPU."""

    group_se: Entity | None = None  # the entity representing this queue in the parent (None at the root)
    queue: list[Entity] = attrs.field(factory=list)
    min_vruntime: int = 0

    def update_min(self) -> None:
        if self.queue:
            m = min(se.vruntime for se in self.queue)
            if m > self.min_vruntime:
                self.min_vruntime = m


@attrs.define(eq=False)
class Cpu:
    """One CPU (a hart, or a virtual CPU of a kernel that runs without a machine)."""

    index: int
    root: RunQueue = attrs.field(factory=RunQueue)
    group_rqs: dict[Any, RunQueue] = attrs.field(factory=dict)  # cgroup -> its queue here
    curr: Any = None
    slice_used: int = 0  # ns the current task has run in this slice
    tick: Any = None  # the pending event handle
    nr_running: int = 0
    busy_ns: int = 0
    resched: bool = False


@attrs.define(eq=False)
class Scheduler:
    cpus: list[Cpu]
    slice_ns: int = 3_000_000
    _seq: int = 0

    def new_entity(self, task: Any) -> Entity:
        self._seq += 1
        return Entity(self._seq, task=task)

    # -- the hierarchy ------------------------------------------------------------------------------
    def _rq_for(self, cpu: Cpu, cg: Any) -> RunQueue:
        if cg is None or cg.parent is None:
            return cpu.root
        rq = cpu.group_rqs.get(cg)
        if rq is None:
            self._seq += 1
            se = Entity(self._seq, cgroup=cg)
            rq = RunQueue(group_se=se)
            se.rq = rq
            se.parent_rq = self._rq_for(cpu, cg.parent)
            cpu.group_rqs[cg] = rq
        return rq

    def enqueue(self, cpu: Cpu, task: Any, cg: Any, *, wakeup: bool, new: bool = False) -> None:
        se: Entity = task.se
        rq = self._rq_for(cpu, cg)
        self._place(rq, se, wakeup=wakeup, new=new)
        se.parent_rq = rq
        rq.queue.append(se)
        se.on_rq = True
        while rq.group_se is not None and not rq.group_se.on_rq:
            gse = rq.group_se
            prq = gse.parent_rq
            assert prq is not None
            self._place(prq, gse, wakeup=True)
            prq.queue.append(gse)
            gse.on_rq = True
            rq = prq
        task.on_rq = True
        task.cpu = cpu.index
        cpu.nr_running += 1

    @staticmethod
    def _place(rq: RunQueue, se: Entity, *, wakeup: bool, new: bool = False) -> None:
        """place_entity: new entities start at min_vruntime; sleepers get at most half a latency credit."""
        if new:
            se.vruntime = rq.min_vruntime
        elif wakeup:
            se.vruntime = max(se.vruntime, rq.min_vruntime - SCHED_LATENCY_NS // 2)

    def dequeue(self, task: Any) -> None:
        if not task.on_rq:
            return
        cpu = self.cpus[task.cpu]
        se: Entity = task.se
        rq = se.parent_rq
        assert rq is not None
        rq.queue.remove(se)
        se.on_rq = False
        while not rq.queue and rq.group_se is not None and rq.group_se.on_rq:
            gse = rq.group_se
            prq = gse.parent_rq
            assert prq is not None
            prq.queue.remove(gse)
            gse.on_rq = False
            rq = prq
        task.on_rq = False
        cpu.nr_running -= 1

    # -- picking -----------------------------------------------------------------------------------
    def pick(self, cpu: Cpu, now_ns: int) -> Any:
        return self._pick(cpu.root, now_ns)

    def _pick(self, rq: RunQueue, now_ns: int) -> Any:
        for se in sorted(rq.queue, key=lambda e: (e.vruntime, e.seq)):
            if se.task is not None:
                return se.task
            if not cgcpu.cpu_runnable(se.cgroup, now_ns):
                continue
            assert se.rq is not None
            t = self._pick(se.rq, now_ns)
            if t is not None:
                return t
        return None

    def charge(self, task: Any, delta_ns: int) -> None:
        """update_curr: advance the vruntime of the task and of each group entity above it."""
        se: Entity | None = task.se
        while se is not None:
            se.vruntime += delta_ns * NICE_0_LOAD // se.weight()
            rq = se.parent_rq
            if rq is None:
                break
            rq.update_min()
            se = rq.group_se

    def yield_task(self, task: Any) -> None:
        """sched_yield: go to the back of the queue (the largest vruntime among the task's peers)."""
        se: Entity = task.se
        rq = se.parent_rq
        if rq is not None and rq.queue:
            se.vruntime = max(se.vruntime, max(e.vruntime for e in rq.queue))

    def least_loaded(self) -> Cpu:
        return min(self.cpus, key=lambda c: (c.nr_running, c.index))

    def migrate_cgroup(self, task: Any, cg: Any) -> None:
        """The task moved to another cgroup: requeue it under the new group."""
        if task.on_rq:
            cpu = self.cpus[task.cpu]
            self.dequeue(task)
            self.enqueue(cpu, task, cg, wakeup=False)
