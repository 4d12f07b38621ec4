"""The typed runtime spec built from config.json, and the rules the schema cannot check."""

from __future__ import annotations

import json

import attrs
import pytest
from oci_helpers import GOOD_CONFIGS, OCI_CONFIG_DATA, base_config
from virtlevels_containers.oci.spec import (
    DEFAULT_CPU_PERIOD,
    Capabilities,
    Cpu,
    Hook,
    IdMapping,
    Mount,
    Namespace,
    Rlimit,
    RuntimeSpec,
    load_spec,
)
from virtlevels_containers.oci.validate import InvalidConfig, JsonParseError

from virtlevels.errors import ConfigError


def issues_of(config: dict) -> list[str]:
    with pytest.raises(InvalidConfig) as info:
        load_spec(config, "b/config.json")
    return [f"{i.path}: {i.message}" for i in info.value.issues]


@pytest.mark.parametrize("path", GOOD_CONFIGS, ids=lambda p: p.name)
def test_every_good_config_loads(path) -> None:
    spec = load_spec(path.read_bytes(), path.name)
    assert spec.root.path == "rootfs" and spec.source == path.name


def test_minimal_for_start_is_startable_and_minimal_is_not() -> None:
    start = load_spec((OCI_CONFIG_DATA / "good" / "minimal-for-start.json").read_text())
    start.check_startable()
    assert start.process is not None
    assert start.process.args == ("sh",) and start.process.cwd == "/"
    assert (start.process.user.uid, start.process.user.gid) == (0, 0)
    minimal = load_spec((OCI_CONFIG_DATA / "good" / "minimal.json").read_text(), "m.json")
    with pytest.raises(InvalidConfig, match=r"^m.json: \$.process: required when the container is started"):
        minimal.check_startable()


def test_empty_args_cannot_start() -> None:
    config = base_config()
    config["process"]["args"] = []
    spec = load_spec(config)
    with pytest.raises(InvalidConfig) as info:
        spec.check_startable()
    assert info.value.paths == ["$.process.args"]


def test_runc_style_config_builds_the_model() -> None:
    config = base_config(
        hooks={
            "createRuntime": [{"path": "/hooks/a", "args": ["a", "1"]}, {"path": "/hooks/b", "timeout": 3}],
            "prestart": [{"path": "/hooks/p"}],
            "poststart": [{"path": "/hooks/ps"}],
            "startContainer": [{"path": "/hooks/sc", "env": ["X=1"]}],
            "poststop": [{"path": "/hooks/stop"}],
        },
        annotations={"org.example": "v"},
    )
    spec = load_spec(json.dumps(config))
    assert isinstance(spec, RuntimeSpec)
    assert spec.root.readonly is True
    assert spec.mounts[1] == Mount(
        "/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")
    )
    assert spec.hostname == "runc" and spec.annotations == {"org.example": "v"}
    process = spec.process
    assert process is not None
    assert process.no_new_privileges is True and process.terminal is False
    assert process.rlimits == (Rlimit("RLIMIT_NOFILE", 1024, 1024),)
    assert process.rlimits[0].resource == 7
    assert process.capabilities == Capabilities(
        bounding=("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"),
        effective=("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"),
        inheritable=(),
        permitted=("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"),
        ambient=("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"),
    )
    assert [ns.type for ns in spec.linux.namespaces] == ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    assert spec.linux.namespace("uts") == Namespace("uts")
    assert spec.linux.namespace("user") is None
    assert spec.linux.masked_paths == ("/proc/kcore", "/sys/firmware")
    assert spec.linux.resources is not None
    assert spec.linux.resources.devices[0].allow is False
    # runtime.md "Lifecycle": the hooks each operation runs, in order.
    assert [(phase, h.path) for phase, h in spec.hooks.for_operation("create")] == [
        ("prestart", "/hooks/p"),
        ("createRuntime", "/hooks/a"),
        ("createRuntime", "/hooks/b"),
    ]
    assert [(phase, h.path) for phase, h in spec.hooks.for_operation("start")] == [
        ("startContainer", "/hooks/sc"),
        ("poststart", "/hooks/ps"),
    ]
    assert spec.hooks.for_operation("delete") == [("poststop", Hook("/hooks/stop"))]
    assert spec.hooks.create_runtime[1].timeout == 3


