from __future__ import annotations

import sys
from pathlib import Path

# The plugin package lives in plugins/ (found by the editable install once its entry point is added).
_PLUGINS = str(Path(__file__).resolve().parents[2] / "plugins")
if _PLUGINS not in sys.path:
    sys.path.insert(0, _PLUGINS)
