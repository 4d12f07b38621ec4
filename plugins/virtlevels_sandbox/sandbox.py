"""A sandboxed process: capabilities, rlimits, no_new_privs, Landlock-like filesystem rules and a
seccomp profile, applied by the process itself just before it execs its program (as runc's init,
bubblewrap and Firejail do).

:class:`SandboxSpec` says what to apply; :func:`launcher` is the scripted program that applies it
through the ordinary system calls (prlimit64, landlock_create_ruleset/add_rule, PR_CAPBSET_DROP,
capset, PR_SET_NO_NEW_PRIVS, landlock_restrict_self, seccomp) and then execs;
:func:`spawn_sandboxed` starts one on a kernel.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import attrs

from virtlevels.errors import ConfigError
from virtlevels.kernel import scripted as sc
from virtlevels.kernel.caps import ALL_CAPS, CAP_BY_NAME, CAP_LAST_CAP
from virtlevels.kernel.process import RLIM_INFINITY, RLIMIT_NAMES
from virtlevels.kernel.vfs.constants import AT_FDCWD, O_CLOEXEC, O_RDONLY, S_IFDIR, S_IFMT
from virtlevels_sandbox import landlock as ll
from virtlevels_sandbox import profile as prof
from virtlevels_sandbox import seccomp as sec

PR_SET_NO_NEW_PRIVS = 38
Gen = Generator[Any, Any, Any]


def parse_cap(name: str) -> str:
    key = name.upper()
    if not key.startswith("CAP_"):
        key = "CAP_" + key
    if key not in CAP_BY_NAME:
        raise ConfigError(f"unknown capability {name!r} (e.g. CAP_SYS_ADMIN, NET_ADMIN)")
    return key


def parse_rlimit(text: str) -> tuple[str, int, int]:
    """``nofile=16`` or ``nofile=16:32`` (soft:hard; ``unlimited`` allowed) -> (name, soft, hard)."""
    name, sep, value = text.partition("=")
    name = name.strip().lower().removeprefix("rlimit_")
    if not sep or name not in RLIMIT_NAMES:
        raise ConfigError(
            f"--rlimit {text!r}: expected NAME=SOFT[:HARD] with NAME one of {', '.join(RLIMIT_NAMES)}"
        )
    soft_s, _, hard_s = value.partition(":")

    def num(s: str) -> int:
        if s in ("unlimited", "infinity", "-1"):
            return RLIM_INFINITY
        try:
            v = int(s, 0)
        except ValueError:
            raise ConfigError(f"--rlimit {text!r}: {s!r} is not a number") from None
        if v < 0:
            raise ConfigError(f"--rlimit {text!r}: negative limit")
        return v

    soft = num(soft_s)
    hard = num(hard_s) if hard_s else soft
    if soft > hard:
        raise ConfigError(f"--rlimit {text!r}: soft limit above the hard limit")
    return name, soft, hard


@attrs.frozen
class SandboxSpec:
    """What a sandbox applies. ``profile``: ``docker-default``, a JSON path, a profile dict, or None
    (unconfined). Capabilities start from Docker's default set, then ``cap_drop`` (``ALL``) and
    ``cap_add`` apply, as ``docker run --cap-drop/--cap-add`` do.

    ``allow_read``/``allow_write``/``allow_exec``: Landlock-like filesystem allow lists (paths in
    the kernel's filesystem; a directory covers everything beneath it). With any of them set,
    every other filesystem access is denied with EACCES (see :mod:`virtlevels_sandbox.landlock`);
    the program itself may always be executed."""

    profile: str | dict[str, Any] | None = "docker-default"
    cap_drop: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    rlimits: tuple[tuple[str, int, int], ...] = ()
    no_new_privs: bool = True
    env: tuple[str, ...] = ("PATH=/bin",)
    allow_read: tuple[str, ...] = ()
    allow_write: tuple[str, ...] = ()
    allow_exec: tuple[str, ...] = ()

    @property
    def restricts_fs(self) -> bool:
        return bool(self.allow_read or self.allow_write or self.allow_exec)

    def fs_rules(self, program: str | None = None) -> list[tuple[str, int]]:
        """(path, Landlock rights) for the allow lists (and ``program``'s execution), merged."""
        if not self.restricts_fs:
            return []
        rules = [(p, ll.ALLOW_READ) for p in self.allow_read]
        rules += [(p, ll.ALLOW_WRITE) for p in self.allow_write]
        rules += [(p, ll.ALLOW_EXEC) for p in self.allow_exec]
        if program is not None:
            rules.append((program, ll.ALLOW_EXEC))
        return ll.merge_rules(rules)

    def capabilities(self) -> int:
        caps = {CAP_BY_NAME[c] for c in prof.DOCKER_DEFAULT_CAPS}
        for c in self.cap_drop:
            if c.upper() == "ALL":
                caps.clear()
            else:
                caps.discard(CAP_BY_NAME[parse_cap(c)])
        for c in self.cap_add:
            if c.upper() == "ALL":
                caps = set(range(CAP_LAST_CAP + 1))
            else:
                caps.add(CAP_BY_NAME[parse_cap(c)])
        mask = 0
        for bit in caps:
            mask |= 1 << bit
        return mask

    def compile(self) -> prof.CompiledProfile | None:
        if self.profile is None or self.profile == "unconfined":
            return None
        if isinstance(self.profile, dict):
            return prof.compile_profile(self.profile, caps=self.capabilities(), source="<profile>")
        doc, source = prof.load_json(self.profile)
        return prof.compile_profile(doc, caps=self.capabilities(), source=source)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SandboxSpec:
        known = {"profile", "cap_drop", "cap_add", "rlimits", "no_new_privs", "env", "allow_read",
                 "allow_write", "allow_exec"}  # fmt: skip
        for key in d:
            if key not in known:
                raise ConfigError(f"sandbox spec: unknown field {key!r} (known: {', '.join(sorted(known))})")
        rl = tuple(parse_rlimit(r) if isinstance(r, str) else tuple(r) for r in d.get("rlimits", ()))
        return cls(
            d.get("profile", "docker-default"),
            tuple(d.get("cap_drop", ())),
            tuple(d.get("cap_add", ())),
            rl,
            bool(d.get("no_new_privs", True)),
            tuple(d.get("env", ("PATH=/bin",))),
            *(_paths(d, key) for key in ("allow_read", "allow_write", "allow_exec")),
        )  # type: ignore[arg-type]


def _paths(d: dict[str, Any], key: str) -> tuple[str, ...]:
    value = d.get(key, ())
    if isinstance(value, str):
        value = [value]
    ok = isinstance(value, (list, tuple)) and all(isinstance(p, str) and p.startswith("/") for p in value)
    if not ok:
        raise ConfigError(f"sandbox spec: {key} must be a list of absolute paths, not {value!r}")
    return tuple(value)


def _fs_ruleset(fs_rules: Sequence[tuple[str, int]]) -> Gen:
    """landlock_create_ruleset and one PATH_BENEATH rule per path; the ruleset fd (or -errno)."""
    rfd = yield ll.create_ruleset(ll.HANDLED_BY_SANDBOX)
    if rfd < 0:
        yield sc.write(2, f"sandbox: landlock_create_ruleset: errno {-rfd}\n")
        return rfd
    for path, access in fs_rules:
        fd = yield sc.openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC)
        if fd < 0:
            yield sc.write(2, f"sandbox: {path}: errno {-fd}\n")
            return fd
        st = yield sc.fstat(fd)
        if not isinstance(st, int) and st.st_mode & S_IFMT != S_IFDIR:
            access &= ll.ACCESS_FILE  # a file takes file rights only (landlock_add_rule(2): EINVAL)
        r = yield ll.add_rule(rfd, access, fd)
        yield sc.close(fd)
        if r < 0:
            yield sc.write(2, f"sandbox: landlock_add_rule {path}: errno {-r}\n")
            return r
    return rfd


def launcher(
    caps: int,
    rlimits: Sequence[tuple[str, int, int]],
    no_new_privs: bool,
    program: tuple[Any, ...] | None,
    path: str,
    argv: list[str],
    env: list[str],
    fs_rules: Sequence[tuple[str, int]] = (),
) -> Gen:
    """Apply the sandbox to this process, then execve ``path``. Exits 126 if a step fails."""
    for name, soft, hard in rlimits:
        r = yield sc.prlimit64(0, RLIMIT_NAMES.index(name), (soft, hard))
        if isinstance(r, int) and r < 0:
            yield sc.write(2, f"sandbox: setrlimit {name}: errno {-r}\n")
            return 126
    rfd = None
    if fs_rules:
        # The rules name paths opened now, before any restriction (as landlock's sandboxer does).
        rfd = yield from _fs_ruleset(fs_rules)
        if rfd < 0:
            return 126
    filt = sec.set_mode_filter(program) if program is not None else None
    if rfd is not None and not no_new_privs:
        # Without no_new_privs, landlock_restrict_self needs CAP_SYS_ADMIN: before the caps go.
        r = yield ll.restrict_self(rfd)
        if r < 0:
            yield sc.write(2, f"sandbox: landlock_restrict_self: errno {-r}\n")
            return 126
        rfd = None
    if filt is not None and not no_new_privs:
        # Without no_new_privs the filter needs CAP_SYS_ADMIN, so it goes on before the caps go
        # (runc does the same when noNewPrivileges is false).
        r = yield filt
        if r < 0:
            yield sc.write(2, f"sandbox: seccomp: errno {-r}\n")
            return 126
        filt = None
    for cap in range(ALL_CAPS.bit_length()):
        if not caps >> cap & 1:
            r = yield sc.capbset_drop(cap)
            if r < 0:
                yield sc.write(2, f"sandbox: drop capability {cap}: errno {-r}\n")
                return 126
    r = yield sc.capset(caps, caps, 0)
    if r < 0:
        yield sc.write(2, f"sandbox: capset: errno {-r}\n")
        return 126
    if no_new_privs:
        yield sc.prctl(PR_SET_NO_NEW_PRIVS, 1)
    if rfd is not None:
        r = yield ll.restrict_self(rfd)
        if r < 0:
            yield sc.write(2, f"sandbox: landlock_restrict_self: errno {-r}\n")
            return 126
        yield sc.close(rfd)
    if filt is not None:
        r = yield filt
        if r < 0:
            yield sc.write(2, f"sandbox: seccomp: errno {-r}\n")
            return 126
    r = yield sc.execve(path, argv, env)
    yield sc.write(2, f"sandbox: exec {path}: errno {-r}\n")
    return 127


def spawn_sandboxed(
    kernel: Any,
    spec: SandboxSpec,
    path: str,
    argv: Sequence[str] = (),
    *,
    stdio: bool = True,
    compiled: prof.CompiledProfile | None = None,
) -> Any:
    """Start ``path`` in a sandbox on ``kernel``; returns the launcher's (then the program's) task."""
    sec.install(kernel)
    if spec.restricts_fs:
        ll.install(kernel)
    cp = compiled if compiled is not None else spec.compile()
    program = cp.program if cp is not None else None
    args = (
        spec.capabilities(),
        list(spec.rlimits),
        spec.no_new_privs,
        program,
        path,
        list(argv) or [path],
        list(spec.env),
        spec.fs_rules(path),
    )
    return kernel.spawn(lambda: launcher(*args), stdio=stdio, name="sandbox")
