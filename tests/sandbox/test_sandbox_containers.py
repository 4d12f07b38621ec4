"""Integration: the container runtime applies linux.seccomp through the sandbox plugin."""

from __future__ import annotations

import sandbox_util  # noqa: F401
from virtlevels_containers.engine import Engine, RunOptions
from virtlevels_containers.runtime import Runtime
from virtlevels_sandbox import plugin

from virtlevels.kernel.kernel import Kernel
from virtlevels.world import World


def engine() -> Engine:
    w = World(entry_points=False)
    w.register_plugin(plugin, "sandbox")
    return Engine(Runtime(Kernel(w)))


def status_line(out: str, key: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(key + ":"))


def test_container_run_uses_docker_default_profile_unless_unconfined(tmp_path):
    e = engine()
    res = e.run("busybox", ["cat", "/proc/self/status"])
    assert res.exit_code == 0, res.output
    assert status_line(res.output, "Seccomp") == "Seccomp:\t2"
    assert status_line(res.output, "NoNewPrivs") == "NoNewPrivs:\t1"
    res = e.run("busybox", ["cat", "/proc/self/status"], RunOptions(security_opt=("seccomp=unconfined",)))
    assert status_line(res.output, "Seccomp") == "Seccomp:\t0"
    # A profile file that denies the read of the file: cat fails, the container exits 1.
    prof = tmp_path / "deny-read.json"
    prof.write_text(
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": '
        '[{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}]}'
    )
    res = e.run("busybox", ["cat", "/proc/self/status"], RunOptions(security_opt=(f"seccomp={prof}",)))
    assert res.exit_code != 0 and "Seccomp" not in res.output
