"""Fixtures for the VFS tests (helpers live in vfs_util.py: a conftest is not importable by name)."""

from __future__ import annotations

import pytest
from vfs_util import Box, Clock

from virtlevels.graph import ResourceGraph
from virtlevels.kernel.vfs.ops import Vfs


@pytest.fixture
def box() -> Box:
    graph = ResourceGraph()
    vfs = Vfs(clock=Clock(), graph=graph, prefix="k0/vfs")
    root = vfs.new_tmpfs(mode=0o755)
    ns = vfs.new_namespace(root)
    fs = vfs.root_context(ns)
    fs.umask = 0
    return Box(vfs, ns, fs, graph)
