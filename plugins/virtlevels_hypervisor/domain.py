"""Domains: a VM with a libvirt-like lifecycle, defined from a TOML or JSON spec (issue 5 item 8).

A *domain* is libvirt's word for a defined guest: its configuration (:class:`DomainSpec`: vCPUs,
memory, technique, mode, kernel, disk, devices, cost profile, ISA extensions) and, while it runs,
the :class:`~virtlevels_hypervisor.vm.VirtualMachine` that realises it. :class:`Domain` moves
through :class:`virtlevels.backend.Lifecycle` (define, start, pause, resume, stop/shutdown,
destroy), runs for a number of guest instructions or cycles, reports stats, and saves/restores
its whole state as bytes (``snapshot()`` / ``restore()``, byte-exact).

Guest time. A paused or saved guest must not see the time it spent outside (QEMU stops
QEMU_CLOCK_VIRTUAL while a VM is stopped; KVM offsets the TSC after migration). The domain keeps
``time_shift``: world cycles the guest has not lived through. The VM's CLINT reads the World
clock minus that shift (:class:`_GuestClock`), and the vCPUs' ``cycle`` CSRs are offset by it.
Snapshots store guest time (``now`` = guest cycles) so they do not depend on when they were
taken or restored, which is what makes ``snapshot -> restore -> snapshot`` byte-equal and a
restored guest continue exactly as one never saved.

Nothing is half-applied: a verb that fails leaves the domain in its previous state and frees
what it allocated (the VM's RAM returns to the hypervisor's frame pool, graph nodes go).
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from virtlevels.backend import GuestState, Lifecycle
from virtlevels.errors import ConfigError, LifecycleError, VirtlevelsError
from virtlevels.machine.machine import RunResult
from virtlevels.machine.memory import PAGE_SHIFT
from virtlevels.machine.snapshot import encode
from virtlevels_hypervisor.techniques import canonical

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels.machine.image import Image
    from virtlevels.world import World
    from virtlevels_hypervisor.hypervisor import Hypervisor
    from virtlevels_hypervisor.vm import VirtualMachine

MIB = 1 << 20
SNAPSHOT_FORMAT = "virtlevels-domain-snapshot"
SNAPSHOT_VERSION = 1
KERNEL_KINDS = ("teachos", "elf", "python-kernel")
#: Devices a spec may name. Every VM has the CLINT, PLIC, UART and test finisher (the memmap's
#: standard set); "block" asks for a virtual disk (a blank 1 MiB one when no ``disk`` is given).
KNOWN_DEVICES = ("clint", "plic", "uart", "test-finisher", "block")
DEFAULT_DISK_SIZE = 1 * MIB
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_SIZE = re.compile(r"\s*(\d+)\s*([KMG]i?B?|B)?\s*\Z", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}

# --------------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------------

_STR_LIST = {"type": "array", "items": {"type": "string", "minLength": 1}}
_SIZE_T = {"type": ["integer", "string"]}
#: JSON Schema (2020-12) of a domain spec document, checked before any value is converted.
SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "vcpus": {"type": "integer", "minimum": 1, "maximum": 64},
        "memory": _SIZE_T,
        "technique": {"type": "string"},
        "mode": {"enum": ["native", "hosted"]},
        "profile": {"type": "string", "minLength": 1},
        "isa_extensions": _STR_LIST,
        "devices": {"type": "array", "items": {"enum": list(KNOWN_DEVICES)}},
        "disk": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "path": {"type": "string", "minLength": 1},
                        "size": _SIZE_T,
                        "readonly": {"type": "boolean"},
                    },
                },
            ]
        },
        "kernel": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                _STR_LIST,
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "type": {"enum": list(KERNEL_KINDS)},
                        "programs": _STR_LIST,
                        "path": {"type": "string", "minLength": 1},
                        "timer_interval": {"type": "integer", "minimum": 1},
                        "paravirt": {"type": "boolean"},
                    },
                },
            ]
        },
    },
}


def json_path(parts: Sequence[str | int]) -> str:
    """``$.kernel.programs[1]`` for ("kernel", "programs", 1)."""
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def parse_size(value: int | str, where: str) -> int:
    """Bytes from an int or a string such as ``"16MiB"``, ``"4M"``, ``"65536"`` (binary units)."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: a size must be an integer or a string like '16MiB', not {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ConfigError(f"{where}: size must be positive, got {value}")
        return value
    m = _SIZE.match(str(value))
    if m is None:
        raise ConfigError(f"{where}: cannot read size {value!r} (use bytes or e.g. '16MiB', '512KiB')")
    n = int(m.group(1)) * _UNITS[(m.group(2) or "")[:1].lower()]
    if n <= 0:
        raise ConfigError(f"{where}: size must be positive, got {value!r}")
    return n


def format_size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


