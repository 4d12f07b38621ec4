"""The runtime-spec's test configs run, or are refused only for the fields the support report names."""

from __future__ import annotations

import json
import shutil

import pytest
from oci_helpers import BAD_CONFIGS, GOOD_CONFIGS
from runtime_helpers import new_runtime, write_rootfs
from virtlevels_containers.oci.support import unsupported_fields

from virtlevels.errors import ConfigError

#: Why each good config does not run (besides unsupported fields): found by this test.
EXPECTED_REFUSALS = {"minimal.json": r"\$\.process"}


def _bundle(tmp_path, config_path):
    b = tmp_path / "b"
    b.mkdir()
    shutil.copy(config_path, b / "config.json")
    write_rootfs(b / "rootfs")
    (b / "rootfs" / "bin" / "sh").write_bytes(b"#!scripted busybox.true\n")
    (b / "rootfs" / "bin" / "sh").chmod(0o755)
    return b


@pytest.mark.parametrize("config", GOOD_CONFIGS, ids=lambda p: p.name)
def test_good_configs_run_or_are_refused_for_unsupported_fields(tmp_path, config):
    rt = new_runtime()
    bundle = _bundle(tmp_path, config)
    unsupported = unsupported_fields(json.loads(config.read_text()))
    if unsupported:
        with pytest.raises(ConfigError) as info:
            rt.create("c", bundle)
        for path in unsupported:
            assert f"{path}: unsupported" in str(info.value)
        return
    if config.name in EXPECTED_REFUSALS:
        with pytest.raises(ConfigError, match=EXPECTED_REFUSALS[config.name]):
            rt.create("c", bundle)
        return
    rt.create("c", bundle)
    rt.start("c")
    assert rt.wait("c") == 0
    rt.delete("c")


@pytest.mark.parametrize("config", BAD_CONFIGS, ids=lambda p: p.name)
def test_bad_configs_are_rejected_naming_the_field(tmp_path, config):
    rt = new_runtime()
    with pytest.raises(ConfigError) as info:
        rt.create("c", _bundle(tmp_path, config))
    text = str(info.value)
    assert "config.json" in text and ("$." in text or "invalid JSON" in text)
    assert "c" not in rt.containers
