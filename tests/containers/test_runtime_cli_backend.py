"""The runc-like and docker-like CLIs (journal replay across invocations) and the backend guest."""

from __future__ import annotations

import json

import pytest
from runtime_helpers import make_bundle
from virtlevels_containers.backend import ContainersBackend

from virtlevels.backend import Guest
from virtlevels.errors import LifecycleError
from virtlevels.kernel.kernel import Kernel


def test_runc_cli_lifecycle_persists_across_invocations(run_cli, tmp_path):
    root = str(tmp_path / "root")
    bundle = str(make_bundle(tmp_path / "b", ["sleep", "5"]))
    assert run_cli("runc", "--root", root, "create", "--bundle", bundle, "web").exit_code == 0
    st = run_cli("runc", "--root", root, "state", "web")
    assert json.loads(st.stdout)["status"] == "created"
    assert run_cli("runc", "--root", root, "start", "web").exit_code == 0
    ex = run_cli("runc", "--root", root, "exec", "web", "ps")
    assert ex.stdout.splitlines()[1:] == ["1 sleep", "2 ps"]
    assert "running" in run_cli("runc", "--root", root, "list").stdout
    bad = run_cli("runc", "--root", root, "delete", "web")
    assert bad.exit_code == 1 and "state 'running'" in bad.stderr
    assert run_cli("runc", "--root", root, "kill", "web", "KILL").exit_code == 0
    assert json.loads(run_cli("runc", "--root", root, "state", "web").stdout)["status"] == "stopped"
    assert run_cli("runc", "--root", root, "delete", "web").exit_code == 0
    assert run_cli("runc", "--root", root, "state", "web").exit_code == 1


def test_runc_run_and_validate(run_cli, tmp_path):
    bundle = str(make_bundle(tmp_path / "b", ["echo", "hi", "there"]))
    r = run_cli("runc", "--root", str(tmp_path / "r"), "run", "--bundle", bundle, "x")
    assert r.exit_code == 0 and r.stdout == "hi there\n"
    assert run_cli("runc", "validate", "--bundle", bundle).exit_code == 0
    (tmp_path / "b" / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                                                            "linux": {"sysctl": {"a": "1"}}}))  # fmt: skip
    v = run_cli("runc", "validate", "--bundle", bundle)
    assert v.exit_code == 1 and "$.linux.sysctl: unsupported" in v.stdout


def test_container_cli(run_cli, tmp_path):
    root = str(tmp_path / "root")

    def cli(*a):
        return run_cli("container", "--root", root, *a)

    r = cli("run", "--hostname", "box", "--memory", "8m", "--env", "A=1", "busybox", "hostname")
    assert r.exit_code == 0 and r.stdout == "box\n"
    assert cli("run", "-d", "--name", "s", "busybox", "sleep", "100").stdout == "s\n"
    assert "s " in cli("ps").stdout
    assert cli("exec", "s", "id").stdout == "uid=0 gid=0\n"
    stats = json.loads(cli("stats", "--json", "s").stdout)
    assert stats["pids.current"] == 1
    assert cli("kill", "s").exit_code == 0
    assert cli("rm", "s").exit_code == 0
    assert "s " not in cli("ps").stdout
    assert cli("run", "--user", "1000:1000", "busybox", "id").stdout == "uid=1000 gid=1000\n"


def test_backend_guest_lifecycle():
    backend = ContainersBackend()
    assert backend.info.needs == "kernel" and backend.info.offers == "process"
    k = Kernel()
    g = backend.define(k, {"image": "busybox", "command": ["spin"], "cpus": 0.5})
    assert isinstance(g, Guest)
    g.start()
    assert g.run(["echo", "in"]).output == "in\n"
    g.pause()
    assert k.read_file(f"/sys/fs/cgroup/virtlevels/{g.id}/cgroup.freeze") == b"1\n"
    with pytest.raises(LifecycleError, match="state 'paused'"):
        g.pause()
    g.resume()
    assert g.stats()["status"] == "running"
    with pytest.raises(LifecycleError, match="snapshot is not supported"):
        g.snapshot()
    g.stop()
    g.destroy()
    assert k.cgroups.lookup(f"/virtlevels/{g.id}") is None


def test_plugin_is_listed(run_cli):
    out = run_cli("plugins").stdout
    assert "backend:containers" in out and "command:runc" in out
    assert "containers [efficiency, resource control]" in run_cli("levels").stdout
