"""fork/exec/wait/exit, pid namespaces, orphans and init, signals, credentials and rlimits."""

from __future__ import annotations

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.errno import EAGAIN, ECHILD, EINVAL, ENOENT, ENOEXEC, EPERM, ESRCH
from virtlevels.kernel.kernel import CLONE_FILES, CLONE_SIGHAND, CLONE_THREAD, CLONE_VM
from virtlevels.kernel.ns import CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, CLONE_NEWUTS
from virtlevels.kernel.process import RLIMIT_NOFILE, RLIMIT_NPROC
from virtlevels.kernel.signals import SIGKILL, SIGTERM
from virtlevels.kernel.vfs.constants import AT_FDCWD, O_RDONLY

WNOHANG = 1


def test_fork_wait_exit_status_and_reap(kernel, run_prog):
    out = {}

    def child(code):
        yield sc.nanosleep(1000)
        return code

    def prog():
        out["echild"] = yield sc.wait4(-1)
        a = yield sc.fork(child, 3)
        b = yield sc.fork(child, 300)
        out["nohang"] = yield sc.wait4(-1, WNOHANG)
        out["wb"] = yield sc.wait4(b)
        out["wa"] = yield sc.wait4(-1)
        out["ab"] = (a, b)
        out["again"] = yield sc.wait4(a)

    run_prog(kernel, prog)
    a, b = out["ab"]
    assert out["echild"] == -ECHILD and out["nohang"] == 0
    assert out["wb"] == (b, (300 & 0xFF) << 8)
    assert out["wa"] == (a, 3 << 8)
    assert out["again"] == -ECHILD
    assert kernel.world.graph.nodes("process") == []  # reaped processes leave the graph


def test_killed_child_status_is_signal_number(kernel, run_prog):
    out = {}

    def sleeper():
        yield sc.nanosleep(10**9)

    def prog():
        c = yield sc.fork(sleeper)
        out["kill"] = yield sc.kill(c, SIGTERM)
        out["w"] = yield sc.wait4(c)
        out["esrch"] = yield sc.kill(c, SIGTERM)
        out["einval"] = yield sc.kill(c, 99)

    run_prog(kernel, prog)
    assert out["kill"] == 0 and out["w"][1] == SIGTERM
    assert out["esrch"] == -ESRCH and out["einval"] == -EINVAL
    assert kernel.world.now < 10**8  # the sleeper did not sleep out its second


def test_kill_needs_permission(kernel, run_prog):
    out = {}

    def victim():
        yield sc.nanosleep(10**7)

    def attacker(pid):
        out["setuid"] = yield sc.setuid(1000)
        out["uid"] = yield sc.getuid()
        out["kill"] = yield sc.kill(pid, SIGKILL)

    def prog():
        v = yield sc.fork(victim)
        a = yield sc.fork(attacker, v)
        yield sc.wait4(a)
        out["w"] = yield sc.wait4(v)

    run_prog(kernel, prog)
    assert out["setuid"] == 0 and out["uid"] == 1000
    assert out["kill"] == -EPERM
    assert out["w"][1] == 0  # the victim lived to exit normally


def test_execve_scripted_program_by_path(kernel, run_prog):
    out = {}

    def hello(*argv):
        out["argv"] = argv
        out["pid"] = yield sc.getpid()
        return 5

    kernel.install_program("/bin/hello", program=hello)
    kernel.write_file("/bin/junk", b"not a program", 0o755)
    kernel.write_file("/bin/noexec", b"#!scripted hello\n", 0o644)

    def child():
        out["enoexec"] = yield sc.execve("/bin/junk", ["junk"])
        out["eacces"] = yield sc.execve("/bin/noexec", ["x"])
        out["enoent"] = yield sc.execve("/bin/none", ["x"])
        out["mypid"] = yield sc.getpid()
        yield sc.execve("/bin/hello", ["hello", "a", "b"])
        out["not reached"] = True

    def prog():
        yield sc.fork(child)
        out["w"] = yield sc.wait4(-1)

    run_prog(kernel, prog)
    assert out["enoexec"] == -ENOEXEC and out["eacces"] == -13 and out["enoent"] == -ENOENT
    assert out["argv"] == ("a", "b") and out["pid"] == out["mypid"]
    assert "not reached" not in out and out["w"][1] == 5 << 8


