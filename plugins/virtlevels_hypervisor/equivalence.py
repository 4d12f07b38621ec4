"""Popek-Goldberg equivalence, checked: run a guest natively and under a technique, compare.

What is compared is what a program can observe of a machine it runs on (issue 5 item 6), never
timing, which the equivalence property excludes ("except for differences caused by the
availability of resources and timing dependencies"; Popek & Goldberg 1974, section 2):

- the console output: whole, or — when several processes share the console and their
  interleaving depends on the timer — per process (lines grouped by their ``name pid:`` prefix);
- how the run ended (pass/fail) and the exit code;
- designated guest-physical memory ranges (a program's result area);
- the final registers a guest stored in its result area (the architectural state it defines).

A :class:`Level` names where a guest runs: ``native``, or a technique and a mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from virtlevels.errors import ConfigError
from virtlevels.machine.board import virt_machine
from virtlevels.machine.image import Image
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.world import World
from virtlevels_hypervisor.techniques import TECHNIQUES, canonical

MIB = 1 << 20
DEFAULT_LIMIT = 20_000_000


@attrs.frozen
class Level:
    """``native``, or ``technique`` in ``mode`` (native = Type 1, hosted = Type 2)."""

    technique: str | None = None
    mode: str = "native"

    @classmethod
    def parse(cls, text: str) -> Level:
        """``native``, ``trap``, ``hw:hosted``, ``hardware-assisted:native`` ..."""
        if text == "native":
            return cls()
        name, _, mode = text.partition(":")
        mode = mode or "native"
        if mode not in ("native", "hosted"):
            raise ConfigError(f"level {text!r}: mode must be native or hosted, not {mode!r}")
        return cls(canonical(name), mode)

    def __str__(self) -> str:
        return "native" if self.technique is None else f"{self.technique}:{self.mode}"


def all_levels(modes: Sequence[str] = ("native", "hosted")) -> list[Level]:
    return [Level(t, m) for t in TECHNIQUES for m in modes]


@attrs.frozen
class Observation:
    """What one run let a program observe."""

    level: str
    uart: bytes
    status: str
    exit_code: int | None
    memory: tuple[tuple[int, bytes], ...] = ()
    stats: dict[str, Any] = attrs.field(factory=dict, eq=False)

    def per_process(self) -> dict[str, list[str]]:
        return group_lines(self.uart.decode("utf-8", errors="replace"))


def group_lines(text: str) -> dict[str, list[str]]:
    """Console lines by the process that printed them (the text before the first ``:``)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        out.setdefault(line.split(":")[0], []).append(line)
    return out


def host_machine(
    world: World | None,
    technique: str | None,
    *,
    ram_size: int = 128 * MIB,
    isa_extensions: tuple[str, ...] = (),
    profile: str = "default",
) -> PhysicalMachine:
    """The physical machine a level runs on: the virt board (with the H extension for ``hw``)."""
    return virt_machine(ram_size=ram_size, world=world, profile=profile, hypervisor=technique == "hw",
                        isa_extensions=isa_extensions)


def observe(
    image: Image,
    level: Level | str,
    *,
    limit: int = DEFAULT_LIMIT,
    memory: Iterable[tuple[int, int]] = (),
    isa_extensions: tuple[str, ...] = (),
    engine: str = "fast",
    profile: str = "default",
) -> Observation:
    """Run ``image`` (a firmware + S-mode kernel image, as teachos) at ``level``."""
    lv = Level.parse(level) if isinstance(level, str) else level
    ranges = tuple(memory)
    world = World(entry_points=False) if isa_extensions else None
    if lv.technique is None:
        m = host_machine(world, None, isa_extensions=isa_extensions, profile=profile)
        m.load(image)
        r = m.run(limit, engine=engine)
        mem = tuple((a, m.phys_read(a, n)) for a, n in ranges)
        n = r.instructions
        stats = {"cycles": r.cycles, "guest_instructions": n, "direct_instructions": n}
        return Observation("native", r.uart.encode(), r.status, r.exit_code, mem, stats)
    if lv.mode == "hosted":
        return _observe_hosted(image, lv, limit, ranges, isa_extensions, engine, profile)
    from virtlevels_hypervisor.hypervisor import Hypervisor

    host = host_machine(world, lv.technique, isa_extensions=isa_extensions, profile=profile)
    vm = Hypervisor(host).create_vm(lv.technique, isa_extensions=isa_extensions)
    vm.load(image)
    r = vm.run(limit, engine=engine)
    mem = tuple((a, vm.phys_read(a, n)) for a, n in ranges)
    stats = {"cycles": r.cycles, **vm.vstats.to_dict()}
    return Observation(str(lv), vm.console_output().encode(), r.status, r.exit_code, mem, stats)


