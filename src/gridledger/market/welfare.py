"""Welfare and market measures, computed from the same data the chain publishes.

Valuations are the limit prices (a household bids what the energy is worth to
it), so the surplus of a trade of ``q`` Wh between a bid ``b`` and an ask ``a``
is ``(b - a) * q`` whatever the trade price; the price only splits it.
Ratios are :class:`~fractions.Fraction` s (exact; convert at the edge).

* :func:`compute_allocative_efficiency` - realised surplus / maximum surplus
  (:func:`~gridledger.market.clearing.compute_max_surplus`); 1 when no trade was
  possible at all.
* :func:`compute_volume` - traded Wh.
* :func:`compute_price_convergence` - Smith's alpha: the root mean square
  deviation of the trade prices (weighted by quantity) from the competitive
  equilibrium price, in percent of it.
* :func:`compute_self_sufficiency` / :func:`compute_self_consumption` - the share
  of the microgrid's consumption met by its own generation, and the share of its
  generation consumed inside it.
* :func:`compute_savings` - what the households save against the DSO: buyers
  would have paid the import tariff, sellers would have got the export tariff.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from gridledger.market.clearing import Bid, compute_max_surplus


@dataclass(frozen=True)
class MatchedTrade:
    """A trade with its two limit prices (for surplus) and its price and quantity."""

    buy_limit: int
    sell_limit: int
    price: int
    quantity: int


def compute_realised_surplus(trades: Sequence[MatchedTrade]) -> int:
    return sum((t.buy_limit - t.sell_limit) * t.quantity for t in trades)


def compute_allocative_efficiency(
    trades: Sequence[MatchedTrade], bids: Sequence[Bid], asks: Sequence[Bid]
) -> Fraction:
    """Realised surplus over the maximum on these bids (1 if no surplus was possible)."""
    best = compute_max_surplus(bids, asks)
    if best == 0:
        return Fraction(1)
    return Fraction(compute_realised_surplus(trades), best)


def compute_volume(trades: Sequence[MatchedTrade]) -> int:
    return sum(t.quantity for t in trades)


def compute_price_convergence(trades: Sequence[MatchedTrade], equilibrium: int) -> float:
    """Smith's alpha in percent (0: every trade at the equilibrium price)."""
    volume = compute_volume(trades)
    if volume == 0 or equilibrium <= 0:
        return 0.0
    square = Fraction(sum((t.price - equilibrium) ** 2 * t.quantity for t in trades), volume)
    return 100.0 * math.sqrt(square) / equilibrium


def compute_self_sufficiency(consumption_wh: int, local_supply_wh: int) -> Fraction:
    """Share of consumption met inside the microgrid (own use + local trades)."""
    if consumption_wh <= 0:
        return Fraction(1)
    return Fraction(min(local_supply_wh, consumption_wh), consumption_wh)


def compute_self_consumption(generation_wh: int, locally_used_wh: int) -> Fraction:
    """Share of generation used inside the microgrid (the rest went to the grid)."""
    if generation_wh <= 0:
        return Fraction(1)
    return Fraction(min(locally_used_wh, generation_wh), generation_wh)


def compute_savings(traded_wh: int, import_price: int, export_price: int) -> int:
    """Money saved against the DSO by trading ``traded_wh`` locally (buyers + sellers)."""
    return traded_wh * (import_price - export_price)


def compute_market_report(
    trades: Sequence[MatchedTrade],
    bids: Sequence[Bid],
    asks: Sequence[Bid],
    equilibrium: int,
    tariffs: tuple[int, int],
) -> Mapping[str, float]:
    """All measures for one slot as plain numbers (for tables and benchmarks)."""
    volume = compute_volume(trades)
    return {
        "efficiency": float(compute_allocative_efficiency(trades, bids, asks)),
        "volume_wh": float(volume),
        "alpha_pct": compute_price_convergence(trades, equilibrium),
        "savings": float(compute_savings(volume, *tariffs)),
    }
