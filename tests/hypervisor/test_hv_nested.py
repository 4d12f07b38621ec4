"""Nested virtualization (issue 5 item 9, Popek-Goldberg Theorem 2): a trap-and-emulate hypervisor
inside a trap-and-emulate VM (plugins/virtlevels_hypervisor/nested.py) runs teachos with the same
per-process output and exit status as the bare machine, and its exits multiply."""

from __future__ import annotations

from typing import Any

import pytest
from virtlevels_hypervisor.equivalence import group_lines as lines_by_process
from virtlevels_hypervisor.microbench import native_runner, run_microbench, vm_runner
from virtlevels_hypervisor.nested import NESTED_TIMER_INTERVAL, create_nested, nested_runner, nesting_report

from virtlevels.errors import ConfigError
from virtlevels.guests import boot_teachos, build_teachos
from virtlevels.machine.board import virt_machine
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.world import World

LIMIT = 5_000_000
MIB = 1 << 20




def native(image: Any) -> Any:
    m = virt_machine()
    boot_teachos(m, image)
    return m.run(LIMIT)


def nested(image: Any, outer: str = "trap", inner: str = "trap") -> tuple[Any, Any, Any]:
    host = PhysicalMachine(ram_size=64 * MIB)
    outer_vm, inner_vm = create_nested(host, outer=outer, inner=inner)
    inner_vm.load(image)
    return outer_vm, inner_vm, inner_vm.run(LIMIT)


def assert_equivalent(res: Any, nat: Any) -> None:
    assert nat.uart.strip()  # the comparison compares something
    assert (res.status, res.exit_code) == (nat.status, nat.exit_code)
    assert lines_by_process(res.uart) == lines_by_process(nat.uart)


def test_trap_in_trap_hello_equals_native_and_exits_multiply() -> None:
    image = build_teachos(["hello"], timer_interval=NESTED_TIMER_INTERVAL)
    nat = native(image)
    outer, inner, res = nested(image)
    assert_equivalent(res, nat)
    ie, oe = inner.vstats.exits, outer.vstats.exits
    # The inner guest exits to the inner VMM for the usual reasons...
    assert ie["privileged"] > 0 and ie["sbi"] > 0 and ie["mmio"] > 0 and ie["page_fault"] > 0
    # ... and each of those costs the inner VMM's own privileged instructions, every one an exit of
    # the outer VM: the outer VM exits many times more often than its guest's guest does.
    report = nesting_report(outer, inner)
    assert report["outer_exits_per_inner_exit"] > 5
    assert oe["privileged"] > 5 * ie["privileged"]
    # Inner exits the outer VMM sees as its guest's (the inner VMM's) exceptions, reflected.
    assert oe["exception"] >= ie["mmio"] + ie["page_fault"]
    # Everything the physical hart ran directly is the inner guest's code; the inner VMM's handler
    # work shows at the outer level as its guest's kernel time.
    assert inner.vstats.direct_instructions == outer.vstats.direct_instructions > 0
    assert outer.vstats.cycles["guest_kernel"] > 0 and outer.vstats.cycles["world_switch"] > 0
    assert res.cycles > 10 * nat.cycles


def test_trap_in_trap_three_processes_per_process_equal_native() -> None:
    image = build_teachos(["hello", "counter", "counter"], timer_interval=NESTED_TIMER_INTERVAL)
    nat = native(image)
    outer, inner, res = nested(image)
    assert_equivalent(res, nat)
    assert inner.vstats.exits["timer"] > 0 and inner.technique.vmm.injected > 0  # preempted
    assert inner.vstats.direct_fraction() > 0.99
    assert nesting_report(outer, inner)["outer_exits_per_inner_exit"] > 5


def test_nested_run_is_deterministic() -> None:
    image = build_teachos(["hello"], timer_interval=NESTED_TIMER_INTERVAL)
    runs = [nested(image) for _ in range(2)]
    (o1, i1, r1), (o2, i2, r2) = runs
    assert r1.cycles == r2.cycles and r1.uart == r2.uart
    assert nesting_report(o1, i1) == nesting_report(o2, i2)


