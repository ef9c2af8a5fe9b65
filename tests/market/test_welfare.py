"""Welfare measures, and the continuous auction's efficiency next to sealed-bid mechanisms
(pay-as-bid and pay-as-clear as in gsy-e, trade reduction as in McAfee/Huang) on the same bids."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.crypto.rng import DeterministicRng
from gridledger.market.clearing import (
    Bid,
    compute_efficient_pairs,
    compute_max_surplus,
    compute_muda,
    compute_pay_as_bid,
    compute_trade_reduction,
    compute_uniform_price,
)
from gridledger.market.engine import OrderBook
from gridledger.market.units import BUY, SELL
from gridledger.market.welfare import (
    MatchedTrade,
    compute_allocative_efficiency,
    compute_price_convergence,
    compute_savings,
    compute_self_consumption,
    compute_self_sufficiency,
    compute_volume,
)


def run_cda(
    stream: list[tuple[int, int, int]],
) -> tuple[list[MatchedTrade], list[Bid], list[Bid]]:
    """Feed (side, price, qty) in order to the engine; return trades with limits, bids, asks."""
    book = OrderBook()
    limits: dict[bytes, int] = {}
    bids: list[Bid] = []
    asks: list[Bid] = []
    trades = []
    for i, (side, price, qty) in enumerate(stream):
        oid = i.to_bytes(4, "big")
        limits[oid] = price
        (bids if side == BUY else asks).append(Bid(oid, price, qty, i))
        for f in book.process_order(oid, side, price, qty, i):
            trades.append(MatchedTrade(limits[f.buy_id], limits[f.sell_id], f.price, f.quantity))
    return trades, bids, asks


def as_matched(cleared: list, bids: list[Bid], asks: list[Bid]) -> list[MatchedTrade]:  # type: ignore[type-arg]
    limit = {b.order_id: b.price for b in [*bids, *asks]}
    return [MatchedTrade(limit[c.buy_id], limit[c.sell_id], c.price, c.quantity) for c in cleared]


def test_cda_loses_surplus_when_an_early_pair_is_poor() -> None:
    # A 60-buyer meets a 55-seller first; later a 100-buyer can only meet a 95-seller.
    # Realised 5 + 5; the efficient allocation trades 100 with 55 alone: 45.
    stream = [(BUY, 60, 1), (SELL, 55, 1), (BUY, 100, 1), (SELL, 95, 1)]
    trades, bids, asks = run_cda(stream)
    assert compute_realised(trades) == 10
    assert compute_max_surplus(bids, asks) == 45
    assert compute_allocative_efficiency(trades, bids, asks) == Fraction(10, 45)
    # The sealed-bid mechanisms on the same bids reach the maximum.
    pab = as_matched(compute_pay_as_bid(bids, asks), bids, asks)
    assert compute_allocative_efficiency(pab, bids, asks) == 1


def test_cda_is_efficient_when_orders_arrive_best_first() -> None:
    stream = [(SELL, 50, 1), (BUY, 100, 1), (SELL, 60, 1), (BUY, 90, 1)]
    trades, bids, asks = run_cda(stream)
    assert compute_allocative_efficiency(trades, bids, asks) == 1


def compute_realised(trades: list[MatchedTrade]) -> int:
    return sum((t.buy_limit - t.sell_limit) * t.quantity for t in trades)


def test_sealed_bid_mechanisms_on_a_known_book() -> None:
    bids = [Bid(b"b1", 100, 2, 1), Bid(b"b2", 90, 2, 2), Bid(b"b3", 70, 2, 3)]
    asks = [Bid(b"s1", 60, 2, 4), Bid(b"s2", 80, 2, 5), Bid(b"s3", 95, 2, 6)]
    assert compute_max_surplus(bids, asks) == 2 * 40 + 2 * 10
    pab = compute_pay_as_bid(bids, asks)
    assert [(t.buy_id, t.sell_id, t.price, t.quantity) for t in pab] == [
        (b"b1", b"s1", 100, 2),
        (b"b2", b"s2", 90, 2),
    ]
    uni = compute_uniform_price(bids, asks)
    assert {t.price for t in uni} == {85}  # mid of the marginal pair (90, 80)
    tr = compute_trade_reduction(bids, asks)
    assert [(t.buy_id, t.sell_id, t.price) for t in tr] == [(b"b1", b"s1", 90)]


streams = st.lists(
    st.tuples(st.sampled_from((BUY, SELL)), st.integers(50, 150), st.integers(1, 10)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(streams)
def test_efficiency_side_by_side(stream: list[tuple[int, int, int]]) -> None:
    trades, bids, asks = run_cda(stream)
    cda = compute_allocative_efficiency(trades, bids, asks)
    pab = compute_allocative_efficiency(
        as_matched(compute_pay_as_bid(bids, asks), bids, asks), bids, asks
    )
    uni = compute_allocative_efficiency(
        as_matched(compute_uniform_price(bids, asks), bids, asks), bids, asks
    )
    muda_trades = compute_muda(bids, asks, DeterministicRng(len(stream)))
    muda = compute_allocative_efficiency(as_matched(muda_trades, bids, asks), bids, asks)
    limit = {b.order_id: b.price for b in [*bids, *asks]}
    assert all(limit[t.sell_id] <= t.price <= limit[t.buy_id] for t in muda_trades)
    assert 0 <= muda <= 1
    tr = compute_allocative_efficiency(
        as_matched(compute_trade_reduction(bids, asks), bids, asks), bids, asks
    )
    assert pab == uni == 1  # the sealed-bid allocations are efficient on truthful bids
    assert 0 <= cda <= 1 and 0 <= tr <= 1
    # every trade is individually rational for both limits
    assert all(t.sell_limit <= t.price <= t.buy_limit for t in trades)
    assert compute_volume(trades) <= sum(b.quantity for b in bids)
    pairs = compute_efficient_pairs(bids, asks)
    assert all(p.buy.price >= p.sell.price for p in pairs)


def test_measures() -> None:
    trades = [MatchedTrade(120, 80, 100, 10), MatchedTrade(110, 90, 104, 5)]
    assert compute_volume(trades) == 15
    assert compute_price_convergence(trades, 100) == (100.0 * ((16 * 5 / 15) ** 0.5) / 100)
    assert compute_price_convergence([MatchedTrade(1, 1, 100, 3)], 100) == 0.0
    assert compute_self_sufficiency(1000, 250) == Fraction(1, 4)
    assert compute_self_consumption(500, 250) == Fraction(1, 2)
    assert compute_self_sufficiency(0, 0) == 1
    assert compute_savings(15, 300, 80) == 15 * 220
