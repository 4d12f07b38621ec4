"""ISA processes: RV32 user code in U-mode on the machine's harts (the kernel's hardware side).

The kernel is Python, but it drives the hardware only as kernel code running on the hart would:
every change of hardware state is a real instruction word executed with :meth:`Hart.execute
<virtlevels.machine.hart.Hart.execute>` (``csrw satp`` + ``sfence.vma`` to switch address spaces,
``csrw stimecmp`` to arm the preemption timer, ``csrw sepc``/``csrs sstatus`` and ``sret`` to enter
user mode, ``csrr scause/stval/sepc`` in the trap handler). On a deprivileged virtual hart those
same words trap to the hypervisor, so this kernel runs unchanged in a VM.

What is *not* an instruction, and why that is legitimate:

* **Memory.** Page tables, user frames and copy_from_user/copy_to_user go through the machine's
  physical-memory port (``machine.phys_read``/``phys_write``): that is the kernel's linear map of
  RAM, ordinary loads and stores that no hypervisor traps (in a VM they are guest-physical
  accesses). User pointers are translated by a software walk of the process's Sv32 tables
  (:meth:`PageTable.walk`), faulting pages in when the VMA allows it, as Linux's uaccess does.
* **General registers.** The trap entry saves the interrupted registers into the task and the
  return path restores them (``hart.x``), what the handler's ``sw``/``lw`` sequence does.

Boot (:meth:`HwKernel._boot_hart`): the firmware's part runs first, in M-mode, through the same
execute path (delegate U ecalls, page faults and the other user exceptions plus the S-level
interrupts to S; set menvcfg.STCE for Sstc and mcounteren; ``mret`` to S); then the kernel sets
``stvec`` to its native entry (:data:`TRAP_ENTRY`, see ``PhysicalMachine.add_native_entry``),
enables STIE and leaves ``sstatus.SIE`` clear (the kernel is not interruptible while it runs).

Running (:meth:`HwKernel.run`, called by the CPU loop for the current ISA task): retry a system
call the task slept in, else enter user mode with the slice armed in ``stimecmp`` and run the hart
(``machine.run_hart``) until a trap reaches the native entry, which saves the context and yields
the hart back (``YieldToHost``); the trap is then handled here: ECALL from U is a system call
through the one syscall table (a7 = number, a0-a5 = arguments, a0 = result, sepc + 4), page faults
are demand paging for the VMAs (brk, mmap, stack: a first touch is charged to the memory cgroup as
a scripted ``touch`` is) or SIGSEGV, an illegal instruction is SIGILL, the timer interrupt ends
the slice. One call of ``run`` is one step of the kernel's event-driven CPU loop.

fork copies the address space eagerly (every frame is copied at fork), but keeps Linux's
accounting: the child's copies are mapped read-only and not charged until the child writes them
(the ``AddressSpace.cow`` set), when a write fault charges the page and makes it writable.
"""

from __future__ import annotations

from operator import mul
from typing import Any

import attrs

from virtlevels.errors import VirtlevelsError
from virtlevels.kernel import signals
from virtlevels.kernel.elfload import areas, initial_stack, parse
from virtlevels.kernel.errno import EFAULT, KernelError
from virtlevels.kernel.mm import (
    MAP_ANONYMOUS,
    MAP_PRIVATE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    STACK_TOP,
    USER_TOP,
    AddressSpace,
    Vma,
)
from virtlevels.kernel.pagetable import (
    PAGE_SHIFT,
    PAGE_SIZE,
    FrameAllocator,
    OutOfFrames,
    PageTable,
    pte_flags,
)
from virtlevels.kernel.process import RLIMIT_STACK, RUNNING
from virtlevels.kernel.wait import WouldBlock
from virtlevels.machine.memmap import NATIVE_BASE
from virtlevels.machine.mmu import PTE_R, PTE_U, PTE_W
from virtlevels.machine.protocol import Machine
from virtlevels.machine.trap import FETCH, LOAD, STORE, YieldToHost

M32 = 0xFFFFFFFF
U_MODE = 0

