"""The kernel changes hardware control state only by executing privileged instructions."""

from __future__ import annotations

from hw_util import make_kernel, program

from virtlevels.kernel import scripted as sc
from virtlevels.machine.csr import CsrFile
from virtlevels.machine.hart import Hart

WATCHED = {"satp", "stvec", "stimecmp", "medeleg", "mideleg", "menvcfgh", "mtvec", "mie", "mcounteren",
           "scounteren"}  # fmt: skip


def test_control_csrs_change_only_inside_executed_csr_instructions(monkeypatch):
    depth = [0]
    changes: list[tuple[str, bool]] = []
    real_execute = Hart.execute
    real_setattr = CsrFile.__setattr__

    def execute(self, word, pc=None):
        depth[0] += 1
        try:
            return real_execute(self, word, pc)
        finally:
            depth[0] -= 1

    def setattr_(self, name, value):
        missing = object()  # construction (reset values) is not a change
        old = getattr(self, name, missing)
        if name in WATCHED and old is not missing and old != value:
            changes.append((name, depth[0] > 0))
        real_setattr(self, name, value)

    monkeypatch.setattr(Hart, "execute", execute)
    monkeypatch.setattr(CsrFile, "__setattr__", setattr_)
    k = make_kernel(slice_ns=50_000)
    prog = program("""
    li a0, 0
    li a1, 0
    li a2, 0
    li a3, 0
    li a4, 0
    li a0, 17
    li a7, SYS_clone
    ecall
    li s1, 200000
1:  addi s1, s1, -1
    bnez s1, 1b
    li a0, 0
    li a7, SYS_exit
    ecall
""")
    k.write_file("/bin/p", prog, 0o755)
    k.spawn(lambda: (yield sc.wait4(-1)) and (yield sc.wait4(-1)))
    k.spawn("/bin/p", ["p"])
    k.run()
    names = {n for n, _ in changes}
    assert {"satp", "stvec", "stimecmp", "medeleg", "mideleg", "menvcfgh"} <= names
    assert sum(1 for n, _ in changes if n == "satp") >= 3  # two processes: switched back and forth
    outside = [n for n, inside in changes if not inside]
    assert outside == []
