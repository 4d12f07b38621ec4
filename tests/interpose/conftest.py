"""Until the lead adds the entry point, the plugin package is made importable from plugins/."""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import virtlevels_interpose  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))
