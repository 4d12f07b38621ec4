"""The OCI lifecycle on the simulated kernel: create/start/state/kill/delete/exec, hooks, cleanup."""

from __future__ import annotations

import json

import pytest
from runtime_helpers import graph_snapshot, make_bundle, new_runtime
from virtlevels_containers.oci.state import Status
from virtlevels_containers.runtime import RuntimeError_

from virtlevels.errors import ConfigError, LifecycleError


def test_create_leaves_init_blocked_until_start(tmp_path):
    rt = new_runtime()
    c = rt.create("web", make_bundle(tmp_path / "b", ["echo", "hello"]))
    st = json.loads(rt.state("web").to_json())
    assert st["status"] == "created" and st["pid"] == c.init_pid
    rt.run_until(lambda: False, limit=10_000_000)  # time passes: init stays blocked on exec.fifo
    assert rt.state("web").status is Status.CREATED
    assert rt.output("web") == ""
    # the state file in the runtime root is the state document
    assert json.loads(rt.kernel.read_file("/run/virtlevels-runc/web/state.json"))["status"] == "created"
    rt.start("web")
    assert rt.wait("web") == 0
    assert rt.output("web") == "hello\n"
    assert rt.state("web").status is Status.STOPPED
    assert rt.state("web").pid is None
    rt.delete("web")
    with pytest.raises(LifecycleError, match="does not exist"):
        rt.state("web")


def test_invalid_transitions_name_the_state(tmp_path):
    rt = new_runtime()
    rt.create("a", make_bundle(tmp_path / "b", ["sleep", "5"]))
    with pytest.raises(LifecycleError, match="cannot delete a container in state 'created'"):
        rt.delete("a")
    rt.start("a")
    with pytest.raises(LifecycleError, match="cannot start a container in state 'running'"):
        rt.start("a")
    rt.kill("a", "KILL")
    assert rt.state("a").status is Status.STOPPED
    with pytest.raises(LifecycleError, match="cannot kill a container in state 'stopped'"):
        rt.kill("a", 9)
    with pytest.raises(LifecycleError, match="cannot exec a container in state 'stopped'"):
        rt.exec("a", ["true"])
    with pytest.raises(LifecycleError, match="already exists"):
        rt.create("a", make_bundle(tmp_path / "b2", ["true"]))
    rt.delete("a")


def test_kill_before_start_stops_the_container(tmp_path):
    rt = new_runtime()
    rt.create("k", make_bundle(tmp_path / "b", ["true"]))
    rt.kill("k", "SIGKILL")
    assert rt.state("k").status is Status.STOPPED
    with pytest.raises(LifecycleError, match="cannot start"):
        rt.start("k")
    rt.delete("k")


def test_exec_runs_in_the_container_namespaces_and_cgroup(tmp_path):
    rt = new_runtime()
    rt.create("x", make_bundle(tmp_path / "b", ["sleep", "10"]))
    rt.start("x")
    res = rt.exec("x", ["ps"])
    assert res.exit_code == 0
    assert res.output.splitlines() == ["PID CMD", "1 sleep", "2 ps"]
    res = rt.exec("x", ["cat", "/proc/self/cgroup"])
    assert res.output == "0::/\n"  # the cgroup namespace is rooted at the container's cgroup
    res = rt.exec("x", ["hostname"])
    assert res.output == "runc\n"
    assert rt.exec("x", ["false"]).exit_code == 1
    rt.delete("x", force=True)


def test_delete_removes_everything_create_made(tmp_path):
    rt = new_runtime()
    before = graph_snapshot(rt)
    rt.create("d", make_bundle(tmp_path / "b", ["true"]))
    rt.start("d")
    rt.wait("d")
    assert graph_snapshot(rt) - before
    rt.delete("d")
    rt.run_until(lambda: False, limit=50_000_000)
    assert graph_snapshot(rt) == before
    assert rt.kernel.cgroups.lookup("/virtlevels/d") is None


