"""Sealed-bid clearing of one delivery slot, for comparison with the continuous auction.

All three take the slot's bids and asks as :class:`Bid` (``quantity`` > 0 on both
sides) and return :class:`ClearedTrade` s; ties in price are broken by ``seq``
(arrival), like the continuous book, so the results are deterministic.

* :func:`compute_pay_as_bid` - the efficient allocation (highest bids with the
  lowest asks while bid >= ask); every pair trades at the buyer's bid (gsy-e's
  "pay as bid").
* :func:`compute_uniform_price` - the same allocation at one price for everyone:
  the mid of the last (marginal) matched bid and ask, rounded to the tick
  (gsy-e's "pay as clear", with seed 000's mid-price rule).
* :func:`compute_muda` - MUDA (pymarket's random-split mechanism): each random half
  trades at the other half's competitive price.
* :func:`compute_trade_reduction` - McAfee/Huang-style trade reduction: the
  marginal buy and sell orders are left out; included buyers pay the marginal
  (excluded) bid and included sellers receive the marginal (excluded) ask. It
  gives up the marginal trade to make truthful bidding a dominant strategy; the
  spread stays with the market.

The maximum surplus any mechanism can reach on these bids is
:func:`compute_max_surplus` (valuations = limit prices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gridledger.crypto.rng import Rng
from gridledger.market.engine import compute_mid_price


@dataclass(frozen=True)
class Bid:
    """A limit order of a sealed-bid round: ``quantity`` > 0, price per Wh, arrival ``seq``."""

    order_id: bytes
    price: int
    quantity: int
    seq: int


@dataclass(frozen=True)
class ClearedTrade:
    buy_id: bytes
    sell_id: bytes
    price: int
    quantity: int


@dataclass(frozen=True)
class _Pair:
    buy: Bid
    sell: Bid
    quantity: int


def _sorted_sides(bids: Sequence[Bid], asks: Sequence[Bid]) -> tuple[list[Bid], list[Bid]]:
    return (
        sorted(bids, key=lambda b: (-b.price, b.seq)),
        sorted(asks, key=lambda a: (a.price, a.seq)),
    )


def compute_efficient_pairs(bids: Sequence[Bid], asks: Sequence[Bid]) -> list[_Pair]:
    """Greedy merge of the sorted sides while the bid covers the ask (max surplus)."""
    buys, sells = _sorted_sides(bids, asks)
    pairs: list[_Pair] = []
    i = j = 0
    left_b = buys[0].quantity if buys else 0
    left_s = sells[0].quantity if sells else 0
    while i < len(buys) and j < len(sells) and buys[i].price >= sells[j].price:
        q = min(left_b, left_s)
        pairs.append(_Pair(buys[i], sells[j], q))
        left_b -= q
        left_s -= q
        if not left_b:
            i += 1
            left_b = buys[i].quantity if i < len(buys) else 0
        if not left_s:
            j += 1
            left_s = sells[j].quantity if j < len(sells) else 0
    return pairs


def compute_max_surplus(bids: Sequence[Bid], asks: Sequence[Bid]) -> int:
    """The largest total gain from trade on these limit prices (money units)."""
    return sum(
        (p.buy.price - p.sell.price) * p.quantity for p in compute_efficient_pairs(bids, asks)
    )


def compute_pay_as_bid(bids: Sequence[Bid], asks: Sequence[Bid]) -> list[ClearedTrade]:
    """Efficient allocation, each pair at the buyer's bid."""
    return [
        ClearedTrade(p.buy.order_id, p.sell.order_id, p.buy.price, p.quantity)
        for p in compute_efficient_pairs(bids, asks)
    ]


def compute_uniform_price(
    bids: Sequence[Bid], asks: Sequence[Bid], tick: int = 1
) -> list[ClearedTrade]:
    """Efficient allocation at one clearing price: mid of the marginal matched bid and ask."""
    pairs = compute_efficient_pairs(bids, asks)
    if not pairs:
        return []
    last = pairs[-1]
    price = compute_mid_price(last.buy.price, last.sell.price, tick)
    return [ClearedTrade(p.buy.order_id, p.sell.order_id, price, p.quantity) for p in pairs]


def compute_trade_reduction(bids: Sequence[Bid], asks: Sequence[Bid]) -> list[ClearedTrade]:
    """Trade reduction: drop the marginal buy and sell orders; buyers pay the marginal bid,
    sellers receive the marginal ask (the trade price recorded is the buyers')."""
    pairs = compute_efficient_pairs(bids, asks)
    if not pairs:
        return []
    marginal_buy, marginal_sell = pairs[-1].buy, pairs[-1].sell
    kept = [
        p
        for p in pairs
        if p.buy.order_id != marginal_buy.order_id and p.sell.order_id != marginal_sell.order_id
    ]
    return [
        ClearedTrade(p.buy.order_id, p.sell.order_id, marginal_buy.price, p.quantity) for p in kept
    ]


def _competitive_price(bids: Sequence[Bid], asks: Sequence[Bid], tick: int) -> int | None:
    """A price that clears one half: the mid of its marginal matched pair (None: no trade)."""
    pairs = compute_efficient_pairs(bids, asks)
    if not pairs:
        return None
    return compute_mid_price(pairs[-1].buy.price, pairs[-1].sell.price, tick)


def _trade_at(bids: Sequence[Bid], asks: Sequence[Bid], price: int) -> list[ClearedTrade]:
    """Everyone willing at ``price`` trades at it; the long side is served in arrival order."""
    buyers = sorted((b for b in bids if b.price >= price), key=lambda b: b.seq)
    sellers = sorted((a for a in asks if a.price <= price), key=lambda a: a.seq)
    out: list[ClearedTrade] = []
    i = j = 0
    left_b = buyers[0].quantity if buyers else 0
    left_s = sellers[0].quantity if sellers else 0
    while i < len(buyers) and j < len(sellers):
        q = min(left_b, left_s)
        out.append(ClearedTrade(buyers[i].order_id, sellers[j].order_id, price, q))
        left_b -= q
        left_s -= q
        if not left_b:
            i += 1
            left_b = buyers[i].quantity if i < len(buyers) else 0
        if not left_s:
            j += 1
            left_s = sellers[j].quantity if j < len(sellers) else 0
    return out


def compute_muda(
    bids: Sequence[Bid], asks: Sequence[Bid], rng: Rng, tick: int = 1
) -> list[ClearedTrade]:
    """MUDA (Segal-Halevi, Hassidim, Aumann 2016; pymarket's ``muda``): split the traders
    at random into two halves, find each half's competitive price, and let each half trade
    at the *other* half's price (so no trader's bid sets its own price: truthful); the
    long side of each half is served in arrival order."""
    halves: tuple[tuple[list[Bid], list[Bid]], tuple[list[Bid], list[Bid]]] = (([], []), ([], []))
    for side, orders in ((0, bids), (1, asks)):
        for order in orders:
            halves[rng.randbelow(2)][side].append(order)
    (left_b, left_a), (right_b, right_a) = halves
    left_price = _competitive_price(left_b, left_a, tick)
    right_price = _competitive_price(right_b, right_a, tick)
    out: list[ClearedTrade] = []
    if right_price is not None:
        out += _trade_at(left_b, left_a, right_price)
    if left_price is not None:
        out += _trade_at(right_b, right_a, left_price)
    return out
