"""OCI bundles (bundle.md): a directory holding config.json and the root filesystem it names.

``load_bundle`` is what ``create`` uses: it fails on the first problem, naming the file.
``check_bundle`` is what ``virtlevels runc validate`` prints: every schema and runtime-spec
problem and every field the runtime would not honour, without stopping at the first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs

from virtlevels.errors import ConfigError
from virtlevels_containers.oci.spec import RuntimeSpec, load_spec
from virtlevels_containers.oci.support import Unsupported, unsupported_report
from virtlevels_containers.oci.validate import InvalidConfig, Issue, JsonParseError, parse_json, schema_issues

CONFIG_NAME = "config.json"


@attrs.frozen
class Bundle:
    """A loaded bundle: its directory, its config and its root filesystem, all absolute."""

    path: Path
    config_path: Path
    spec: RuntimeSpec
    rootfs: Path
    unsupported: tuple[Unsupported, ...] = ()

    def require_supported(self) -> None:
        """Refuse a bundle that asks for something this runtime does not implement."""
        if self.unsupported:
            raise ConfigError("\n".join(item.format(str(self.config_path)) for item in self.unsupported))


def _read_config(path: str | os.PathLike[str]) -> tuple[Path, Path, bytes]:
    bundle = Path(path).absolute()
    if not bundle.is_dir():
        raise ConfigError(f"{bundle}: bundle is not a directory")
    config_path = bundle / CONFIG_NAME
    try:
        return bundle, config_path, config_path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: no such file (a bundle needs {CONFIG_NAME})") from None
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc.strerror}") from None


def _rootfs(bundle: Path, root_path: str) -> Path:
    # bundle.md / config.md "root.path": relative paths are relative to the bundle.
    return Path(os.path.normpath(bundle / root_path))


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Load ``path``/config.json (validated, semantically checked) and find its rootfs directory.

    Errors are ConfigErrors naming the config file (``/b/config.json:3:7: invalid JSON: ...``,
    ``/b/config.json: $.root.path: ...``). Unsupported fields are listed on the Bundle.
    """
    bundle, config_path, raw = _read_config(path)
    source = str(config_path)
    config = parse_json(raw, source)
    spec = load_spec(config, source)
    rootfs = _rootfs(bundle, spec.root.path)
    if not rootfs.is_dir():
        raise InvalidConfig(source, [Issue("$.root.path", f"root filesystem {rootfs} is not a directory")])
    return Bundle(bundle, config_path, spec, rootfs, tuple(unsupported_report(config)))


@attrs.frozen
class Report:
    """What ``virtlevels runc validate`` prints; ``ok`` when the bundle would run as configured."""

    bundle: str
    errors: tuple[str, ...] = ()
    unsupported: tuple[Unsupported, ...] = ()
    config_path: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and not self.unsupported

    def lines(self) -> list[str]:
        """One line per problem (errors first), or a single line saying the bundle is valid."""
        source = self.config_path or self.bundle
        out = list(self.errors) + [item.format(source) for item in self.unsupported]
        return out or [f"{source}: valid; every field is supported"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "ok": self.ok,
            "errors": list(self.errors),
            "unsupported": [{"path": u.path, "reason": u.reason} for u in self.unsupported],
        }


def check_bundle(path: str | os.PathLike[str]) -> Report:
    """Every problem with a bundle: parse, schema, runtime-spec rules, rootfs, unsupported fields."""
    try:
        bundle, config_path, raw = _read_config(path)
    except ConfigError as exc:
        return Report(str(Path(path).absolute()), errors=(str(exc),))
    source = str(config_path)
    errors: list[str] = []
    unsupported: list[Unsupported] = []
    try:
        config = parse_json(raw, source)
    except JsonParseError as exc:
        return Report(str(bundle), (str(exc),), (), source)
    issues = schema_issues(config)
    errors.extend(issue.format(source) for issue in issues)
    if isinstance(config, dict):
        unsupported = unsupported_report(config)
        if not issues:
            try:
                spec = load_spec(config, source)
            except InvalidConfig as exc:
                errors.extend(issue.format(source) for issue in exc.issues)
            else:
                rootfs = _rootfs(bundle, spec.root.path)
                if not rootfs.is_dir():
                    errors.append(f"{source}: $.root.path: root filesystem {rootfs} is not a directory")
    return Report(str(bundle), tuple(errors), tuple(unsupported), source)
