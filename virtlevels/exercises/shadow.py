"""Shadow page-table construction (hardware level, software MMU virtualization).

A guest Sv32 table is built in a guest-physical memory with the kernel's own
:class:`~virtlevels.kernel.pagetable.PageTable`; the VMM maps guest frames to host frames. The
student gives the shadow PTE the VMM installs for each guest-virtual page when the guest runs in
*virtual user mode*, with the rules of Adams & Agesen's shadow paging as the hypervisor plugin
implements them (docs/hypervisor-trap-pv.md): a guest fault where the guest's own walk faults
(not valid, or not a U page); otherwise host frame of the guest frame, V|U|A|D, R if the guest
allows R, X if it allows X, W only if the guest allows W *and* D is already set *and* the guest
frame is not one of the guest's page-table pages (those are write-protected so guest PTE
stores trap). Solved by walking the guest table in RAM with ``PageTable.walk`` (Priv 4.3.2)."""

from __future__ import annotations

from typing import Any

from virtlevels.exercises.base import Answer, Problem, rng
from virtlevels.machine.mmu import PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X

NAME = "shadow-pt"
GUEST_RAM_PPN = 0x80000  # guest RAM at 0x8000_0000 (the virt board's)
GUEST_FRAMES = (GUEST_RAM_PPN + 0x10, GUEST_RAM_PPN + 0x40)
HOST_FRAMES = (0x81000, 0x81400)
PERMS = (PTE_R, PTE_R | PTE_W, PTE_R | PTE_X, PTE_X, PTE_R | PTE_W | PTE_X)


def flag_text(pte: int) -> str:
    return "".join(
        c if pte & b else "-" for c, b in zip("DAGUXWRV", (128, 64, 32, 16, 8, 4, 2, 1), strict=True)
    )


def build(seed: int) -> dict[str, Any]:
    """The guest machine, its table, the gPPN -> hPPN map and the virtual pages asked about."""
    from virtlevels.kernel.pagetable import FrameAllocator, PageTable
    from virtlevels.machine.machine import PhysicalMachine

    r = rng(NAME, seed)
    machine = PhysicalMachine(ram_size=1 << 20, with_clint=False, name="guest")
    frames = FrameAllocator(machine, *GUEST_FRAMES)
    pt = PageTable(frames)
    regions = r.sample(range(0x000, 0x200), 2)  # two 4 MiB regions (vpn[1])
    vpns = sorted({(hi << 10) | r.randrange(1024) for hi in regions for _ in range(3)})
    data_frames = r.sample(range(GUEST_FRAMES[0] + 8, GUEST_FRAMES[1]), len(vpns))
    for i, vpn in enumerate(vpns):
        flags = PTE_V | PTE_A | r.choice(PERMS) | (PTE_U if r.random() < 0.8 else 0)
        if r.random() < 0.6:
            flags |= PTE_D
        ppn = pt.root if i == 0 and r.random() < 0.5 else data_frames[i]  # maps its own root table
        pt.map(vpn, ppn, flags)
    unmapped = (regions[0] << 10) | r.randrange(1024)
    asked = sorted(set(vpns) | {unmapped})
    table_pages = [pt.root, *sorted(pt.leaves.values())]
    guest_frames = sorted({pt.pages[v] for v in vpns} | set(table_pages))
    host = r.sample(range(*HOST_FRAMES), len(guest_frames))
    gmap = dict(zip(guest_frames, host, strict=True))
    return {"machine": machine, "pt": pt, "vpns": asked, "gmap": gmap, "table_pages": table_pages}


def _dump(pt: Any) -> list[str]:
    lines = [f"guest satp = 0x{pt.satp():08x} (Sv32, root at gPPN 0x{pt.root:05x})"]
    for hi, leaf in sorted(pt.leaves.items()):
        lines.append(f"  root[{hi:3d}] = 0x{leaf << 10 | PTE_V:08x}  -> leaf table at gPPN 0x{leaf:05x}")
    for vpn in sorted(pt.pages):
        pte = pt._read_pte(pt.leaves[vpn >> 10], vpn & 0x3FF)
        lines.append(f"  leaf 0x{pt.leaves[vpn >> 10]:05x}[{vpn & 0x3FF:4d}] = 0x{pte:08x} "
                     f"(ppn 0x{pte >> 10:05x}, {flag_text(pte)})")  # fmt: skip
    return lines


def generate(seed: int) -> Problem:
    b = build(seed)
    lines = ["A guest's Sv32 page table (guest-physical addresses, PTE bits DAGUXWRV):", *_dump(b["pt"])]
    lines += ["", "The VMM's memory map, guest PPN -> host PPN:"]
    lines += [f"  0x{g:05x} -> 0x{h:05x}" for g, h in sorted(b["gmap"].items())]
    lines += ["", "The guest runs in virtual U-mode (SUM=0, MXR=0). For each guest-virtual address give the",
              "shadow PTE the VMM installs (host PPN and bits), or 'guest fault':"]  # fmt: skip
    lines += [f"  va 0x{vpn << 12:08x}" for vpn in b["vpns"]]
    return Problem(NAME, seed, "\n".join(lines), {"vpns": b["vpns"], "gmap": b["gmap"]})


def shadow_pte(guest_pte: int, gppn: int, gmap: dict[int, int], table_pages: list[int]) -> int | None:
    """The U-shadow leaf for one guest leaf PTE, or None for a guest page fault."""
    if not guest_pte & PTE_V or not guest_pte & PTE_U:
        return None
    bits = PTE_V | PTE_U | PTE_A | PTE_D
    bits |= guest_pte & (PTE_R | PTE_X)
    if guest_pte & PTE_W and guest_pte & PTE_D and gppn not in table_pages:
        bits |= PTE_W
    return gmap[gppn] << 10 | bits


def solve(seed: int) -> Answer:
    b = build(seed)
    pt, out, lines = b["pt"], {}, []
    for vpn in b["vpns"]:
        walked = pt.walk(vpn << 12)  # Priv 4.3.2 over the PTEs in guest RAM
        pte = None if walked is None else shadow_pte(walked[1], walked[0] >> 12, b["gmap"], b["table_pages"])
        out[vpn << 12] = pte
        if pte is None:
            lines.append(
                f"  va 0x{vpn << 12:08x}: guest fault (the VMM reflects the page fault to the guest)"
            )
        else:
            lines.append(f"  va 0x{vpn << 12:08x}: shadow PTE 0x{pte:08x} (host ppn 0x{pte >> 10:05x}, "
                         f"{flag_text(pte)})")  # fmt: skip
    return Answer(NAME, seed, "\n".join(lines), {"shadow": out},
                  "guest walk by virtlevels.kernel.pagetable.PageTable.walk on the guest's RAM; shadow bits "
                  "per the hypervisor plugin's ShadowMmu.fill rules")  # fmt: skip