# CSR numbers (Priv 2.2; Sstc)
SSTATUS, SIE, STVEC, SCOUNTEREN = 0x100, 0x104, 0x105, 0x106
SEPC, SCAUSE, STVAL, SATP = 0x141, 0x142, 0x143, 0x180
STIMECMP, STIMECMPH, TIME, TIMEH = 0x14D, 0x15D, 0xC01, 0xC81
MSTATUS, MEDELEG, MIDELEG, MTVEC, MCOUNTEREN = 0x300, 0x302, 0x303, 0x305, 0x306
MEPC, MENVCFGH = 0x341, 0x31A
SSTATUS_SPP, SSTATUS_SPIE = 1 << 8, 1 << 5
MSTATUS_MPP, MSTATUS_MPP_S = 3 << 11, 1 << 11
STIE = 1 << 5
MENVCFGH_STCE = 1 << 31

# Exceptions the firmware delegates to the kernel (Priv 3.1.8): the user-caused ones.
DELEGATED_EXCEPTIONS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 15)
# With the H extension also ecall from VS, the guest-page faults and the virtual-instruction
# exception (Priv 8.4), as OpenSBI does: a hypervisor in the kernel (KVM) handles them in HS-mode.
H_DELEGATED_EXCEPTIONS = (10, 20, 21, 22, 23)
MIDELEG_S = (1 << 1) | (1 << 5) | (1 << 9)  # SSI, STI, SEI

# Native code addresses: the firmware's stub, its M-mode trap vector, the kernel's code. Each
# privileged operation gets its own pc, so a trap it causes (in a VM) names a meaningful epc.
FIRMWARE_PC = NATIVE_BASE
FIRMWARE_TRAP = NATIVE_BASE + 0x0F00
TRAP_ENTRY = NATIVE_BASE + 0x1000  # stvec
_KERNEL_OPS = (
    "boot", "trap_scause", "trap_stval", "trap_sepc", "trap_sstatus", "satp", "sfence", "timer_lo",
    "timer_hi", "timer_set_max", "timer_set_hi", "timer_set_lo", "sepc", "sstatus_spp", "sstatus_spie",
    "sret", "fault_sfence",
)  # fmt: skip
KPC = {name: TRAP_ENTRY + 0x100 + 4 * i for i, name in enumerate(_KERNEL_OPS)}

_TRAP_SIGNALS = {
    0: signals.SIGBUS, 4: signals.SIGBUS, 6: signals.SIGBUS,  # misaligned
    1: signals.SIGSEGV, 5: signals.SIGSEGV, 7: signals.SIGSEGV,  # access faults
    2: signals.SIGILL, 3: signals.SIGTRAP,
}  # fmt: skip
_PAGE_FAULTS = {12: FETCH, 13: LOAD, 15: STORE}
_NEED = {FETCH: PROT_EXEC, LOAD: PROT_READ, STORE: PROT_WRITE}


@attrs.define(eq=False)
class TaskContext:
    """An ISA task's saved user state (what the trap entry stores on the kernel stack)."""

    regs: list[int] = attrs.field(factory=lambda: [0] * 32)
    pc: int = 0
    in_syscall: bool = False  # sleeping in a system call that is retried on wake-up
    last_fault: tuple[int, int] | None = None

    def copy(self) -> TaskContext:
        return TaskContext(list(self.regs), self.pc)


@attrs.define(eq=False)
class HwMm:
    """``AddressSpace.hw`` of an ISA process: its page table in machine memory."""

    isa: HwKernel
    pt: PageTable

    def user_memory(self, task: Any = None, force: bool = False) -> UserMem:
        return UserMem(self.isa, self, task, force)


