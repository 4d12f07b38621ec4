"""The CLI commands, the backend registration and the plugin's automatic install."""

from __future__ import annotations

import json

import sandbox_util  # noqa: F401
from virtlevels_sandbox import plugin
from virtlevels_sandbox import seccomp as sec

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.kernel import Kernel
from virtlevels.taxonomy import Level
from virtlevels.testing import invoke_cli
from virtlevels.world import World


def test_sandbox_run_reports_decisions_and_costs():
    r = invoke_cli(
        ["sandbox", "run", "probe", "getpid", "mount", "personality:8", "personality:3"], plugins=[plugin]
    )
    assert r.stdout.splitlines() == [
        "getpid: 2",
        "mount: EPERM",
        "personality:8: ENOSYS",
        "personality:3: EPERM",
    ]
    assert r.exit_code == 1 and "BPF instructions" in r.stderr
    r = invoke_cli(
        ["sandbox", "run", "--cap-add", "SYS_ADMIN", "--json", "probe", "sethostname:0:0"], plugins=[plugin]
    )
    doc = json.loads(r.stdout)
    assert doc["output"] == "sethostname:0:0: 0\n" and doc["exit_code"] == 0 and doc["bpf_insns"] > 0
    r = invoke_cli(
        ["sandbox", "run", "--profile", "unconfined", "--json", "probe", "mount"], plugins=[plugin]
    )
    assert json.loads(r.stdout)["bpf_insns"] == 0


def test_sandbox_run_rlimit_nofile():
    r = invoke_cli(["sandbox", "run", "--rlimit", "nofile=3", "cat", "/proc/self/status"], plugins=[plugin])
    assert r.exit_code == 1 and r.stdout == "cat: /proc/self/status: EMFILE\n"  # console holds stdout+stderr


def test_sandbox_cli_errors_are_one_line():
    for args in (
        ["sandbox", "run", "--profile", "/nope.json", "probe"],
        ["sandbox", "run", "--cap-add", "FLY", "probe"],
        ["sandbox", "run", "--rlimit", "bogus=1", "probe"],
        ["sandbox", "run", "/no/such/prog"],
    ):
        r = invoke_cli(args, plugins=[plugin])
        assert r.exit_code != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (args, r)


def test_sandbox_explain():
    r = invoke_cli(
        ["sandbox", "explain", "--profile", "docker-default", "--syscall", "mount", "--syscall", "read"],
        plugins=[plugin],
    )
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and "needs CAP_SYS_ADMIN" in lines[1] and "denied (ERRNO(1))" in lines[1]
    assert lines[2].split()[:3] == ["read", "63", "allowed"]
    r = invoke_cli(
        ["sandbox", "explain", "--caps", "CAP_SYS_ADMIN", "--json", "--syscall", "mount"], plugins=[plugin]
    )
    assert json.loads(r.stdout)["syscalls"][0]["verdict"] == "allowed"


def test_backend_is_registered_at_the_process_level_and_runs_a_guest():
    w = World(entry_points=False)
    w.register_plugin(plugin, "sandbox")
    backend = w.registry.backends["sandbox"]
    assert backend.info.level is Level.PROCESS
    k = Kernel(w)

    def init():
        while True:
            if not isinstance((yield sc.wait4(-1)), tuple):
                return 0

    k.spawn(init)
    assert k.seccomp_provider is not None  # installed by the plugin when init was created
    g = backend.define(k, {"command": ["/bin/probe", "mount"], "cap_drop": ["ALL"]})
    g.start()
    k.run()
    st = g.stats()
    assert st["exit_status"] == 1 << 8 and st["seccomp"]["actions"]["ERRNO"] == 1
    assert bytes(k.console) == b"mount: EPERM\n"
    assert sec.stats(k).filtered_syscalls > 0
