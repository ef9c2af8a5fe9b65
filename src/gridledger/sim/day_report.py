"""The trading day's results as files a household or a DSO engineer can read.

:func:`write_day_report` writes, into one directory: ``results.json`` (every
figure), ``households.csv``, ``hourly.csv``, ``trades.csv``, two PNG plots and
``report.html``, a plain page that shows the plots and says in a few sentences
what happened. Energy in Wh, money in milli-cents (mc), as on chain.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from gridledger.sim.trading_day import DayResult, result_to_json


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        if not rows:
            return
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _plot_hourly(result: DayResult, path: Path) -> None:
    hours = [h["hour"] for h in result.hourly]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.bar(hours, [h["wanted_wh"] / 1000 for h in result.hourly], color="#d9a441", label="wanted")
    ax.bar(
        hours, [h["offered_wh"] / 1000 for h in result.hourly], color="#7fb3d5", alpha=0.8,
        label="offered",
    )  # fmt: skip
    ax.plot(hours, [h["volume_wh"] / 1000 for h in result.hourly], "k.-", label="traded locally")
    ax.set_xlabel("hour of the day")
    ax.set_ylabel("kWh")
    ax2 = ax.twinx()
    prices = [(h["hour"], h["avg_price_mc_per_wh"]) for h in result.hourly if h["volume_wh"]]
    if prices:
        ax2.plot([p[0] for p in prices], [p[1] for p in prices], "r^", label="mean price")
    ax2.set_ylabel("mc per Wh", color="r")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Energy wanted, offered and traded in the microgrid, per hour")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_bills(result: DayResult, path: Path) -> None:
    names = [h["household"] for h in result.households]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.bar([i - 0.2 for i in x], [h["dso_only_mc"] / 1e5 for h in result.households], 0.4,
           label="buying and selling only with the DSO", color="#bbbbbb")  # fmt: skip
    ax.bar([i + 0.2 for i in x], [h["bill_mc"] / 1e5 for h in result.households], 0.4,
           label="bill with local trading", color="#2e86c1")  # fmt: skip
    ax.set_xticks(list(x), names, rotation=45, fontsize=8)
    ax.set_ylabel("euro (1 € = 100,000 mc)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=8)
    ax.set_title("Each household's bill for the day")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_day_report(result: DayResult, out: Path) -> Path:
    """Write every file into ``out``; returns the path of ``report.html``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result_to_json(result), indent=1) + "\n")
    _write_csv(out / "households.csv", list(result.households))
    _write_csv(out / "hourly.csv", list(result.hourly))
    _write_csv(out / "trades.csv", [dict(t.__dict__) for t in result.trades])
    _plot_hourly(result, out / "hourly.png")
    _plot_bills(result, out / "bills.png")
    k = result.kpis
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(h[c]))}</td>"
            for c in (
                "household",
                "type",
                "consumption_wh",
                "production_wh",
                "bought_local_wh",
                "sold_local_wh",
                "grid_import_wh",
                "grid_export_wh",
                "bill_mc",
                "savings_mc",
            )
        )
        + "</tr>"
        for h in result.households
    )
    traced = (
        f"<p>One buyer, <b>{html.escape(result.reneger)}</b>, did not pay one trade. At the "
        "trade's deadline every replica recorded the default from what the chain showed (no "
        f"payment), and {result.trustees_used} of the trace center's trustees decrypted that "
        f"pseudonym's tag: it names <b>{html.escape(str(result.traced))}</b>. No other "
        "household was ever named.</p>"
        if result.reneger
        else "<p>Every trade was paid and delivered; nobody was traced.</p>"
    )
    market = "double auction"
    if result.market == "fixed-piece":
        market = (
            f"fixed-piece market (seed 003: pieces of {k.get('piece_wh', 0):.0f} Wh paired in "
            "arrival order, the DSO selling grid pieces when no household offered)"
        )
        if result.reneger:
            traced = traced.replace("One buyer", "One requester").replace(
                "did not pay one trade", "did not pay one pairing (its seller did not deliver)"
            )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gridledger: a trading day</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:.85em}}td,th{{border:1px solid #ccc;padding:.2em .5em;
text-align:right}}th{{background:#eee}}</style></head><body>
<h1>A trading day in the microgrid</h1>
<p>{len(result.households)} households traded their surplus and deficit hour by hour in a
{html.escape(market)}, under pseudonyms, on a consortium of 4 aggregators (PBFT), and paid
every trade with anonymous e-coins. Locally traded: <b>{k["local_volume_wh"] / 1000:.1f} kWh</b>.
Self-sufficiency of the microgrid: <b>{100 * k["self_sufficiency"]:.1f} %</b>;
self-consumption of its PV: <b>{100 * k["self_consumption"]:.1f} %</b>. Together the
households paid <b>{k["savings_mc"] / 1e5:.2f} €</b> less than if each had bought from and
sold to the DSO alone.</p>
{traced}
<p>The chain: {result.blocks} blocks, {result.transactions} transactions,
{result.consensus_messages} consensus messages; all replicas ended on the same head:
{result.heights_agree}. The mint saw only each household's coins withdrawn and deposited;
the bill is withdrawn − deposited + grid energy at the tariff.</p>
<img src="hourly.png" alt="energy per hour"><img src="bills.png" alt="bills">
<h2>Households</h2>
<table><tr><th>household</th><th>type</th><th>consumed Wh</th><th>produced Wh</th>
<th>bought locally Wh</th><th>sold locally Wh</th><th>from grid Wh</th><th>to grid Wh</th>
<th>bill mc</th><th>saved mc</th></tr>{rows}</table>
<p>Files: results.json, households.csv, hourly.csv, trades.csv.</p>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page)
    return path
