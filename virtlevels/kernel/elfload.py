"""Loading an RV32 program for execve: checking the ELF, and the initial user stack.

The ELF is parsed by the machine's loader (:func:`virtlevels.machine.elf.loader.load_elf`,
static ET_EXEC only, as the kernel runs no dynamic linker). Its PT_LOAD segments become VMAs
with the segment's permissions; the heap (brk) starts at the first page past the highest one.

The stack follows the Linux ELF ABI for RISC-V (the psABI's "Process Initialization", and
fs/binfmt_elf.c create_elf_tables): at ``sp`` (16-byte aligned) argc, then argv[0..argc-1], a
NULL, envp[..], a NULL, then the auxiliary vector as (type, value) word pairs ending in
AT_NULL; the strings and AT_RANDOM's 16 bytes sit above, at the top of the stack.
"""

from __future__ import annotations

import struct

import attrs

from virtlevels.errors import ElfError
from virtlevels.kernel.errno import ENOEXEC, KernelError
from virtlevels.kernel.mm import PROT_EXEC, PROT_READ, PROT_WRITE, STACK_TOP, USER_TOP
from virtlevels.machine.elf.loader import load_elf
from virtlevels.machine.image import PF_R, PF_W, PF_X, Image

PAGE_SIZE = 4096

# include/uapi/linux/auxvec.h
AT_NULL, AT_PHDR, AT_PAGESZ, AT_ENTRY = 0, 3, 6, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_SECURE, AT_RANDOM, AT_EXECFN = 11, 12, 13, 14, 23, 25, 31


@attrs.frozen
class LoadSegment:
    start: int  # page-aligned VMA bounds
    end: int
    prot: int
    vaddr: int  # where the file bytes go
    data: bytes


@attrs.frozen
class Program:
    entry: int
    segments: tuple[LoadSegment, ...]
    brk: int  # the first page past the highest segment


def parse(image_bytes: bytes, path: str) -> Program:
    """Check an executable the way binfmt_elf does before the point of no return (ENOEXEC)."""
    try:
        image: Image = load_elf(image_bytes, path)
    except ElfError as exc:
        raise KernelError(ENOEXEC, str(exc)) from None
    segs: list[LoadSegment] = []
    top = 0
    for seg in image.segments:
        end = seg.addr + max(seg.memsize, len(seg.data))
        if seg.addr < PAGE_SIZE or end > USER_TOP:
            raise KernelError(ENOEXEC, f"{path}: segment 0x{seg.addr:08x}-0x{end:08x} outside user space")
        prot = (PROT_READ if seg.flags & PF_R else 0) | (PROT_WRITE if seg.flags & PF_W else 0)
        prot |= PROT_EXEC if seg.flags & PF_X else 0
        start = seg.addr & ~(PAGE_SIZE - 1)
        stop = (end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        segs.append(LoadSegment(start, stop, prot, seg.addr, seg.data))
        top = max(top, stop)
    segs.sort(key=lambda s: s.start)
    if not 0 < image.entry < USER_TOP:
        raise KernelError(ENOEXEC, f"{path}: entry 0x{image.entry:08x} outside user space")
    return Program(image.entry, tuple(segs), top)


def areas(prog: Program) -> list[tuple[int, int, int]]:
    """The VMAs (start, end, prot) of a program's segments. Segments may share a page (an
    unpadded link puts .data right after .text): the shared page gets both permissions, as
    binfmt_elf's overlapping mappings of one file page end up doing."""
    prot_of: dict[int, int] = {}
    for seg in prog.segments:
        for page in range(seg.start, seg.end, PAGE_SIZE):
            prot_of[page] = prot_of.get(page, 0) | seg.prot
    out: list[tuple[int, int, int]] = []
    for page in sorted(prot_of):
        prot = prot_of[page]
        if out and out[-1][1] == page and out[-1][2] == prot:
            out[-1] = (out[-1][0], page + PAGE_SIZE, prot)
        else:
            out.append((page, page + PAGE_SIZE, prot))
    return out


def initial_stack(
    argv: list[str], envp: list[str], entry: int, ids: tuple[int, int, int, int], execfn: str,
    top: int = STACK_TOP,
) -> tuple[int, bytes]:
    """(sp, the bytes from sp up to ``top``) for a new program's stack."""
    strings = bytearray()

    def put(s: str) -> int:
        off = len(strings)
        strings.extend(s.encode("utf-8", errors="surrogateescape") + b"\0")
        return off

    arg_offs = [put(a) for a in argv]
    env_offs = [put(e) for e in envp]
    fn_off = put(execfn)
    rand_off = len(strings)
    strings.extend(bytes(range(16)))  # AT_RANDOM: fixed bytes, the simulation is deterministic
    str_base = (top - len(strings)) & ~15
    uid, euid, gid, egid = ids
    auxv = [
        (AT_PAGESZ, PAGE_SIZE), (AT_ENTRY, entry), (AT_UID, uid), (AT_EUID, euid), (AT_GID, gid),
        (AT_EGID, egid), (AT_SECURE, 0), (AT_RANDOM, str_base + rand_off), (AT_EXECFN, str_base + fn_off),
        (AT_NULL, 0),
    ]  # fmt: skip
    words = [len(argv)] + [str_base + o for o in arg_offs] + [0] + [str_base + o for o in env_offs] + [0]
    for k, v in auxv:
        words += [k, v & 0xFFFFFFFF]
    table = struct.pack(f"<{len(words)}I", *words)
    sp = (str_base - len(table)) & ~15
    blob = table + bytes(str_base - sp - len(table)) + bytes(strings)
    return sp, blob.ljust(top - sp, b"\0")