@attrs.define(eq=False)
class UserMem:
    """copy_from_user/copy_to_user for an ISA process (the ``usermem.UserMemory`` protocol)."""

    isa: HwKernel
    hw: HwMm
    task: Any = None
    force: bool = False  # the kernel's own writes (exec): ignore the VMA's protection (FOLL_FORCE)

    def _pa(self, va: int, write: bool) -> int:
        if va >= USER_TOP:
            raise KernelError(EFAULT, f"bad user address {va:#x}")
        found = self.hw.pt.walk(va)
        if found is not None and not self.force:
            pte = found[1]
            if not pte & PTE_U or not pte & (PTE_W if write else PTE_R):
                found = None
        if found is None:
            task = self.task
            if task is None:
                task = self.isa.kernel.current
            if task is None or task.mm.hw is not self.hw:
                raise KernelError(EFAULT, f"no task to fault {va:#x} in for")
            access = STORE if write else LOAD
            if not self.isa.handle_fault(task, va, access, signal=False, force=self.force):
                raise KernelError(EFAULT, f"bad user address {va:#x}")
            found = self.hw.pt.walk(va)
            if found is None:
                raise KernelError(EFAULT, f"bad user address {va:#x}")
        return found[0]

    def read(self, addr: int, size: int) -> bytes:
        out = bytearray()
        m = self.isa.machine
        while size > 0:
            n = min(size, PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
            out += m.phys_read(self._pa(addr, False), n)
            addr += n
            size -= n
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        m = self.isa.machine
        pos = 0
        while pos < len(data):
            n = min(len(data) - pos, PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
            m.phys_write(self._pa(addr, True), data[pos:pos + n])
            addr += n
            pos += n


class HwKernelPanic(VirtlevelsError):
    """The hardware did something the kernel cannot go on from (a trap in kernel mode, ...)."""


class HwKernel:
    """``Kernel.isa``: the kernel's hardware side on a machine whose harts are its CPUs."""

    def __init__(self, kernel: Any, machine: Machine, engine: str = "interp") -> None:
        self.kernel = kernel
        self.machine = machine
        self.engine = engine
        ncpu = len(kernel.sched.cpus)
        if ncpu > len(machine.harts):
            raise VirtlevelsError(f"{ncpu} CPUs but the machine has {len(machine.harts)} harts")
        self.harts = machine.harts[:ncpu]
        ram_first = machine.ram_base >> PAGE_SHIFT
        self.frames = FrameAllocator(machine, ram_first, ram_first + (machine.ram_size >> PAGE_SHIFT))
        self.divisor = machine.cost.timebase_divisor
        self.loaded: dict[int, tuple[HwMm, int]] = {}  # hart id -> (address space, its generation)
        self.on_hart: dict[int, Any] = {}  # hart id -> the task whose user context is live
        self.pending_trap: dict[int, tuple[int, int]] = {}  # hart id -> (scause, stval)
        machine.add_native_entry(TRAP_ENTRY, self._trap_entry)
        machine.add_native_entry(FIRMWARE_TRAP, self._firmware_trap)
        for hart in self.harts:
            self._boot_hart(hart)

    # -- boot ----------------------------------------------------------------------------------
    def _boot_hart(self, h: Any) -> None:
        pc = FIRMWARE_PC
        # The firmware (M-mode): trap vector, delegation, Sstc, counters, then mret to the kernel.
        medeleg = sum(1 << c for c in DELEGATED_EXCEPTIONS)
        if getattr(h, "hext", False):
            medeleg |= sum(1 << c for c in H_DELEGATED_EXCEPTIONS)
        steps = (
            (MTVEC, FIRMWARE_TRAP), (MEDELEG, medeleg), (MIDELEG, MIDELEG_S),
            (MENVCFGH, MENVCFGH_STCE), (MCOUNTEREN, 7),
        )  # fmt: skip
        h.pc = pc
        for i, (csr, value) in enumerate(steps):
            h.csr_write(csr, value, pc=pc + 4 * i)
        pc += 4 * len(steps)
        h.csr_clear(MSTATUS, MSTATUS_MPP, pc=pc)
        h.csr_set(MSTATUS, MSTATUS_MPP_S, pc=pc + 4)
        h.csr_write(MEPC, KPC["boot"], pc=pc + 8)
        h.exec_mret(pc=pc + 12)
        if h.priv != 1 or h.pc != KPC["boot"]:
            raise HwKernelPanic(f"hart {h.id}: firmware did not enter S-mode")
        # The kernel (S-mode).
        pc = KPC["boot"]
        h.csr_write(STVEC, TRAP_ENTRY, pc=pc)
        h.csr_write(SCOUNTEREN, 7, pc=pc)  # user code may read cycle, time, instret (as on Linux)
        h.csr_write(STIMECMP, M32, pc=pc)
        h.csr_write(STIMECMPH, M32, pc=pc)
        h.csr_write(SIE, STIE, pc=pc)
        h.csr_write(SATP, 0, pc=pc)

    def _firmware_trap(self, h: Any) -> None:
        raise HwKernelPanic(f"hart {h.id}: unexpected machine-mode trap, mcause 0x{h.csr.mcause:08x}")

    # -- the trap entry (native code at stvec) ---------------------------------------------------
    def _trap_entry(self, h: Any) -> None:
        cause = h.csr_read(SCAUSE, pc=KPC["trap_scause"])
        tval = h.csr_read(STVAL, pc=KPC["trap_stval"])
        epc = h.csr_read(SEPC, pc=KPC["trap_sepc"])
        status = h.csr_read(SSTATUS, pc=KPC["trap_sstatus"])
        if status & SSTATUS_SPP:
            raise HwKernelPanic(f"hart {h.id}: trap in the kernel, scause 0x{cause:08x} at 0x{epc:08x}")
        t = self.on_hart.get(h.id)
        if t is None:
            raise HwKernelPanic(f"hart {h.id}: trap from user mode with no user task on it")
        ctx = t.context
        ctx.regs[:] = h.x
        ctx.pc = epc
        self.pending_trap[h.id] = (cause, tval)
        raise YieldToHost()

    # -- address spaces --------------------------------------------------------------------------
    def new_mm(self) -> AddressSpace:
        mm = AddressSpace()
        mm.hw = HwMm(self, PageTable(self.frames))
        return mm

    def _load_mm(self, h: Any, hw: HwMm) -> None:
        loaded = self.loaded.get(h.id)
        if loaded is None or loaded[0] is not hw:
            h.csr_write(SATP, hw.pt.satp(), pc=KPC["satp"])
            h.exec_sfence_vma(pc=KPC["sfence"])
        elif loaded[1] != hw.pt.generation:
            h.exec_sfence_vma(pc=KPC["sfence"])  # the table changed since this hart last ran it
        self.loaded[h.id] = (hw, hw.pt.generation)

    def switch_mm(self, cpu: Any, t: Any) -> None:
        """Context switch to ``t`` on ``cpu``: csrw satp + sfence.vma (when the table differs)."""
        if t.mm.hw is not None:
            self._load_mm(self.harts[cpu.index], t.mm.hw)

    def release_mm(self, mm: AddressSpace) -> None:
        hw = mm.hw
        if hw is None:
            return
        hw.pt.destroy()
        mm.hw = None
        for hid, (loaded, _gen) in list(self.loaded.items()):
            if loaded is hw:
                del self.loaded[hid]  # its frames are free: never reuse its TLB state

    def unmap_pages(self, t: Any, start: int, end: int, dropped: list[int]) -> None:
        pt = t.mm.hw.pt
        lo, hi = start >> PAGE_SHIFT, (end + PAGE_SIZE - 1) >> PAGE_SHIFT
        for vpn in [v for v in pt.pages if lo <= v < hi]:
            pt.unmap(vpn)

    def protect_pages(self, t: Any, start: int, end: int, prot: int) -> None:
        mm = t.mm
        pt = mm.hw.pt
        lo, hi = start >> PAGE_SHIFT, (end + PAGE_SIZE - 1) >> PAGE_SHIFT
        for vpn in [v for v in pt.pages if lo <= v < hi]:
            pt.set_flags(vpn, pte_flags(prot, writable=vpn not in mm.cow))

    # -- page faults -------------------------------------------------------------------------------
    def handle_fault(self, t: Any, va: int, access: int, *, signal: bool = True, force: bool = False) -> bool:
        """Demand paging for ``t``'s VMAs; False (and SIGSEGV if ``signal``) for a bad access."""
        k = self.kernel
        mm = t.mm
        pt = mm.hw.pt
        vma = mm.find(va) if va < USER_TOP else None
        if vma is None or not (force or vma.prot & _NEED[access]):
            if signal:
                k.send_signal(t.process, signals.SIGSEGV)
            return False
        vpn = va >> PAGE_SHIFT
        if vpn in pt.pages:
            if access == STORE and vpn in mm.cow:
                # The first write to a page inherited at fork: charge it now (copy-on-write accounting).
                if not k._fault_in(t, vpn):
                    return False
                self._charge(t, "kernel", k.c_fault)
            pt.set_flags(vpn, pte_flags(vma.prot, writable=vpn not in mm.cow))
            return True
        if not k._fault_in(t, vpn):
            return False  # over memory.max: the OOM killer chose (or this task dies)
        data = None
        if vma.file is not None:
            off = vma.offset + ((vpn << PAGE_SHIFT) - vma.start)
            data = k.vfs.pread(vma.file, PAGE_SIZE, off)
        try:
            ppn = self.frames.alloc(data)
        except OutOfFrames:
            k.send_signal(t.process, signals.SIGKILL)  # the machine is out of RAM: OOM
            return False
        pt.map(vpn, ppn, pte_flags(vma.prot, writable=vpn not in mm.cow))
        self._charge(t, "kernel", k.c_fault)
        return True

    def _charge(self, t: Any, category: str, cycles: int) -> None:
        self.harts[t.cpu].charge(category, cycles)

    # -- exec, clone --------------------------------------------------------------------------------
    def prepare_exec(self, t: Any, image: bytes, path: str, argv: list[str], envp: list[str]) -> Any:
        """Check the ELF (ENOEXEC before the point of no return); the returned closure commits."""
        prog = parse(image, path)
        k = self.kernel

        def commit() -> None:
            k._release_mm(t)
            mm = t.mm = self.new_mm()
            old = t.gen
            t.gen, t.kind, t.started, t.resume, t.pending, t.burn_left = None, "isa", False, None, None, 0
            if old is not None:
                k._close_gen(old)
            for start, end, prot in areas(prog):
                mm.insert(Vma(start, end, prot, MAP_PRIVATE, name=path))
            mm.start_brk = mm.brk = prog.brk
            limit = min(t.process.rlimit(RLIMIT_STACK), 8 << 20)
            mm.insert(Vma(STACK_TOP - limit, STACK_TOP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                          name="[stack]"))  # fmt: skip
            ctx = t.context = TaskContext()
            um = mm.hw.user_memory(t, force=True)
            for seg in prog.segments:
                if seg.data:
                    um.write(seg.vaddr, seg.data)
            c = t.creds
            sp, blob = initial_stack(argv, envp, prog.entry, (c.uid, c.euid, c.gid, c.egid), path)
            um.write(sp, blob)
            ctx.regs[2] = sp
            ctx.pc = prog.entry
            k.charge_extra(k.c_exec)

        return commit

    def clone_context(self, parent: Any, child: Any, newsp: int, tls: int, flags: int) -> None:
        """The child of an ISA clone returns 0 from the same ecall (on ``newsp`` if given)."""
        from virtlevels.kernel.kernel import CLONE_SETTLS, CLONE_VM

        ctx = child.context = parent.context.copy()
        ctx.pc = parent.context.pc + 4
        ctx.regs[10] = 0
        if newsp:
            ctx.regs[2] = newsp & M32
        if flags & CLONE_SETTLS:
            ctx.regs[4] = tls & M32
        if not flags & CLONE_VM:
            cmm = child.mm
            parent_hw = parent.mm.hw

            def flags_of(vpn: int) -> int:
                vma = cmm.find(vpn << PAGE_SHIFT)
                prot = vma.prot if vma is not None else 0
                return pte_flags(prot, writable=vpn not in cmm.cow)

            cmm.hw = HwMm(self, parent_hw.pt.copy(flags_of))

    # -- running ----------------------------------------------------------------------------------
    def run(self, t: Any, budget: int) -> tuple[int, bool]:
        """One step of the CPU loop for ISA task ``t``: (cycles, mostly user time)."""
        h = self.harts[t.cpu]
        costs = h.class_costs
        ucounts = h.counts_by_priv[U_MODE]
        start = h.work_cycles()
        user0 = sum(map(mul, costs, ucounts))
        ctx = t.context
        if ctx.in_syscall and not self._syscall(t, h):
            return self._result(h, start, user0)
        if t.dead or t.state != RUNNING or t.pending_kill or t.kind != "isa":
            return self._result(h, start, user0)
        if t.exit_after_syscall is not None:  # seccomp's KILL_THREAD: it never returns to user mode
            return self._result(h, start, user0)
        self._enter(t, h, budget)
        slack = 4 * self.divisor + 64
        for _ in range(3):  # the timer may be polled just after the budget ends: run until it is taken
            self.machine.run_hart(h, budget + slack, self.engine)
            if h.id in self.pending_trap:
                break
        else:
            raise HwKernelPanic(f"hart {h.id}: user code ran past its slice without a timer interrupt")
        cause, tval = self.pending_trap.pop(h.id)
        self._handle_trap(t, h, cause, tval)
        return self._result(h, start, user0)

    def _result(self, h: Any, start: int, user0: int) -> tuple[int, bool]:
        cycles = h.work_cycles() - start
        user = sum(map(mul, h.class_costs, h.counts_by_priv[U_MODE])) - user0
        return max(cycles, 1), 2 * user >= cycles

    def _enter(self, t: Any, h: Any, budget: int) -> None:
        """Return to user mode: address space, preemption timer, sepc/sstatus, registers, sret."""
        self._load_mm(h, t.mm.hw)
        self.on_hart[h.id] = t
        # Sstc: the slice ends when time reaches stimecmp (64 bits, written as the spec advises).
        now = h.csr_read(TIMEH, pc=KPC["timer_hi"]) << 32 | h.csr_read(TIME, pc=KPC["timer_lo"])
        deadline = now + max(1, -(-budget // self.divisor))
        h.csr_write(STIMECMP, M32, pc=KPC["timer_set_max"])
        h.csr_write(STIMECMPH, deadline >> 32, pc=KPC["timer_set_hi"])
        h.csr_write(STIMECMP, deadline & M32, pc=KPC["timer_set_lo"])
        ctx = t.context
        h.csr_write(SEPC, ctx.pc, pc=KPC["sepc"])
        h.csr_clear(SSTATUS, SSTATUS_SPP, pc=KPC["sstatus_spp"])  # sret goes to U
        h.csr_set(SSTATUS, SSTATUS_SPIE, pc=KPC["sstatus_spie"])
        h.x[:] = ctx.regs
        h.exec_sret(pc=KPC["sret"])

    def _handle_trap(self, t: Any, h: Any, cause: int, tval: int) -> None:
        k = self.kernel
        ctx = t.context
        if cause & (1 << 31):
            return  # the supervisor timer: the slice is over (other interrupts are not enabled)
        if cause == 8:
            ctx.in_syscall = True
            self._syscall(t, h)
            return
        access = _PAGE_FAULTS.get(cause)
        if access == FETCH and k.hostcalls:
            for hostcall in k.hostcalls:
                if hostcall(t, tval):
                    return
        if access is not None:
            where = (ctx.pc, tval)
            if ctx.last_fault == where and t.mm.find(tval) is not None:
                # The same access faulted again right after being serviced: nothing will fix it.
                k.send_signal(t.process, signals.SIGSEGV)
                return
            ctx.last_fault = where
            self.handle_fault(t, tval, access)
            return
        k.send_signal(t.process, _TRAP_SIGNALS.get(cause, signals.SIGSEGV))

    def _syscall(self, t: Any, h: Any) -> bool:
        """Dispatch the system call in ``t``'s saved registers; True if it completed."""
        k = self.kernel
        ctx = t.context
        ctx.last_fault = None
        r = ctx.regs
        try:
            result = k.syscall(t, r[17], (r[10], r[11], r[12], r[13], r[14], r[15]), ctx.pc)
        except WouldBlock as wb:
            k.sleep_on(t, wb.queue)
            self._charge(t, "kernel", k.c_syscall)
            return False
        for category, cycles in k.syscall_charges():
            self._charge(t, category, cycles)
        ctx.in_syscall = False
        if t.dead or t.kind != "isa" or t.context is not ctx:
            return True  # it exited, or execve replaced the program
        r[10] = result & M32
        ctx.pc = (ctx.pc + 4) & M32
        return True
