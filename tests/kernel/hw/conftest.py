"""Fixtures for the ISA-process tests (helpers live in hw_util.py)."""

from __future__ import annotations

import pytest
from hw_util import make_kernel

from virtlevels.kernel.kernel import Kernel


@pytest.fixture
def kernel() -> Kernel:
    return make_kernel()