def test_hooks_recorded_in_order_and_run_when_installed(tmp_path):
    rt = new_runtime()
    seen = []

    def hook(*args):
        from virtlevels_containers.busybox import _read_all

        data = yield from _read_all(0)
        seen.append((args, json.loads(data)))
        return 0

    rt.kernel.install_program("/usr/libexec/hook", "test.hook", hook)
    hooks = {phase: [{"path": "/usr/libexec/hook", "args": ["hook", phase]}]
             for phase in ("prestart", "createRuntime", "poststart", "poststop")}  # fmt: skip
    hooks["createContainer"] = [{"path": "/nonexistent/hook"}]
    c = rt.create("h", make_bundle(tmp_path / "b", ["true"], hooks=hooks))
    rt.start("h")
    rt.wait("h")
    log = list(c.hook_log)
    rt.delete("h")
    assert [a[0][0] for a in seen] == ["prestart", "createRuntime", "poststart", "poststop"]
    assert seen[0][1]["status"] == "creating" and seen[0][1]["id"] == "h" and seen[0][1]["pid"] > 0
    assert seen[-1][1]["status"] == "stopped"
    assert [(phase, out) for phase, _path, out in log] == [
        ("prestart", "exit 0"), ("createRuntime", "exit 0"),
        ("createContainer", "recorded (not found)"), ("poststart", "exit 0"),
    ]  # fmt: skip


def test_failing_prestart_hook_fails_create_and_cleans_up(tmp_path):
    rt = new_runtime()
    rt.kernel.install_program("/bin/failhook", "test.fail", lambda *a: iter(()) if False else _fail())
    before = graph_snapshot(rt)
    with pytest.raises(RuntimeError_, match="prestart hook /bin/failhook exited with status 3"):
        rt.create("f", make_bundle(tmp_path / "b", ["true"], hooks={"prestart": [{"path": "/bin/failhook"}]}))
    rt.run_until(lambda: False, limit=50_000_000)
    assert graph_snapshot(rt) == before
    assert "f" not in rt.containers


def _fail():
    return 3
    yield


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"mounts": [{"destination": "/data", "type": "bind", "source": "/no/such/dir",
                      "options": ["rbind"]}]},
         r"\$\.mounts\[0\]"),
        ({"linux": {"cgroupsPath": "/virtlevels/io", "resources": {"blockIO": {"throttleReadBpsDevice": [
            {"major": 250, "minor": 9, "rate": 1000}]}}}}, r"io\.max"),
        ({"linux": {"namespaces": [{"type": "user"}, {"type": "mount"}, {"type": "pid"}],
                    "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                    "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                    "resources": {"memory": {"limit": 1 << 40}}}}, None),
        ({"linux": {"namespaces": [{"type": "mount"}, {"type": "uts"},
                                   {"type": "network", "path": "/proc/999/ns/net"}]}},
         r"/proc/999/ns/net"),
        ({"hostname": "x" * 70}, r"\$\.hostname"),
    ],
)  # fmt: skip
def test_failed_create_leaves_nothing_behind(tmp_path, changes, message):
    rt = new_runtime()
    before = graph_snapshot(rt)
    bundle = make_bundle(tmp_path / "b", ["true"], **changes)
    try:
        rt.create("bad", bundle)
    except (RuntimeError_, ConfigError) as exc:
        if message is not None:
            assert __import__("re").search(message, str(exc)), str(exc)
    else:
        # a case the kernel accepts must still work end to end
        assert message is None
        rt.start("bad")
        rt.wait("bad")
        rt.delete("bad")
    rt.run_until(lambda: False, limit=50_000_000)
    assert graph_snapshot(rt) == before
    assert rt.kernel.cgroups.lookup("/virtlevels/bad") is None
    with pytest.raises(Exception):  # noqa: B017 - the state directory is gone
        rt.kernel.read_file("/run/virtlevels-runc/bad/state.json")


def test_unsupported_fields_refused_by_path(tmp_path):
    rt = new_runtime()
    bundle = make_bundle(tmp_path / "b", ["true"], linux={"sysctl": {"net.ipv4.ip_forward": "1"}})
    with pytest.raises(ConfigError, match=r"\$\.linux\.sysctl: unsupported"):
        rt.create("u", bundle)
    assert "u" not in rt.containers


def test_runtime_is_deterministic(tmp_path):
    def once():
        rt = new_runtime()
        rt.create("d", make_bundle(tmp_path / "b", ["ps"]))
        rt.start("d")
        rt.wait("d")
        return rt.kernel.world.now, rt.output("d")

    assert once() == once()
