"""Interposers users know: an ltrace-like tracer, faketime, fakeroot and a fault injector."""

from __future__ import annotations

from virtlevels_interpose.interposers.fakeroot import FAKEROOT_NAME, make_fakeroot
from virtlevels_interpose.interposers.faketime import FAKETIME_NAME, make_faketime, parse_faketime
from virtlevels_interpose.interposers.faultinject import FaultInjector, FaultRule
from virtlevels_interpose.interposers.ltrace import Tracer

__all__ = [
    "FAKEROOT_NAME", "FAKETIME_NAME", "FaultInjector", "FaultRule", "Tracer", "make_fakeroot",
    "make_faketime", "parse_faketime",
]  # fmt: skip
