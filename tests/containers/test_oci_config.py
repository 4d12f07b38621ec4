"""config.json validation against the shipped OCI runtime-spec schemas."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest
from oci_helpers import BAD_CONFIGS, GOOD_CONFIGS, OCI_CONFIG_DATA, base_config
from referencing.exceptions import Unresolvable
from virtlevels_containers.oci import validate
from virtlevels_containers.oci.validate import (
    InvalidConfig,
    JsonParseError,
    json_path,
    schema_registry,
    validate_config,
    validate_state,
)

from virtlevels.errors import ConfigError

SHARED = Path("/work/shared/data/oci")


def test_test_configs_are_present() -> None:
    assert [p.name for p in GOOD_CONFIGS] == [
        "linux-netdevice.json",
        "linux-rdma.json",
        "minimal-for-start.json",
        "minimal.json",
    ]
    assert [p.name for p in BAD_CONFIGS] == [
        "invalid-json.json",
        "linux-hugepage.json",
        "linux-netdevice.json",
        "linux-rdma.json",
    ]
    assert (OCI_CONFIG_DATA / "NOTICE").is_file() and (OCI_CONFIG_DATA / "LICENSE").is_file()


@pytest.mark.parametrize("path", GOOD_CONFIGS, ids=lambda p: p.name)
def test_every_good_config_validates(path: Path) -> None:
    config = validate_config(path.read_bytes(), path.name)
    assert config["ociVersion"] == "1.0.0"
    assert config["root"] == {"path": "rootfs"}


#: Each bad config of the runtime-spec with the message line naming what is wrong.
BAD_EXPECTED = {
    "linux-hugepage.json": "linux-hugepage.json: $.linux.resources.hugepageLimits[0].pageSize: "
    "'64kB' does not match '^[1-9][0-9]*[KMG]B$'",
    "linux-netdevice.json": "linux-netdevice.json: $.linux.netDevices.eth0.name: 23 is not of type 'string'",
    "linux-rdma.json": "linux-rdma.json: $.linux.resources.rdma.mlx5_1.hcaHandles: "
    "'not a uint32' is not of type 'integer'",
}


@pytest.mark.parametrize("name", sorted(BAD_EXPECTED))
def test_bad_configs_are_rejected_naming_the_field(name: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        validate_config((OCI_CONFIG_DATA / "bad" / name).read_bytes(), name)
    assert str(info.value) == BAD_EXPECTED[name]
    assert len(info.value.issues) == 1
    assert isinstance(info.value, ConfigError)


def test_invalid_json_is_rejected_with_line_column_and_text() -> None:
    data = (OCI_CONFIG_DATA / "bad" / "invalid-json.json").read_bytes()
    with pytest.raises(JsonParseError) as info:
        validate_config(data, "invalid-json.json")
    assert (info.value.line, info.value.column) == (1, 2)
    assert str(info.value) == (
        "invalid-json.json:1:2: invalid JSON: Expecting property name enclosed in double quotes: '{]'"
    )


def test_every_bad_config_is_rejected() -> None:
    for path in BAD_CONFIGS:
        with pytest.raises(ConfigError):
            validate_config(path.read_text(), path.name)


def test_parse_error_position_on_a_later_line() -> None:
    text = '{\n  "ociVersion": "1.0.0",\n  "root": {"path": "rootfs",}\n}\n'
    with pytest.raises(JsonParseError) as info:
        validate_config(text, "b/config.json")
    assert str(info.value).startswith("b/config.json:3:29: invalid JSON: ")
    assert '\'"root": {"path": "rootfs",}\'' in str(info.value)


def test_nan_and_infinity_are_not_json() -> None:
    text = '{"ociVersion": "NaN",\n "annotations": {"a": "Infinity"},\n "x": -Infinity}'
    with pytest.raises(JsonParseError) as info:
        validate_config(text)
    assert (info.value.line, info.value.column) == (3, 7)
    assert "-Infinity is not a JSON number" in str(info.value)


def test_non_utf8_is_a_parse_error() -> None:
    with pytest.raises(JsonParseError) as info:
        validate_config(b'{"ociVersion":\n "\xff"}')
    assert (info.value.line, info.value.column) == (2, 3)
    assert "not UTF-8" in str(info.value)


def test_every_schema_error_is_listed_sorted_by_path() -> None:
    config = {
        "ociVersion": 1,
        "process": {"args": ["sh"]},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "pids"}], "netDevices": {"eth0": {"name": 23}}},
        "annotations": {"org.example.key": 7},
    }
    with pytest.raises(InvalidConfig) as info:
        validate_config(config)
    assert str(info.value).splitlines() == [
        "config.json: $.annotations['org.example.key']: 7 is not of type 'string'",
        "config.json: $.linux.namespaces[1].type: 'pids' is not one of "
        "['mount', 'pid', 'network', 'uts', 'ipc', 'user', 'cgroup', 'time']",
        "config.json: $.linux.netDevices.eth0.name: 23 is not of type 'string'",
        "config.json: $.ociVersion: 1 is not of type 'string'",
        "config.json: $.process: 'cwd' is a required property",
    ]


def test_top_level_must_be_an_object_with_an_oci_version() -> None:
    with pytest.raises(InvalidConfig, match=r"config.json: \$: \[\] is not of type 'object'"):
        validate_config("[]")
    with pytest.raises(InvalidConfig, match=r"\$: 'ociVersion' is a required property"):
        validate_config({})


def test_integer_ranges_come_from_the_shared_definitions() -> None:
    # defs.json uint32 reached through config-linux.json -> defs.json -> defs.json#/definitions/uint32
    config = base_config(linux={"uidMappings": [{"containerID": 0, "hostID": 2**32, "size": 1}]})
    with pytest.raises(InvalidConfig, match=r"\$.linux.uidMappings\[0\].hostID: 4294967296 is greater than"):
        validate_config(config)


def test_a_valid_runc_style_config_passes() -> None:
    config = base_config()
    assert validate_config(config) == config


def test_platform_sections_without_shipped_schemas_validate_as_objects() -> None:
    validate_config({"ociVersion": "1.0.0", "windows": {"layerFolders": ["C:\\\\x"]}, "solaris": {}})
    with pytest.raises(InvalidConfig, match=r"\$.windows: 3 is not of type 'object'"):
        validate_config({"ociVersion": "1.0.0", "windows": 3})


def test_vm_section_uses_its_shipped_schema() -> None:
    with pytest.raises(InvalidConfig, match=r"\$.vm: 'kernel' is a required property"):
        validate_config({"ociVersion": "1.0.0", "vm": {}})


def test_long_messages_are_shortened() -> None:
    huge = {"ociVersion": "1.0.0", "linux": {"namespaces": [{"type": "x" * 1000}]}}
    with pytest.raises(InvalidConfig) as info:
        validate_config(huge)
    assert len(info.value.issues[0].message) <= 240
    assert info.value.issues[0].message.endswith("...")


def test_state_validation() -> None:
    good = {"ociVersion": "1.0.0", "id": "c1", "status": "running", "pid": 4, "bundle": "/b"}
    assert validate_state(good) == good
    with pytest.raises(InvalidConfig) as info:
        validate_state({**good, "status": "paused", "pid": -1})
    assert info.value.paths == ["$.pid", "$.status"]


def test_json_path_rendering() -> None:
    assert json_path([]) == "$"
    assert json_path(["linux", "namespaces", 3, "type"]) == "$.linux.namespaces[3].type"
    assert (
        json_path(["annotations", "org.opencontainers.image"]) == "$.annotations['org.opencontainers.image']"
    )
    assert json_path(["a", "it's"]) == "$.a['it\\'s']"


def test_schemas_resolve_offline_from_package_data() -> None:
    registry = schema_registry()
    for name in (
        "config-schema.json",
        "config-linux.json",
        "defs.json",
        "defs-linux.json",
        "state-schema.json",
    ):
        assert registry.contents(name)
    # The registry has no retrieve hook: an unknown reference is never fetched from anywhere.
    resolver = registry.resolver()
    with pytest.raises(Unresolvable):
        resolver.lookup("https://example.invalid/schema.json")


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared data directory not present")
def test_shipped_schemas_are_unchanged_copies() -> None:
    shipped = Path(validate.__file__).parent / "schema"
    names = sorted(p.name for p in (SHARED / "schema").glob("*.json"))
    assert names == sorted(p.name for p in shipped.glob("*.json"))
    match, mismatch, errors = filecmp.cmpfiles(SHARED / "schema", shipped, names, shallow=False)
    assert (mismatch, errors) == ([], [])
    for kind in ("good", "bad"):
        shared = sorted(p.name for p in (SHARED / "config" / kind).glob("*.json"))
        _m, mismatch, errors = filecmp.cmpfiles(
            SHARED / "config" / kind, OCI_CONFIG_DATA / kind, shared, False
        )
        assert (mismatch, errors) == ([], [])


def test_schema_package_carries_its_licence() -> None:
    shipped = Path(validate.__file__).parent / "schema"
    notice = (shipped / "NOTICE").read_text()
    assert "Apache" in notice and "https://github.com/opencontainers/runtime-spec" in notice
    assert "Apache License" in (shipped / "LICENSE").read_text()
