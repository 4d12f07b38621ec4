"""What every exercise returns: a :class:`Problem` (text for the student, data for tools) and an
:class:`Answer`. Generators and solvers take only the seed, so ``new NAME --seed N`` and
``solve NAME --seed N`` agree on every machine (OSTEP homework style)."""

from __future__ import annotations

import random
from typing import Any

import attrs


@attrs.frozen
class Problem:
    name: str
    seed: int
    text: str
    data: dict[str, Any] = attrs.field(factory=dict, eq=False)


@attrs.frozen
class Answer:
    name: str
    seed: int
    text: str
    data: dict[str, Any] = attrs.field(factory=dict, eq=False)
    #: how the answer was computed (which real mechanism, or which fallback and why)
    method: str = ""


def rng(name: str, seed: int) -> random.Random:
    """A generator private to one exercise and seed (string seeds hash deterministically)."""
    return random.Random(f"virtlevels-exercise:{name}:{seed}")


def registry_backend(name: str) -> Any:
    """The installed backend ``name`` (through the registry, never an import of plugins/), or None."""
    from virtlevels.world import World

    return World(0).registry.backends.get(name)
