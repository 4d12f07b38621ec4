"""Reporting every config.json field the runtime does not implement, by its JSON path."""

from __future__ import annotations

import json

import pytest
from oci_helpers import GOOD_CONFIGS, OCI_CONFIG_DATA, base_config
from virtlevels_containers.oci.support import (
    LEAF,
    NOT_IMPLEMENTED,
    SUPPORTED,
    Items,
    Leaf,
    MapOf,
    Obj,
    obj,
    unsupported_fields,
    unsupported_report,
)
from virtlevels_containers.oci.validate import validate_config

GOOD_UNSUPPORTED = {
    "linux-netdevice.json": ["$.linux.netDevices"],
    "linux-rdma.json": ["$.linux.resources.rdma"],
    "minimal-for-start.json": [],
    "minimal.json": [],
}


@pytest.mark.parametrize("path", GOOD_CONFIGS, ids=lambda p: p.name)
def test_good_configs_report_their_unsupported_fields(path) -> None:
    assert unsupported_fields(json.loads(path.read_text())) == GOOD_UNSUPPORTED[path.name]


def test_netdevice_report_gives_the_reason() -> None:
    config = json.loads((OCI_CONFIG_DATA / "good" / "linux-netdevice.json").read_text())
    [item] = unsupported_report(config)
    assert item.path == "$.linux.netDevices"
    assert "network devices" in item.reason
    assert item.format("b/config.json") == f"b/config.json: $.linux.netDevices: unsupported: {item.reason}"


def test_a_config_within_the_implemented_set_reports_nothing() -> None:
    config = base_config(
        domainname="example.org",
        annotations={"org.example.key": "v"},
        hooks={
            "prestart": [{"path": "/bin/true", "args": ["true"], "env": ["A=1"], "timeout": 5}],
            "poststop": [{"path": "/bin/true"}],
        },
    )
    linux = config["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    linux["resources"].update(
        memory={"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20},
        cpu={"shares": 512, "quota": 50000, "period": 100000},
        pids={"limit": 32},
        blockIO={
            "weight": 500,
            "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1 << 20}],
            "throttleWriteIOPSDevice": [{"major": 254, "minor": 0, "rate": 100}],
        },
    )
    linux.update(
        cgroupsPath="/virtlevels/c1",
        rootfsPropagation="private",
        seccomp={
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_RISCV64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {
                    "names": ["personality"],
                    "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
                },
            ],
        },
    )
    config["process"]["user"].update(umask=0o22, additionalGids=[10])
    config["process"]["consoleSize"] = {"height": 24, "width": 80}
    validate_config(config)
    assert unsupported_report(config) == []


def test_every_unimplemented_field_is_reported_by_path_in_document_order() -> None:
    config = base_config(vm={"kernel": {"path": "/vmlinuz"}}, futureField=1)
    process = config["process"]
    process.update(
        terminal=True,
        apparmorProfile="docker-default",
        oomScoreAdj=0,
        ioPriority={"class": "IOPRIO_CLASS_BE"},
    )
    process["user"]["username"] = "root"
    config["mounts"][0]["uidMappings"] = [{"containerID": 0, "hostID": 1, "size": 1}]
    linux = config["linux"]
    linux["resources"].update(
        cpu={"shares": 2, "cpus": "0-1", "mems": "0", "realtimeRuntime": 5},
        memory={"limit": 1, "kernel": 1, "swappiness": 60},
        hugepageLimits=[{"pageSize": "2MB", "limit": 1}],
    )
    linux.update(
        sysctl={"net.ipv4.ip_forward": "1"},
        devices=[{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229}],
        mountLabel="system_u",
        intelRdt={"closID": "x"},
        personality={"domain": "LINUX"},
        seccomp={"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/seccomp.sock"},
    )
    validate_config(config)
    assert unsupported_fields(config) == [
        "$.process.terminal",
        "$.process.user.username",
        "$.process.apparmorProfile",
        "$.process.oomScoreAdj",
        "$.process.ioPriority",
        "$.mounts[0].uidMappings",
        "$.linux.resources.cpu.cpus",
        "$.linux.resources.cpu.mems",
        "$.linux.resources.cpu.realtimeRuntime",
        "$.linux.resources.memory.kernel",
        "$.linux.resources.memory.swappiness",
        "$.linux.resources.hugepageLimits",
        "$.linux.sysctl",
        "$.linux.devices",
        "$.linux.mountLabel",
        "$.linux.intelRdt",
        "$.linux.personality",
        "$.linux.seccomp.listenerPath",
        "$.vm",
        "$.futureField",
    ]


def test_terminal_false_is_supported_and_true_is_not() -> None:
    config = base_config()
    assert unsupported_fields(config) == []
    config["process"]["terminal"] = True
    [item] = unsupported_report(config)
    assert (item.path, item.reason) == ("$.process.terminal", "only terminal=false is supported (no pty)")


def test_empty_objects_arrays_and_null_ask_for_nothing() -> None:
    config = base_config()
    config["linux"].update(sysctl={}, devices=[], netDevices=None)
    assert unsupported_fields(config) == []
    config["linux"]["sysctl"] = {"kernel.shm_rmid_forced": "1"}
    assert unsupported_fields(config) == ["$.linux.sysctl"]


def test_other_platforms_are_reported() -> None:
    config = {
        "ociVersion": "1.0.0",
        "root": {"path": "r"},
        "windows": {"x": 1},
        "solaris": {"milestone": "m"},
    }
    report = unsupported_report(config)
    assert [u.path for u in report] == ["$.windows", "$.solaris"]
    assert all(u.reason != NOT_IMPLEMENTED for u in report)


def test_unknown_fields_get_the_generic_reason_and_bracketed_keys() -> None:
    [item] = unsupported_report({"ociVersion": "1.0.0", "org.example": {"a": 1}})
    assert item.path == "$['org.example']"
    assert item.reason == NOT_IMPLEMENTED


def test_the_table_can_grow() -> None:
    # A runtime that learns linux.sysctl and per-device net renames adds entries to a copy of the table.
    linux = SUPPORTED.fields["linux"]
    assert isinstance(linux, Obj)
    grown = Obj(
        {**SUPPORTED.fields, "linux": obj(**linux.fields, sysctl=LEAF, netDevices=MapOf(obj(name=LEAF)))}
    )
    config = json.loads((OCI_CONFIG_DATA / "good" / "linux-netdevice.json").read_text())
    config["linux"]["sysctl"] = {"a": "b"}
    assert unsupported_fields(config, grown) == []
    config["linux"]["netDevices"]["eth0"]["mtu"] = 1500
    assert unsupported_fields(config, grown) == ["$.linux.netDevices.eth0.mtu"]
    assert unsupported_fields(config) == ["$.linux.netDevices", "$.linux.sysctl"]


def test_leaf_value_conditions_and_items() -> None:
    table = obj(level=Leaf(accepts=lambda v: v < 3, reason="only levels below 3"), tags=Items(obj(name=LEAF)))
    config = {"level": 5, "tags": [{"name": "a"}, {"name": "b", "colour": "red"}]}
    report = unsupported_report(config, table)
    assert [(u.path, u.reason) for u in report] == [
        ("$.level", "only levels below 3"),
        ("$.tags[1].colour", NOT_IMPLEMENTED),
    ]
