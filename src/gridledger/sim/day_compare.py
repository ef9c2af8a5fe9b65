"""The same real-stack day on both markets: the double auction against seed 003's pieces.

Both runs take the same scenario, households, readings and seed (so the same
consumption and production per hour, the same pseudonyms and wallets); only the
hour's market differs. :func:`compare_markets` runs the two days one after the
other; :func:`format_comparison` prints their figures side by side as a Markdown
table (``gridledger sim compare-markets``, ``benchmarks/trading_day.py --compare``).

Welfare: money only moves between households and the DSO, so the households' savings
against trading only with the DSO at its tariffs are the market's welfare gain; each
Wh traded locally instead of through the grid gains the tariff spread (import − export)
whatever the local price, which decides only how buyers and sellers share it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gridledger.sim.scenario import Scenario
from gridledger.sim.trading_day import DayResult, run_trading_day

__all__ = ["MarketComparison", "compare_markets", "compute_figures", "format_comparison"]


@dataclass(frozen=True)
class MarketComparison:
    """The two days of one scenario and seed."""

    double_auction: DayResult
    fixed_piece: DayResult


def compare_markets(
    scenario: Scenario,
    *,
    seed: int | None = None,
    households: int | None = None,
    hours: range | None = None,
    k: int = 32,
    renege: bool = True,
    progress: Callable[[str], None] = lambda _msg: None,
) -> MarketComparison:
    """Run the day on the double auction, then on the fixed-piece market.

    ``renege=False`` compares honest days: who reneges differs between the markets (the
    first trade's buyer, the first local pairing's requester), and its later orders or
    requests are refused once traced, which moves the local volume by itself.
    """
    days = {}
    for market in ("double-auction", "fixed-piece"):
        days[market] = run_trading_day(
            scenario, seed=seed, households=households, hours=hours, k=k, market=market,
            renege=renege, progress=_tagged(progress, market),
        )  # fmt: skip
    return MarketComparison(days["double-auction"], days["fixed-piece"])


def _tagged(progress: Callable[[str], None], market: str) -> Callable[[str], None]:
    return lambda msg: progress(f"[{market}] {msg}")


def compute_figures(result: DayResult) -> dict[str, float]:
    """The comparison's figures of one day (energy in kWh, money in euro)."""
    homes = result.households
    wanted = sum(int(h["wanted_wh"]) for h in homes)
    local = sum(t.quantity for t in result.trades if t.paid)
    savings = sum(int(h["savings_mc"]) for h in homes)
    bills = sum(int(h["bill_mc"]) for h in homes)
    return {
        "households": float(len(homes)),
        "self-sufficiency %": 100 * result.kpis["self_sufficiency"],
        "self-consumption %": 100 * result.kpis["self_consumption"],
        "energy wanted from others kWh": wanted / 1000,
        "traded locally kWh": local / 1000,
        "share of the deficit met locally %": 100 * local / wanted if wanted else 0.0,
        "bills €": bills / 1e5,
        "savings against the DSO alone € (welfare gain)": savings / 1e5,
        "local trades (pairings)": float(len([t for t in result.trades if t.paid])),
        "mean local price mc/Wh": (
            sum(t.price * t.quantity for t in result.trades if t.paid) / local if local else 0.0
        ),
        "transactions": float(result.transactions),
        "blocks": float(result.blocks),
        "consensus messages": float(result.consensus_messages),
        "reneger traced": 1.0 if result.reneger and result.traced == result.reneger else 0.0,
        "wall s": result.wall_s,
    }


def format_comparison(comparison: MarketComparison) -> str:
    """A Markdown table: one row per figure, the two markets and their ratio."""
    da = compute_figures(comparison.double_auction)
    fp = compute_figures(comparison.fixed_piece)
    lines = [
        "| figure | double auction | fixed piece | fixed / auction |",
        "|---|---|---|---|",
    ]
    for name, a in da.items():
        b = fp[name]
        ratio = f"{b / a:.2f}" if a else "–"
        lines.append(f"| {name} | {_fmt(a)} | {_fmt(b)} | {ratio} |")
    return "\n".join(lines)


def _fmt(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}"
