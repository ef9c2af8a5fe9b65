"""Seed 003's Table 1: the fit of the paper's numbers, and our run within the goal."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridledger.sim.reproduce import (
    PAPER_TABLE1,
    Table1Row,
    build_table1_scenario,
    compute_linear_fit,
    format_table1,
)
from gridledger.sim.results import compute_kpis
from gridledger.sim.run import run_scenario


def test_the_papers_numbers_follow_the_published_fit() -> None:
    dso = compute_linear_fit([(a + b, d) for a, b, d, _ in PAPER_TABLE1])
    sm = compute_linear_fit([(a + b, s) for a, b, _, s in PAPER_TABLE1])
    assert dso[1] == pytest.approx(0.10219, abs=1e-4)
    assert sm[1] == pytest.approx(0.11951, abs=1e-4)


def test_one_scenario_lands_within_the_goal(real_data: Path) -> None:
    sm_a, sm_b, paper_dso, paper_sm = PAPER_TABLE1[1]
    kpis = compute_kpis(run_scenario(build_table1_scenario(sm_a, sm_b, seed=1)))
    assert kpis["mean_pairing_s_dso"] == pytest.approx(paper_dso, rel=0.15)
    assert kpis["mean_pairing_s_sm"] == pytest.approx(paper_sm, rel=0.15)
    assert kpis["mean_pairing_s_sm"] > kpis["mean_pairing_s_dso"]


def test_the_table_prints_ratios_and_slopes() -> None:
    rows = [Table1Row(a, b, d * 1.1, s * 0.9, d, s, 10, 5) for a, b, d, s in PAPER_TABLE1]
    text = format_table1(rows)
    assert "| 10 | 20 | 30 |" in text and "| 1.10 |" in text and "| 0.90 |" in text
    assert "slope ratio 1.10" in text and "slope ratio 0.90" in text
