"""Errors the framework raises for bad input. Each names what is wrong and where."""

from __future__ import annotations


class VirtlevelsError(Exception):
    """Base of every error virtlevels reports to a user (printed as one line by the CLI)."""


class ConfigError(VirtlevelsError):
    """A configuration (TOML, JSON, spec) is invalid; the message names the file and field."""


class AssemblyError(VirtlevelsError):
    """Assembly source is invalid; the message names file:line and the offending text."""


class ElfError(VirtlevelsError):
    """An ELF file cannot be loaded; the message says what is wrong with it."""


class PluginError(VirtlevelsError):
    """A plugin could not be loaded or registered something invalid."""


class LifecycleError(VirtlevelsError):
    """An operation is not allowed in an object's current state; the message names the state."""
