"""PNG plots (matplotlib, Agg backend): seed 003's Figs. 4-6 and the report's figures.

Each function takes results and a path, draws one figure and closes it, so a
long sweep does not accumulate open figures.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from gridledger.sim.results import RunResult

__all__ = [
    "plot_bills",
    "plot_energy_per_slot",
    "plot_fig4_offers",
    "plot_fig5_queue",
    "plot_fig6_pairing_time",
    "plot_price_volume",
]


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_fig4_offers(result: RunResult, path: Path) -> Path:
    """Offers per hour by the meters and by the substation (seed 003 Fig. 4)."""
    figure, axes = plt.subplots(figsize=(8, 4))
    hours = range(len(result.meter_offers_per_hour))
    axes.bar([h - 0.2 for h in hours], result.meter_offers_per_hour, 0.4, label="smart meters")
    axes.bar([h + 0.2 for h in hours], result.dso_offers_per_hour, 0.4, label="substation (DSO)")
    axes.set(xlabel="hour of day", ylabel="offers per hour", title=f"Offers — {result.scenario}")
    axes.legend()
    return _save(figure, path)


def plot_fig5_queue(result: RunResult, path: Path) -> Path:
    """Pending messages on the bus over time, largest per second (seed 003 Fig. 5)."""
    figure, axes = plt.subplots(figsize=(8, 4))
    xs = [second / 3600 for second, _ in result.queue_per_second]
    ys = [length for _, length in result.queue_per_second]
    axes.plot(xs, ys, ".", markersize=2)
    axes.set(
        xlabel="hour of day", ylabel="pending messages", title=f"Bus queue — {result.scenario}"
    )
    return _save(figure, path)


def plot_fig6_pairing_time(results: list[tuple[str, RunResult]], path: Path) -> Path:
    """Mean request-to-pairing time per hour, one line per scenario (seed 003 Fig. 6)."""
    figure, axes = plt.subplots(figsize=(8, 4))
    for label, result in results:
        per_hour: dict[int, list[int]] = {}
        for record in result.pairings:
            per_hour.setdefault(record.requested_us // 3_600_000_000, []).append(record.duration_us)
        hours = sorted(per_hour)
        axes.plot(hours, [sum(per_hour[h]) / len(per_hour[h]) / 1e6 for h in hours], label=label)
    axes.set(xlabel="hour of day", ylabel="mean pairing time (s)", title="Transaction time")
    axes.legend()
    return _save(figure, path)


def _slot_sums(result: RunResult, name: str) -> list[float]:
    return [
        sum(dict(household[slot])[name] for household in result.accounts) / 1e6
        for slot in range(result.slots)
    ]


def plot_energy_per_slot(result: RunResult, path: Path) -> Path:
    """Microgrid consumption, production, local trade and grid exchange per slot (kWh)."""
    figure, axes = plt.subplots(figsize=(9, 4))
    hours = [slot * result.slot_minutes / 60 for slot in range(result.slots)]
    for name, label in (
        ("consumption", "consumption"),
        ("production", "PV production"),
        ("local_bought", "traded locally"),
        ("grid_bought", "bought from grid"),
        ("grid_sold", "sold to grid"),
    ):
        axes.plot(hours, _slot_sums(result, name), label=label)
    axes.set(xlabel="hour of day", ylabel="kWh per slot", title="Energy per slot")
    axes.legend(fontsize="small")
    return _save(figure, path)


def plot_price_volume(result: RunResult, path: Path) -> Path:
    """Local volume (kWh, bars) and mean local price (ct/kWh, dots) per slot."""
    figure, volume_axes = plt.subplots(figsize=(9, 4))
    hours = [slot * result.slot_minutes / 60 for slot in range(result.slots)]
    volume = _slot_sums(result, "local_bought")
    money = _slot_sums(result, "local_paid")  # mc / 1e6
    volume_axes.bar(hours, volume, width=result.slot_minutes / 60, label="local volume")
    volume_axes.set(xlabel="hour of day", ylabel="kWh traded locally", title="Local market")
    price_axes = volume_axes.twinx()
    priced = [(h, m / v * 1e3) for h, m, v in zip(hours, money, volume, strict=True) if v]
    price_axes.plot([h for h, _ in priced], [p for _, p in priced], "r.", label="price")
    price_axes.set(ylabel="ct/kWh")
    return _save(figure, path)


def plot_bills(names: list[str], bills: list[float], baseline: list[float], path: Path) -> Path:
    """Each household's bill against buying everything from the DSO (currency units)."""
    figure, axes = plt.subplots(figsize=(max(6, len(names) * 0.4), 4))
    xs = range(len(names))
    axes.bar([x - 0.2 for x in xs], baseline, 0.4, label="all from DSO")
    axes.bar([x + 0.2 for x in xs], bills, 0.4, label="with PV and local market")
    axes.set_xticks(list(xs), names, rotation=90, fontsize="small")
    axes.set(ylabel="bill (currency units)", title="Bills for the period")
    axes.legend()
    return _save(figure, path)