def test_threads_share_tgid_and_exit_group(kernel, run_prog):
    out = {}

    def thread():
        out["tpid"] = yield sc.getpid()
        out["ttid"] = yield sc.gettid()
        yield sc.nanosleep(10**8)
        out["thread survived"] = True

    def main():
        out["pid"] = yield sc.getpid()
        out["clone"] = yield sc.clone(CLONE_VM | CLONE_FS_SIG | CLONE_THREAD | CLONE_FILES, thread)
        out["bad"] = yield sc.clone(CLONE_THREAD, thread)
        yield sc.nanosleep(1000)
        yield sc.exit_group(4)

    def prog():
        yield sc.fork(main)
        out["w"] = yield sc.wait4(-1)

    run_prog(kernel, prog)
    assert out["tpid"] == out["pid"] and out["ttid"] == out["clone"] != out["pid"]
    assert out["bad"] == -EINVAL
    assert "thread survived" not in out and out["w"][1] == 4 << 8


CLONE_FS_SIG = CLONE_SIGHAND | 0x200


def test_pid_namespace_translation(kernel, run_prog):
    out = {}

    def inner():
        out["in_pid"] = yield sc.getpid()
        out["in_ppid"] = yield sc.getppid()
        fd = yield sc.openat(AT_FDCWD, "/proc/self/status", O_RDONLY)
        out["status"] = (yield sc.read(fd, 4096)).decode()
        out["see_host"] = yield sc.kill(1, 0)  # pid 1 here is itself

    def prog():
        c = yield sc.clone(CLONE_NEWPID | 17, inner)
        out["host_view"] = c
        out["w"] = yield sc.wait4(c)

    run_prog(kernel, prog)
    assert out["in_pid"] == 1 and out["in_ppid"] == 0
    assert out["host_view"] > 1 and out["w"][0] == out["host_view"]
    # /proc is the host's: it shows the host pid first, then the pid inside (NSpid).
    assert f"NSpid:\t{out['host_view']}\t1\n" in out["status"]
    assert out["see_host"] == 0


def test_host_pids_invisible_from_inside(kernel, run_prog):
    out = {}

    def inner(host_pid):
        out["kill_host"] = yield sc.kill(host_pid, SIGKILL)
        out["prlimit_host"] = yield sc.prlimit64(host_pid, RLIMIT_NOFILE)

    def prog():
        me = yield sc.getpid()
        yield sc.clone(CLONE_NEWPID | 17, inner, me)
        yield sc.wait4(-1)
        out["alive"] = True

    def root():
        yield sc.fork(prog)
        yield sc.wait4(-1)

    run_prog(kernel, root)
    assert out["kill_host"] == -ESRCH and out["prlimit_host"] == -ESRCH and out["alive"]


def test_orphans_reparent_to_ns_init_and_ns_dies_with_init(kernel, run_prog):
    out = {}

    def grandchild():
        yield sc.nanosleep(2_000_000)
        out["gc_ppid"] = yield sc.getppid()
        yield sc.nanosleep(10**9)
        out["gc survived init"] = True

    def middle():
        yield sc.fork(grandchild)
        return 0

    def ns_init():
        yield sc.fork(middle)
        out["reaped_middle"] = yield sc.wait4(-1)
        yield sc.nanosleep(5_000_000)
        return 9

    def prog():
        c = yield sc.clone(CLONE_NEWPID | 17, ns_init)
        out["w"] = yield sc.wait4(c)

    run_prog(kernel, prog)
    assert out["reaped_middle"][0] == 2
    assert out["gc_ppid"] == 1  # reparented to the namespace's init
    assert "gc survived init" not in out and out["w"][1] == 9 << 8
    assert kernel.world.now < 10**8
    assert kernel.processes == []  # the namespace and the host init are gone


