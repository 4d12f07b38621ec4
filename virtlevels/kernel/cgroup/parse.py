"""The kernel's number parsers as cgroup files use them (lib/kstrtox.c, lib/cmdline.c memparse)."""

from __future__ import annotations

from virtlevels.kernel.errno import EINVAL, ERANGE, KernelError


def _digits(s: str, base: int) -> int | None:
    try:
        return int(s, base)
    except ValueError:
        return None


def kstrto(text: str, base: int = 0, *, signed: bool = False, bits: int = 64) -> int:
    """kstrtoull/kstrtoll: the whole string must be a number (one trailing newline allowed).

    Base 0 means: "0x" prefix -> hex, leading "0" -> octal, else decimal. EINVAL if malformed,
    ERANGE if it does not fit.
    """
    s = text[:-1] if text.endswith("\n") else text
    neg = False
    if s.startswith("+"):
        s = s[1:]
    elif s.startswith("-") and signed:
        neg, s = True, s[1:]
    if base == 0:
        if s[:2].lower() == "0x" and len(s) > 2:
            base, s = 16, s[2:]
        elif s.startswith("0") and len(s) > 1:
            base, s = 8, s[1:]
        else:
            base = 10
    if not s or not all(c.isalnum() for c in s):
        raise KernelError(EINVAL, f"not a number: {text!r}")
    v = _digits(s, base)
    if v is None:
        raise KernelError(EINVAL, f"not a number: {text!r}")
    v = -v if neg else v
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= v <= hi:
        raise KernelError(ERANGE, f"out of range: {text!r}")
    return v


def simple_strtoull(s: str) -> tuple[int, int]:
    """simple_strtoull(base 0): the value of the longest numeric prefix and where it ends."""
    base, i = 10, 0
    if s[:2].lower() == "0x" and len(s) > 2 and s[2] in "0123456789abcdefABCDEF":
        base, i = 16, 2
    elif s.startswith("0"):
        base = 8
    j = i
    valid = "0123456789abcdef"[:base]
    while j < len(s) and s[j].lower() in valid:
        j += 1
    return (int(s[i:j], base) if j > i else 0), j


_SUFFIX = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}


def memparse(s: str) -> int:
    """memparse + the "nothing may follow" rule of page_counter_memparse: "64M" -> 67108864."""
    v, end = simple_strtoull(s)
    if end == 0:
        raise KernelError(EINVAL, f"not a size: {s!r}")
    rest = s[end:]
    if rest and rest[0].lower() in _SUFFIX:
        v <<= _SUFFIX[rest[0].lower()]
        rest = rest[1:]
    if rest:
        raise KernelError(EINVAL, f"not a size: {s!r}")
    return v
