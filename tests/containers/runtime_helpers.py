"""Shared helpers for the runtime tests: a kernel with a runtime, and busybox bundles on the host."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from oci_helpers import base_config
from virtlevels_containers.busybox import busybox_files
from virtlevels_containers.runtime import Runtime

from virtlevels.kernel.kernel import Kernel


def write_rootfs(root: Path) -> None:
    for rel, data in busybox_files().items():
        p = root / rel
        if rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            p.chmod(0o755)


def make_bundle(path: Path, args: list[str] | None = None, **changes: Any) -> Path:
    """A bundle with the busybox rootfs; ``changes`` update the base config (top-level keys)."""
    path.mkdir(parents=True, exist_ok=True)
    write_rootfs(path / "rootfs")
    cfg = base_config()
    if args is not None:
        cfg["process"]["args"] = args
    for key, value in changes.items():
        if key == "linux":
            cfg["linux"].update(value)
        else:
            cfg[key] = value
    (path / "config.json").write_text(json.dumps(cfg))
    return path


def new_runtime() -> Runtime:
    return Runtime(Kernel())


def graph_snapshot(rt: Runtime) -> set[tuple[str, str]]:
    """The (kind, id) of every namespace, cgroup, mount, process and container node."""
    g = rt.kernel.world.graph
    kinds = ("namespace", "cgroup", "mount", "process", "container", "filesystem")
    return {(g.kind(n), n) for n in g.nodes() if g.kind(n) in kinds}
