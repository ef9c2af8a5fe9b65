"""Households: different days and shifts, PV shapes, the battery, data coverage."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gridledger.sim.data import Watt
from gridledger.sim.errors import SimulationError
from gridledger.sim.households import (
    Household,
    MilliWattHour,
    build_households,
    compute_paper_pv_shape,
    compute_slot_balance,
)
from gridledger.sim.scenario import parse_scenario

TEXT = """
[scenario]
start = "2007-06-05"
slot_minutes = 60
[data]
day_spread_days = 3
max_shift_minutes = 30
[households.A]
count = 4
[households.B]
count = 2
pv_peak_w = 2000
pv = "paper"
"""


def test_households_differ_and_repeat_with_the_seed(synthetic_data: Path) -> None:
    scenario = parse_scenario(TEXT, data_dir=synthetic_data)
    households = build_households(scenario)
    assert [h.name for h in households] == ["A-000", "A-001", "A-002", "A-003", "B-004", "B-005"]
    assert len({(h.day_offset, h.shift_minutes) for h in households}) > 1
    assert all(-3 <= h.day_offset <= 3 and -30 <= h.shift_minutes <= 30 for h in households)
    assert build_households(scenario) == households
    assert all(p == 0 for p in households[0].production)
    # synthetic readings: 0.5 kW, 2 kW from 18 to 22 h; a day is 0.5*20 + 2*4 = 18 kWh
    assert sum(households[0].consumption) == pytest.approx(18_000_000, rel=0.03)


def test_paper_shape_follows_fig3() -> None:
    hourly = compute_paper_pv_shape(24, 60, Watt(1000))
    assert hourly[12] == 1_000_000  # 1 kW for the whole hour at noon: 1 kWh
    assert hourly[0] < hourly[5] < hourly[7] < hourly[10]  # growing through the morning
    assert hourly[19] < hourly[17] and hourly[23] < hourly[20]  # falling in the evening
    assert all(h >= 0 for h in hourly)


def test_battery_takes_surplus_then_covers_deficit() -> None:
    house = Household(
        index=0,
        kind="B",
        day_offset=0,
        shift_minutes=0,
        consumption=(MilliWattHour(1000), MilliWattHour(5000)),
        production=(MilliWattHour(9000), MilliWattHour(0)),
        battery_capacity=MilliWattHour(3000),
        battery_step=MilliWattHour(2000),
    )
    first = compute_slot_balance(house, 0, 0)
    assert (first.self_consumed, first.charged, first.surplus, first.soc_after) == (
        1000,
        2000,
        6000,
        2000,
    )
    second = compute_slot_balance(house, 1, first.soc_after)
    assert (second.discharged, second.deficit, second.soc_after) == (2000, 3000, 0)


def test_data_that_does_not_cover_the_period_is_refused(synthetic_data: Path) -> None:
    scenario = parse_scenario(TEXT, data_dir=synthetic_data)
    far = dataclasses.replace(scenario, start=scenario.start.replace(month=1))
    with pytest.raises(SimulationError, match="do not cover"):
        build_households(far)
