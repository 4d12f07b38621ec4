"""NAT translation tables (service level): the conntrack entries a Linux router makes for a
sequence of flows under SNAT (masquerade) and DNAT (port forwarding) rules.

Model (nf_nat, nf_conntrack): the first packet of a flow creates an entry with the original and
the reply tuple; SNAT rewrites the source to the router's public address and keeps the source
port unless another entry already uses (public ip, port, proto, destination) — then it takes the
next free port from 1024 up (nf_nat_used_tuple / the port range search); DNAT rewrites the
destination of packets to a forwarded port. Later packets of a known flow reuse the entry."""

from __future__ import annotations

from typing import Any

from virtlevels.exercises.base import Answer, Problem, rng

NAME = "nat-table"
PUBLIC = "203.0.113.1"
INSIDE = ("10.0.0.2", "10.0.0.3", "10.0.0.4")
OUTSIDE = ("198.51.100.7", "198.51.100.9")

Tuple = tuple[str, str, int, str, int]  # proto, src, sport, dst, dport


def scenario(seed: int) -> dict[str, Any]:
    r = rng(NAME, seed)
    forwards = {8080: (r.choice(INSIDE), 80), 2222: (r.choice(INSIDE), 22)}
    flows: list[Tuple] = []
    for _ in range(r.randint(4, 6)):
        if r.random() < 0.7:
            proto = r.choice(["tcp", "udp"])
            sport = r.choice([40000, 40001, 5353, 40000])
            flows.append((proto, r.choice(INSIDE), sport, r.choice(OUTSIDE), r.choice([53, 443])))
        else:
            flows.append(
                ("tcp", r.choice(OUTSIDE), r.choice([50000, 50001]), PUBLIC, r.choice(sorted(forwards)))
            )
    return {"forwards": forwards, "flows": flows}


def generate(seed: int) -> Problem:
    s = scenario(seed)
    lines = [f"A router masquerades 10.0.0.0/24 behind {PUBLIC} (SNAT) and forwards (DNAT):"]
    lines += [f"  tcp {PUBLIC}:{p} -> {ip}:{dp}" for p, (ip, dp) in sorted(s["forwards"].items())]
    lines.append("These packets arrive in order (the first packet of each flow):")
    lines += [f"  {i + 1}. {f[0]} {f[1]}:{f[2]} -> {f[3]}:{f[4]}" for i, f in enumerate(s["flows"])]
    lines.append("Give the conntrack table: for each entry the original and the reply tuple.")
    return Problem(NAME, seed, "\n".join(lines), s)


def translate(s: dict[str, Any]) -> list[tuple[Tuple, Tuple]]:
    table: list[tuple[Tuple, Tuple]] = []
    for flow in s["flows"]:
        if any(orig == flow for orig, _ in table):
            continue  # an established flow: no new entry
        proto, src, sport, dst, dport = flow
        if dst == PUBLIC and dport in s["forwards"]:
            ip, port = s["forwards"][dport]
            reply: Tuple = (proto, ip, port, src, sport)  # DNAT: the reply comes from the server
        else:
            used = {(r[0], r[3], r[4], r[1], r[2]) for _, r in table}  # (proto, public ip, port, peer)
            port = sport
            while (proto, PUBLIC, port, dst, dport) in used:
                port = port + 1 if port >= 1024 else 1024
            reply = (proto, dst, dport, PUBLIC, port)
        table.append((flow, reply))
    return table


def fmt(t: Tuple) -> str:
    return f"{t[0]} {t[1]}:{t[2]} -> {t[3]}:{t[4]}"


def solve(seed: int) -> Answer:
    table = translate(scenario(seed))
    lines = [f"  orig {fmt(o):45s} reply {fmt(r)}" for o, r in table]
    return Answer(NAME, seed, "\n".join(lines), {"entries": table},
                  "a conntrack model in this module (the vnet plugin's Conntrack is not in the "
                  "registry)")  # fmt: skip
