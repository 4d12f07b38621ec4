"""Seccomp profiles: Docker's JSON and the OCI ``linux.seccomp`` object, compiled to classic BPF.

The semantics are Docker's (moby profiles/seccomp: ``setupSeccomp``) and runc's
(libcontainer/seccomp) over libseccomp's:

- ``defaultAction`` (+ ``defaultErrnoRet``, EPERM if absent) for every call no rule matches;
- ``archMap`` / ``architectures`` (not both); this machine has one ABI, riscv32, so the filter
  accepts only ``arch == AUDIT_ARCH_RISCV32`` and kills anything else (libseccomp's bad-arch action);
- ``syscalls[]``: ``names`` (or the older ``name``, not both), ``action``, ``errnoRet``, ``args``
  (``index`` 0..5, ``value``, ``valueTwo``, ``op`` SCMP_CMP_NE/LT/LE/EQ/GE/GT/MASKED_EQ; all the
  conditions of a rule must hold, except that when one index appears twice runc adds each
  condition as its own rule, so any may hold), ``includes``/``excludes`` with ``caps`` (against the
  bounding set), ``arches`` (Go names: ``riscv32`` here) and ``minKernel``;
- a rule whose action is the default action is dropped (runc does the same: libseccomp refuses it);
- names the riscv32 table does not have are skipped, as Docker skips names libseccomp does not
  know; a malformed profile is a ConfigError naming the JSON path of the bad field.

The generated program is libseccomp's linear form: check the arch, load nr, one ``jeq`` per system
call in profile order, argument checks on the low 32-bit word (the upper word of an argument is
always 0 on a 32-bit kernel, so comparisons with wider values are decided at compile time), then
the default action.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from virtlevels.errors import ConfigError
from virtlevels.kernel.caps import CAP_BY_NAME
from virtlevels_sandbox import bpf, rv32names
from virtlevels_sandbox.bpf import (
    BPF_ABS,
    BPF_ALU,
    BPF_AND,
    BPF_JA,
    BPF_JEQ,
    BPF_JGE,
    BPF_JGT,
    BPF_JMP,
    BPF_K,
    BPF_LD,
    BPF_RET,
    BPF_W,
    Insn,
    jump,
    stmt,
)
from virtlevels_sandbox.seccomp import (
    AUDIT_ARCH_RISCV32,
    SECCOMP_MODE_FILTER,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRACE,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
    SeccompFilter,
    SeccompState,
    describe_action,
    run_filters,
)

PROFILES_DIR = Path(__file__).parent / "profiles"
#: Profiles shipped as package data (Apache-2.0, from moby/profiles; see profiles/NOTICE).
SHIPPED = {"docker-default": "docker-default.json", "docker-example": "docker-example.json"}
#: The arch name Docker's ``includes``/``excludes`` compare with (runtime.GOARCH for this machine).
NATIVE_ARCH = "riscv32"
SCMP_ARCH_NATIVE = "SCMP_ARCH_RISCV32"
KNOWN_ARCHES = frozenset(
    {
        "SCMP_ARCH_NATIVE",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_PARISC",
        "SCMP_ARCH_PARISC64",
        "SCMP_ARCH_RISCV32",
        "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_M68K",
        "SCMP_ARCH_SH",
        "SCMP_ARCH_SHEB",
    }
)
#: Docker's default capability set (moby oci/caps/defaults.go), the bounding set of a container.
DOCKER_DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
KERNEL_VERSION = (6, 6)  # the simulated kernel's uname release, 6.6.0-virtlevels

ACTIONS = {
    "SCMP_ACT_ALLOW": SECCOMP_RET_ALLOW,
    "SCMP_ACT_ERRNO": SECCOMP_RET_ERRNO,
    "SCMP_ACT_KILL": SECCOMP_RET_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": SECCOMP_RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": SECCOMP_RET_KILL_PROCESS,
    "SCMP_ACT_TRAP": SECCOMP_RET_TRAP,
    "SCMP_ACT_TRACE": SECCOMP_RET_TRACE,
    "SCMP_ACT_LOG": SECCOMP_RET_LOG,
    "SCMP_ACT_NOTIFY": SECCOMP_RET_USER_NOTIF,
}
OPS = (
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)
EPERM = 1
M32 = 0xFFFFFFFF
U64 = (1 << 64) - 1


@attrs.frozen
class ArgCond:
    """One argument comparison (struct scmp_arg_cmp): ``op``, ``value`` and (MASKED_EQ) ``value_two``."""

    index: int
    value: int
    op: str
    value_two: int = 0

    def __str__(self) -> str:
        sym = {
            "SCMP_CMP_NE": "!=",
            "SCMP_CMP_LT": "<",
            "SCMP_CMP_LE": "<=",
            "SCMP_CMP_EQ": "==",
            "SCMP_CMP_GE": ">=",
            "SCMP_CMP_GT": ">",
        }.get(self.op)
        if sym is None:
            return f"(arg{self.index} & {self.value:#x}) == {self.value_two:#x}"
        return f"arg{self.index} {sym} {self.value:#x}"

    def holds(self, arg: int) -> bool:
        a = arg & U64
        v = self.value
        return {
            "SCMP_CMP_NE": a != v,
            "SCMP_CMP_LT": a < v,
            "SCMP_CMP_LE": a <= v,
            "SCMP_CMP_EQ": a == v,
            "SCMP_CMP_GE": a >= v,
            "SCMP_CMP_GT": a > v,
            "SCMP_CMP_MASKED_EQ": (a & v) == self.value_two,
        }[self.op]


@attrs.frozen
class Rule:
    """A rule as applied: the action for ``names`` when every condition holds."""

    where: str  # JSON path of the syscalls[] entry
    names: tuple[str, ...]
    action: int
    conds: tuple[ArgCond, ...] = ()


@attrs.frozen
class Skipped:
    """A name or rule the compiler left out, and why (for ``sandbox explain``)."""

    where: str
    names: tuple[str, ...]
    reason: str


@attrs.frozen(eq=False)
class CompiledProfile:
    source: str
    default: int
    program: tuple[Insn, ...]
    rules: tuple[Rule, ...]
    skipped: tuple[Skipped, ...]
    caps: frozenset[str]

    def decide(self, nr: int, args: Sequence[int] = (), arch: int = AUDIT_ARCH_RISCV32) -> int:
        """The filter's return value for one call (runs the BPF program)."""
        return bpf.run(self.program, _data(nr, args, arch))[0]

    def state(self) -> SeccompState:
        return SeccompState(SECCOMP_MODE_FILTER, (SeccompFilter(self.program),))

    def explain(self) -> list[tuple[str, int, str, str]]:
        """(name, nr, verdict, why) for every riscv32 system call, in number order."""
        rows = []
        for nr in sorted(rv32names.NAMES):
            name = rv32names.NAMES[nr]
            aliases = {n for n, v in rv32names.SYSCALLS.items() if v == nr}
            mine = [r for r in self.rules if aliases & set(r.names)]
            cond = [r for r in mine if r.conds]
            plain = next((r for r in mine if not r.conds), None)
            fallback = plain.action if plain is not None else self.default
            why_fb = f"rule {plain.where}" if plain is not None else "default action"
            if cond:
                parts = [
                    f"{describe_action(r.action)} if {' and '.join(map(str, r.conds))} ({r.where})"
                    for r in cond
                ]
                verdict = _verdict(fallback) + " unless"
                why = "; ".join(parts) + f"; otherwise {describe_action(fallback)} ({why_fb})"
            else:
                verdict = _verdict(fallback)
                why = f"{describe_action(fallback)} ({why_fb})"
            notes = [
                s.reason for s in self.skipped if aliases & set(s.names) and not s.reason.startswith("no ")
            ]
            if notes:
                why += " [" + "; ".join(notes) + "]"
            rows.append((name, nr, verdict, why))
        return rows


