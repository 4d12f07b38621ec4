from __future__ import annotations

import pytest

import virtlevels
from virtlevels import World
from virtlevels.errors import PluginError
from virtlevels.registry import Command, Registry, Workload


def _noop_workload(**_: object) -> None:
    return None


class Recorder:
    """A plugin object that records the order its registration hook is called in."""

    def __init__(self, log: list[str], tag: str) -> None:
        self.log, self.tag = log, tag

    @virtlevels.hookimpl
    def virtlevels_register_workloads(self, registry: Registry) -> None:
        self.log.append(self.tag)
        registry.add_workload(Workload(f"w-{self.tag}", "", _noop_workload))


def test_core_builtins_load_and_register_commands(bare_world: World) -> None:
    rec = bare_world.plugins.records["builtin"]
    assert rec.builtin
    assert {"levels", "plugins"} <= set(bare_world.registry.commands)
    assert bare_world.plugins.failures == []


def test_registration_hooks_run_in_load_order(bare_world: World) -> None:
    log: list[str] = []
    bare_world.register_plugin(Recorder(log, "first"), "first")
    bare_world.register_plugin(Recorder(log, "second"), "second")
    registry = bare_world.registry
    assert log == ["first", "second"]  # load order, not pluggy's LIFO
    assert registry.entries["workload"]["w-first"].plugin == "first"


def test_duplicate_registration_is_reported_against_the_later_plugin(bare_world: World) -> None:
    class Dup:
        @virtlevels.hookimpl
        def virtlevels_register_commands(self, registry: Registry) -> None:
            registry.add_command(Command("levels", "again", lambda p: None, lambda a: 0))

    bare_world.register_plugin(Dup(), "dup")
    registry = bare_world.registry
    assert registry.entries["command"]["levels"].plugin == "builtin"
    (failure,) = bare_world.plugins.failures
    assert failure.plugin == "dup" and failure.where == "virtlevels_register_commands"
    assert "already registered by 'builtin'" in failure.error


def test_raising_plugin_is_isolated(bare_world: World) -> None:
    class Broken:
        @virtlevels.hookimpl
        def virtlevels_register_workloads(self, registry: Registry) -> None:
            raise RuntimeError("boom")

    log: list[str] = []
    bare_world.register_plugin(Broken(), "broken")
    bare_world.register_plugin(Recorder(log, "ok"), "ok")
    assert "w-ok" in bare_world.registry.workloads
    assert [(f.plugin, f.error) for f in bare_world.plugins.failures] == [("broken", "RuntimeError: boom")]


def test_plugin_with_unknown_hook_argument_is_rejected(bare_world: World) -> None:
    class Wrong:
        @virtlevels.hookimpl
        def virtlevels_register_workloads(self, registry: Registry, nonsense: int) -> None: ...

    with pytest.raises(PluginError, match="cannot be registered"):
        bare_world.register_plugin(Wrong(), "wrong")
    assert "wrong" not in bare_world.plugins.records


def test_entry_points_load_sorted_with_failures_isolated(fake_site, monkeypatch) -> None:
    monkeypatch.delenv("VIRTLEVELS_DISABLE_PLUGINS", raising=False)
    fake_site(
        "vl-test-plugins",
        "1.2.3",
        {"zeta": "vl_zeta", "alpha": "vl_alpha", "broken": "vl_broken"},
        modules={
            "vl_zeta.py": "import virtlevels\n@virtlevels.hookimpl\ndef virtlevels_world_created(world):\n"
            "    world.graph.update('world', zeta=True)\n",
            "vl_alpha.py": "import virtlevels\n@virtlevels.hookimpl\ndef virtlevels_world_created(world):\n"
            "    world.graph.update('world', alpha=True)\n",
            "vl_broken.py": "raise ImportError('missing dependency foo')\n",
        },
    )
    world = World(0)
    order = world.plugins.order
    assert order.index("alpha") < order.index("zeta")
    assert order[0] == "builtin"
    assert world.plugins.records["alpha"].version == "1.2.3"
    assert not world.plugins.records["alpha"].builtin
    assert world.graph.attrs("world")["alpha"] and world.graph.attrs("world")["zeta"]
    failures = {f.plugin: f for f in world.plugins.failures}
    assert failures["broken"].where == "load"
    assert "missing dependency foo" in failures["broken"].error


@pytest.mark.parametrize(
    ("disable", "expected_loaded"),
    [("alpha", {"zeta"}), ("alpha, zeta", set()), ("*", set()), ("", {"alpha", "zeta"})],
)
def test_disable_plugins_env(fake_site, monkeypatch, disable: str, expected_loaded: set[str]) -> None:
    fake_site("vl-two", "0.1", {"zeta": "vl_z2", "alpha": "vl_a2"},
              modules={"vl_z2.py": "", "vl_a2.py": ""})
    monkeypatch.setenv("VIRTLEVELS_DISABLE_PLUGINS", disable)
    world = World(0)
    loaded = set(world.plugins.order) & {"alpha", "zeta"}
    assert loaded == expected_loaded
    assert "builtin" in world.plugins.order  # '*' never disables built-ins


def test_observer_is_none_without_implementations(bare_world: World) -> None:
    for name in ("trap", "vm_exit", "syscall", "packet", "process"):
        assert bare_world.observer(name) is None
    with pytest.raises(PluginError, match="no observer hook"):
        bare_world.observer("nope")


