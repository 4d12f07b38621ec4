"""Fixtures for the containers plugin's tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def make_bundle(tmp_path: Path) -> Callable[..., Path]:
    """``make_bundle(config, rootfs=True)``: a bundle directory with config.json (dict or text)."""

    def make(config: dict[str, Any] | str | bytes, rootfs: bool = True, name: str = "bundle") -> Path:
        bundle = tmp_path / name
        bundle.mkdir()
        if isinstance(config, dict):
            config = json.dumps(config, indent=4)
        if isinstance(config, str):
            config = config.encode()
        (bundle / "config.json").write_bytes(config)
        if rootfs:
            (bundle / "rootfs").mkdir()
        return bundle

    return make
