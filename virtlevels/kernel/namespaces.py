"""Alias module: the namespace mechanism lives in :mod:`virtlevels.kernel.ns`."""

from virtlevels.kernel.ns import *  # noqa: F403
from virtlevels.kernel.ns import __all__  # noqa: F401