def test_observers_call_every_implementation_and_isolate_failures(bare_world: World) -> None:
    seen: list[tuple[str, object]] = []

    class Watcher:
        @virtlevels.hookimpl
        def virtlevels_on_trap(self, cause: int, hart_id: int) -> None:  # a subset of the arguments
            seen.append(("trap", (hart_id, cause)))

        @virtlevels.hookimpl
        def virtlevels_on_vm_exit(self, vm: object, reason: str) -> None:
            seen.append(("vm_exit", reason))

        @virtlevels.hookimpl
        def virtlevels_on_syscall(self, nr: int, result: int) -> None:
            seen.append(("syscall", (nr, result)))

        @virtlevels.hookimpl
        def virtlevels_on_packet(self, frame: bytes, direction: str) -> None:
            seen.append(("packet", (frame, direction)))

        @virtlevels.hookimpl
        def virtlevels_on_process(self, pid: int, event: str) -> None:
            seen.append(("process", (pid, event)))

    class Failing:
        @virtlevels.hookimpl
        def virtlevels_on_trap(self, cause: int) -> None:
            raise ValueError("observer bug")

    bare_world.register_plugin(Failing(), "failing")
    bare_world.register_plugin(Watcher(), "watcher")
    bare_world.observer("trap")(machine=None, hart_id=1, cause=8, tval=0, epc=0x80000000, from_priv=0,
                                to_priv=3, interrupt=False)
    bare_world.observer("vm_exit")(vm="vm:0", vcpu=0, reason="csr", cycles=10)
    bare_world.observer("syscall")(kernel=None, pid=1, nr=172, args=(), result=1)
    bare_world.observer("packet")(device="eth0", frame=b"\x00", direction="rx")
    bare_world.observer("process")(kernel=None, pid=1, event="created")
    assert seen == [("trap", (1, 8)), ("vm_exit", "csr"), ("syscall", (172, 1)),
                    ("packet", (b"\x00", "rx")), ("process", (1, "created"))]
    assert [f.plugin for f in bare_world.plugins.failures] == ["failing"]


def test_register_plugin_fixture_unregisters(register_plugin, world: World) -> None:
    log: list[str] = []
    register_plugin(Recorder(log, "temp"), "temp")
    assert "w-temp" in world.registry.workloads


def test_register_plugin_fixture_left_nothing_behind(world: World) -> None:
    assert "temp" not in world.plugins.records


def test_world_created_hook_runs_once_per_world(fake_site) -> None:
    fake_site("vl-count", "0.1", {"counter": "vl_counter"},
              modules={"vl_counter.py": "import virtlevels\nCALLS = []\n@virtlevels.hookimpl\n"
                       "def virtlevels_world_created(world):\n    CALLS.append(world.seed)\n"})
    World(5)
    World(6)
    import vl_counter  # type: ignore[import-not-found]

    assert vl_counter.CALLS == [5, 6]


def test_import_virtlevels_loads_no_plugin_module() -> None:
    import subprocess
    import sys

    code = ("import sys, virtlevels; bad=[m for m in sys.modules if m.startswith('virtlevels_')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_every_registration_hook_fills_the_registry(bare_world: World, tmp_path) -> None:
    from virtlevels.registry import Exercise, IsaExtension
    from virtlevels.taxonomy import BackendInfo

    profile = tmp_path / "tiny.toml"
    profile.write_text("# empty\n")

    class Backend:
        info = BackendInfo("toy-hv", "hardware", techniques=["full emulation"], keeps=["equivalence"])

        def define(self, host: object, spec: object) -> object:
            return None

    class Everything:
        @virtlevels.hookimpl
        def virtlevels_register_backends(self, registry: Registry) -> None:
            registry.add_backend(Backend())

        @virtlevels.hookimpl
        def virtlevels_register_cost_profiles(self, registry: Registry) -> None:
            registry.add_cost_profile("tiny", profile)

        @virtlevels.hookimpl
        def virtlevels_register_isa_extensions(self, registry: Registry) -> None:
            registry.add_isa_extension(IsaExtension("toy-ext", "adds nothing", lambda table: None))

        @virtlevels.hookimpl
        def virtlevels_register_exercises(self, registry: Registry) -> None:
            registry.add_exercise(Exercise("toy", "hardware", "adds", lambda s: s, lambda s: s + 1))

    bare_world.register_plugin(Everything(), "everything")
    reg = bare_world.registry
    assert reg.backends["toy-hv"].info.level.value == "hardware"
    assert reg.cost_profiles["tiny"] == profile
    assert "toy-ext" in reg.isa_extensions
    assert reg.exercises["toy"].solve(1) == 2
    assert {e.name for e in reg.by_plugin("everything")} == {"toy-hv", "tiny", "toy-ext", "toy"}


def test_backend_without_info_is_rejected(bare_world: World) -> None:
    class NoInfo:
        @virtlevels.hookimpl
        def virtlevels_register_backends(self, registry: Registry) -> None:
            registry.add_backend(object())  # type: ignore[arg-type]

    bare_world.register_plugin(NoInfo(), "noinfo")
    assert bare_world.registry.backends == {}
    assert "without a BackendInfo" in bare_world.plugins.failures[0].error