def test_hostname_isolation_and_uname(kernel, run_prog):
    out = {}

    def inner():
        out["set"] = yield sc.sethostname("box")
        out["in"] = (yield sc.uname())["nodename"]
        fd = yield sc.openat(AT_FDCWD, "/proc/sys/kernel/hostname", O_RDONLY)
        out["proc"] = yield sc.read(fd, 100)

    def unpriv():
        yield sc.setuid(1000)
        out["eperm"] = yield sc.sethostname("evil")
        out["long"] = yield sc.sethostname("x" * 65)

    def prog():
        yield sc.clone(CLONE_NEWUTS | 17, inner)
        yield sc.wait4(-1)
        yield sc.fork(unpriv)
        yield sc.wait4(-1)
        out["host"] = (yield sc.uname())["nodename"]

    run_prog(kernel, prog)
    assert out["set"] == 0 and out["in"] == "box" and out["proc"] == b"box\n"
    assert out["host"] == "host" and out["eperm"] == -EPERM and out["long"] == -EPERM


def test_unshare_user_ns_maps_root(kernel, run_prog):
    out = {}

    def prog():
        yield sc.setgid(1000)
        yield sc.setuid(1000)
        out["unpriv_uts"] = yield sc.unshare(CLONE_NEWUTS)
        out["userns"] = yield sc.unshare(CLONE_NEWUSER | CLONE_NEWUTS | CLONE_NEWNS)
        out["uid_before"] = yield sc.getuid()
        fd = yield sc.openat(AT_FDCWD, "/proc/self/uid_map", 1)
        out["map"] = yield sc.write(fd, b"0 1000 1")
        out["uid"] = yield sc.getuid()
        out["sethost"] = yield sc.sethostname("mine")

    def root():
        yield sc.fork(prog)
        yield sc.wait4(-1)

    run_prog(kernel, root)
    assert out["unpriv_uts"] == -EPERM
    assert out["userns"] == 0 and out["uid_before"] == 65534
    assert out["map"] == 8 and out["uid"] == 0 and out["sethost"] == 0
    assert kernel.init_nsproxy.uts.nodename == b"host"


def test_setns_via_proc_ns_file(kernel, run_prog):
    out = {}

    def box():
        yield sc.sethostname("box")
        yield sc.nanosleep(10**7)

    def prog():
        c = yield sc.clone(CLONE_NEWUTS | 17, box)
        yield sc.nanosleep(1000)
        fd = yield sc.openat(AT_FDCWD, f"/proc/{c}/ns/uts", O_RDONLY)
        out["link"] = yield sc.readlinkat(AT_FDCWD, f"/proc/{c}/ns/uts")
        out["bad"] = yield sc.setns(fd, CLONE_NEWPID)
        out["setns"] = yield sc.setns(fd, CLONE_NEWUTS)
        out["name"] = (yield sc.uname())["nodename"]
        yield sc.kill(c, SIGKILL)
        yield sc.wait4(c)

    run_prog(kernel, prog)
    assert out["link"].startswith("uts:[") and out["bad"] == -EINVAL
    assert out["setns"] == 0 and out["name"] == "box"


