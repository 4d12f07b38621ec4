"""OCI bundles: loading for create, checking for `virtlevels runc validate`."""

from __future__ import annotations

import json
import shutil

import pytest
from oci_helpers import GOOD_CONFIGS, OCI_CONFIG_DATA, base_config
from virtlevels_containers.oci.bundle import check_bundle, load_bundle
from virtlevels_containers.oci.validate import InvalidConfig, JsonParseError

from virtlevels.errors import ConfigError


def test_load_bundle_finds_config_and_rootfs(make_bundle) -> None:
    bundle = make_bundle(base_config())
    loaded = load_bundle(bundle)
    assert loaded.path == bundle
    assert loaded.config_path == bundle / "config.json"
    assert loaded.rootfs == bundle / "rootfs"
    assert loaded.spec.source == str(bundle / "config.json")
    assert loaded.unsupported == ()
    loaded.require_supported()


def test_absolute_root_path(make_bundle, tmp_path) -> None:
    elsewhere = tmp_path / "images" / "alpine"
    elsewhere.mkdir(parents=True)
    bundle = make_bundle(base_config(root={"path": str(elsewhere)}), rootfs=False)
    assert load_bundle(bundle).rootfs == elsewhere


def test_missing_rootfs_is_an_error_naming_the_file_and_field(make_bundle) -> None:
    bundle = make_bundle(base_config(), rootfs=False)
    with pytest.raises(InvalidConfig) as info:
        load_bundle(bundle)
    assert str(info.value) == (
        f"{bundle}/config.json: $.root.path: root filesystem {bundle}/rootfs is not a directory"
    )


def test_missing_bundle_and_missing_config(tmp_path) -> None:
    with pytest.raises(ConfigError, match="bundle is not a directory"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty/config.json: no such file"):
        load_bundle(tmp_path / "empty")


def test_parse_error_names_the_config_file(make_bundle) -> None:
    bundle = make_bundle((OCI_CONFIG_DATA / "bad" / "invalid-json.json").read_bytes())
    with pytest.raises(JsonParseError, match=rf"^{bundle}/config.json:1:2: invalid JSON"):
        load_bundle(bundle)


def test_unsupported_fields_are_carried_and_can_be_refused(make_bundle) -> None:
    bundle = make_bundle((OCI_CONFIG_DATA / "good" / "linux-netdevice.json").read_bytes())
    loaded = load_bundle(bundle)
    assert [u.path for u in loaded.unsupported] == ["$.linux.netDevices"]
    with pytest.raises(ConfigError, match=r"config.json: \$.linux.netDevices: unsupported: "):
        loaded.require_supported()


def test_check_bundle_ok(make_bundle) -> None:
    report = check_bundle(make_bundle(base_config()))
    assert report.ok and report.errors == () and report.unsupported == ()
    assert report.lines() == [f"{report.config_path}: valid; every field is supported"]


@pytest.mark.parametrize("path", GOOD_CONFIGS, ids=lambda p: p.name)
def test_check_bundle_on_good_configs(make_bundle, path) -> None:
    report = check_bundle(make_bundle(path.read_bytes()))
    assert report.errors == ()
    expected = {"linux-netdevice.json": ["$.linux.netDevices"], "linux-rdma.json": ["$.linux.resources.rdma"]}
    assert [u.path for u in report.unsupported] == expected.get(path.name, [])
    assert report.ok == (path.name not in expected)


def test_check_bundle_reports_schema_errors_and_unsupported_fields_together(make_bundle) -> None:
    bundle = make_bundle((OCI_CONFIG_DATA / "bad" / "linux-netdevice.json").read_bytes())
    report = check_bundle(bundle)
    assert not report.ok
    assert report.errors == (
        f"{bundle}/config.json: $.linux.netDevices.eth0.name: 23 is not of type 'string'",
    )
    assert [u.path for u in report.unsupported] == ["$.linux.netDevices"]
    assert report.lines()[0] == report.errors[0]
    assert report.lines()[1].startswith(f"{bundle}/config.json: $.linux.netDevices: unsupported: ")
    doc = report.to_dict()
    assert doc["ok"] is False and doc["unsupported"][0]["path"] == "$.linux.netDevices"
    json.dumps(doc)


def test_check_bundle_reports_semantic_errors_and_missing_rootfs(make_bundle) -> None:
    config = base_config()
    config["linux"]["namespaces"].append({"type": "uts"})
    report = check_bundle(make_bundle(config))
    assert [e.split(": ", 1)[1] for e in report.errors] == [
        "$.linux.namespaces[6].type: namespace 'uts' listed twice (first at $.linux.namespaces[3].type)"
    ]
    report = check_bundle(make_bundle(base_config(), rootfs=False, name="b2"))
    assert len(report.errors) == 1 and "$.root.path: root filesystem" in report.errors[0]


def test_check_bundle_never_raises_for_bad_input(tmp_path, make_bundle) -> None:
    assert not check_bundle(tmp_path / "missing").ok
    report = check_bundle(make_bundle(b"{]"))
    assert report.errors and ":1:2: invalid JSON" in report.errors[0]
    report = check_bundle(make_bundle(b"[1, 2]", name="list"))
    assert report.errors[0].endswith("$: [1, 2] is not of type 'object'") and report.unsupported == ()


def test_bundle_from_the_runtime_spec_test_configs_copy(tmp_path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    shutil.copy(OCI_CONFIG_DATA / "good" / "minimal-for-start.json", bundle / "config.json")
    (bundle / "rootfs").mkdir()
    loaded = load_bundle(bundle)
    loaded.spec.check_startable()
