"""Isolation tried from inside a container, as an attacker would; cgroup limits with their counters."""

from __future__ import annotations

import pytest
from runtime_helpers import make_bundle, new_runtime
from virtlevels_containers.engine import Engine, RunOptions

from virtlevels.kernel import scripted as sys

USERNS = {
    "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup", "user")],
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
}


def attacker(results):
    def prog(*_args):
        results["getpid"] = yield sys.getpid()
        results["kill_host_init"] = yield sys.kill(1 + 0, 0)  # pid 1 is the container's own init
        results["kill_host_pid"] = yield sys.kill(3, 9)  # a host pid number: not visible here
        results["sethostname"] = yield sys.sethostname("pwned")
        results["mount_tmpfs"] = yield sys.mount("tmpfs", "/tmp", "tmpfs", 0, None)
        results["uid"] = yield sys.getuid()
        results["setuid_host"] = yield sys.setuid(200000)
        return 0

    return prog


@pytest.fixture
def setup(tmp_path):
    rt = new_runtime()
    results: dict = {}
    rt.kernel.install_program(str(tmp_path / "b" / "rootfs" / "bin" / "attack"), "test.attack",
                              attacker(results))  # fmt: skip
    return rt, results, tmp_path


def test_attacker_cannot_see_or_signal_host_and_changes_do_not_leak(setup):
    rt, results, tmp_path = setup
    host_name = rt.kernel.init_nsproxy.uts.nodename
    rt.create("evil", make_bundle(tmp_path / "b", ["attack"]))
    rt.start("evil")
    assert rt.wait("evil") == 0
    assert rt.state("evil").status.value == "stopped"
    assert results["getpid"] == 1
    assert results["kill_host_pid"] == -3  # ESRCH: host pids do not exist in the container's pid namespace
    # runc's default capabilities have no CAP_SYS_ADMIN: root inside may not even change its own uts
    assert results["sethostname"] == -1 and rt.kernel.init_nsproxy.uts.nodename == host_name
    assert results["mount_tmpfs"] < 0
    assert b" /tmp tmpfs" not in rt.kernel.read_file("/proc/self/mounts")
    assert results["uid"] == 0


def test_user_namespace_maps_root_and_refuses_unmapped_ids(setup):
    rt, results, tmp_path = setup
    rt.create("evil", make_bundle(tmp_path / "b", ["attack"], linux=USERNS))
    rt.start("evil")
    assert rt.wait("evil") == 0
    assert results["uid"] == 0
    assert results["setuid_host"] in (-1, -22)  # EINVAL (unmapped) or EPERM: never becomes host uid 200000
    assert rt.kernel.init_nsproxy.uts.nodename != b"pwned"


def test_uid0_inside_is_unprivileged_outside(tmp_path):
    rt = new_runtime()
    rt.create("u", make_bundle(tmp_path / "b", ["sleep", "10"], linux=USERNS))
    rt.start("u")
    rt.run_until(lambda: False, limit=5_000_000)
    c = rt.get("u")
    creds = c.init.leader.creds
    assert creds.uid == 100000 and creds.euid == 100000  # kernel (host) ids
    status = rt.kernel.read_file(f"/proc/{c.init_pid}/status").decode()
    assert "Uid:\t100000" in status
    # the container's root cannot signal a host process owned by real root
    res = rt.exec("u", ["kill", "-9", "1"])
    assert res.exit_code == 0  # its own init (pid 1 inside) is fair game
    rt.delete("u", force=True)


def test_ps_inside_sees_only_the_container(tmp_path):
    rt = new_runtime()
    rt.kernel.spawn(lambda: iter([sys.nanosleep(10**12)]), name="hostdaemon")
    rt.create("p", make_bundle(tmp_path / "b", ["ps"]))
    rt.start("p")
    rt.wait("p")
    assert rt.output("p").splitlines() == ["PID CMD", "1 ps"]


def engine():
    return Engine(new_runtime())


def test_memory_max_ooms_with_counter():
    e = engine()
    res = e.run("busybox", ["memhog", "4"], RunOptions(memory="1m"))
    assert res.exit_code == 137  # SIGKILL from the OOM killer
    stats = e.stats(res.name)
    assert stats["memory.events"]["oom_kill"] == 1
    assert stats["memory.events"]["max"] >= 1
    ok = e.run("busybox", ["memhog", "1"], RunOptions(memory="4m"))
    assert ok.exit_code == 0 and e.stats(ok.name)["memory.events"]["oom_kill"] == 0


