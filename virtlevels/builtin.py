"""The core's own registrations, made through the same hooks a third-party plugin uses."""

from __future__ import annotations

from pathlib import Path

from virtlevels.plugins import hookimpl
from virtlevels.registry import Registry

PROFILES_DIR = Path(__file__).parent / "profiles"


@hookimpl
def virtlevels_register_commands(registry: Registry) -> None:
    from virtlevels.cli.core_commands import COMMANDS
    from virtlevels.compare.cli import COMMANDS as COMPARE_COMMANDS
    from virtlevels.machine.cli import COMMANDS as MACHINE_COMMANDS
    from virtlevels.machine.isa_cli import COMMANDS as ISA_COMMANDS

    for command in [*COMMANDS, *MACHINE_COMMANDS, *ISA_COMMANDS, *COMPARE_COMMANDS]:
        registry.add_command(command)
    from virtlevels.exercises.cli import COMMANDS as EXERCISE_COMMANDS

    for command in EXERCISE_COMMANDS:
        registry.add_command(command)


@hookimpl
def virtlevels_register_cost_profiles(registry: Registry) -> None:
    for path in sorted(PROFILES_DIR.glob("*.toml")):
        registry.add_cost_profile(path.stem, path)


@hookimpl
def virtlevels_register_isa_extensions(registry: Registry) -> None:
    from virtlevels.machine.isa.x86like import EXTENSION

    registry.add_isa_extension(EXTENSION)  # the x86-like profile: see docs/popek-goldberg.md


@hookimpl
def virtlevels_register_workloads(registry: Registry) -> None:
    from virtlevels.workloads import standard_workloads

    for workload in standard_workloads():
        registry.add_workload(workload)  # see docs/workloads.md


@hookimpl
def virtlevels_register_exercises(registry: Registry) -> None:
    from virtlevels.exercises import EXERCISES

    for exercise in EXERCISES:
        registry.add_exercise(exercise)  # coursework: see docs/coursework.md