def test_values_are_frozen() -> None:
    spec = load_spec(base_config())
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        spec.root.path = "elsewhere"  # type: ignore[misc]


def test_duplicate_namespace_type_names_the_entry() -> None:
    config = base_config()
    config["linux"]["namespaces"] = [{"type": t} for t in ("pid", "mount", "uts", "pid")]
    assert issues_of(config) == [
        "$.linux.namespaces[3].type: namespace 'pid' listed twice (first at $.linux.namespaces[0].type)"
    ]


def test_id_mappings_need_a_user_namespace() -> None:
    config = base_config()
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert issues_of(config) == [
        "$.linux.uidMappings: id mappings given but no user namespace in $.linux.namespaces"
    ]
    config["linux"]["namespaces"].append({"type": "user"})
    spec = load_spec(config)
    assert spec.linux.uid_mappings == (IdMapping(0, 1000, 1),)


def test_a_new_user_namespace_needs_both_maps_but_joining_one_does_not() -> None:
    config = base_config()
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert issues_of(config) == ["$.linux.gidMappings: a new user namespace needs uid and gid mappings"]
    del config["linux"]["uidMappings"]
    config["linux"]["namespaces"][-1]["path"] = "/proc/42/ns/user"
    assert load_spec(config).linux.namespace("user") == Namespace("user", "/proc/42/ns/user")


def test_id_mapping_ranges_must_not_overlap_or_be_empty() -> None:
    config = base_config()
    linux = config["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [
        {"containerID": 0, "hostID": 100000, "size": 1000},
        {"containerID": 999, "hostID": 200000, "size": 10},
        {"containerID": 5000, "hostID": 100500, "size": 10},
        {"containerID": 9000, "hostID": 300000, "size": 0},
    ]
    linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 1}]
    assert issues_of(config) == [
        "$.linux.uidMappings[1].containerID: range overlaps $.linux.uidMappings[0]",
        "$.linux.uidMappings[2].hostID: range overlaps $.linux.uidMappings[0]",
        "$.linux.uidMappings[3].size: must be greater than 0",
    ]


def test_cpu_quota_without_period_gets_the_default_period() -> None:
    config = base_config()
    config["linux"]["resources"]["cpu"] = {"quota": 50000, "shares": 1024}
    cpu = load_spec(config).linux.resources.cpu  # type: ignore[union-attr]
    assert cpu == Cpu(shares=1024, quota=50000, period=DEFAULT_CPU_PERIOD)
    assert cpu is not None and cpu.max == (50000, 100000)
    # runc's cgroup v2 conversions.
    assert cpu.weight == 1 + (1022 * 9999) // 262142 == 39
    assert Cpu(shares=2).weight == 1 and Cpu(shares=262144).weight == 10000
    assert Cpu(quota=-1).max == (None, 100000) and Cpu(quota=20000, period=50000).max == (20000, 50000)


def test_cpu_period_range() -> None:
    config = base_config()
    config["linux"]["resources"]["cpu"] = {"quota": 500, "period": 500}
    assert issues_of(config) == ["$.linux.resources.cpu.period: 500 us is outside 1000..1000000"]


def test_memory_swap_below_limit_and_reservation_above_limit() -> None:
    config = base_config()
    config["linux"]["resources"]["memory"] = {"limit": 1 << 20, "swap": 1 << 19, "reservation": 1 << 21}
    assert issues_of(config) == [
        "$.linux.resources.memory.swap: memory+swap 524288 is below the memory limit 1048576",
        "$.linux.resources.memory.reservation: reservation 2097152 exceeds the limit 1048576",
    ]


