"""The Machine protocol: what a kernel, a hypervisor or a tool may rely on of a machine.

DESIGN.md, "Machine protocol": a :class:`~virtlevels.machine.machine.PhysicalMachine` and a
VirtualMachine (made by the hypervisor plugin) offer the same protocol, so a kernel runs the same
on either and a hypervisor can run on a VM (recursive virtualization, Popek-Goldberg Theorem 2).
Harts are the machine's (or the VM's virtual) CPUs; kernels change their state only through
instructions they execute on them (:meth:`Hart.execute <virtlevels.machine.hart.Hart.execute>`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels.cost import CostModel
    from virtlevels.events import EventQueue
    from virtlevels.machine.hart import Hart
    from virtlevels.machine.image import Image
    from virtlevels.machine.machine import PhysicalMachine, RunResult


@runtime_checkable
class Machine(Protocol):
    """A RISC-V machine: harts, RAM, MMIO devices, a cost model and a clock."""

    @property
    def harts(self) -> Sequence[Hart]: ...
    @property
    def cost(self) -> CostModel: ...
    @property
    def events(self) -> EventQueue: ...
    @property
    def ram_base(self) -> int: ...
    @property
    def ram_size(self) -> int: ...

    def add_device(self, base: int, device: Any) -> Any:
        """Map an MMIO device at a physical address."""
        ...

    def device(self, name: str) -> Any: ...

    def load(self, image: Image) -> None:
        """Place a program image in RAM and point every hart at its entry."""
        ...

    def run(self, max_instructions: int | None = None, engine: str = "interp") -> RunResult:
        """Run every hart until the guest exits, the limit is reached or all harts wait forever."""
        ...

    def run_hart(self, hart: Hart, max_cycles: int, engine: str = "interp") -> int:
        """Run one hart for up to ``max_cycles`` (a kernel's CPU loop uses this)."""
        ...

    def add_native_entry(self, addr: int, handler: Callable[[Hart], None]) -> None:
        """Route a trap vector in the native-code region to a Python handler (a kernel's or a VMM's)."""
        ...

    def phys_read(self, paddr: int, n: int) -> bytes:
        """Read RAM (a kernel's linear map; guest-physical in a VM)."""
        ...

    def phys_write(self, paddr: int, data: bytes) -> None: ...

    def stats(self) -> dict[str, Any]: ...
    def snapshot(self) -> dict[str, Any]: ...
    def restore(self, state: dict[str, Any]) -> None: ...


if TYPE_CHECKING:  # pragma: no cover

    def _physical_machine_is_a_machine(m: PhysicalMachine) -> Machine:
        return m  # mypy checks that PhysicalMachine keeps the protocol