def _observe_hosted(
    image: Image, lv: Level, limit: int, ranges: tuple[tuple[int, int], ...], isa_extensions: tuple[str, ...],
    engine: str, profile: str,
) -> Observation:
    from virtlevels.kernel.kernel import Kernel
    from virtlevels_hypervisor.hosted import HostedHypervisor

    world = World(entry_points=False)
    host = host_machine(world, lv.technique, isa_extensions=isa_extensions, profile=profile)
    kernel = Kernel(world, machine=host)
    hv = HostedHypervisor(host, kernel=kernel)
    assert lv.technique is not None
    hosted = hv.launch(image, lv.technique, engine=engine, isa_extensions=isa_extensions)
    # The guest's instruction budget bounds the run: stop the host when the VM has used it.
    while not hosted.vm.exit_requested and not hosted.task.dead:
        if hosted.vm.vstats.guest_instructions() >= limit or world.events.peek() is None:
            break
        world.events.step()
    vm = hosted.vm
    if vm.exit_requested:
        status = "pass" if vm.exit_code == 0 else "fail"
    else:
        status = "limit"
    mem = tuple((a, vm.phys_read(a, n)) for a, n in ranges)
    stats = {"cycles": world.now, "host_syscalls": hosted.host_syscalls, **vm.vstats.to_dict()}
    code = vm.exit_code if vm.exit_requested else None
    return Observation(str(lv), vm.console_output().encode(), status, code, mem, stats)


@attrs.frozen
class Difference:
    what: str
    native: Any
    virtual: Any

    def __str__(self) -> str:
        return f"{self.what}: native {self.native!r} != virtual {self.virtual!r}"


def compare(native: Observation, other: Observation, *, per_process: bool = True) -> list[Difference]:
    """The observable differences between two runs (empty: equivalent)."""
    diffs: list[Difference] = []
    if (native.status, native.exit_code) != (other.status, other.exit_code):
        diffs.append(Difference("exit", (native.status, native.exit_code), (other.status, other.exit_code)))
    if per_process:
        a, b = native.per_process(), other.per_process()
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                diffs.append(Difference(f"output of {key!r}", a.get(key), b.get(key)))
    elif native.uart != other.uart:
        diffs.append(Difference("console output", native.uart, other.uart))
    for (addr, want), (_addr, got) in zip(native.memory, other.memory, strict=True):
        if want != got:
            diffs.append(Difference(f"memory at 0x{addr:08x}", want.hex(), got.hex()))
    return diffs


@attrs.frozen
class EquivalenceReport:
    native: Observation
    results: tuple[tuple[str, Observation, tuple[Difference, ...]], ...]

    @property
    def equivalent(self) -> dict[str, bool]:
        return {level: not diffs for level, _obs, diffs in self.results}

    def render(self) -> str:
        lines = [f"native: {self.native.status} exit {self.native.exit_code}"]
        for level, obs, diffs in self.results:
            verdict = "equivalent" if not diffs else "DIVERGES"
            lines.append(f"{level}: {obs.status} exit {obs.exit_code} -> {verdict}")
            lines.extend(f"    {d}" for d in diffs)
        return "\n".join(lines)


def check(
    image: Image,
    levels: Iterable[Level | str] | None = None,
    *,
    limit: int = DEFAULT_LIMIT,
    memory: Iterable[tuple[int, int]] = (),
    per_process: bool = True,
    isa_extensions: tuple[str, ...] = (),
    progress: Callable[[str], None] | None = None,
) -> EquivalenceReport:
    """Run ``image`` natively and at every level; report what differs."""
    ranges = tuple(memory)
    native = observe(image, "native", limit=limit, memory=ranges, isa_extensions=isa_extensions)
    out = []
    for lv in levels if levels is not None else all_levels():
        if progress is not None:
            progress(str(lv))
        obs = observe(image, lv, limit=limit, memory=ranges, isa_extensions=isa_extensions)
        out.append((obs.level, obs, tuple(compare(native, obs, per_process=per_process))))
    return EquivalenceReport(native, tuple(out))


__all__ = [
    "Difference", "EquivalenceReport", "Level", "Observation", "all_levels", "check", "compare",
    "group_lines", "host_machine", "observe",
]  # fmt: skip