def test_resources_model() -> None:
    config = base_config()
    config["linux"]["resources"].update(
        memory={"limit": 64 << 20, "swap": -1},
        pids={"limit": -1},
        blockIO={"weight": 10, "throttleWriteBpsDevice": [{"major": 254, "minor": 0, "rate": 4096}]},
    )
    resources = load_spec(config).linux.resources
    assert resources is not None and resources.memory is not None and resources.pids is not None
    assert (resources.memory.limit, resources.memory.swap, resources.memory.reservation) == (
        64 << 20,
        -1,
        None,
    )
    assert resources.pids.max is None
    assert resources.block_io is not None and resources.block_io.io_weight == 1
    assert resources.block_io.throttle_write_bps[0].rate == 4096
    assert resources.cpu is None


def test_process_rules() -> None:
    config = base_config()
    process = config["process"]
    process.update(cwd="work", env=["A=1", "NOEQUALS", "=x"])
    process["capabilities"]["bounding"].append("CAP_FLY")
    process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5},
        {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 5},
        {"type": "RLIMIT_WIBBLE", "soft": 1, "hard": 1},
    ]
    assert issues_of(config) == [
        "$.process.cwd: 'work' is not absolute",
        "$.process.env[1]: 'NOEQUALS' is not of the form NAME=value",
        "$.process.env[2]: '=x' is not of the form NAME=value",
        "$.process.capabilities.bounding[3]: unknown capability 'CAP_FLY'",
        "$.process.rlimits[0].soft: soft limit 10 exceeds hard limit 5",
        "$.process.rlimits[1].type: RLIMIT_NOFILE listed twice (first at $.process.rlimits[0])",
        "$.process.rlimits[2].type: unknown resource limit 'RLIMIT_WIBBLE'",
    ]


def test_paths_that_must_be_absolute() -> None:
    config = base_config(hooks={"poststart": [{"path": "relative/hook"}]})
    config["mounts"].append({"destination": "data", "type": "bind", "source": "/srv"})
    config["linux"]["maskedPaths"].append("proc/x")
    config["linux"]["namespaces"][0]["path"] = "proc/1/ns/pid"
    assert issues_of(config) == [
        "$.mounts[2].destination: 'data' is not absolute",
        "$.hooks.poststart[0].path: 'relative/hook' is not absolute",
        "$.linux.namespaces[0].path: 'proc/1/ns/pid' is not absolute",
        "$.linux.maskedPaths[2]: 'proc/x' is not absolute",
    ]


def test_hostname_needs_a_uts_namespace() -> None:
    config = base_config(domainname="example.org")
    config["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"}]
    assert issues_of(config) == [
        "$.hostname: setting hostname needs a new uts namespace in $.linux.namespaces",
        "$.domainname: setting domainname needs a new uts namespace in $.linux.namespaces",
    ]


def test_root_is_required_on_linux() -> None:
    assert issues_of({"ociVersion": "1.0.0"}) == ['$.root: required on Linux (config.md "Root")']


def test_seccomp_model_and_argument_index() -> None:
    config = base_config()
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_RISCV64"],
        "syscalls": [
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
            }
        ],
    }
    seccomp = load_spec(config).linux.seccomp
    assert seccomp is not None
    assert seccomp.default_errno_ret == 1
    assert seccomp.syscalls[0].names == ("personality",)
    assert seccomp.syscalls[0].args[0].value == 8 and seccomp.syscalls[0].args[0].value_two == 0
    config["linux"]["seccomp"]["syscalls"][0]["args"][0]["index"] = 6
    assert issues_of(config) == [
        "$.linux.seccomp.syscalls[0].args[0].index: 6 is out of range: system calls have 6 arguments (0-5)"
    ]


def test_schema_errors_come_before_semantic_checks() -> None:
    with pytest.raises(InvalidConfig, match=r"\$.process: 'cwd' is a required property"):
        load_spec({"ociVersion": "1.0.0", "root": {"path": "r"}, "process": {"args": ["sh"]}})
    with pytest.raises(JsonParseError):
        load_spec("{", "x.json")


def test_errors_are_config_errors_with_source_on_every_line() -> None:
    config = base_config()
    config["process"]["cwd"] = "."
    config["linux"]["namespaces"].append({"type": "pid"})
    with pytest.raises(ConfigError) as info:
        load_spec(config, "/bundles/b/config.json")
    lines = str(info.value).splitlines()
    assert len(lines) == 2 and all(line.startswith("/bundles/b/config.json: $.") for line in lines)
