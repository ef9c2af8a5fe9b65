"""Run a scenario: build its households, then drive the chosen market in simulated time."""

from __future__ import annotations

from gridledger.sim.double_auction import run_double_auction
from gridledger.sim.errors import ScenarioError
from gridledger.sim.fixed_piece import run_fixed_piece
from gridledger.sim.households import build_households
from gridledger.sim.results import Progress, RunResult
from gridledger.sim.scenario import Scenario

__all__ = ["run_scenario"]


def run_scenario(scenario: Scenario, progress: Progress | None = None) -> RunResult:
    """Simulate ``scenario``; the same scenario and seed give an equal result."""
    households = build_households(scenario)
    if scenario.market == "fixed-piece":
        return run_fixed_piece(scenario, households, progress)
    if scenario.market == "double-auction":
        return run_double_auction(scenario, households, progress)
    raise ScenarioError(scenario.name, "scenario.market", f"{scenario.market!r} is not built")
