"""config.json and state JSON checked against the OCI runtime-spec schemas shipped as package data.

The schemas are Draft 4 (their ``$schema``) and refer to each other by relative file names
(``defs.json#/definitions/uint32``). They are resolved through a ``referencing`` registry built
from the shipped files, so validation never touches the network.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import attrs
from jsonschema import validators
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from virtlevels.errors import ConfigError

SCHEMA_PACKAGE = "virtlevels_containers.oci.schema"
CONFIG_SCHEMA = "config-schema.json"
STATE_SCHEMA = "state-schema.json"

#: Platform sections config-schema.json refers to whose schema files the shipped copy lacks.
#: They validate as plain objects; support.py reports them as unsupported by path.
_MISSING_PLATFORMS = ("solaris", "windows", "zos", "freebsd")

_MESSAGE_LIMIT = 240
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@attrs.frozen
class Issue:
    """One thing wrong with a document: where (a JSONPath such as ``$.process.args``) and what."""

    path: str
    message: str

    def format(self, source: str) -> str:
        return f"{source}: {self.path}: {self.message}"


class InvalidConfig(ConfigError):
    """A parsed document that breaks the schema or a rule of the runtime-spec; one line per issue."""

    def __init__(self, source: str, issues: Iterable[Issue]) -> None:
        self.source = source
        self.issues: tuple[Issue, ...] = tuple(issues)
        super().__init__("\n".join(issue.format(source) for issue in self.issues))

    @property
    def paths(self) -> list[str]:
        return [issue.path for issue in self.issues]


class JsonParseError(ConfigError):
    """The document is not JSON; the message names ``source:line:col``, the error and the line."""

    def __init__(self, source: str, line: int, column: int, reason: str, text: str) -> None:
        self.source, self.line, self.column, self.reason = source, line, column, reason
        super().__init__(f"{source}:{line}:{column}: invalid JSON: {reason}: {text.strip()!r}")


def json_path(parts: Iterable[str | int]) -> str:
    """Render a path (keys and indexes) as JSONPath: ``$.linux.namespaces[3].type``.

    Keys that are not identifiers (annotation names such as ``org.opencontainers.x``) use the
    bracket form ``$.annotations['org.opencontainers.x']`` so the path stays unambiguous.
    """
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENTIFIER.match(part):
            out.append(f".{part}")
        else:
            escaped = part.replace("\\", "\\\\").replace("'", "\\'")
            out.append(f"['{escaped}']")
    return "".join(out)


def parse_json(data: bytes | str, source: str = "config.json") -> Any:
    """Parse JSON text, turning every failure into a JsonParseError naming ``source:line:col``."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            # RFC 8259 section 8.1: JSON exchanged between systems is UTF-8.
            line = data[: exc.start].count(b"\n") + 1
            column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            bad = data[exc.start : exc.end].hex()
            raise JsonParseError(source, line, column, "not UTF-8", f"byte 0x{bad}") from None
    else:
        text = data
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise JsonParseError(source, exc.lineno, exc.colno, exc.msg, _line_of(text, exc.lineno)) from None
    except _NotJsonNumber as exc:
        line, column = _position_of_constant(text)
        raise JsonParseError(source, line, column, str(exc), _line_of(text, line)) from None


class _NotJsonNumber(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are Python extensions; RFC 8259 section 6 has no such numbers, and Go's
    # encoding/json (what runc reads config.json with) rejects them.
    raise _NotJsonNumber(f"{name} is not a JSON number")


_STRING_OR_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(NaN|-?Infinity)')


def _position_of_constant(text: str) -> tuple[int, int]:
    # json gives no position for a rejected constant: find the first one outside a string.
    for match in _STRING_OR_CONSTANT.finditer(text):
        if match.group(1):
            start = match.start(1)
            return text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1
    return 1, 1


def _line_of(text: str, lineno: int) -> str:
    lines = text.splitlines()
    return lines[lineno - 1] if 0 < lineno <= len(lines) else ""


def load_schema(name: str) -> dict[str, Any]:
    """One shipped schema file, parsed."""
    with resources.files(SCHEMA_PACKAGE).joinpath(name).open("rb") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


@functools.cache
def schema_registry() -> Registry[Any]:
    """Every shipped schema under its file name, so relative ``$ref``s resolve offline."""
    registry: Registry[Any] = Registry()
    names = sorted(
        entry.name for entry in resources.files(SCHEMA_PACKAGE).iterdir() if entry.name.endswith(".json")
    )
    for name in names:
        registry = registry.with_resource(name, DRAFT4.create_resource(load_schema(name)))
    for platform in _MISSING_PLATFORMS:
        name = f"config-{platform}.json"
        if name not in names:
            stand_in = {platform: {"description": f"{name} is not shipped", "type": "object"}}
            registry = registry.with_resource(name, Resource.from_contents(stand_in, DRAFT4))
    return registry.crawl()


@functools.cache
def _validator(schema_name: str) -> Validator:
    schema = load_schema(schema_name)
    cls = validators.validator_for(schema)  # Draft4Validator, from the schema's $schema
    cls.check_schema(schema)
    return cls(schema, registry=schema_registry())


def _most_specific(error: ValidationError) -> ValidationError:
    # anyOf/oneOf failures (linux.namespaces items) say only "not valid under any of the given
    # schemas"; the sub-error jsonschema rates most relevant names the field that is wrong.
    while error.context:
        error = best_match(error.context)
    return error


def _path_key(error: ValidationError) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in error.absolute_path)


def _shorten(message: str) -> str:
    return message if len(message) <= _MESSAGE_LIMIT else message[: _MESSAGE_LIMIT - 3] + "..."


def schema_issues(document: Any, schema_name: str = CONFIG_SCHEMA) -> list[Issue]:
    """Every way ``document`` breaks the named schema, sorted by path (deterministic)."""
    found = [_most_specific(e) for e in _validator(schema_name).iter_errors(document)]
    found.sort(key=lambda e: (_path_key(e), e.message))
    issues: list[Issue] = []
    for error in found:
        issue = Issue(json_path(error.absolute_path), _shorten(error.message))
        if issue not in issues:
            issues.append(issue)
    return issues


def _as_document(data: bytes | str | Mapping[str, Any], source: str) -> Any:
    if isinstance(data, bytes | str):
        return parse_json(data, source)
    return data


def validate_config(data: bytes | str | Mapping[str, Any], source: str = "config.json") -> dict[str, Any]:
    """Parse (if text) and validate a config.json against config-schema.json; return the dict.

    Raises JsonParseError (``source:line:col: invalid JSON: ...``) or InvalidConfig with one
    ``source: $.json.path: message`` line per schema error.
    """
    document = _as_document(data, source)
    issues = schema_issues(document, CONFIG_SCHEMA)
    if issues:
        raise InvalidConfig(source, issues)
    return dict(document)


def validate_state(data: bytes | str | Mapping[str, Any], source: str = "state.json") -> dict[str, Any]:
    """Validate an OCI state document against state-schema.json; return the dict."""
    document = _as_document(data, source)
    issues = schema_issues(document, STATE_SCHEMA)
    if issues:
        raise InvalidConfig(source, issues)
    return dict(document)
