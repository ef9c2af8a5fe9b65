"""Sweeps on Dask distributed: a local cluster runs the grid and keeps its order."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gridledger.sim.results import compute_kpis
from gridledger.sim.run import run_scenario
from gridledger.sim.scenario import parse_scenario, replace_households
from gridledger.sim.sweep import compute_sweep_points, run_sweep

BASE = (
    "[scenario]\nslot_minutes = 60\n[fixed_piece]\npiece_minutes = 60\n[households.A]\ncount = 1\n"
)


def test_the_grid_is_complete_and_ordered() -> None:
    points = compute_sweep_points([{"A": 1}, {"A": 2}], ["fixed-piece", "double-auction"], [1, 2])
    assert len(points) == 8 and len(set(points)) == 8
    assert points[0].counts == (("A", 1),) and points[-1].seed == 2


def test_a_local_cluster_gives_the_same_figures_as_a_direct_run(synthetic_data: Path) -> None:
    base = parse_scenario(BASE, data_dir=synthetic_data)
    points = compute_sweep_points([{"A": 1}, {"A": 3}], ["fixed-piece", "double-auction"], [1, 2])
    rows = run_sweep(base, points, workers=1, processes=False)
    assert [r.point for r in rows] == points
    for row in rows:
        scenario = dataclasses.replace(
            replace_households(base, dict(row.point.counts)),
            market=row.point.market,
            seed=row.point.seed,
        )
        assert dict(row.kpis) == compute_kpis(run_scenario(scenario))
    assert dict(rows[0].kpis) != dict(rows[4].kpis)  # 1 household vs 3
