"""Each exercise: deterministic by seed, different seeds differ, answers checked independently."""

from __future__ import annotations

import pytest

from virtlevels.exercises import EXERCISES, cgroups, exits, namespaces, nat, pg, seccomp, shadow, vlan
from virtlevels.machine.mmu import PTE_U, PTE_W
from virtlevels.machine.trap import LOAD, Trap

FAST = [e for e in EXERCISES if e.name not in (exits.NAME,)]


def test_at_least_eight_across_levels():
    assert len(EXERCISES) >= 8
    assert {e.level for e in EXERCISES} >= {"hardware", "os", "process", "service"}


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.name)
def test_generator_deterministic_and_seed_dependent(ex):
    a, b = ex.generate(7), ex.generate(7)
    assert a.text == b.text and a.text.strip()
    assert len({ex.generate(s).text for s in range(5)}) > 1


@pytest.mark.parametrize("ex", FAST, ids=lambda e: e.name)
def test_solver_deterministic(ex):
    assert ex.solve(3).text == ex.solve(3).text


def test_pg_answer_matches_declared_classes_and_theorem():
    for seed in range(4):
        table = pg.table_for_seed(seed)
        ans = pg.solve(seed).data
        violators = [i.name for i in table.instructions if i.pg.sensitive and not i.pg.privileged]
        assert sorted(ans["theorem1_violators"]) == sorted(violators)
        assert ans["theorem1"] == (not violators)
        assert ans["mismatches"] == {}  # the empirical run agrees with the table
        for ins in table.instructions:
            assert ("privileged" in ans["classes"][ins.name]) == ins.pg.privileged


def test_shadow_walk_agrees_with_the_hardware_mmu():
    for seed in range(3):
        b = shadow.build(seed)
        answer = shadow.solve(seed).data["shadow"]
        hart = b["machine"].harts[0]
        for vpn in b["vpns"]:
            va = vpn << 12
            pte = answer[va]
            try:
                pa = hart.mmu.translate(va, LOAD, 0, 1 << 19, b["pt"].satp())  # U-mode, MXR
            except Trap:
                pa = None
            if pte is None:
                continue
            assert pa is not None and b["gmap"][pa >> 12] == pte >> 10
            assert pte & PTE_U
            if pte & PTE_W:
                assert (pa >> 12) not in b["table_pages"]


def test_shadow_pte_rules():
    gmap = {5: 9}
    assert shadow.shadow_pte(0xD7 | 0x10, 5, gmap, [5]) & PTE_W == 0  # a page-table page: write-protected
    assert shadow.shadow_pte(0x07, 5, gmap, []) is None  # not a U page: guest fault in U-mode
    assert shadow.shadow_pte(0x57, 5, gmap, []) & PTE_W == 0  # D clear: W withheld until the first write


def test_exits_match_the_privileged_class_count():
    seed = 2
    n, body = exits.program(seed)
    got = exits.solve(seed).data["exits"]
    assert got["trap"]["privileged"] == n * exits.privileged_count(body)
    assert got["hw"].get("privileged", 0) == 0
    assert sum(got["trap"].values()) > sum(got["hw"].values())


def _oom_model(limit: int, touches: list[int]) -> list[str]:
    charged: dict[int, int] = {}
    killed = []
    for i, n in enumerate(touches):
        charged[i] = 0
        for _ in range(n):
            while sum(charged.values()) >= limit:
                victim = max(charged, key=lambda j: (charged[j], j))  # most pages, ties: highest pid
                killed.append(victim)
                del charged[victim]
                if victim == i:
                    break
            if i not in charged:
                break
            charged[i] += 1
    return [f"p{v + 1}" for v in sorted(killed)]


def test_cgroup_answer_matches_weights_and_oom_model():
    for seed in range(3):
        s = cgroups.scenario(seed)
        data = cgroups.solve(seed).data
        busy = {n: g["weight"] for n, g in s["groups"].items() if g["tasks"]}
        for name, g in s["groups"].items():
            expect = busy[name] / sum(busy.values()) if g["tasks"] else 0.0
            assert abs(data["shares"][name] - expect) < 0.03
        assert data["killed"] == _oom_model(s["memory_max_pages"], s["touches"])


def test_seccomp_backend_agrees_with_direct_reading():
    for seed in range(10):
        doc, asked = seccomp.profile_for(seed)
        got = seccomp.solve(seed).data["returns"]
        assert got == {n: seccomp.evaluate_profile(doc, n) for n in asked}


def test_vlan_pairs_symmetric_and_same_segment_reaches():
    for seed in range(5):
        t = vlan.topology(seed)
        pairs = set(vlan.solve(seed).data["pairs"])
        for a, b in pairs:
            assert vlan.reaches(t, b, a)
        hosts = t["hosts"]
        for a in hosts:
            for b in hosts:
                if (
                    a < b
                    and hosts[a]["bridge"] == hosts[b]["bridge"]
                    and hosts[a]["vlan"] == hosts[b]["vlan"]
                ):
                    assert (a, b) in pairs


def test_nat_reply_tuples_are_unique_and_invert():
    for seed in range(10):
        s = nat.scenario(seed)
        entries = nat.solve(seed).data["entries"]
        replies = [r for _, r in entries]
        assert len(set(replies)) == len(replies)  # conntrack: every reply tuple is unique
        for orig, reply in entries:
            assert reply[3:] == (nat.PUBLIC, reply[4]) or orig[3] == nat.PUBLIC
            assert reply[1:3] == orig[3:5] or orig[3] == nat.PUBLIC
        assert len(entries) == len(set(s["flows"]))


def test_namespaces_pid_numbers_follow_the_chain():
    for seed in range(3):
        chain = namespaces.scenario(seed)
        res = namespaces.solve(seed).data
        depth_pid = 1
        for i, c in enumerate(chain):
            nxt = 1 if c["newpid"] else depth_pid + 1
            assert res["pids"][i + 1] == nxt
            depth_pid = nxt
            if not c["newuts"]:  # one UTS namespace: both see the last hostname set in it
                assert res["hostnames"][i + 1] == res["hostnames"][i]
        assert res["seen"][len(chain)][: res["pids"][len(chain)]] == list(
            range(1, res["pids"][len(chain)] + 1)
        )