def test_control_register_write_costs_multiply_when_nested() -> None:
    """Adams & Agesen's cr8wr (a `csrw` of supervisor state) in cycles per operation: natively a
    few cycles, one exit under trap-and-emulate, an exit multiplied by the outer VMM's exits when
    the trap-and-emulate VMM itself runs deprivileged."""
    runners = {"native": native_runner(), "trap": vm_runner("trap"), "nested": nested_runner()}
    per_op = {name: run_microbench(r, ["cr8wr"], iterations=10)["cr8wr"].net for name, r in runners.items()}
    assert per_op["native"] < 50 < per_op["trap"]
    assert per_op["nested"] > 5 * per_op["trap"]


def test_default_tick_livelocks_when_nested_but_not_single_level() -> None:
    """At teachos's default 100 us tick the nested guest's timer handler outlasts the tick: the
    next interrupt is due before user code resumes (efficiency lost to the multiplied exits)."""
    image = build_teachos(["hello"])
    host = PhysicalMachine(ram_size=64 * MIB)
    _outer, inner = create_nested(host)
    inner.load(image)
    res = inner.run(20_000)
    assert res.status == "limit" and res.uart == ""
    assert inner.vstats.cycles["guest_user"] == 0 and inner.vstats.exits["sbi"] > 3  # re-arming, only
    assert native(image).uart == "hello from teachos\n"


@pytest.mark.parametrize(("outer", "inner", "programs"), [
    ("trap", "pv", ["hello", "counter", "counter"]),
    ("emulate", "trap", ["hello", "counter", "counter"]),
    ("trap", "trap", ["fault", "hello"]),
])  # fmt: skip
def test_other_nested_combinations_equal_native(outer: str, inner: str, programs: list[str]) -> None:
    image = build_teachos(programs, paravirt=inner == "pv", timer_interval=NESTED_TIMER_INTERVAL)
    nat = native(image)
    outer_vm, inner_vm, res = nested(image, outer, inner)
    assert_equivalent(res, nat)
    if outer == "emulate":
        # Nothing runs on the physical hart: what the inner VMM ran "directly" the outer emulated.
        assert outer_vm.vstats.direct_instructions == 0
        assert outer_vm.vstats.emulated_instructions >= inner_vm.vstats.direct_instructions > 0
    else:
        assert outer_vm.vstats.exits["privileged"] > inner_vm.vstats.exits.total()
    if inner == "pv":
        assert inner_vm.vstats.hypercalls > 0


def test_create_nested_checks_and_leaves_nothing_behind() -> None:
    w = World(entry_points=False)
    host = virt_machine(world=w, ram_size=64 * MIB)
    nodes = set(w.graph.g.nodes)
    with pytest.raises(ConfigError, match="inner technique 'emulate'"):
        create_nested(host, inner="emulate")
    with pytest.raises(ConfigError, match="outer VM RAM"):
        create_nested(host, outer_ram=16 * MIB, inner_ram=16 * MIB)
    with pytest.raises(ConfigError, match="multiple of 4 MiB"):
        create_nested(host, inner_ram=6 * MIB)  # fails inside the outer VM: the outer one goes too
    assert set(w.graph.g.nodes) == nodes
    outer, inner = create_nested(host)
    g = w.graph.g

    def runs_on(node: str) -> set[str]:
        return {b for _a, b, d in g.out_edges(node, data=True) if d.get("kind") == "runs_on"}

    # The graph says it: inner VM -> the hypervisor inside the outer VM -> the outer VM -> ...
    inner_hv = {n for n in runs_on(inner.node_id) if g.nodes[n]["kind"] == "hypervisor"}
    assert len(inner_hv) == 1 and outer.node_id in runs_on(inner_hv.pop())