def test_pids_max_gives_eagain_with_counter():
    e = engine()
    res = e.run("busybox", ["forkbomb"], RunOptions(pids_limit=5))
    assert "forked 4 children, then errno 11 (EAGAIN)" in res.output
    assert e.stats(res.name)["pids.events"]["max"] >= 1


def test_cpu_max_throttles():
    e = engine()
    res = e.run("busybox", ["spin", "300000000"], RunOptions(cpus=0.5))
    assert res.exit_code == 0
    st = e.stats(res.name)["cpu.stat"]
    assert st["nr_throttled"] > 0 and st["throttled_usec"] > 0
    assert e.stats(res.name)["cpu.max"] == "50000 100000"


def test_cpu_shares_two_to_one(tmp_path):
    rt = new_runtime()
    for name, shares in (("big", 2048), ("small", 1024)):
        rt.create(
            name, make_bundle(tmp_path / name, ["spin"], linux={"resources": {"cpu": {"shares": shares}}})
        )
    for name in ("big", "small"):
        rt.start(name)
    rt.run_until(lambda: False, limit=300_000_000)
    usage = {}
    for name in ("big", "small"):
        text = rt.kernel.read_file(f"/sys/fs/cgroup/virtlevels/{name}/cpu.stat").decode()
        usage[name] = int(text.split()[1])
    assert usage["big"] / usage["small"] == pytest.approx(2.0, rel=0.1)
    for name in ("big", "small"):
        rt.delete(name, force=True)


def test_read_only_rootfs():
    e = engine()
    res = e.run("busybox", ["touch", "/newfile"], RunOptions(read_only=True))
    assert res.exit_code == 1 and "errno 30" in res.output  # EROFS
    assert e.run("busybox", ["touch", "/newfile"]).exit_code == 0  # the overlay's upper layer takes it


def test_masked_and_readonly_paths(tmp_path):
    rt = new_runtime()
    linux = {"maskedPaths": ["/root"]}
    bundle = make_bundle(tmp_path / "b", ["sleep", "10"], linux=linux, root={"path": "rootfs"})
    (bundle / "rootfs" / "root" / "secret").write_text("key")
    rt.create("m", bundle)
    rt.start("m")
    assert rt.exec("m", ["ls", "/root"]).output == ""  # an empty read-only tmpfs over the directory
    assert "errno 30" in rt.exec("m", ["touch", "/root/x"]).output
    rt.delete("m", force=True)
    linux = {"maskedPaths": ["/etc/passwd"], "readonlyPaths": ["/tmp"]}
    rt.create("m2", make_bundle(tmp_path / "b2", ["sleep", "10"], linux=linux, root={"path": "rootfs"}))
    rt.start("m2")
    res = rt.exec("m2", ["cat", "/etc/passwd"])
    assert res.exit_code == 0 and res.output == ""  # /dev/null bound over it
    res = rt.exec("m2", ["touch", "/tmp/x"])
    assert "errno 30" in res.output  # EROFS
    assert rt.exec("m2", ["touch", "/etc/x"]).exit_code == 0
    rt.delete("m2", force=True)


def test_shared_graph_query(tmp_path):
    rt = new_runtime()
    rt.create("a", make_bundle(tmp_path / "a", ["sleep", "10"]))
    rt.create("b", make_bundle(tmp_path / "b", ["sleep", "10"]))
    pid_a = rt.get("a").init_pid
    share = {"namespaces": [{"type": "mount"}, {"type": "uts"},
                            {"type": "network", "path": f"/proc/{pid_a}/ns/net"},
                            {"type": "ipc", "path": f"/proc/{pid_a}/ns/ipc"}]}  # fmt: skip
    rt.create("c", make_bundle(tmp_path / "c", ["sleep", "10"], linux=share))
    g = rt.kernel.world.graph
    na, nb, nc = (rt.get(x).node_id for x in "abc")
    kernel_and_below = rt.kernel.world.graph.depends_on(rt.kernel.node_id) | {rt.kernel.node_id}
    own_a = {n for n in g.depends_on(na) if n not in kernel_and_below and g.kind(n) == "namespace"
             and g.attrs(n).get("inode") not in _initial_inodes(rt)}  # fmt: skip
    separate = g.shared(na, nb)
    assert rt.kernel.node_id in separate
    assert not (separate & own_a)  # no namespace of a's own is shared with b
    joined = g.shared(na, nc)
    shared_ns = {g.attrs(n)["type"] for n in joined & own_a}
    assert shared_ns == {"net", "ipc"}
    for x in "abc":
        rt.delete(x, force=True)


def _initial_inodes(rt):
    return {ns.inode for ns in rt.kernel.init_nsproxy.namespaces()}
