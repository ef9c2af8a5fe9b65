"""The same day on seed 000's continuous double auction (reference rules, no ledger yet).

Per market slot, every household with a surplus posts one ask and every
household with a deficit one bid, for the whole amount in 1 Wh lots, in an
order drawn from the seed (standing in for consensus order). The rules are
papers_features.md §2 and §10.5: price-time priority; a trade when bid >= ask;
the price is the mid of the two limits rounded half-even to the tick; partial
fills keep their time priority. What is left when the slot closes is metered
against the grid at the tariffs.

Limit prices: a household's limit is drawn uniformly between the grid export
and import tariffs (zero-intelligence traders bounded by their outside option,
so no one trades worse than with the DSO). The ledger-backed market contract
takes the same orders; :func:`process_order` is the pure matching step it
mirrors.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from gridledger.crypto.rng import DeterministicRng
from gridledger.sim.accounting import Accounts, compute_price
from gridledger.sim.households import Household, compute_slot_balance
from gridledger.sim.results import HouseholdInfo, Progress, RunResult, freeze_accounts
from gridledger.sim.scenario import Scenario

__all__ = ["Order", "OrderBook", "Trade", "process_order", "run_double_auction"]

LOT_MWH = 1000
TICK_MC = 100
"""Price tick: 0.1 ct per kWh (papers_features.md §9 row 7)."""


@dataclass(frozen=True)
class Order:
    """A limit order: ``quantity`` in mWh, ``price`` in mc per kWh; ``sell`` or buy."""

    household: int
    sell: bool
    quantity: int
    price: int
    sequence: int


@dataclass(frozen=True)
class Trade:
    """A match: ``quantity`` mWh from seller to buyer at ``price`` mc per kWh."""

    seller: int
    buyer: int
    quantity: int
    price: int


@dataclass
class OrderBook:
    """Resting orders: bids best first (high price, early), asks best first (low, early)."""

    bids: list[tuple[int, int, Order]] = field(default_factory=list)
    asks: list[tuple[int, int, Order]] = field(default_factory=list)


def compute_mid_price(bid: int, ask: int) -> int:
    """Mid of two limits, rounded half-even to the tick."""
    ticks, remainder = divmod(bid + ask, 2 * TICK_MC)
    if 2 * remainder > 2 * TICK_MC or (2 * remainder == 2 * TICK_MC and ticks % 2):
        ticks += 1
    return ticks * TICK_MC


def process_order(book: OrderBook, order: Order) -> list[Trade]:
    """Match ``order`` against the book while prices cross; rest the remainder."""
    trades: list[Trade] = []
    remaining = order.quantity
    opposite = book.bids if order.sell else book.asks
    while remaining and opposite:
        _, _, best = opposite[0]
        crosses = best.price >= order.price if order.sell else best.price <= order.price
        if not crosses:
            break
        filled = min(remaining, best.quantity)
        seller, buyer = (order, best) if order.sell else (best, order)
        trades.append(
            Trade(
                seller.household,
                buyer.household,
                filled,
                compute_mid_price(buyer.price, seller.price),
            )
        )
        remaining -= filled
        heapq.heappop(opposite)
        if best.quantity > filled:
            rest = Order(
                best.household, best.sell, best.quantity - filled, best.price, best.sequence
            )
            key = -rest.price if not rest.sell else rest.price
            heapq.heappush(opposite, (key, rest.sequence, rest))
    if remaining:
        rest = Order(order.household, order.sell, remaining, order.price, order.sequence)
        own = book.asks if order.sell else book.bids
        heapq.heappush(own, (rest.price if rest.sell else -rest.price, rest.sequence, rest))
    return trades


def _limit(rng: DeterministicRng, low: int, high: int) -> int:
    return low + rng.randbelow((high - low) // TICK_MC + 1) * TICK_MC


def run_double_auction(
    scenario: Scenario, households: tuple[Household, ...], progress: Progress | None = None
) -> RunResult:
    """Clear every slot's orders continuously; residuals and leftovers go to the grid."""
    rng = DeterministicRng(scenario.seed).fork("double-auction/orders")
    prices = scenario.prices
    accounts = Accounts(len(households), scenario.slots)
    soc = [0] * len(households)
    asks_per_hour = [0] * max(24, scenario.days * 24)
    sequence = 0
    for slot in range(scenario.slots):
        orders: list[Order] = []
        for h in households:
            energy = compute_slot_balance(h, slot, soc[h.index])
            soc[h.index] = energy.soc_after
            accounts.process_own_balance(h.index, slot, energy)
            for amount, sell in ((energy.surplus, True), (energy.deficit, False)):
                lots = amount // LOT_MWH * LOT_MWH
                if amount - lots:
                    rate = prices.grid_export if sell else prices.grid_import
                    signed = -(amount - lots) if sell else amount - lots
                    accounts.process_grid(h.index, slot, signed, compute_price(rate, amount - lots))
                if lots:
                    sequence += 1
                    limit = _limit(rng, prices.grid_export, prices.grid_import)
                    orders.append(Order(h.index, sell, lots, limit, sequence))
        for i in range(len(orders) - 1, 0, -1):
            j = rng.randbelow(i + 1)
            orders[i], orders[j] = orders[j], orders[i]
        if progress is not None:
            progress(slot + 1, scenario.slots)
        book = OrderBook()
        for order in orders:
            if order.sell:
                asks_per_hour[slot * scenario.slot_minutes // 60] += 1
            for trade in process_order(book, order):
                accounts.process_trade(
                    trade.seller,
                    trade.buyer,
                    slot,
                    trade.quantity,
                    compute_price(trade.price, trade.quantity),
                )
        for _, _, rest in book.asks:
            accounts.process_grid(
                rest.household,
                slot,
                -rest.quantity,
                compute_price(prices.grid_export, rest.quantity),
            )
        for _, _, rest in book.bids:
            accounts.process_grid(
                rest.household,
                slot,
                rest.quantity,
                compute_price(prices.grid_import, rest.quantity),
            )
    return RunResult(
        scenario=scenario.name,
        digest=scenario.digest,
        seed=scenario.seed,
        market=scenario.market,
        slot_minutes=scenario.slot_minutes,
        households=tuple(
            HouseholdInfo(h.name, h.kind, h.day_offset, h.shift_minutes) for h in households
        ),
        accounts=freeze_accounts(accounts),
        dso_paid=accounts.dso_paid,
        dso_received=accounts.dso_received,
        pairings=(),
        meter_offers_per_hour=tuple(asks_per_hour),
        dso_offers_per_hour=(0,) * len(asks_per_hour),
        queue_per_second=(),
        messages_by_kind=(("Order", sequence),),
        end_us=scenario.slots * scenario.slot_minutes * 60_000_000,
    )
