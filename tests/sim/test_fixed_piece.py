"""Seed 003's simulation: timing on the bus, energy balance, money, reproducibility."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.sim.accounting import compute_price
from gridledger.sim.channel import Kind
from gridledger.sim.fixed_piece import run_fixed_piece
from gridledger.sim.households import Household, MilliWattHour
from gridledger.sim.results import compute_kpis
from gridledger.sim.run import run_scenario
from gridledger.sim.scenario import ChannelSpec, Scenario, parse_scenario

SMALL = """
[scenario]
seed = 11
[data]
day_spread_days = 2
max_shift_minutes = 60
[households.A]
count = 3
pv_peak_w = 300
[households.B]
count = 2
pv_peak_w = 3000
battery_wh = 2000
battery_power_w = 1000
[fixed_piece]
piece_power_w = 100
"""
PIECE_MWH = 100 * 10 * 1000 // 60


def _scenario(data: Path, text: str = SMALL) -> Scenario:
    return parse_scenario(text, data_dir=data)


def _household(index: int, consumption: list[int], production: list[int]) -> Household:
    return Household(
        index=index,
        kind="X",
        day_offset=0,
        shift_minutes=0,
        consumption=tuple(MilliWattHour(c) for c in consumption),
        production=tuple(MilliWattHour(p) for p in production),
        battery_capacity=MilliWattHour(0),
        battery_step=MilliWattHour(0),
    )


def test_a_lone_request_pairs_with_the_dso_in_four_bus_slots(synthetic_data: Path) -> None:
    scenario = dataclasses.replace(_scenario(synthetic_data), slot_minutes=10)
    consumer = _household(0, [PIECE_MWH] + [0] * 143, [0] * 144)
    result = run_fixed_piece(scenario, (consumer,))
    (record,) = result.pairings
    assert record.by_dso and record.duration_us == 4 * 30_000  # Request, Pairing, Payment, Receipt
    assert dict(result.messages_by_kind) == {"Request": 1, "Pairing": 1, "Payment": 1, "Receipt": 1}


def test_a_meter_offer_costs_seven_messages_after_the_request(synthetic_data: Path) -> None:
    seller = _household(0, [0] * 144, [PIECE_MWH] + [0] * 143)
    buyer = _household(1, [PIECE_MWH] + [0] * 143, [0] * 144)
    seen = set()
    for seed in range(16):  # the race for the bus is drawn from the seed: see both outcomes
        scenario = dataclasses.replace(_scenario(synthetic_data), seed=seed)
        result = run_fixed_piece(scenario, (seller, buyer))
        (record,) = result.pairings
        messages = sum(v for _, v in result.messages_by_kind)
        if record.by_dso:  # the request went first; its Pairing waits behind the offer
            assert (record.duration_us, messages) == (5 * 30_000, 5)
            assert result.get_account(0, 0).grid_sold == PIECE_MWH
        else:  # the offer went first: it, the request and 7 more messages, 30 ms each
            assert (record.duration_us, messages) == (9 * 30_000, 9)
            assert result.get_account(1, 0).local_bought == PIECE_MWH
        seen.add(record.by_dso)
    assert seen == {True, False}


def test_the_lan_channel_times_by_size_and_latency(synthetic_data: Path) -> None:
    scenario = dataclasses.replace(
        _scenario(synthetic_data),
        channel=ChannelSpec(model="lan", message_ms=30, latency_ms=2, bandwidth_kbps=1000),
    )
    consumer = _household(0, [PIECE_MWH] + [0] * 143, [0] * 144)
    (record,) = run_fixed_piece(scenario, (consumer,)).pairings
    flow = (Kind.REQUEST, Kind.PAIRING, Kind.PAYMENT, Kind.RECEIPT)
    airtime = sum(k.size * 8 * 1000 // 1000 for k in flow)  # us at 1,000 kbit/s
    assert record.duration_us == airtime + 4 * 2000


def test_same_scenario_and_seed_give_identical_results(synthetic_data: Path) -> None:
    scenario = _scenario(synthetic_data)
    first, second = run_scenario(scenario), run_scenario(scenario)
    assert first == second
    other = run_scenario(dataclasses.replace(scenario, seed=12))
    assert other.households != first.households or other.pairings != first.pairings


def test_energy_balances_per_household_and_slot(synthetic_data: Path) -> None:
    result = run_scenario(_scenario(synthetic_data))
    for household in range(len(result.households)):
        for slot in range(result.slots):
            assert result.get_account(household, slot).is_balanced(), (household, slot)
    kpis = compute_kpis(result)
    assert kpis["local_traded_kwh"] > 0 and 0 < kpis["self_sufficiency"] < 1


def test_money_is_conserved(synthetic_data: Path) -> None:
    result = run_scenario(_scenario(synthetic_data))
    rows = [
        result.get_account(h, s) for h in range(len(result.households)) for s in range(result.slots)
    ]
    paid, received = sum(r.paid for r in rows), sum(r.received for r in rows)
    assert paid - received == result.dso_received - result.dso_paid
    local_paid = sum(r.local_paid for r in rows)
    local_sold_money = received - result.dso_paid
    assert local_paid == local_sold_money


def test_the_real_default_day_balances(real_data: Path) -> None:
    from gridledger.sim.scenario import load_default_scenario

    result = run_scenario(load_default_scenario())
    assert all(
        result.get_account(h, s).is_balanced()
        for h in range(len(result.households))
        for s in range(result.slots)
    )
    assert result.pairings and any(not p.by_dso for p in result.pairings)


@settings(max_examples=25, deadline=None)
@given(
    profiles=st.lists(
        st.tuples(
            st.lists(st.integers(0, 40_000), min_size=6, max_size=6),
            st.lists(st.integers(0, 40_000), min_size=6, max_size=6),
        ),
        min_size=1,
        max_size=5,
    ),
    seed=st.integers(0, 2**32),
)
def test_property_balance_and_conservation(
    profiles: list[tuple[list[int], list[int]]], seed: int
) -> None:
    scenario = parse_scenario(
        "[households.A]\ncount = 1\n[fixed_piece]\npiece_power_w = 60\npiece_minutes = 240\n"
        "[scenario]\nslot_minutes = 240\n",
        data_dir=Path(__file__).parent / "_no_data",
        check_files=False,
    )
    scenario = dataclasses.replace(scenario, seed=seed)
    households = tuple(_household(i, c, p) for i, (c, p) in enumerate(profiles))
    result = run_fixed_piece(scenario, households)
    rows = [result.get_account(h, s) for h in range(len(households)) for s in range(6)]
    assert all(r.is_balanced() for r in rows)
    assert sum(r.local_bought for r in rows) == sum(r.local_sold for r in rows)
    assert sum(r.paid - r.received for r in rows) == result.dso_received - result.dso_paid
    piece = 60 * 240 * 1000 // 60
    assert all(r.local_bought % piece == 0 for r in rows)
    assert compute_price(18_000, piece) * len([p for p in result.pairings if not p.by_dso]) == sum(
        r.local_paid for r in rows
    )
