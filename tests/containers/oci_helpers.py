"""Shared data for the OCI configuration tests: the runtime-spec's test configs and a base config.

The runtime-spec's own schema test configs are copied under data/oci-config/{good,bad}/ so the
tests run from a clean clone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

OCI_CONFIG_DATA = Path(__file__).parent / "data" / "oci-config"
GOOD_CONFIGS = sorted((OCI_CONFIG_DATA / "good").glob("*.json"))
BAD_CONFIGS = sorted((OCI_CONFIG_DATA / "bad").glob("*.json"))


def base_config(**extra: Any) -> dict[str, Any]:
    """A config runc's `spec` would write, cut down: what the runtime implements, nothing more."""
    config: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": True},
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": ["/proc/kcore", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/sys"],
        },
    }
    config.update(extra)
    return config
