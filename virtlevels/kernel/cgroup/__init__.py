"""cgroup v2: the hierarchy, the cpu/memory/pids/io controllers and their text interface.

Documentation/admin-guide/cgroup-v2.rst is the specification. :class:`CgroupHierarchy` is the
tree for one kernel; the functions below are the accounting APIs the kernel core calls
(scheduler, page allocator, fork, block layer) and the file interface it mounts as /sys/fs/cgroup.
"""

from virtlevels.kernel.cgroup.core import CONTROLLERS, Cgroup, CgroupHierarchy
from virtlevels.kernel.cgroup.cpu import charge_cpu, cpu_next_unthrottle, cpu_runnable, cpu_runtime_left
from virtlevels.kernel.cgroup.files import FILES, file_mode, files_of, read_file, write_file
from virtlevels.kernel.cgroup.io import charge_io, io_weight
from virtlevels.kernel.cgroup.memory import (
    PAGE_SIZE,
    ChargeResult,
    charge_pages,
    count_fault,
    uncharge_pages,
    uncharge_task,
)
from virtlevels.kernel.cgroup.pids import cancel_charge_pid, try_charge_pid

__all__ = [
    "CONTROLLERS", "FILES", "PAGE_SIZE", "Cgroup", "CgroupHierarchy", "ChargeResult", "cancel_charge_pid",
    "charge_cpu", "charge_io", "charge_pages", "count_fault", "cpu_next_unthrottle", "cpu_runnable",
    "cpu_runtime_left", "file_mode", "files_of", "io_weight", "read_file", "try_charge_pid",
    "uncharge_pages", "uncharge_task", "write_file",
]  # fmt: skip
