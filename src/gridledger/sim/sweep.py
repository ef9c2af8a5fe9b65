"""Parameter sweeps (scenario variants x seeds) on Dask distributed.

Why Dask rather than Ray: the runs are independent, CPU-bound Python calls
returning small results, which is exactly ``Client.map``; Dask distributed is
pure-Python wheels that install from the lock file, starts a ``LocalCluster``
in-process in about a second, and connects to a running scheduler by its
address (``tcp://host:8786``) with the same code. Ray would add a large binary
wheel and a daemon for no feature this needs. No home-made process pool.

Each task runs one scenario with one seed in a worker and returns only its key
figures, so results stay small whatever the number of households.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gridledger.sim.results import compute_kpis
from gridledger.sim.run import run_scenario
from gridledger.sim.scenario import Scenario, replace_households

__all__ = ["SweepPoint", "SweepRow", "compute_sweep_points", "run_sweep"]


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: household counts, market and seed over a base scenario."""

    counts: tuple[tuple[str, int], ...]
    market: str
    seed: int


@dataclass(frozen=True)
class SweepRow:
    """A sweep point and the key figures of its run."""

    point: SweepPoint
    kpis: tuple[tuple[str, float], ...]


def compute_sweep_points(
    counts: list[dict[str, int]], markets: list[str], seeds: list[int]
) -> list[SweepPoint]:
    """The full grid, in a fixed order (counts, then market, then seed)."""
    return [
        SweepPoint(tuple(sorted(c.items())), market, seed)
        for c in counts
        for market in markets
        for seed in seeds
    ]


def run_point(base: Scenario, point: SweepPoint) -> SweepRow:
    """Run one point (in a Dask worker); returns only the key figures."""
    scenario = replace_households(base, dict(point.counts))
    scenario = dataclasses.replace(scenario, market=point.market, seed=point.seed)
    return SweepRow(point, tuple(sorted(compute_kpis(run_scenario(scenario)).items())))


def _gather(client: Any, base: Scenario, points: list[SweepPoint]) -> list[SweepRow]:
    futures = client.map(run_point, [base] * len(points), points)
    rows: list[SweepRow] = client.gather(futures)
    return rows


def _run_on_dask(
    base: Scenario, points: list[SweepPoint], address: str | None, workers: int, processes: bool
) -> list[SweepRow]:
    from distributed import Client, LocalCluster

    if address:
        with Client(address) as client:  # type: ignore[no-untyped-call]
            return _gather(client, base, points)
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=None
    )
    with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
        return _gather(client, base, points)


def run_sweep(
    base: Scenario,
    points: list[SweepPoint],
    address: str | None = None,
    workers: int = 2,
    processes: bool = True,
) -> list[SweepRow]:
    """Run every point on a Dask cluster: a ``LocalCluster`` by default, else ``address``.

    Rows come back in the order of ``points`` whatever order the workers finish in.
    """
    return _run_on_dask(base, points, address, workers, processes)