@attrs.frozen
class KernelSpec:
    """What the domain boots: teachos with user ``programs``, an ELF file, or the Python kernel."""

    kind: str = "teachos"
    programs: tuple[str, ...] = ("hello",)
    path: str | None = None
    timer_interval: int | None = None  # teachos: mtime ticks between preemptions (None: default)
    paravirt: bool | None = None  # teachos: the PV build (None: when the technique is "pv")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind}
        if self.kind == "teachos":
            d["programs"] = list(self.programs)
            if self.timer_interval is not None:
                d["timer_interval"] = self.timer_interval
            if self.paravirt is not None:
                d["paravirt"] = self.paravirt
        elif self.kind == "elf":
            d["path"] = self.path
        return d


@attrs.frozen
class DiskSpec:
    """A virtual disk: a raw image file (shared storage, as QEMU's raw files) or a blank one."""

    path: str | None = None
    size: int | None = None
    readonly: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.path is not None:
            d["path"] = self.path
        if self.size is not None:
            d["size"] = format_size(self.size)
        if self.readonly:
            d["readonly"] = True
        return d


@attrs.frozen
class DomainSpec:
    """A domain's configuration (libvirt's domain XML, as TOML or JSON).

    ``source`` says where it was read from; relative paths (ELF kernel, disk image) were resolved
    against that file's directory when it was loaded.
    """

    name: str = "domain"
    vcpus: int = 1
    memory: int = 16 * MIB
    technique: str = "emulate"
    mode: str = "native"
    kernel: KernelSpec = attrs.field(factory=KernelSpec)
    disk: DiskSpec | None = None
    devices: tuple[str, ...] = ()
    profile: str | None = None
    isa_extensions: tuple[str, ...] = ()
    source: str = attrs.field(default="<spec>", eq=False)

    def to_dict(self) -> dict[str, Any]:
        """The spec as a plain document ``from_dict`` reads back (canonical names, sizes as text)."""
        d: dict[str, Any] = {
            "name": self.name,
            "vcpus": self.vcpus,
            "memory": format_size(self.memory),
            "technique": self.technique,
            "mode": self.mode,
            "kernel": self.kernel.to_dict(),
            "devices": list(self.devices),
            "isa_extensions": list(self.isa_extensions),
        }
        if self.disk is not None:
            d["disk"] = self.disk.to_dict()
        if self.profile is not None:
            d["profile"] = self.profile
        return d

    @property
    def wants_block(self) -> bool:
        return self.disk is not None or "block" in self.devices

    @classmethod
    def from_dict(
        cls,
        doc: Mapping[str, Any],
        *,
        source: str = "<spec>",
        base_dir: Path | None = None,
        locate: Callable[[Sequence[str | int]], str] | None = None,
    ) -> DomainSpec:
        """Check ``doc`` against :data:`SPEC_SCHEMA` and convert it. Errors name ``source`` and the
        field: ``source:LINE: field: ...`` when ``locate`` finds a line (TOML), else a JSON path."""
        where = locate or (lambda parts: f"{source}: {json_path(parts)}")
        validator = Draft202012Validator(SPEC_SCHEMA)
        errors = sorted(validator.iter_errors(dict(doc)), key=lambda e: [str(p) for p in e.absolute_path])
        if errors:
            err = _innermost(errors[0])
            parts: list[str | int] = list(err.absolute_path)
            if err.validator == "additionalProperties" and isinstance(err.instance, dict):
                allowed = set(err.schema.get("properties", {}))
                extra = sorted(k for k in err.instance if k not in allowed)
                if extra:  # name the unknown field itself, so TOML errors get its line
                    raise ConfigError(
                        f"{where([*parts, extra[0]])}: unknown field (known: {', '.join(sorted(allowed))})"
                    )
            raise ConfigError(f"{where(parts)}: {_schema_message(err)}")

        def path_of(value: str) -> str:
            p = Path(value).expanduser()
            if not p.is_absolute() and base_dir is not None:
                p = base_dir / p
            return str(p)

        name = doc.get("name", "domain")
        if not _NAME.match(name):
            raise ConfigError(f"{where(['name'])}: domain name {name!r} must be 1-64 of [A-Za-z0-9_.-]")
        memory = parse_size(doc.get("memory", 16 * MIB), where(["memory"]))
        if memory % (4 * MIB):
            raise ConfigError(
                f"{where(['memory'])}: VM memory must be a multiple of 4MiB, got {format_size(memory)}"
            )
        try:
            technique = canonical(doc.get("technique", "emulate"))
        except ConfigError as exc:
            raise ConfigError(f"{where(['technique'])}: {exc}") from None
        kernel = _kernel_spec(doc.get("kernel", "teachos"), where, path_of)
        disk: DiskSpec | None = None
        raw_disk = doc.get("disk")
        if isinstance(raw_disk, str):
            disk = DiskSpec(path=path_of(raw_disk))
        elif isinstance(raw_disk, Mapping):
            size = None if "size" not in raw_disk else parse_size(raw_disk["size"], where(["disk", "size"]))
            if size is not None and size % 512:
                raise ConfigError(f"{where(['disk', 'size'])}: a disk is whole 512-byte sectors, got {size}")
            dpath = raw_disk.get("path")
            if dpath is None and size is None:
                raise ConfigError(f"{where(['disk'])}: give a disk 'path' (an image file) or a 'size'")
            if dpath is not None and size is not None:
                raise ConfigError(
                    f"{where(['disk'])}: 'path' and 'size' exclude each other (a file has its size)"
                )
            disk = DiskSpec(
                path=None if dpath is None else path_of(dpath),
                size=size,
                readonly=bool(raw_disk.get("readonly", False)),
            )
        if disk is not None and disk.path is not None and not Path(disk.path).is_file():
            key: list[str | int] = ["disk"] if isinstance(raw_disk, str) else ["disk", "path"]
            raise ConfigError(f"{where(key)}: disk image {disk.path} does not exist")
        devices = tuple(doc.get("devices", ()))
        dup = sorted({d for d in devices if devices.count(d) > 1})
        if dup:
            raise ConfigError(f"{where(['devices'])}: device {dup[0]!r} is listed twice")
        if kernel.kind == "teachos" and memory < 16 * MIB:
            raise ConfigError(
                f"{where(['memory'])}: teachos needs at least 16MiB of RAM, got {format_size(memory)}"
            )
        return cls(
            name=name,
            vcpus=int(doc.get("vcpus", 1)),
            memory=memory,
            technique=technique,
            mode=doc.get("mode", "native"),
            kernel=kernel,
            disk=disk,
            devices=devices,
            profile=doc.get("profile"),
            isa_extensions=tuple(doc.get("isa_extensions", ())),
            source=source,
        )