def _verdict(ret: int) -> str:
    act = ret & 0xFFFF0000
    if act in (SECCOMP_RET_ALLOW, SECCOMP_RET_LOG):
        return "allowed"
    if act in (SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_TRAP):
        return "killed" if act != SECCOMP_RET_TRAP else "trapped"
    return f"denied ({describe_action(ret)})"


def _data(nr: int, args: Sequence[int], arch: int) -> bytes:
    from virtlevels_sandbox.seccomp import seccomp_data

    return seccomp_data(nr, args, 0, arch)


# -- loading -------------------------------------------------------------------------------------------
def load_json(name_or_path: str | Path) -> tuple[dict[str, Any], str]:
    """A shipped profile by name (``docker-default``) or a JSON file: (document, source)."""
    if isinstance(name_or_path, str) and name_or_path in SHIPPED:
        path = PROFILES_DIR / SHIPPED[name_or_path]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(
                f"seccomp profile {str(name_or_path)!r}: no such file "
                f"(shipped profiles: {', '.join(sorted(SHIPPED))})"
            )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: $: a seccomp profile is a JSON object")
    return doc, str(path)


def oci_to_dict(seccomp: Any) -> dict[str, Any]:
    """The containers plugin's parsed ``linux.seccomp`` (attrs) back to the OCI JSON shape."""
    if isinstance(seccomp, Mapping):
        return dict(seccomp)
    doc: dict[str, Any] = {"defaultAction": seccomp.default_action}
    if seccomp.default_errno_ret is not None:
        doc["defaultErrnoRet"] = seccomp.default_errno_ret
    if seccomp.architectures:
        doc["architectures"] = list(seccomp.architectures)
    if seccomp.flags:
        doc["flags"] = list(seccomp.flags)
    calls = []
    for s in seccomp.syscalls:
        c: dict[str, Any] = {"names": list(s.names), "action": s.action}
        if s.errno_ret is not None:
            c["errnoRet"] = s.errno_ret
        if s.args:
            c["args"] = [
                {"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op} for a in s.args
            ]
        calls.append(c)
    doc["syscalls"] = calls
    return doc


# -- compiling -----------------------------------------------------------------------------------------
def _caps(caps: Iterable[str] | int | None) -> frozenset[str]:
    if caps is None:
        return frozenset(DOCKER_DEFAULT_CAPS)
    if isinstance(caps, int):
        return frozenset(n for n, i in CAP_BY_NAME.items() if caps >> i & 1)
    out = set()
    for c in caps:
        key = c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper()
        if key not in CAP_BY_NAME:
            raise ConfigError(f"unknown capability {c!r}")
        out.add(key)
    return frozenset(out)


class _Doc:
    """Typed reads from the JSON document, each error naming its path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path}: {msg}")

    def uint(self, value: Any, path: str, limit: int = U64) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise self.fail(path, f"must be an integer 0..{limit}, got {value!r}")
        return value

    def strs(self, value: Any, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(path, f"must be a list of strings, got {value!r}")
        return tuple(value)

    def obj(self, value: Any, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(path, f"must be an object, got {value!r}")
        return value

    def action(self, name: Any, errno: Any, path: str, errno_path: str) -> int:
        if name not in ACTIONS:
            raise self.fail(path, f"unknown action {name!r} (known: {', '.join(ACTIONS)})")
        base = ACTIONS[name]
        if errno is not None:
            if base not in (SECCOMP_RET_ERRNO, SECCOMP_RET_TRACE):
                raise self.fail(
                    errno_path, f"only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not {name}"
                )
            return base | self.uint(errno, errno_path, 0xFFFF)
        if base in (SECCOMP_RET_ERRNO, SECCOMP_RET_TRACE):
            return base | EPERM  # runc: an ERRNO/TRACE without errnoRet returns EPERM
        return base


def _version(text: Any, d: _Doc, path: str) -> tuple[int, ...]:
    if not isinstance(text, str) or not re.fullmatch(r"\d+(\.\d+){0,2}", text):
        raise d.fail(path, f'must be a kernel version like "4.8", got {text!r}')
    return tuple(int(p) for p in text.split("."))


def compile_profile(
    doc: Mapping[str, Any],
    *,
    caps: Iterable[str] | int | None = None,
    source: str = "<profile>",
    arch: str = NATIVE_ARCH,
    kernel_version: tuple[int, ...] = KERNEL_VERSION,
) -> CompiledProfile:
    """Compile a Docker or OCI seccomp profile for riscv32. ``caps``: the bounding set (names or mask;
    Docker's default set if None), which ``includes``/``excludes`` ``caps`` are checked against."""
    d = _Doc(source)
    capset = _caps(caps)
    if not isinstance(doc, Mapping):
        raise d.fail("$", "a seccomp profile is a JSON object")
    known_top = {
        "defaultAction",
        "defaultErrnoRet",
        "archMap",
        "architectures",
        "syscalls",
        "flags",
        "listenerPath",
        "listenerMetadata",
    }
    for key in doc:
        if key not in known_top:
            raise d.fail(f"$.{key}", f"unknown field (known: {', '.join(sorted(known_top))})")
    if "defaultAction" not in doc:
        raise d.fail("$.defaultAction", "missing")
    default = d.action(
        doc["defaultAction"], doc.get("defaultErrnoRet"), "$.defaultAction", "$.defaultErrnoRet"
    )
    if doc.get("archMap") is not None and doc.get("architectures") is not None:
        raise d.fail("$.architectures", "use either 'architectures' or 'archMap', not both")
    for i, a in enumerate(d.strs(doc.get("architectures"), "$.architectures")):
        if a not in KNOWN_ARCHES:
            raise d.fail(f"$.architectures[{i}]", f"unknown architecture {a!r}")
    arch_map = doc.get("archMap")
    if arch_map is not None:
        if not isinstance(arch_map, list):
            raise d.fail("$.archMap", "must be a list")
        for i, entry in enumerate(arch_map):
            e = d.obj(entry, f"$.archMap[{i}]")
            if e.get("architecture") not in KNOWN_ARCHES:
                raise d.fail(
                    f"$.archMap[{i}].architecture", f"unknown architecture {e.get('architecture')!r}"
                )
            for j, sub in enumerate(d.strs(e.get("subArchitectures"), f"$.archMap[{i}].subArchitectures")):
                if sub not in KNOWN_ARCHES:
                    raise d.fail(f"$.archMap[{i}].subArchitectures[{j}]", f"unknown architecture {sub!r}")
    for i, flag in enumerate(d.strs(doc.get("flags"), "$.flags")):
        if flag not in (
            "SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        ):
            raise d.fail(f"$.flags[{i}]", f"unknown flag {flag!r}")
    if doc.get("listenerPath"):
        raise d.fail("$.listenerPath", "seccomp user notification is not modelled")
    calls = doc.get("syscalls") or []
    if not isinstance(calls, list):
        raise d.fail("$.syscalls", "must be a list")
    rules: list[Rule] = []
    skipped: list[Skipped] = []
    for i, raw in enumerate(calls):
        where = f"$.syscalls[{i}]"
        call = d.obj(raw, where)
        known = {"names", "name", "action", "errnoRet", "args", "includes", "excludes", "comment"}
        for key in call:
            if key not in known:
                raise d.fail(f"{where}.{key}", f"unknown field (known: {', '.join(sorted(known))})")
        if "name" in call and "names" in call:
            raise d.fail(f"{where}.names", "use either 'name' or 'names', not both")
        if "name" in call:
            if not isinstance(call["name"], str):
                raise d.fail(f"{where}.name", f"must be a string, got {call['name']!r}")
            names: tuple[str, ...] = (call["name"],)
        else:
            names = d.strs(call.get("names"), f"{where}.names")
        if not names:
            raise d.fail(f"{where}.names", "a rule names at least one system call")
        if "action" not in call:
            raise d.fail(f"{where}.action", "missing")
        action = d.action(call["action"], call.get("errnoRet"), f"{where}.action", f"{where}.errnoRet")
        conds = []
        args = call.get("args") or []
        if not isinstance(args, list):
            raise d.fail(f"{where}.args", "must be a list")
        for j, a in enumerate(args):
            ap = f"{where}.args[{j}]"
            ao = d.obj(a, ap)
            idx = d.uint(ao.get("index"), f"{ap}.index", 5)
            op = ao.get("op")
            if op not in OPS:
                raise d.fail(f"{ap}.op", f"unknown comparison {op!r} (known: {', '.join(OPS)})")
            conds.append(
                ArgCond(
                    idx,
                    d.uint(ao.get("value", 0), f"{ap}.value"),
                    op,
                    d.uint(ao.get("valueTwo", 0), f"{ap}.valueTwo"),
                )
            )
        inc = d.obj(call.get("includes"), f"{where}.includes")
        exc = d.obj(call.get("excludes"), f"{where}.excludes")
        reason = _filter_reason(d, where, inc, exc, capset, arch, kernel_version)
        if reason is not None:
            skipped.append(Skipped(where, names, reason))
            continue
        present = tuple(n for n in names if rv32names.lookup(n) is not None)
        missing = tuple(n for n in names if rv32names.lookup(n) is None)
        if missing:
            skipped.append(Skipped(where, missing, f"no such system call on {arch}"))
        if not present:
            continue
        if action == default:
            skipped.append(Skipped(where, present, "same action as the default (dropped, as runc does)"))
            continue
        idxs = [c.index for c in conds]
        if len(set(idxs)) != len(idxs):
            # runc: libseccomp cannot AND two conditions on one argument, so each becomes its own rule.
            for c in conds:
                rules.append(Rule(where, present, action, (c,)))
        else:
            rules.append(Rule(where, present, action, tuple(conds)))
    program = _codegen(rules, default)
    try:
        bpf.check_seccomp(program)
    except bpf.BpfError as exc:
        raise ConfigError(
            f"{source}: the compiled filter is rejected by the kernel's checker: {exc}"
        ) from None
    return CompiledProfile(source, default, program, tuple(rules), tuple(skipped), capset)


def _filter_reason(
    d: _Doc,
    where: str,
    inc: Mapping[str, Any],
    exc: Mapping[str, Any],
    caps: frozenset[str],
    arch: str,
    kver: tuple[int, ...],
) -> str | None:
    """Why Docker would leave this rule out (moby seccomp_linux.go), or None."""
    for key in inc:
        if key not in ("caps", "arches", "minKernel"):
            raise d.fail(f"{where}.includes.{key}", "unknown field (known: arches, caps, minKernel)")
    for key in exc:
        if key not in ("caps", "arches", "minKernel"):
            raise d.fail(f"{where}.excludes.{key}", "unknown field (known: arches, caps, minKernel)")
    ex_arches = d.strs(exc.get("arches"), f"{where}.excludes.arches")
    if arch in ex_arches:
        return f"excluded on {arch}"
    for c in d.strs(exc.get("caps"), f"{where}.excludes.caps"):
        if c in caps:
            return f"excluded: {c} is in the bounding set"
    if exc.get("minKernel") is not None and kver >= _version(
        exc["minKernel"], d, f"{where}.excludes.minKernel"
    ):
        return f"excluded on kernel >= {exc['minKernel']}"
    in_arches = d.strs(inc.get("arches"), f"{where}.includes.arches")
    if in_arches and arch not in in_arches:
        return f"only on {', '.join(in_arches)}"
    for c in d.strs(inc.get("caps"), f"{where}.includes.caps"):
        if c not in caps:
            return f"needs {c}"
    if inc.get("minKernel") is not None and kver < _version(
        inc["minKernel"], d, f"{where}.includes.minKernel"
    ):
        return f"needs kernel >= {inc['minKernel']}"
    return None


# -- code generation -------------------------------------------------------------------------------------
def _cond_code(c: ArgCond, rest: int) -> list[Insn] | bool:
    """Instructions testing ``c`` that fall through when it holds and jump ``rest`` ahead when not;
    True/False when the comparison is decided at compile time (the argument's upper word is 0)."""
    v, op = c.value, c.op
    lo = stmt(BPF_LD | BPF_W | BPF_ABS, 16 + 8 * c.index)  # args[i], low word (little-endian)
    if op == "SCMP_CMP_MASKED_EQ":
        mask, datum = v, c.value_two
        if datum >> 32:
            return False  # (0 & mask_hi) can never equal a non-zero upper word
        return [
            lo,
            stmt(BPF_ALU | BPF_AND | BPF_K, mask & M32),
            jump(BPF_JMP | BPF_JEQ | BPF_K, datum, 0, rest),
        ]
    if v > M32:
        # A 32-bit argument is below any value past 2**32 - 1.
        return op in ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE")
    table = {
        "SCMP_CMP_EQ": (BPF_JEQ, 0, rest),
        "SCMP_CMP_NE": (BPF_JEQ, rest, 0),
        "SCMP_CMP_GT": (BPF_JGT, 0, rest),
        "SCMP_CMP_GE": (BPF_JGE, 0, rest),
        "SCMP_CMP_LT": (BPF_JGE, rest, 0),
        "SCMP_CMP_LE": (BPF_JGT, rest, 0),
    }
    jop, jt, jf = table[op]
    return [lo, jump(BPF_JMP | jop | BPF_K, v, jt, jf)]


def _rule_code(rule: Rule) -> list[Insn] | None:
    code: list[Insn] = [stmt(BPF_RET | BPF_K, rule.action)]
    for c in reversed(rule.conds):
        # The fail target is the first instruction after this rule: skip what follows the jump.
        probe = _cond_code(c, 0)
        if probe is True:
            continue
        if probe is False:
            return None  # never matches
        assert isinstance(probe, list)
        got = _cond_code(c, len(code))
        assert isinstance(got, list)
        code = got + code
    return code


def _codegen(rules: Sequence[Rule], default: int) -> tuple[Insn, ...]:
    groups: dict[int, list[Rule]] = {}
    for r in rules:
        for n in r.names:
            groups.setdefault(rv32names.SYSCALLS[n], []).append(r)
    prog: list[Insn] = [
        stmt(BPF_LD | BPF_W | BPF_ABS, 4),  # arch
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_RISCV32, 1, 0),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),  # any other ABI: libseccomp's bad-arch kill
        stmt(BPF_LD | BPF_W | BPF_ABS, 0),  # nr
    ]
    for nr, group in groups.items():
        body: list[Insn] = []
        for r in group:
            if r.conds:
                rc = _rule_code(r)
                if rc is not None:
                    body += rc
        plain = next((r for r in group if not r.conds), None)
        body.append(stmt(BPF_RET | BPF_K, plain.action if plain is not None else default))
        if len(body) <= 255:
            prog.append(jump(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, len(body)))
        else:
            prog += [jump(BPF_JMP | BPF_JEQ | BPF_K, nr, 1, 0), stmt(BPF_JMP | BPF_JA, len(body))]
        prog += body
    prog.append(stmt(BPF_RET | BPF_K, default))
    return tuple(prog)


def one_rule_profile(name: str, action: str = "SCMP_ACT_ERRNO", errno: int | None = EPERM) -> dict[str, Any]:
    """A profile that allows everything but one call (for benchmarks and examples)."""
    rule: dict[str, Any] = {"names": [name], "action": action}
    if errno is not None and action == "SCMP_ACT_ERRNO":
        rule["errnoRet"] = errno
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}


def evaluate(profile: CompiledProfile, nr: int, args: Sequence[int] = ()) -> int:
    """The verdict as the kernel computes it (through :func:`run_filters`)."""
    return run_filters(profile.state(), nr, args).ret
