"""mkdir/rmdir in the cgroup filesystem check the calling process's credentials."""

from __future__ import annotations

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.errno import EACCES, EPERM
from virtlevels.kernel.vfs.constants import AT_FDCWD


def test_unprivileged_mkdir_in_cgroupfs_is_refused_and_root_may(kernel, run_prog):
    out = {}

    def prog():
        out["root"] = yield sc.mkdirat(AT_FDCWD, "/sys/fs/cgroup/ok", 0o755)
        out["setuid"] = yield sc.setuid(1000)
        out["user"] = yield sc.mkdirat(AT_FDCWD, "/sys/fs/cgroup/no", 0o755)
        out["user_rm"] = yield sc.unlinkat(AT_FDCWD, "/sys/fs/cgroup/ok", 0x200)  # AT_REMOVEDIR

    run_prog(kernel, prog)
    assert out["root"] == 0 and out["setuid"] == 0
    assert out["user"] in (-EACCES, -EPERM)
    assert out["user_rm"] in (-EACCES, -EPERM)
    assert kernel.cgroups.lookup("/ok") is not None and kernel.cgroups.lookup("/no") is None
