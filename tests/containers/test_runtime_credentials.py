"""The process user and capabilities as runc sets them: additionalGids (setgroups), the bounding
and ambient sets (prctl), keep-caps across setuid, root of a user namespace, the environment,
and exec.fifo made by runc's own mknodat."""

from __future__ import annotations

from typing import Any

from runtime_helpers import make_bundle, new_runtime

from virtlevels.kernel import scripted as sys
from virtlevels.kernel.caps import CAP_BY_NAME

KILL, BIND, CHOWN = (1 << CAP_BY_NAME[n] for n in ("CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"))
USERNS = {
    "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user")],
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
}


def _probe(results: dict[str, Any]) -> Any:
    @sys.with_envp
    def prog(*_args: str, envp: list[str]) -> Any:
        results["envp"] = envp
        results["uid"] = yield sys.getuid()
        results["groups"] = yield sys.getgroups()
        results["caps"] = yield sys.capget()
        results["bnd_kill"] = yield sys.capbset_read(CAP_BY_NAME["CAP_KILL"])
        results["bnd_chown"] = yield sys.capbset_read(CAP_BY_NAME["CAP_CHOWN"])
        bind = CAP_BY_NAME["CAP_NET_BIND_SERVICE"]
        results["amb_bind"] = yield sys.cap_ambient(sys.CAP_AMBIENT_IS_SET, bind)
        return 0

    return prog


def _run(tmp_path: Any, process_changes: dict[str, Any], **changes: Any) -> tuple[Any, dict[str, Any]]:
    import json

    rt = new_runtime()
    results: dict[str, Any] = {}
    bundle = make_bundle(tmp_path / "b", ["probe"], **changes)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"].update(process_changes)
    (bundle / "config.json").write_text(json.dumps(cfg))
    rt.kernel.install_program(str(bundle / "rootfs" / "bin" / "probe"), "test.probe", _probe(results))
    rt.create("c", bundle)
    rt.start("c")
    assert rt.wait("c") == 0, rt.output("c")
    return rt, results


def test_root_gets_the_bounding_set_and_additional_gids(tmp_path) -> None:
    caps = {k: ["CAP_KILL", "CAP_NET_BIND_SERVICE"] for k in ("bounding", "effective", "permitted")}
    _rt, r = _run(tmp_path, {"user": {"uid": 0, "gid": 0, "additionalGids": [5, 7]}, "capabilities": caps})
    assert r["uid"] == 0 and r["groups"] == (5, 7)
    assert r["caps"][:2] == (KILL | BIND, KILL | BIND)  # execve as root: permitted = bounding
    assert r["bnd_kill"] == 1 and r["bnd_chown"] == 0
    assert "TERM=xterm" in r["envp"]


def test_non_root_user_keeps_its_ambient_capabilities(tmp_path) -> None:
    sets = ("bounding", "effective", "permitted", "inheritable", "ambient")
    caps = {k: ["CAP_NET_BIND_SERVICE"] for k in sets}
    _rt, r = _run(tmp_path, {"user": {"uid": 1000, "gid": 1000}, "capabilities": caps})
    assert r["uid"] == 1000 and r["groups"] == ()
    # keep-caps across setuid, then capset and PR_CAP_AMBIENT_RAISE: execve keeps the ambient set.
    assert r["caps"] == (BIND, BIND, BIND) and r["amb_bind"] == 1


def test_root_of_a_user_namespace_keeps_its_capabilities(tmp_path) -> None:
    caps = {k: ["CAP_KILL", "CAP_CHOWN"] for k in ("bounding", "effective", "permitted")}
    rt, r = _run(tmp_path, {"user": {"uid": 0, "gid": 0, "additionalGids": [3]}, "capabilities": caps},
                 linux=USERNS)  # fmt: skip
    assert r["uid"] == 0 and r["caps"][:2] == (KILL | CHOWN, KILL | CHOWN) and r["groups"] == (3,)
    assert not any("capset" in w for w in rt.get("c").plan.warnings)


def test_exec_fifo_is_made_by_runc_create(tmp_path) -> None:
    rt = new_runtime()
    rt.kernel.tracing = True
    rt.create("f", make_bundle(tmp_path / "b", ["true"]))
    assert any(name == "mknodat" and res == 0 for _t, _tid, name, res in rt.kernel.trace)
    st = rt.kernel.vfs.stat(rt.kernel._boot_fs, rt.kernel.init_creds, f"{rt.root}/f/exec.fifo")
    assert oct(st.st_mode) == oct(0o010622)
    rt.start("f")
    assert rt.wait("f") == 0
