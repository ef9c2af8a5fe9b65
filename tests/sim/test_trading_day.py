"""The trading day on the real stack: accounting, tracing, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridledger.sim.day_demo import check_day
from gridledger.sim.day_report import write_day_report
from gridledger.sim.scenario import load_default_scenario
from gridledger.sim.trading_day import DayResult, encode_result, run_trading_day

HOURS = range(9, 17)  # the sunny hours, when households both buy and sell


@pytest.fixture(scope="module")
def day() -> DayResult:
    return run_trading_day(load_default_scenario(), households=5, hours=HOURS, k=8)


def test_the_day_trades_and_settles(day: DayResult) -> None:
    assert check_day(day) == []
    assert day.heights_agree
    assert len(day.trades) > 3
    assert day.kpis["local_volume_wh"] == sum(t.quantity for t in day.trades)
    paid = sum(t.price * t.quantity for t in day.trades if t.paid)
    assert day.conservation["paid_locally_mc"] == paid == day.conservation["earned_locally_mc"]


def test_bills_are_withdrawn_minus_deposited_plus_grid(day: DayResult) -> None:
    for h in day.households:
        assert h["bill_mc"] == h["withdrawn_mc"] - h["deposited_mc"] + h["grid_charge_mc"]
    # money is conserved: every coin withdrawn was deposited again by someone
    assert sum(h["withdrawn_mc"] for h in day.households) == sum(
        h["deposited_mc"] for h in day.households
    )


def test_energy_balances_per_household(day: DayResult) -> None:
    for h in day.households:
        # what a household wanted came from the market or the grid, and what it offered
        # went to the market or the grid; the market never fills more than an order asks
        assert h["bought_local_wh"] + h["grid_import_wh"] == h["wanted_wh"]
        assert h["sold_local_wh"] + h["grid_export_wh"] == h["offered_wh"]
    assert sum(h["bought_local_wh"] for h in day.households) == sum(
        h["sold_local_wh"] for h in day.households
    )


def test_exactly_the_reneging_trader_is_traced(day: DayResult) -> None:
    assert day.reneger is not None
    assert day.traced == day.reneger
    assert day.trustees_used == 3
    unpaid = [t for t in day.trades if not t.paid]
    assert len(unpaid) == 1 and unpaid[0].buyer == day.reneger


def test_the_report_is_written(day: DayResult, tmp_path: Path) -> None:
    out = tmp_path / "report"
    page = write_day_report(day, out)
    text = page.read_text()
    assert "trading day" in text and day.reneger is not None and day.reneger in text
    for name in ("results.json", "households.csv", "hourly.csv", "trades.csv", "hourly.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.slow
def test_same_seed_same_day(day: DayResult) -> None:
    again = run_trading_day(load_default_scenario(), households=5, hours=HOURS, k=8)
    assert encode_result(again) == encode_result(day)