def _innermost(err: ValidationError) -> ValidationError:
    """For an ``anyOf`` failure, the error of the branch whose type matched (the useful one)."""
    while err.validator == "anyOf" and err.context:
        # A "type" error at the branch's own root only says the branch did not apply.
        deeper = [e for e in err.context if not (e.validator == "type" and not e.relative_path)]
        if not deeper:
            break
        err = max(deeper, key=lambda e: len(e.absolute_path))
    return err


def _schema_message(err: ValidationError) -> str:
    field = err.absolute_path[-1] if err.absolute_path else None
    if err.validator == "additionalProperties":
        if "(" not in err.message:
            return err.message
        return f"unknown field(s): {err.message.split('(')[-1].rstrip(')')}"
    if err.validator == "anyOf" and isinstance(field, str):
        shapes = {
            "kernel": "a program list, 'teachos', 'python-kernel', an ELF path, or a table with 'type'",
            "disk": "an image path or a table with 'path' or 'size'",
        }
        if field in shapes:
            return f"must be {shapes[field]} (got {err.instance!r})"
    return err.message


def _kernel_spec(
    raw: Any, where: Callable[[Sequence[str | int]], str], path_of: Callable[[str], str]
) -> KernelSpec:
    if isinstance(raw, list):
        if not raw:
            raise ConfigError(f"{where(['kernel'])}: a teachos program list needs at least one program")
        return KernelSpec("teachos", tuple(raw))
    if isinstance(raw, str):
        if raw == "teachos":
            return KernelSpec("teachos", ("hello", "counter", "counter"))
        if raw == "python-kernel":
            return KernelSpec("python-kernel", ())
        path = path_of(raw)
        if not Path(path).is_file():
            raise ConfigError(
                f"{where(['kernel'])}: {raw!r} is neither 'teachos', 'python-kernel' nor an existing ELF file"
            )
        return KernelSpec("elf", (), path=path)
    kind = raw.get("type") or ("elf" if "path" in raw else "teachos")
    if kind == "elf":
        if "path" not in raw:
            raise ConfigError(f"{where(['kernel'])}: an ELF kernel needs 'path'")
        path = path_of(raw["path"])
        if not Path(path).is_file():
            raise ConfigError(f"{where(['kernel', 'path'])}: ELF file {path} does not exist")
        extra = sorted(set(raw) - {"type", "path"})
        if extra:
            raise ConfigError(f"{where(['kernel', extra[0]])}: not an option of an ELF kernel")
        return KernelSpec("elf", (), path=path)
    if kind == "python-kernel":
        extra = sorted(set(raw) - {"type"})
        if extra:
            raise ConfigError(f"{where(['kernel', extra[0]])}: not an option of the Python kernel")
        return KernelSpec("python-kernel", ())
    if "path" in raw:
        raise ConfigError(f"{where(['kernel', 'path'])}: teachos is built from 'programs', not a path")
    programs = tuple(raw.get("programs", ("hello", "counter", "counter")))
    if not programs:
        raise ConfigError(f"{where(['kernel', 'programs'])}: teachos needs at least one program")
    from virtlevels.guests import program_names

    known = program_names()
    for i, prog in enumerate(programs):
        if prog not in known and not prog.endswith(".S"):
            raise ConfigError(
                f"{where(['kernel', 'programs', i])}: unknown teachos program {prog!r} "
                f"(shipped: {', '.join(known)}; or a path to a .S file)"
            )
    return KernelSpec(
        "teachos",
        tuple(path_of(p) if p.endswith(".S") else p for p in programs),
        timer_interval=raw.get("timer_interval"),
        paravirt=raw.get("paravirt"),
    )


