"""Write a plugin in a script: a new workload, registered through a hookimpl, run by ``compare``.

    python examples/write_a_plugin.py [--rounds N]

A plugin is any object whose methods are marked with ``virtlevels.plugins.hookimpl`` and named
after a hook of ``virtlevels/hookspecs.py`` (docs/plugins.md). This one implements
``virtlevels_register_workloads`` and adds ``sumsq``: a program that sums the squares 1..N with
RV32M ``mul`` and prints the sum, which a Python model of the same loop predicts. A packaged
plugin would be listed under the ``virtlevels.plugins`` entry point instead (see
examples/third-party-plugin/); here it is registered in a World with ``World.register_plugin``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from virtlevels.compare import compare
from virtlevels.plugins import hookimpl
from virtlevels.registry import Registry, Workload
from virtlevels.workloads.asmlib import EXIT_0, asciz, build_elf
from virtlevels.workloads.image import IntParam, WorkloadImage, check_params
from virtlevels.world import World

PARAMS = {"rounds": IntParam(100, 1, 1_000_000, "terms of the sum")}


def expected_sum(rounds: int) -> int:
    """What the program computes, modelled in Python: sum of i*i for i = 1..rounds, mod 2**32."""
    return sum(i * i for i in range(1, rounds + 1)) & 0xFFFFFFFF


def build_sumsq(**params: Any) -> WorkloadImage:
    """Sum the squares 1..``rounds`` with mul (RV32M) and print the sum in hex."""
    p = check_params("sumsq", PARAMS, params, {"small": {}, "large": {"rounds": 100_000}})
    line = f"sumsq: rounds={p['rounds']} sum=0x{expected_sum(p['rounds']):08x}\n"
    source = f"""
_start:
    li    s0, {p["rounds"]}
    li    s1, 0                 # the sum (wraps mod 2**32, as the Python model does)
1:  mul   t0, s0, s0
    add   s1, s1, t0
    addi  s0, s0, -1
    bnez  s0, 1b
    la    a0, msg0
    call  vl_cat
    li    a0, {p["rounds"]}
    call  vl_dec
    la    a0, msg1
    call  vl_cat
    mv    a0, s1
    li    a1, 8
    call  vl_hex
    la    a0, msg2
    call  vl_cat
    call  vl_flush
{EXIT_0}
    .rodata
{asciz("msg0", "sumsq: rounds=")}
{asciz("msg1", " sum=0x")}
{asciz("msg2", chr(10))}"""
    return WorkloadImage(
        name="sumsq", elf=build_elf(f"sumsq-{p['rounds']}", source), argv=("/bin/sumsq",),
        files={}, expected_stdout=line.encode(), needs=frozenset(), params=p,
    )  # fmt: skip


class SumsqPlugin:
    """The whole plugin: one hook implementation."""

    @hookimpl
    def virtlevels_register_workloads(self, registry: Registry) -> None:
        registry.add_workload(Workload("sumsq", "sum of squares with RV32M mul", build_sumsq, ("example",)))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=100, help="terms of the sum")
    args = ap.parse_args(argv)

    world = World(0)
    world.register_plugin(SumsqPlugin(), "sumsq-example")
    workload = world.registry.workloads["sumsq"]
    print(f"registered: {workload.name} - {workload.description}")
    # compare() runs each cell in a fresh World, so pass the Workload object itself: it travels
    # with the job (it must be picklable for --jobs / Dask; a module-level function is).
    report = compare(
        [workload], ["native", "hw:emulate", "hw:trap", "hw:hw"], world=world,
        params={"sumsq": {"rounds": args.rounds}},
    )  # fmt: skip
    print(report.to_table())
    print("native printed:", report.get("sumsq", "native")["stdout"].strip())
    # equivalent: same stdout and exit status as native; expected_stdout_ok: equal to the model's line.
    cells = [report.get("sumsq", level) for level in report.levels]
    ok = all(c["status"] == "ok" and c["equivalent"] and c["expected_stdout_ok"] for c in cells)
    print("every level printed what native printed" if ok else "some level differed from native")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
