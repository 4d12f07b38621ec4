"""The process-level sandbox plugin: seccomp-BPF filters, capabilities and rlimits (see docs/sandbox.md)."""

from __future__ import annotations