def _toml_locator(source: str, text: str) -> Callable[[Sequence[str | int]], str]:
    """Map a field path to ``source:LINE: field`` by scanning the TOML text for its key."""
    lines = text.splitlines()
    header = re.compile(r"\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?$")
    keyline = re.compile(r"\s*([A-Za-z0-9_.\-\"']+?)\s*=")

    def find(parts: Sequence[str]) -> int | None:
        table: tuple[str, ...] = ()
        fallback = None
        for n, line in enumerate(lines, 1):
            m = header.match(line)
            if m is not None:
                table = tuple(k.strip().strip("\"'") for k in m.group(1).split("."))
                if table == tuple(parts):
                    return n
                continue
            m = keyline.match(line)
            if m is None:
                continue
            key = table + tuple(k.strip().strip("\"'") for k in m.group(1).split("."))
            if key == tuple(parts):
                return n
            if parts and key == tuple(parts[:1]) and fallback is None:
                fallback = n  # an inline table or array holding the field
        return fallback

    def where(parts: Sequence[str | int]) -> str:
        keys = [p for p in parts if isinstance(p, str)]
        field = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in parts).replace(".[", "[")
        line = None
        for cut in range(len(keys), 0, -1):
            line = find(keys[:cut])
            if line is not None:
                break
        loc = f"{source}:{line}" if line is not None else source
        return f"{loc}: {field}" if field else loc

    return where