def test_rlimit_nofile_and_nproc(kernel, run_prog):
    out = {}

    def noop():
        yield sc.nanosleep(10**6)

    def prog():
        out["get"] = yield sc.getrlimit(RLIMIT_NOFILE)
        out["set"] = yield sc.setrlimit(RLIMIT_NOFILE, 2, 4096)
        a = yield sc.openat(AT_FDCWD, "/dev/null", O_RDONLY)
        b = yield sc.openat(AT_FDCWD, "/dev/null", O_RDONLY)
        out["emfile"] = yield sc.openat(AT_FDCWD, "/dev/null", O_RDONLY)
        out["ab"] = (a, b)
        out["badset"] = yield sc.setrlimit(RLIMIT_NOFILE, 10, 5)
        out["pr"] = yield sc.prlimit64(0, RLIMIT_NOFILE)
        yield sc.setuid(1000)
        out["raise"] = yield sc.setrlimit(RLIMIT_NOFILE, 10, 8192)
        yield sc.setrlimit(RLIMIT_NPROC, 1, 1)
        out["fork1"] = yield sc.fork(noop)
        out["fork2"] = yield sc.fork(noop)

    def root():
        yield sc.fork(prog)
        yield sc.wait4(-1)

    run_prog(kernel, root)
    assert out["get"] == (1024, 4096) and out["set"] == 0
    assert out["ab"] == (0, 1) and out["emfile"] == -24
    assert out["badset"] == -EINVAL and out["pr"] == (2, 4096)
    assert out["raise"] == -EPERM
    assert out["fork1"] == -EAGAIN  # uid 1000 already has one process: itself


def test_prctl_name_and_no_new_privs(kernel, run_prog):
    out = {}

    def prog():
        out["set"] = yield sc.prctl(15, b"worker\0")
        out["name"] = yield sc.prctl_get_name()
        out["nnp0"] = yield sc.prctl(39)
        out["bad"] = yield sc.prctl(38, 2)
        out["nnp"] = yield sc.prctl(38, 1)
        out["nnp1"] = yield sc.prctl(39)
        out["seccomp"] = yield sc.prctl(22, 2)

    run_prog(kernel, prog)
    assert out["set"] == 0 and out["name"] == "worker"
    assert out["nnp0"] == 0 and out["bad"] == -EINVAL and out["nnp"] == 0 and out["nnp1"] == 1
    assert out["seccomp"] == -EINVAL


def test_capget_capset(kernel, run_prog):
    out = {}

    def prog():
        e, p, i = yield sc.capget()
        out["full"] = e == p and e >> 21 & 1
        out["drop"] = yield sc.capset(e & ~(1 << 21), p & ~(1 << 21))
        e2, p2, _ = yield sc.capget()
        out["dropped"] = not (e2 >> 21 & 1) and not (p2 >> 21 & 1)
        out["regain"] = yield sc.capset(e, p)
        out["mount"] = yield sc.unshare(CLONE_NEWNS)

    run_prog(kernel, prog)
    assert out["full"] and out["drop"] == 0 and out["dropped"]
    assert out["regain"] == -EPERM and out["mount"] == -EPERM


def test_failed_clone_leaves_nothing_behind(kernel, run_prog):
    out = {}

    def noop():
        yield sc.getpid()

    def prog():
        yield sc.setuid(1000)
        out["r"] = yield sc.clone(CLONE_NEWUTS | CLONE_NEWPID | 17, noop)

    def root():
        yield sc.fork(prog)
        yield sc.wait4(-1)

    g = kernel.world.graph
    before = set(g.nodes())
    run_prog(kernel, root)
    assert out["r"] == -EPERM
    assert set(g.nodes()) - before == {n for n in set(g.nodes()) - before if g.kind(n) == "process"}
    assert len(g.nodes("namespace")) == 8


def test_process_graph_nodes(kernel):
    def sleeper():
        yield sc.nanosleep(10**6)

    t = kernel.spawn(sleeper)
    g = kernel.world.graph
    node = t.process.graph_id
    assert g.kind(node) == "process"
    deps = g.depends_on(node)
    assert kernel.node_id in deps and "world" in deps
    assert any(g.kind(n) == "namespace" for n in deps) and any(g.kind(n) == "cgroup" for n in deps)
    kernel.run()
    assert node not in g
