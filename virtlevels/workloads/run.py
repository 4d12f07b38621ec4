"""Running a built workload on a simulated kernel, as the native level does.

The comparison harness has its own runner per level; this is the reference way to install and
start a :class:`~virtlevels.workloads.image.WorkloadImage` on a
:class:`~virtlevels.kernel.kernel.Kernel` (native, or one booted on a VM's Machine), used by the
tests and handy in scripts.
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.kernel import scripted as sc
from virtlevels.workloads.image import WorkloadImage


@attrs.frozen
class RunResult:
    """What one run of a workload gave."""

    #: wait4 status (``code << 8`` for a normal exit), or None when the process never exited.
    status: int | None
    #: Everything written to the console (fds 1 and 2 of the process and its children).
    stdout: bytes
    #: World cycles from the spawn to the parent's wait returning.
    cycles: int

    @property
    def exit_code(self) -> int | None:
        if self.status is None or self.status & 0x7F:
            return None
        return (self.status >> 8) & 0xFF

    def ok(self, image: WorkloadImage) -> bool:
        """Exited 0 and printed what ``image`` expects (when it says)."""
        want = image.expected_stdout
        return self.exit_code == 0 and (want is None or self.stdout == want)


def install(kernel: Any, image: WorkloadImage) -> None:
    """Write the image's ELF at ``argv[0]`` (0755) and its files into the kernel's VFS."""
    kernel.write_file(image.argv[0], image.elf, 0o755)
    for path, data in sorted(image.files.items()):
        kernel.write_file(path, data, 0o644)


def run(kernel: Any, image: WorkloadImage, *, until: int | None = None) -> RunResult:
    """Install ``image``, start it under a scripted parent that waits for it (pid 1 stays alive,
    so the pid namespace does not die with the workload), run the World and collect the result."""
    install(kernel, image)
    got: dict[str, Any] = {}
    start = kernel.world.now

    def waiter() -> Any:
        got["wait"] = yield sc.wait4(-1)
        got["end"] = kernel.world.now

    before = len(kernel.console)
    kernel.spawn(waiter, stdio=True)
    kernel.spawn(image.argv[0], list(image.argv), stdio=True)
    kernel.run(until)
    w = got.get("wait")
    status = w[1] if isinstance(w, tuple) else None
    return RunResult(status=status, stdout=bytes(kernel.console[before:]),
                     cycles=got.get("end", kernel.world.now) - start)  # fmt: skip