def load_spec(path: str | Path) -> DomainSpec:
    """Read a domain spec from a ``.toml`` or ``.json`` file (anything else is read as TOML)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read domain spec: {exc.strerror or exc}") from None
    if p.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{p}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{p}: $: a domain spec is a JSON object")
        return DomainSpec.from_dict(doc, source=str(p), base_dir=p.parent)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        loc = f"{p}:{m.group(1)}:{m.group(2)}" if m else str(p)
        raise ConfigError(f"{loc}: invalid TOML: {str(exc).split(' (at line')[0]}") from None
    return DomainSpec.from_dict(doc, source=str(p), base_dir=p.parent, locate=_toml_locator(str(p), text))


def spec_from(value: DomainSpec | Mapping[str, Any] | str | Path) -> DomainSpec:
    """A DomainSpec from a spec, a plain document, or a file path."""
    if isinstance(value, DomainSpec):
        return value
    if isinstance(value, Mapping):
        return DomainSpec.from_dict(value)
    return load_spec(value)


# --------------------------------------------------------------------------------------------------
# Guest time
# --------------------------------------------------------------------------------------------------


@attrs.define(eq=False)
class _GuestClock:
    """The DeviceHost the VM's CLINT sees: the machine's, with time reading ``world - shift``.

    Delays passed to ``schedule`` are relative, so they need no translation."""

    inner: Any
    domain: Domain

    def now(self) -> int:
        d = self.domain
        base = d.paused_at if d.paused_at is not None else self.inner.now()
        return int(base) - d.time_shift

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# --------------------------------------------------------------------------------------------------
# The domain
# --------------------------------------------------------------------------------------------------


@attrs.define(eq=False)
class Domain:
    """A defined guest machine with the lifecycle every virtlevels guest has.

    Build with :meth:`from_spec`. ``vm`` is the running VirtualMachine (None while defined or
    stopped); ``hypervisor`` the Hypervisor it runs on (migration changes it).
    """

    world: World
    spec: DomainSpec
    hypervisor: Hypervisor
    id: str = ""
    lifecycle: Lifecycle = attrs.field(init=False)
    vm: VirtualMachine | None = attrs.field(default=None, init=False)
    kernel: Any = attrs.field(default=None, init=False)  # the Python kernel, for kind "python-kernel"
    #: World cycles the guest has not lived through (paused, saved, migrating).
    time_shift: int = attrs.field(default=0, init=False)
    paused_at: int | None = attrs.field(default=None, init=False)
    exit_code: int | None = attrs.field(default=None, init=False)
    output: str = attrs.field(default="", init=False)  # the console of the last VM (kept after stop)
    owns_host: bool = attrs.field(default=False, kw_only=True)
    _image: Any = attrs.field(default=None, init=False)
    _disk: Any = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if not self.id:
            self.id = self.spec.name
        self.lifecycle = Lifecycle(f"domain {self.id}")
        if self.spec.mode != self.hypervisor.mode:
            raise ConfigError(
                f"{self.spec.source}: mode: domain {self.id!r} wants a {self.spec.mode} hypervisor, "
                f"this one is {self.hypervisor.mode}"
            )

    # -- define ---------------------------------------------------------------------------------
    @classmethod
    def from_spec(
        cls,
        world: World,
        spec: DomainSpec | Mapping[str, Any] | str | Path,
        *,
        hypervisor: Hypervisor | None = None,
        host: Any = None,
    ) -> Domain:
        """Define a domain (nothing is allocated until :meth:`start`).

        It runs on ``hypervisor``; else on a new Hypervisor on ``host`` (a Machine); else on a new
        PhysicalMachine of its own, sized for it (the domain then owns it and removes it on destroy).
        """
        from virtlevels_hypervisor.hypervisor import Hypervisor

        spec = spec_from(spec)
        if spec.isa_extensions:
            known = world.registry.isa_extensions
            for i, ext in enumerate(spec.isa_extensions):
                if ext not in known:
                    raise ConfigError(
                        f"{spec.source}: {json_path(['isa_extensions', i])}: unknown ISA extension {ext!r} "
                        f"(registered: {', '.join(sorted(known)) or 'none'})"
                    )
        owns = False
        if hypervisor is None:
            if host is None:
                owns = True
                host = host_machine_for(world, spec)
            try:
                hypervisor = Hypervisor(host, world, mode=spec.mode, name=f"{spec.name}-hv")
            except BaseException:
                if owns:
                    _drop_machine(world, host)
                raise
        elif hypervisor.world is not world:
            raise ConfigError(f"domain {spec.name!r}: the hypervisor belongs to another World")
        try:
            return cls(world, spec, hypervisor, owns_host=owns)
        except BaseException:
            if owns:
                _drop_hypervisor(world, hypervisor)
            raise

    @property
    def state(self) -> GuestState:
        return self.lifecycle.state

    # -- start / stop ---------------------------------------------------------------------------
    def _image_for(self) -> Image:
        if self._image is None:
            k = self.spec.kernel
            if k.kind == "teachos":
                from virtlevels.guests import build_teachos

                paravirt = k.paravirt if k.paravirt is not None else self.spec.technique == "pv"
                kwargs: dict[str, Any] = {"paravirt": paravirt}
                if k.timer_interval is not None:
                    kwargs["timer_interval"] = k.timer_interval
                self._image = build_teachos(list(k.programs), **kwargs)
            elif k.kind == "elf":
                from virtlevels.machine.elf.loader import load_elf_file

                self._image = load_elf_file(str(k.path))
            else:  # pragma: no cover - the python kernel has no image
                raise VirtlevelsError("the Python kernel is not an image")
        return self._image  # type: ignore[no-any-return]

    def _disk_backing(self) -> Any:
        spec = self.spec
        if not spec.wants_block:
            return None
        if spec.disk is not None and spec.disk.path is not None:
            return spec.disk.path
        if self._disk is None:  # a blank disk lives as long as the domain (across stop/start)
            size = spec.disk.size if spec.disk is not None and spec.disk.size else DEFAULT_DISK_SIZE
            self._disk = bytearray(size)
        return self._disk

    def _create_vm(self, hypervisor: Hypervisor | None = None) -> VirtualMachine:
        """A VM for this spec on ``hypervisor`` (default: the domain's), with the guest clock."""
        hv = hypervisor or self.hypervisor
        spec = self.spec
        disk = self._disk_backing()
        vm = hv.create_vm(
            spec.technique,
            ram_size=spec.memory,
            vcpus=spec.vcpus,
            name=spec.name,
            profile=spec.profile,
            isa_extensions=spec.isa_extensions,
            disk=disk,
        )
        if vm.clint is not None:
            vm.clint.attach(_GuestClock(vm.clint._host, self))
        if spec.disk is not None and spec.disk.readonly:
            from virtlevels.machine.devices.block import BlockDevice

            for _base, dev in vm.devices.values():
                if isinstance(dev, BlockDevice):
                    dev.readonly = True
        return vm

    def _free_vm(self, vm: VirtualMachine, hypervisor: Hypervisor | None = None) -> None:
        for _base, dev in list(vm.devices.values()):
            close = getattr(dev, "close", None)
            if callable(close):
                close()
        (hypervisor or self.hypervisor).destroy_vm(vm)

    def start(self) -> None:
        """Create the VM (allocate its RAM) and boot the kernel; the guest runs with :meth:`run`."""
        self.lifecycle.check("start")
        vm = self._create_vm()
        try:
            self.time_shift = self.world.now  # a new guest's time starts at 0, as a new machine's
            self.paused_at = None
            for vcpu in vm.harts:
                vcpu.cycle_offset -= self.time_shift
            self._resync_clock(vm)
            if self.spec.kernel.kind == "python-kernel":
                from virtlevels.kernel.kernel import Kernel

                self.kernel = Kernel(self.world, machine=vm, hostname=self.spec.name)
            else:
                self._boot(vm)
        except BaseException:
            self.kernel = None
            self._free_vm(vm)
            raise
        self._started(vm)

    def _started(self, vm: VirtualMachine) -> None:
        """The domain runs ``vm`` (a fresh boot or a restore): the last run's results go."""
        self.vm = vm
        self.exit_code = None
        self.output = ""
        self.lifecycle.apply("start")

    def _boot(self, vm: VirtualMachine) -> None:
        """Load the kernel image the way the VM's technique boots guests."""
        image = self._image_for()
        if self.spec.kernel.kind == "teachos":
            from virtlevels.guests import boot_teachos

            boot_teachos(vm, image)
        else:
            vm.load(image)

    def _resync_clock(self, vm: VirtualMachine) -> None:
        """Re-arm the CLINT's timers at guest time after ``time_shift`` changed (callers move the
        vCPUs' ``cycle_offset`` themselves)."""
        if vm.clint is not None:
            vm.clint.restore(vm.clint.snapshot())  # re-arms its timer events at the guest's time

    def _release(self) -> None:
        vm = self.vm
        if vm is not None:
            self.output = vm.console_output()
            self.vm = None
            self.kernel = None
            self._free_vm(vm)
        self.paused_at = None

    def stop(self) -> None:
        """Power the guest off (libvirt's shutdown for a guest without ACPI: a hard stop); the
        domain stays defined and can be started again (a fresh boot)."""
        self.lifecycle.check("stop")
        self._release()
        self.lifecycle.apply("stop")

    shutdown = stop

    def destroy(self) -> None:
        """Stop if needed and forget the domain; a host made for it is removed too."""
        self.lifecycle.check("destroy")
        self._release()
        if self.owns_host:
            _drop_hypervisor(self.world, self.hypervisor)
        self.lifecycle.apply("destroy")

    # -- pause / resume -------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop running the guest; its clock stops too (it will not see the pause)."""
        self.lifecycle.check("pause")
        self.paused_at = self.world.now
        self.lifecycle.apply("pause")

    def resume(self) -> None:
        self.lifecycle.check("resume")
        self._unfreeze()
        self.lifecycle.apply("resume")

    def _unfreeze(self) -> None:
        if self.paused_at is None:
            return
        delta = self.world.now - self.paused_at
        self.paused_at = None
        self.time_shift += delta
        vm = self.vm
        if vm is not None:
            for vcpu in vm.harts:
                vcpu.cycle_offset -= delta
            self._resync_clock(vm)

    # -- running --------------------------------------------------------------------------------
    def _running_vm(self, verb: str) -> VirtualMachine:
        if self.lifecycle.state is not GuestState.RUNNING or self.vm is None:
            raise LifecycleError(f"domain {self.id}: cannot {verb} in state {self.lifecycle.state.value!r}")
        return self.vm

    def run(self, workload: int | None = None, *, cycles: int | None = None) -> RunResult:
        """Run the guest for ``workload`` guest instructions (None: until it stops by itself), or
        for about ``cycles`` World cycles (it stops at the first slice boundary past them).

        When the guest powers off (test finisher, SBI shutdown) the domain goes to ``stopped`` and
        keeps the exit code and console output (libvirt's "shut off")."""
        vm = self._running_vm("run")
        if self.kernel is not None:
            return self._run_kernel(workload, cycles)
        if cycles is None:
            result = vm.run(workload)
        else:
            result = self._run_cycles(vm, cycles, workload)
        if result.status in ("pass", "fail"):
            self.exit_code = result.exit_code
            self.lifecycle.apply("stop")
            self._release()
        return result

    def _run_cycles(self, vm: VirtualMachine, cycles: int, limit: int | None) -> RunResult:
        start_now = self.world.now
        insns = 0
        cats: dict[str, int] = {}
        traps: dict[str, int] = {}
        result: RunResult | None = None
        while True:
            elapsed = self.world.now - start_now
            left = cycles - elapsed
            if left <= 0 or (limit is not None and insns >= limit):
                break
            # A short probe first, then slices sized by the cycles per instruction seen so far
            # (emulation, exits and idle time make it technique- and guest-dependent).
            n = max(1, min(left, 64) if not insns else left * insns // max(1, elapsed))
            if limit is not None:
                n = min(n, limit - insns)
            t0 = self.world.now
            result = vm.run(n)
            insns += result.instructions
            for k, v in result.cycles_by_category.items():
                cats[k] = cats.get(k, 0) + v
            for k, v in result.traps.items():
                traps[k] = traps.get(k, 0) + v
            if result.status != "limit" or (result.instructions == 0 and self.world.now == t0):
                break
        return RunResult(
            status=result.status if result is not None else "limit",
            exit_code=result.exit_code if result is not None else None,
            instructions=insns,
            cycles=self.world.now - start_now,
            cycles_by_category=cats,
            instructions_by_class={},
            traps=traps,
            uart=vm.console_output(),
        )

    def _run_kernel(self, workload: int | None, cycles: int | None) -> RunResult:
        vm = self.vm
        assert vm is not None
        start = self.world.now
        until = None if cycles is None else start + cycles
        if workload is not None:
            until = start + workload if until is None else min(until, start + workload)
        self.kernel.run(until=until)
        return RunResult("limit", None, 0, self.world.now - start, {}, {}, {}, vm.console_output())

    @property
    def guest_now(self) -> int:
        """The guest's clock in cycles (World time minus what it did not live through)."""
        base = self.paused_at if self.paused_at is not None else self.world.now
        return base - self.time_shift

    def console_output(self) -> str:
        return self.vm.console_output() if self.vm is not None else self.output

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.id,
            "state": self.lifecycle.state.value,
            "technique": self.spec.technique,
            "mode": self.spec.mode,
            "vcpus": self.spec.vcpus,
            "memory": self.spec.memory,
            "hypervisor": self.hypervisor.name,
            "guest_cycles": self.guest_now if self.vm is not None else None,
            "exit_code": self.exit_code,
        }
        vm = self.vm
        if vm is not None:
            out["machine"] = vm.stats()
            out["touched_bytes"] = vm.guest_memory.touched_bytes
        return out

    # -- snapshot / restore ---------------------------------------------------------------------
    def _machine_state(self, vm: VirtualMachine) -> dict[str, Any]:
        """The VM's snapshot in guest time (independent of when it is taken)."""
        state = vm.snapshot()
        # A page that reads as zero is the same whether or not the host has allocated it (a
        # restore zeroes pages in place rather than freeing them): keep only non-zero pages.
        zero = bytes(1 << PAGE_SHIFT)
        state["memory"] = {k: v for k, v in state["memory"].items() if v != zero}
        shift = self.time_shift
        state["now"] = self.guest_now
        for hs in state["harts"]:
            hs["cycle_offset"] = int(hs["cycle_offset"]) + shift
        # The VMM's counters are the VM's too (a restored VM reports what the saved one did).
        state["vm"]["vstats"] = vm.vstats.state()
        return state

    def snapshot_state(self) -> dict[str, Any]:
        """The domain's state as plain data: ``{format, version, spec, machine}``."""
        if self.kernel is not None:
            raise LifecycleError(
                f"domain {self.id}: snapshot is not supported for the Python kernel "
                "(its state is Python objects, not machine state)"
            )
        vm = self.vm
        if vm is None or self.lifecycle.state not in (GuestState.RUNNING, GuestState.PAUSED):
            raise LifecycleError(f"domain {self.id}: cannot snapshot in state {self.lifecycle.state.value!r}")
        return {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "spec": self.spec.to_dict(),
            "machine": self._machine_state(vm),
        }

    def snapshot(self) -> bytes:
        """The whole guest (vCPUs, RAM, devices, VMM state) as deterministic bytes."""
        return encode(self.snapshot_state())

    def _check_snapshot(self, data: bytes | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(data, bytes | bytearray):
            try:
                state = _decode_domain(bytes(data))
            except ConfigError as exc:
                raise ConfigError(f"domain {self.id}: not a domain snapshot ({exc})") from None
        else:
            state = copy.deepcopy(dict(data))
        if state.get("format") != SNAPSHOT_FORMAT or state.get("version") != SNAPSHOT_VERSION:
            raise ConfigError(
                f"domain {self.id}: not a version-{SNAPSHOT_VERSION} domain snapshot "
                f"(format={state.get('format')!r})"
            )
        mine, theirs = self.spec.to_dict(), dict(state["spec"])
        for key in ("vcpus", "memory", "technique", "mode", "devices", "isa_extensions", "profile"):
            if mine.get(key) != theirs.get(key):
                raise ConfigError(
                    f"domain {self.id}: snapshot spec.{key} is {theirs.get(key)!r}, "
                    f"the domain has {mine.get(key)!r}"
                )
        if ("disk" in mine) != ("disk" in theirs):
            raise ConfigError(f"domain {self.id}: the snapshot and the domain differ in having a disk")
        return state

    def restore(self, data: bytes | Mapping[str, Any]) -> None:
        """Put the guest in the state ``data`` (from :meth:`snapshot`) describes.

        Running or paused: the VM is rewritten in place and keeps its lifecycle state. Defined or
        stopped: a VM is created for it and the domain is running (``virsh restore``). The guest's
        clock continues from the snapshot's. On any error nothing has changed."""
        if self.kernel is not None:
            raise LifecycleError(f"domain {self.id}: restore is not supported for the Python kernel")
        state = self._check_snapshot(data)
        st = self.lifecycle.state
        if st in (GuestState.RUNNING, GuestState.PAUSED):
            assert self.vm is not None
            undo = self._machine_state(self.vm)  # the state to put back if the restore fails
            try:
                self._apply_machine_state(self.vm, state["machine"])
            except BaseException:
                self._apply_machine_state(self.vm, undo)
                raise
            return
        self.lifecycle.check("start")
        vm = self._create_vm()
        try:
            # Booting first gives the VM what loading adds (the HTIF of a bare-metal ELF, the
            # technique's view of the image); the snapshot then overwrites all guest state.
            self._boot(vm)
            self._apply_machine_state(vm, state["machine"])
        except BaseException:
            self._free_vm(vm)
            raise
        self._started(vm)

    def _apply_machine_state(self, vm: VirtualMachine, mstate: dict[str, Any]) -> None:
        """Load guest-time machine state into ``vm``, choosing the shift that continues its clock."""
        state = copy.copy(mstate)
        ref = self.paused_at if self.paused_at is not None else self.world.now
        old_shift = self.time_shift
        self.time_shift = ref - int(state["now"])
        try:
            state["now"] = self.world.now  # the World's clock never moves for a restore
            state["harts"] = [
                {**hs, "cycle_offset": int(hs["cycle_offset"]) - self.time_shift} for hs in state["harts"]
            ]
            state["memory"] = {int(k): v for k, v in state["memory"].items()}
            vm.restore(state)
        except BaseException:
            self.time_shift = old_shift
            raise
        vs = state.get("vm", {}).get("vstats")
        if vs is not None:
            vm.vstats.load_state(vs)

    @classmethod
    def from_snapshot(
        cls, world: World, data: bytes, *, hypervisor: Hypervisor | None = None, host: Any = None
    ) -> Domain:
        """Define a domain from the spec inside a snapshot and restore it (``virsh restore FILE``)."""
        state = _decode_domain(data)
        if state.get("format") != SNAPSHOT_FORMAT:
            raise ConfigError(f"not a domain snapshot (format={state.get('format')!r})")
        spec = DomainSpec.from_dict(state["spec"], source="<snapshot>")
        dom = cls.from_spec(world, spec, hypervisor=hypervisor, host=host)
        try:
            dom.restore(data)
        except BaseException:
            dom.destroy()
            raise
        return dom


def _decode_domain(data: bytes) -> dict[str, Any]:
    # machine.snapshot.decode expects a machine snapshot at top level; a domain snapshot nests it.
    inner = decode_plain(data)
    machine = inner.get("machine")
    if isinstance(machine, dict) and isinstance(machine.get("memory"), dict):
        machine["memory"] = {int(k): v for k, v in machine["memory"].items()}
    return inner


def decode_plain(data: bytes) -> dict[str, Any]:
    """Bytes from :func:`virtlevels.machine.snapshot.encode` back to plain data (any layout)."""
    import zlib

    from virtlevels.machine import snapshot as snap

    try:
        raw = json.loads(zlib.decompress(data))
    except (zlib.error, ValueError) as exc:
        raise ConfigError(f"not a snapshot: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError("not a snapshot: the top level is not an object")
    return snap._unplain(raw)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------------
# Graph clean-up for hosts a domain made for itself
# --------------------------------------------------------------------------------------------------


def host_machine_for(world: World, spec: DomainSpec, name: str | None = None) -> Any:
    """A physical machine sized for ``spec``'s guest (a domain's own host, a migration target)."""
    from virtlevels.machine.machine import PhysicalMachine

    return PhysicalMachine(
        num_harts=spec.vcpus,
        ram_size=spec.memory + 16 * MIB,  # the VM + the hypervisor's reserve and frames
        profile=spec.profile or "default",
        world=world,
        hypervisor=spec.technique == "hw",  # the H extension, for hardware assistance
        name=name or f"{spec.name}-host",
    )


def _drop_machine(world: World, machine: Any) -> None:
    from virtlevels_hypervisor.hypervisor import drop_machine_nodes

    drop_machine_nodes(world, machine)


def _drop_hypervisor(world: World, hv: Hypervisor) -> None:
    hv.close()
    _drop_machine(world, hv.host)


__all__ = [
    "Domain",
    "DomainSpec",
    "DiskSpec",
    "KernelSpec",
    "SPEC_SCHEMA",
    "load_spec",
    "parse_size",
    "spec_from",
]
