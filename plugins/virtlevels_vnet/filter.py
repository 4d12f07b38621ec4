"""iptables-like packet filtering (iptables(8), iptables-extensions(8)): the filter table's
INPUT, FORWARD and OUTPUT chains with a policy each; rules match protocol, source/destination
prefix, ports, interfaces and conntrack state, and jump to ACCEPT, DROP or REJECT.

Rules can be given as iptables argument strings (``"-A INPUT -p tcp --dport 22 -j DROP"``);
a token that cannot be parsed is an error naming it, and the rule is not added.
"""

from __future__ import annotations

import shlex

import attrs

from virtlevels_vnet.frames.ipv4 import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, FrameError, mask, parse_cidr

CHAINS = ("INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING")
FILTER_CHAINS = ("INPUT", "FORWARD", "OUTPUT")
TARGETS = ("ACCEPT", "DROP", "REJECT", "DNAT", "SNAT", "MASQUERADE")
PROTOS = {"icmp": IPPROTO_ICMP, "tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}
STATES = ("NEW", "ESTABLISHED", "RELATED", "INVALID")
# REJECT --reject-with (iptables-extensions REJECT): ICMP unreachable codes, or a TCP reset.
REJECT_WITH = {"icmp-net-unreachable": 0, "icmp-host-unreachable": 1, "icmp-port-unreachable": 3,
               "icmp-proto-unreachable": 2, "icmp-admin-prohibited": 13, "tcp-reset": -1}  # fmt: skip


class RuleError(ValueError):
    """A rule that cannot be parsed; the message names the rule and the token."""


@attrs.frozen
class Rule:
    chain: str
    target: str
    proto: int | None = None
    src: tuple[int, int] | None = None  # (net, plen)
    dst: tuple[int, int] | None = None
    sport: int | None = None
    dport: int | None = None
    in_iface: str | None = None
    out_iface: str | None = None
    states: frozenset[str] | None = None
    reject_with: int = 3  # icmp-port-unreachable, iptables' default
    to_addr: int | None = None  # DNAT/SNAT --to-destination/--to-source
    to_port: int | None = None
    text: str = ""

    def matches(
        self,
        proto: int,
        src: int,
        dst: int,
        sport: int,
        dport: int,
        in_if: str | None,
        out_if: str | None,
        state: str,
    ) -> bool:
        if self.proto is not None and proto != self.proto:
            return False
        if self.src is not None and src & mask(self.src[1]) != self.src[0]:
            return False
        if self.dst is not None and dst & mask(self.dst[1]) != self.dst[0]:
            return False
        if self.sport is not None and sport != self.sport:
            return False
        if self.dport is not None and dport != self.dport:
            return False
        if self.in_iface is not None and in_if != self.in_iface:
            return False
        if self.out_iface is not None and out_if != self.out_iface:
            return False
        return self.states is None or state in self.states


def _port(rule: str, tok: str) -> int:
    if not tok.isdigit() or not 0 < int(tok) < 65536:
        raise RuleError(f"rule {rule!r}: bad port {tok!r}")
    return int(tok)


def _net(rule: str, tok: str) -> tuple[int, int]:
    try:
        a, n = parse_cidr(tok)
    except FrameError as e:
        raise RuleError(f"rule {rule!r}: {e}") from None
    return a & mask(n), n


def parse_rule(text: str) -> Rule:
    """Parse ``-A CHAIN [-p P] [-s NET] [-d NET] [--sport N] [--dport N] [-i IF] [-o IF]
    [-m state|conntrack --state|--ctstate S,..] -j TARGET [--reject-with W]
    [--to-destination A[:P]] [--to-source A]``."""
    try:
        toks = shlex.split(text)
    except ValueError as e:
        raise RuleError(f"rule {text!r}: {e}") from None
    f: dict[str, object] = {}
    i = 0

    def arg() -> str:
        nonlocal i
        if i + 1 >= len(toks):
            raise RuleError(f"rule {text!r}: {toks[i]} needs a value")
        i += 1
        return toks[i]

    while i < len(toks):
        t = toks[i]
        if t in ("-A", "--append"):
            c = arg()
            if c not in CHAINS:
                raise RuleError(f"rule {text!r}: unknown chain {c!r} (known: {', '.join(CHAINS)})")
            f["chain"] = c
        elif t in ("-p", "--protocol"):
            p = arg()
            if p not in PROTOS:
                raise RuleError(f"rule {text!r}: unknown protocol {p!r} (known: {', '.join(PROTOS)})")
            f["proto"] = PROTOS[p]
        elif t in ("-s", "--source"):
            f["src"] = _net(text, arg())
        elif t in ("-d", "--destination"):
            f["dst"] = _net(text, arg())
        elif t == "--sport":
            f["sport"] = _port(text, arg())
        elif t == "--dport":
            f["dport"] = _port(text, arg())
        elif t in ("-i", "--in-interface"):
            f["in_iface"] = arg()
        elif t in ("-o", "--out-interface"):
            f["out_iface"] = arg()
        elif t == "-m":
            m = arg()
            if m not in ("state", "conntrack", "tcp", "udp", "icmp"):
                raise RuleError(f"rule {text!r}: unknown match module {m!r}")
        elif t in ("--state", "--ctstate"):
            states = arg().split(",")
            bad = [s for s in states if s not in STATES]
            if bad:
                raise RuleError(f"rule {text!r}: unknown state {bad[0]!r} (known: {', '.join(STATES)})")
            f["states"] = frozenset(states)
        elif t in ("-j", "--jump"):
            tg = arg()
            if tg not in TARGETS:
                raise RuleError(f"rule {text!r}: unknown target {tg!r} (known: {', '.join(TARGETS)})")
            f["target"] = tg
        elif t == "--reject-with":
            w = arg()
            if w not in REJECT_WITH:
                raise RuleError(f"rule {text!r}: unknown --reject-with {w!r}")
            f["reject_with"] = REJECT_WITH[w]
        elif t in ("--to-destination", "--to-source", "--to"):
            a, _, p = arg().partition(":")
            f["to_addr"] = _net(text, a)[0]
            if p:
                f["to_port"] = _port(text, p)
        else:
            raise RuleError(f"rule {text!r}: unknown option {t!r}")
        i += 1
    if "chain" not in f:
        raise RuleError(f"rule {text!r}: no chain (-A CHAIN)")
    if "target" not in f:
        raise RuleError(f"rule {text!r}: no target (-j TARGET)")
    chain, target = f["chain"], f["target"]
    nat = target in ("DNAT", "SNAT", "MASQUERADE")
    if nat:
        want = "PREROUTING" if target == "DNAT" else "POSTROUTING"
        if chain != want:
            raise RuleError(f"rule {text!r}: {target} belongs in {want}, not {chain}")
    if not nat and chain not in FILTER_CHAINS:
        raise RuleError(f"rule {text!r}: {target} is a filter target; {chain} is a nat chain")
    if target in ("DNAT", "SNAT") and "to_addr" not in f:
        raise RuleError(
            f"rule {text!r}: {target} needs --to-{'destination' if target == 'DNAT' else 'source'}"
        )
    if ("sport" in f or "dport" in f or "to_port" in f) and f.get("proto") not in (IPPROTO_TCP, IPPROTO_UDP):
        raise RuleError(f"rule {text!r}: ports need -p tcp or -p udp")
    return Rule(text=text, **f)  # type: ignore[arg-type]


@attrs.define(eq=False)
class FilterTable:
    """The filter table: chains of rules and a policy per built-in chain."""

    chains: dict[str, list[Rule]] = attrs.field(factory=lambda: {c: [] for c in FILTER_CHAINS})
    policy: dict[str, str] = attrs.field(factory=lambda: dict.fromkeys(FILTER_CHAINS, "ACCEPT"))

    def append(self, rule: Rule) -> None:
        if rule.chain not in self.chains:
            raise RuleError(f"rule {rule.text!r}: {rule.chain} is not a filter chain")
        self.chains[rule.chain].append(rule)

    def set_policy(self, chain: str, target: str) -> None:
        if chain not in self.chains:
            raise RuleError(f"policy: unknown chain {chain!r}")
        if target not in ("ACCEPT", "DROP"):
            raise RuleError(f"policy of {chain}: {target!r} is not ACCEPT or DROP")
        self.policy[chain] = target

    def active(self, chain: str) -> bool:
        return bool(self.chains[chain]) or self.policy[chain] != "ACCEPT"

    def uses_state(self) -> bool:
        return any(r.states for rules in self.chains.values() for r in rules)

    def verdict(
        self,
        chain: str,
        proto: int,
        src: int,
        dst: int,
        sport: int,
        dport: int,
        in_if: str | None,
        out_if: str | None,
        state: str,
    ) -> Rule | str:
        """The first matching rule, or the chain's policy name."""
        for r in self.chains[chain]:
            if r.matches(proto, src, dst, sport, dport, in_if, out_if, state):
                return r
        return self.policy[chain]
