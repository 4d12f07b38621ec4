"""Domain specs (TOML/JSON, errors that name file:line or JSON path) and the libvirt-like lifecycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from virtlevels_hypervisor.backend import HypervisorBackend
from virtlevels_hypervisor.domain import Domain, DomainSpec, load_spec, parse_size
from virtlevels_hypervisor.hypervisor import Hypervisor

from virtlevels.backend import Backend, Guest, GuestState
from virtlevels.errors import ConfigError, LifecycleError
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.world import World

LIMIT = 3_000_000
HELLO = {"name": "h", "kernel": ["hello"]}


def world() -> World:
    return World(entry_points=False)


def test_toml_and_json_give_the_same_spec(tmp_path: Path) -> None:
    toml = tmp_path / "d.toml"
    toml.write_text(
        'name = "web"\nvcpus = 2\nmemory = "32MiB"\ntechnique = "full-emulation"\nmode = "native"\n'
        'devices = ["block"]\n[kernel]\nprograms = ["hello", "counter"]\ntimer_interval = 3000\n'
        '[disk]\nsize = "64KiB"\n'
    )
    spec = load_spec(toml)
    assert (spec.name, spec.vcpus, spec.memory, spec.technique) == ("web", 2, 32 << 20, "emulate")
    assert spec.kernel.programs == ("hello", "counter") and spec.kernel.timer_interval == 3000
    assert spec.disk is not None and spec.disk.size == 64 << 10
    js = tmp_path / "d.json"
    js.write_text(json.dumps(spec.to_dict()))
    assert load_spec(js) == spec
    assert DomainSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'name = "a"\n[kernel]\nprograms = ["hello", "nope"]\n',
            "d.toml:3: kernel.programs[1]: unknown teachos",
        ),
        ('name = "a"\nmemory = "10MiB"\n', "d.toml:2: memory: VM memory must be a multiple of 4MiB"),
        ('technique = "magic"\n', "d.toml:1: technique: unknown virtualization technique 'magic'"),
        ('name = "a"\nvcpu = 2\n', "d.toml:2: vcpu: unknown field"),
        ("vcpus = 0\n", "d.toml:1: vcpus: 0 is less than the minimum of 1"),
        ("vcpus = \n", "d.toml:1:9: invalid TOML"),
        ('mode = "type3"\n', "d.toml:1: mode:"),
    ],
)
def test_toml_errors_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "d.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_spec(path)
    assert str(exc.value).startswith(f"{tmp_path}/{expected}")


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"kernel": {"programs": ["hello", 3]}}, "$.kernel.programs[1]: 3 is not of type 'string'"),
        ({"disk": {"size": "1000"}}, "$.disk.size: a disk is whole 512-byte sectors"),
        ({"kernel": 5}, "$.kernel: must be a program list"),
        ({"memory": "lots"}, "$.memory: cannot read size 'lots'"),
        ({"kernel": "/no/such.elf"}, "$.kernel: '/no/such.elf' is neither"),
    ],
)
def test_json_errors_name_the_json_path(tmp_path: Path, doc: dict, expected: str) -> None:  # type: ignore[type-arg]
    path = tmp_path / "d.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as exc:
        load_spec(path)
    assert str(exc.value).startswith(f"{path}: {expected}")


def test_parse_size() -> None:
    assert parse_size("16MiB", "x") == 16 << 20
    assert parse_size("4M", "x") == 4 << 20
    assert parse_size("512KiB", "x") == 512 << 10
    assert parse_size(4096, "x") == 4096
    with pytest.raises(ConfigError, match="x: cannot read size"):
        parse_size("16 parsecs", "x")


def test_lifecycle_start_run_pause_resume_stop_destroy() -> None:
    w = world()
    dom = Domain.from_spec(w, HELLO)
    assert dom.state is GuestState.DEFINED and dom.vm is None
    with pytest.raises(LifecycleError, match="cannot run in state 'defined'"):
        dom.run(100)
    dom.start()
    vm = dom.vm
    assert vm is not None and dom.hypervisor.vms == [vm]
    free_running = dom.hypervisor.pool.free_bytes
    dom.run(2000)
    dom.pause()
    with pytest.raises(LifecycleError, match="cannot run in state 'paused'"):
        dom.run(100)
    with pytest.raises(LifecycleError, match="cannot pause in state 'paused'"):
        dom.pause()
    dom.resume()
    result = dom.run(LIMIT)
    # The guest powered itself off: the domain is shut off, its RAM is back in the pool.
    assert result.status == "pass" and dom.exit_code == 0
    assert dom.state is GuestState.STOPPED and dom.vm is None and dom.hypervisor.vms == []
    assert dom.hypervisor.pool.free_bytes == free_running + dom.spec.memory
    assert dom.console_output() == "hello from teachos\n"
    dom.start()  # a stopped domain boots again
    assert dom.run(LIMIT).uart == "hello from teachos\n"
    dom.start()
    dom.stop()
    dom.destroy()
    assert dom.state is GuestState.DESTROYED
    # The machine made for the domain is gone from the resource graph.
    assert not [n for n, d in w.graph.g.nodes(data=True) if d.get("kind") in ("vm", "hypervisor", "machine")]
    with pytest.raises(LifecycleError):
        dom.start()


def test_pause_is_invisible_to_the_guest() -> None:
    spec = {"name": "c", "kernel": {"programs": ["counter", "counter"], "timer_interval": 3000}}
    w1 = world()
    ref = Domain.from_spec(w1, spec)
    ref.start()
    expected = ref.run(LIMIT)
    w2 = world()
    dom = Domain.from_spec(w2, spec)
    dom.start()
    dom.run(40_000)
    dom.pause()
    w2.run(until=w2.now + 1_234_567)  # the World moves on while the guest is paused
    guest_time = dom.guest_now
    dom.resume()
    assert dom.guest_now == guest_time
    got = dom.run(LIMIT)
    # Interleaving included: the guest cannot tell it was paused.
    assert got.uart == expected.uart and got.status == expected.status == "pass"


def test_start_failure_leaves_nothing_behind() -> None:
    w = world()
    host = PhysicalMachine(ram_size=24 << 20, world=w, name="small")
    hv = Hypervisor(host, w)
    a = Domain.from_spec(w, {**HELLO, "name": "a"}, hypervisor=hv)
    b = Domain.from_spec(w, {**HELLO, "name": "b"}, hypervisor=hv)
    a.start()
    free = hv.pool.free_bytes
    nodes = set(w.graph.g.nodes)
    with pytest.raises(Exception, match="no 4096 contiguous free host pages"):
        b.start()  # 16 MiB more does not fit: no overcommit
    assert b.state is GuestState.DEFINED and b.vm is None
    assert hv.pool.free_bytes == free and set(w.graph.g.nodes) == nodes and hv.vms == [a.vm]


def test_mode_must_match_the_hypervisor() -> None:
    w = world()
    hv = Hypervisor(PhysicalMachine(ram_size=64 << 20, world=w), w)
    with pytest.raises(ConfigError, match="wants a hosted hypervisor"):
        Domain.from_spec(w, {**HELLO, "mode": "hosted"}, hypervisor=hv)


def test_block_device_and_stats() -> None:
    w = world()
    dom = Domain.from_spec(w, {**HELLO, "devices": ["block"], "disk": {"size": "64KiB"}})
    dom.start()
    assert dom.vm is not None and "blk0" in dom.vm.devices
    dom.run(5000)
    st = dom.stats()
    assert st["state"] == "running" and st["technique"] == "emulate"
    assert st["machine"]["vm"]["emulated_instructions"] >= 5000 - 10
    assert st["guest_cycles"] == dom.guest_now > 0


def test_backend_info_and_protocols() -> None:
    backend = HypervisorBackend()
    assert isinstance(backend, Backend)
    info = backend.info
    assert info.level.value == "hardware" and len(info.techniques) == 5
    assert {s.value for s in info.shares} == {"hardware", "hypervisor"}
    w = world()
    host = PhysicalMachine(ram_size=64 << 20, world=w, name="h0")
    dom = backend.define(host, {"name": "g", "kernel": ["hello"]})
    assert isinstance(dom, Guest)
    dom2 = backend.define(host, {"name": "g2", "kernel": ["hello"]})
    assert dom.hypervisor is dom2.hypervisor  # one hypervisor per host
    dom.start()
    assert dom.run(LIMIT).uart == "hello from teachos\n"
    with pytest.raises(ConfigError, match="needs a Machine"):
        backend.define("not a host", HELLO)


def test_backend_registers_through_the_hook(register_plugin) -> None:  # type: ignore[no-untyped-def]
    import virtlevels

    class Plugin:
        @virtlevels.hookimpl
        def virtlevels_register_backends(self, registry):  # type: ignore[no-untyped-def]
            registry.add_backend(HypervisorBackend())

    w = register_plugin(Plugin(), "hv-lifecycle-test")
    assert "hypervisor" in w.registry.backends
