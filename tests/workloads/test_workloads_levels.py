"""The standard workloads, unchanged, in a VM (the Python kernel on a VirtualMachine of the hypervisor
plugin) and in a container (the containers plugin's OCI runtime): same output as native, exit 0."""

from __future__ import annotations

from pathlib import Path

import pytest
from workloads_util import native_kernel, run_native, vm_kernel

from virtlevels.kernel.kernel import Kernel
from virtlevels.workloads import WorkloadImage, run, standard_workloads

NAMES = ["compute", "syscall", "fileio", "memory", "forkwait", "net", "startup"]
BUILD = {w.name: w.build for w in standard_workloads()}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("technique", ["hw", "trap"])
def test_each_workload_runs_in_a_vm(name: str, technique: str) -> None:
    image = BUILD[name]()
    native, _ = run_native(image)
    k, vm = vm_kernel(image, technique)
    r = run(k, image)
    assert r.ok(image), r.stdout
    assert r.stdout == native.stdout
    st = vm.vstats
    assert st.guest_instructions() > 0 and st.direct_instructions > 0  # user code ran on the host hart
    assert k.isa.frames.in_use == 0


@pytest.mark.parametrize("technique", ["emulate", "bt", "pv"])
def test_the_other_techniques_run_them_too(technique: str) -> None:
    for name in ("syscall", "forkwait", "net"):
        image = BUILD[name]()
        k, _vm = vm_kernel(image, technique)
        r = run(k, image)
        assert r.ok(image), (name, r.stdout)


def test_a_vm_costs_more_cycles_than_native_for_system_calls() -> None:
    image = BUILD["syscall"]()
    native, _ = run_native(image)
    k, _vm = vm_kernel(image, "trap")
    assert run(k, image).cycles > native.cycles


def _image_dir(tmp_path: Path, image: WorkloadImage) -> Path:
    """A one-layer container image: the ELF at argv[0] and the image's files."""
    root = tmp_path / image.name
    for path, data in {image.argv[0]: image.elf, **image.files}.items():
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        dest.chmod(0o755)
    return root


def _in_container(k: Kernel, image: WorkloadImage, tmp_path: Path) -> tuple[int | None, str]:
    from virtlevels_containers.engine import Engine
    from virtlevels_containers.runtime import Runtime

    res = Engine(Runtime(k)).run(str(_image_dir(tmp_path, image)), list(image.argv))
    return res.exit_code, res.output


@pytest.mark.parametrize("name", NAMES)
def test_each_workload_runs_in_a_container(name: str, tmp_path: Path) -> None:
    image = BUILD[name]()
    k = native_kernel(image, lo_up_in_new_netns=True)  # runc brings lo up in a new netns
    code, out = _in_container(k, image, tmp_path)
    assert (code, out.encode()) == (0, image.expected_stdout)


def test_a_container_inside_a_vm(tmp_path: Path) -> None:
    for name in ("startup", "forkwait", "net"):
        image = BUILD[name]()
        k, _vm = vm_kernel(image, "hw", lo_up_in_new_netns=True)
        code, out = _in_container(k, image, tmp_path)
        assert (code, out.encode()) == (0, image.expected_stdout), name
