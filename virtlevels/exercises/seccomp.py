"""seccomp filter decisions (process level): a random small Docker-format profile and some calls.

Solved with the sandbox backend's profile compiler and BPF interpreter when the plugin is
installed (``registry.backends["sandbox"].define(kernel, {"profile": doc}).compiled.decide(nr)``);
otherwise with :func:`evaluate_profile`, a direct reading of the profile: the first rule naming
the call decides, else ``defaultAction`` (seccomp(2); Docker's profile format). Argument
conditions are not generated, so both give the same verdicts."""

from __future__ import annotations

from typing import Any

from virtlevels.exercises.base import Answer, Problem, registry_backend, rng
from virtlevels.kernel.syscalls import numbers as nr

NAME = "seccomp-decisions"
CALLS = ("read", "write", "openat", "close", "getpid", "mkdirat", "unlinkat", "kill", "mount",
         "ptrace", "socket", "connect", "clone", "execve", "reboot", "setuid", "chroot", "uname")  # fmt: skip
#: include/uapi/asm-generic/unistd.h numbers for calls the simulated kernel does not implement
_GENERIC = {"ptrace": 117, "reboot": 142, "socket": 198, "connect": 203}


def number(name: str) -> int:
    return int(getattr(nr, name, _GENERIC.get(name, -1)))


ERRNOS = {"EPERM": 1, "EACCES": 13, "ENOSYS": 38}


def profile_for(seed: int) -> tuple[dict[str, Any], list[str]]:
    r = rng(NAME, seed)
    default = r.choice(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS"])
    doc: dict[str, Any] = {"defaultAction": default, "syscalls": []}
    if default == "SCMP_ACT_ERRNO":
        doc["defaultErrnoRet"] = ERRNOS["EPERM"]
    pool = list(CALLS)
    r.shuffle(pool)
    for _ in range(r.randint(2, 4)):
        names = [pool.pop() for _ in range(r.randint(1, 3))]
        actions = ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP")
        action = r.choice([a for a in actions
                           if a != default] or ["SCMP_ACT_ALLOW"])  # fmt: skip
        rule: dict[str, Any] = {"names": names, "action": action}
        if action == "SCMP_ACT_ERRNO":
            rule["errnoRet"] = ERRNOS[r.choice(sorted(ERRNOS))]
        doc["syscalls"].append(rule)
    asked = r.sample(CALLS, 6)
    return doc, asked


def generate(seed: int) -> Problem:
    import json

    doc, asked = profile_for(seed)
    text = (
        "A process runs under this seccomp profile (Docker JSON, riscv32):\n\n"
        f"{json.dumps(doc, indent=2)}\n\n"
        f"What happens when it calls: {', '.join(asked)}?\n"
        "(allowed / error with which errno / killed / SIGSYS)"
    )
    return Problem(NAME, seed, text, {"profile": doc, "calls": asked})


def describe(ret: int) -> str:
    """A seccomp return value as words (seccomp(2) RETURN VALUES)."""
    action, data = ret & 0xFFFF0000, ret & 0xFFFF
    return {
        0x7FFF0000: "allowed",
        0x00050000: f"fails with errno {data}",
        0x80000000: "process killed (SIGSYS)",
        0x00000000: "thread killed (SIGSYS)",
        0x00030000: "SIGSYS delivered (SECCOMP_RET_TRAP)",
        0x7FFC0000: "allowed and logged",
    }.get(action, f"action 0x{action:08x}")


ACTION_RET = {"SCMP_ACT_ALLOW": 0x7FFF0000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
              "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_TRAP": 0x00030000,
              "SCMP_ACT_LOG": 0x7FFC0000}  # fmt: skip


def evaluate_profile(doc: dict[str, Any], name: str) -> int:
    """The fallback evaluator: a profile without argument conditions, read directly."""
    for rule in doc.get("syscalls", []):
        if name in rule.get("names", []):
            base = ACTION_RET[rule["action"]]
            return base | (rule.get("errnoRet", 1) if rule["action"] == "SCMP_ACT_ERRNO" else 0)
    base = ACTION_RET[doc["defaultAction"]]
    return base | (doc.get("defaultErrnoRet", 1) if doc["defaultAction"] == "SCMP_ACT_ERRNO" else 0)


def decider(doc: dict[str, Any]) -> tuple[Any, str]:
    """A function name -> seccomp return value, and how it decides."""
    backend = registry_backend("sandbox")
    if backend is None:
        return (
            lambda name: evaluate_profile(doc, name)
        ), "the profile read directly (sandbox plugin not installed)"
    from virtlevels.kernel.kernel import Kernel
    from virtlevels.world import World

    compiled = backend.define(Kernel(World(0)), {"profile": doc}).compiled
    return (lambda name: int(compiled.decide(number(name)))), (
        "compiled to classic BPF and run by the sandbox backend (registry.backends['sandbox'])"
    )


def solve(seed: int) -> Answer:
    doc, asked = profile_for(seed)
    decide, method = decider(doc)
    out = {name: decide(name) for name in asked}
    lines = [f"  {name:9s} (nr {number(name):3d}): {describe(ret)}" for name, ret in out.items()]
    return Answer(NAME, seed, "\n".join(lines), {"returns": out}, method)
