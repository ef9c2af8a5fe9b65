"""The real-stack day on seed 003's fixed-piece market: money, energy per slot, tracing,
determinism, and the comparison with the double auction's day."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gridledger.sim.day_compare import MarketComparison, compute_figures, format_comparison
from gridledger.sim.day_report import write_day_report
from gridledger.sim.errors import ScenarioError
from gridledger.sim.scenario import (
    Scenario,
    load_default_scenario,
    parse_scenario,
    replace_households,
)
from gridledger.sim.trading_day import (
    DayResult,
    TradingDayError,
    encode_result,
    run_trading_day,
)
from gridledger.sim.trading_day_fixed import check_piece_day

HOURS = range(10, 15)  # sunny hours: type B households offer, type A households request
THRESHOLD = 3  # small, so that the DSO also buys surplus pieces in these few hours


def small_scenario() -> Scenario:
    scenario = replace_households(load_default_scenario(), {"A": 2, "B": 2})
    pieces = dataclasses.replace(scenario.fixed_piece, surplus_threshold=THRESHOLD)
    return dataclasses.replace(scenario, fixed_piece=pieces)


def run_piece_day() -> DayResult:
    return run_trading_day(small_scenario(), hours=HOURS, k=8, market="fixed-piece")


@pytest.fixture(scope="module")
def day() -> DayResult:
    return run_piece_day()


def test_the_day_pairs_pieces_locally_and_with_the_dso(day: DayResult) -> None:
    assert check_piece_day(day) == []
    assert day.market == "fixed-piece" and day.heights_agree
    piece = int(day.kpis["piece_wh"])
    assert piece == 100  # the scenario's 100 W for the hourly slot
    assert len(day.trades) >= 3 and all(t.quantity == piece and t.paid for t in day.trades)
    assert len({t.price for t in day.trades}) == 1  # one piece, one price (seed 003)
    assert sum(h["dso_bought_wh"] for h in day.households) > 0  # the DSO as fallback
    assert sum(h["dso_sold_wh"] for h in day.households) > 0  # the DSO buys the surplus
    assert day.conservation["paid_by_dso_mc"] > 0


def test_bills_conserve_value(day: DayResult) -> None:
    c = day.conservation
    for h in day.households:
        assert h["bill_mc"] == h["withdrawn_mc"] - h["deposited_mc"] + h["grid_charge_mc"]
    # every coin a household withdrew and did not deposit went to the DSO, net of the
    # coins the DSO minted to buy surplus pieces
    withdrawn = sum(h["withdrawn_mc"] for h in day.households)
    deposited = sum(h["deposited_mc"] for h in day.households)
    assert withdrawn - deposited == c["paid_to_dso_mc"] - c["paid_by_dso_mc"]
    assert c["paid_to_dso_mc"] == sum(h["paid_dso_mc"] for h in day.households)
    assert c["paid_by_dso_mc"] == sum(h["earned_dso_mc"] for h in day.households)
    paid = sum(t.price * t.quantity for t in day.trades)
    assert c["paid_locally_mc"] == paid == c["earned_locally_mc"]
    # savings against the DSO alone are the tariff spread on every locally traded Wh
    spread = 30 - 8
    assert sum(h["savings_mc"] for h in day.households) == spread * day.kpis["local_volume_wh"]


def test_energy_balances_per_household_and_slot(day: DayResult) -> None:
    for h in day.households:
        assert h["bought_local_wh"] + h["grid_import_wh"] == h["wanted_wh"]
        assert h["sold_local_wh"] + h["grid_export_wh"] == h["offered_wh"]
        assert h["dso_bought_wh"] <= h["grid_import_wh"] and h["dso_sold_wh"] <= h["grid_export_wh"]
    assert sum(h["bought_local_wh"] for h in day.households) == sum(
        h["sold_local_wh"] for h in day.households
    )
    piece = int(day.kpis["piece_wh"])
    for row in day.hourly:
        traded = row["volume_wh"] + row["dso_sold_wh"]
        # a slot's pieces never exceed what was wanted / offered in it; the rest is metered
        assert traded + row["metered_import_wh"] == row["wanted_wh"]
        assert (
            row["volume_wh"] + row["dso_bought_wh"] + row["metered_export_wh"] == row["offered_wh"]
        )
        assert min(row["metered_import_wh"], row["metered_export_wh"]) >= 0
        assert row["volume_wh"] == piece * row["trades"]
        if row["hour"] not in HOURS:
            assert traded == 0 and row["dso_bought_wh"] == 0


def test_the_reneging_requester_is_traced(day: DayResult) -> None:
    assert day.reneger is not None and day.traced == day.reneger
    assert day.trustees_used == 3
    assert day.conservation["voided_pairings"] == 1  # unpaid, so its seller did not deliver
    assert day.refused_orders > 0  # the traced household's later requests are refused
    assert all(t.paid for t in day.trades)


def test_the_report_names_the_market(day: DayResult, tmp_path: Path) -> None:
    page = write_day_report(day, tmp_path / "report")
    text = page.read_text()
    assert "fixed-piece market" in text and "One requester" in text
    header = (tmp_path / "report" / "households.csv").read_text().splitlines()[0]
    assert "dso_bought_wh" in header and "pieces_requested" in header


def test_same_seed_same_day(day: DayResult) -> None:
    assert encode_result(run_piece_day()) == encode_result(day)


def test_unknown_market_is_one_typed_error() -> None:
    with pytest.raises(TradingDayError, match="market must be one of"):
        run_trading_day(small_scenario(), market="sealed-bid")


def test_the_comparison_table_puts_both_markets_side_by_side(day: DayResult) -> None:
    figures = compute_figures(day)
    assert figures["traded locally kWh"] == day.kpis["local_volume_wh"] / 1000
    assert figures["reneger traced"] == 1.0
    table = format_comparison(MarketComparison(day, day))
    assert table.splitlines()[0].startswith("| figure | double auction | fixed piece |")
    assert "| self-sufficiency % |" in table and "| 1.00 |" in table


def test_pseudonym_rounds_shorter_than_a_day() -> None:
    """A new round every hour: each household registers again (the RM reads the chain's
    blacklist), the reneger's pseudonym of a round it registered for before it was
    traced is swept (revoked), and the RM refuses it in the rounds after the trace."""
    scenario = dataclasses.replace(small_scenario(), pseudonym_round_hours=1)
    day = run_trading_day(scenario, hours=range(10, 13), k=8, market="fixed-piece")
    assert check_piece_day(day) == []
    assert day.kpis["pseudonym_rounds"] == 3 and day.traced == day.reneger
    assert day.kpis["swept_pseudonyms"] == 1  # its round-2 pseudonym, and no other
    assert day.refused_orders > 0


def test_the_round_length_must_divide_the_day(synthetic_data: Path) -> None:
    text = "[scenario]\npseudonym_round_hours = 5\n[households.A]\ncount = 1\n"
    with pytest.raises(ScenarioError, match="pseudonym_round_hours: must divide 24"):
        parse_scenario(text, data_dir=synthetic_data)
    ok = parse_scenario(text.replace("= 5", "= 6"), data_dir=synthetic_data)
    assert ok.pseudonym_round_hours == 6
    assert load_default_scenario().pseudonym_round_hours == 24
