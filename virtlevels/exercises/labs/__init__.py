"""Graded labs: a skeleton the student edits and a pytest grader (with a reference solution for
instructors). ``init_lab`` copies the skeleton and grader into a directory; ``grade`` runs the
grader there in a subprocess and returns the score."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import attrs

from virtlevels.errors import ConfigError

HERE = Path(__file__).parent


@attrs.frozen
class Lab:
    name: str
    directory: str  # under labs/
    description: str
    student_files: tuple[str, ...]  # what the student edits (copied from the skeleton)
    grader: str
    extra: tuple[str, ...] = ()  # copied too (instructions)

    @property
    def path(self) -> Path:
        return HERE / self.directory

    @property
    def reference(self) -> Path:
        return self.path / "reference"


LABS: dict[str, Lab] = {
    lab.name: lab
    for lab in (
        Lab("csr-handler", "csr", "the CSR trap handler of a trap-and-emulate VMM (csrrw/csrrs/csrrc, WARL)",
            ("csr_handler.py",), "grade_csr.py"),
        Lab("seccomp-profile", "seccomp", "a Docker seccomp profile meeting an allow/EPERM/kill spec",
            ("profile.json",), "grade_seccomp.py", ("README.md",)),
        Lab("cgroup-slo", "cgroup", "a cgroup v2 configuration meeting a CPU share and OOM-containment goal",
            ("cgroup.json",), "grade_cgroup.py", ("README.md",)),
    )
}  # fmt: skip


@attrs.frozen
class Score:
    passed: int
    total: int
    failures: tuple[str, ...]
    output: str = attrs.field(eq=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total


def lab(name: str) -> Lab:
    try:
        return LABS[name]
    except KeyError:
        raise ConfigError(f"unknown lab {name!r} (labs: {', '.join(sorted(LABS))})") from None


def init_lab(name: str, directory: str | Path, *, reference: bool = False) -> list[Path]:
    """Copy the lab's skeleton (or, with ``reference``, its solution), grader and instructions into
    ``directory``; refuses to overwrite a student's files."""
    the = lab(name)
    dest = Path(directory)
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest}: not a directory")
    sources = [(the.reference if reference else the.path) / f for f in the.student_files]
    sources += [the.path / the.grader] + [the.path / f for f in the.extra]
    clash = [str(dest / s.name) for s in sources if (dest / s.name).exists()]
    if clash:
        raise ConfigError(f"{', '.join(clash)}: already exists (use another directory)")
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for src in sources:
        shutil.copyfile(src, dest / src.name)
        out.append(dest / src.name)
    return out


def grade(name: str, directory: str | Path) -> Score:
    """Run the lab's grader in ``directory`` (pytest in a subprocess, so a student's code cannot
    disturb this process) and count the passing tests."""
    the = lab(name)
    dest = Path(directory)
    missing = [f for f in (*the.student_files, the.grader) if not (dest / f).is_file()]
    if missing:
        raise ConfigError(
            f"{dest}: missing {', '.join(missing)} (run `virtlevels exercise lab {name} --init DIR`)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(dest),
             f"--junitxml={report}", str(dest / the.grader)],
            capture_output=True, text=True, cwd=dest, check=False,
        )  # fmt: skip
        if not report.exists():
            raise ConfigError(f"grader of {name} did not run: {proc.stderr.strip() or proc.stdout.strip()}")
        root = ET.parse(report).getroot()
    cases = root.iter("testcase")
    total, failures = 0, []
    for case in cases:
        total += 1
        if (
            case.find("failure") is not None
            or case.find("error") is not None
            or case.find("skipped") is not None
        ):
            failures.append(case.get("name", "?"))
    return Score(total - len(failures), total, tuple(failures), proc.stdout)
