"""Grader of the CSR trap-handler lab: csr_handler.emulate_csr against the machine's real CSRs."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtlevels.exercises.labs import support

HERE = Path(__file__).parent
CASES = support.random_cases(2024, 40)


class CountingCsrs(dict):  # type: ignore[type-arg]
    writes = 0

    def __setitem__(self, key: int, value: int) -> None:
        self.writes += 1
        super().__setitem__(key, value)


@pytest.fixture(scope="module")
def handler():
    return support.load_module(HERE / "csr_handler.py", "student_csr_handler").emulate_csr


@pytest.mark.parametrize("case", range(len(CASES)))
def test_matches_the_machine(handler, case):
    word, regs, csrs = CASES[case]
    want_regs, want_csrs = support.run_on_machine(word, regs, csrs)
    got_regs, got_csrs = list(regs), CountingCsrs(csrs)
    handler(word, got_regs, got_csrs, support.warl_masks())
    assert got_regs == want_regs, f"registers differ after 0x{word:08x}"
    assert dict(got_csrs) == want_csrs, f"CSRs differ after 0x{word:08x}"


@pytest.mark.parametrize("funct3", [2, 3, 6, 7])
def test_read_only_forms_do_not_write(handler, funct3):
    word = support.encode_csr(funct3, 5, 0, 0x140)  # csrrs/csrrc t0, sscratch, x0 (or uimm 0)
    regs, csrs = [0] * 32, CountingCsrs({n: 0x1234 for n in support.CSRS})
    handler(word, regs, csrs, support.warl_masks())
    assert csrs.writes == 0 and regs[5] == 0x1234
