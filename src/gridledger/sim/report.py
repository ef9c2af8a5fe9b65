"""Results on disk: CSV and JSON for tools, PNG plots and one plain HTML page for people.

``write_report(result, scenario, out_dir)`` writes::

    households.csv      one row per household: energy (Wh), bill and baselines
    slots.csv           one row per slot: microgrid energy (Wh), local volume and price
    household_slots.csv every household in every slot (mWh, mc), the raw books
    summary.json        scenario, key figures (self-sufficiency, self-consumption, ...)
    *.png               energy per slot, local market, bills, offers (Fig. 4),
                        bus queue (Fig. 5), pairing time (Fig. 6)
    report.html         the plots with a short text for a household or a DSO engineer

Money is shown in currency units (1 unit = 100 ct = 100,000 mc).
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

from gridledger.sim.plots import (
    plot_bills,
    plot_energy_per_slot,
    plot_fig4_offers,
    plot_fig5_queue,
    plot_fig6_pairing_time,
    plot_price_volume,
)
from gridledger.sim.results import (
    HouseholdSummary,
    RunResult,
    compute_household_summary,
    compute_kpis,
)
from gridledger.sim.scenario import Scenario

__all__ = ["compute_slot_rows", "write_report"]

MC_PER_UNIT = 100_000


def compute_slot_rows(result: RunResult) -> list[dict[str, float]]:
    """Microgrid totals per slot (Wh) with the local volume and mean local price (ct/kWh)."""
    rows = []
    for slot in range(result.slots):
        sums: dict[str, int] = {}
        for household in result.accounts:
            for name, value in household[slot]:
                sums[name] = sums.get(name, 0) + value
        volume = sums["local_bought"]
        rows.append(
            {
                "slot": slot,
                "start_hour": slot * result.slot_minutes / 60,
                "consumption_wh": sums["consumption"] / 1000,
                "production_wh": sums["production"] / 1000,
                "local_volume_wh": volume / 1000,
                "local_price_ct_per_kwh": sums["local_paid"] * 1000 / volume if volume else 0.0,
                "grid_bought_wh": sums["grid_bought"] / 1000,
                "grid_sold_wh": sums["grid_sold"] / 1000,
            }
        )
    return rows


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def _household_rows(summaries: list[HouseholdSummary]) -> list[dict[str, object]]:
    return [
        {
            "household": s.name,
            "type": s.kind,
            "consumption_wh": s.consumption_wh,
            "production_wh": s.production_wh,
            "local_bought_wh": s.local_bought_wh,
            "local_sold_wh": s.local_sold_wh,
            "grid_bought_wh": s.grid_bought_wh,
            "grid_sold_wh": s.grid_sold_wh,
            "bill": s.bill_mc / MC_PER_UNIT,
            "bill_without_market": s.bill_without_market_mc / MC_PER_UNIT,
            "bill_all_from_dso": s.bill_grid_only_mc / MC_PER_UNIT,
            "savings_vs_all_from_dso": s.savings_vs_grid_only_mc / MC_PER_UNIT,
            "gain_from_local_market": s.market_gain_mc / MC_PER_UNIT,
        }
        for s in summaries
    ]


def _raw_rows(result: RunResult) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for info, household in zip(result.households, result.accounts, strict=True):
        for slot, row in enumerate(household):
            rows.append({"household": info.name, "slot": slot, **dict(row)})
    return rows


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gridledger: {name}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}
img{{max-width:100%}}</style></head><body>
<h1>Microgrid day: {name}</h1>
<p>{households} households traded on the <b>{market}</b> market for {days} day(s) from {start}
(scenario digest {digest}, seed {seed}).</p>
<h2>For a household</h2>
<p>The microgrid covered <b>{self_sufficiency:.0%}</b> of its consumption from its own PV and
local trades (self-sufficiency); <b>{self_consumption:.0%}</b> of the PV energy it produced was
used inside the microgrid (self-consumption). Together, households paid <b>{bill:.2f}</b>
currency units instead of <b>{baseline:.2f}</b> had they bought everything from the DSO, and
<b>{without:.2f}</b> had they only traded their surplus and deficit with the DSO.
Each bar below is one household.</p>
<img src="bills.png" alt="bills per household">
{household_table}
<h2>For the DSO engineer</h2>
<p>{local:.1f} kWh were traded between households, {bought:.1f} kWh came from the grid and
{sold:.1f} kWh went to it. The shared bus carried {messages} messages; the longest queue was
{max_queue} messages. A request was paired in {dso:.3f} s on average when the DSO offered and
{sm:.3f} s when a meter offered ({n_dso} and {n_sm} pairings).</p>
<img src="energy_per_slot.png" alt="energy per slot">
<img src="price_volume.png" alt="local volume and price">
<img src="fig4_offers.png" alt="offers per hour">
<img src="fig5_queue.png" alt="bus queue">
<img src="fig6_pairing_time.png" alt="pairing time">
<p>Data: households.csv, slots.csv, household_slots.csv, summary.json.</p>
</body></html>
"""


def _household_table(summaries: list[HouseholdSummary]) -> str:
    head = (
        "<tr><th>household</th><th>type</th><th>consumed kWh</th><th>produced kWh</th>"
        "<th>bought locally kWh</th><th>sold locally kWh</th><th>bill</th>"
        "<th>saved vs all from DSO</th></tr>"
    )
    body = "".join(
        f"<tr><td>{html.escape(s.name)}</td><td>{html.escape(s.kind)}</td>"
        f"<td>{s.consumption_wh / 1000:.2f}</td><td>{s.production_wh / 1000:.2f}</td>"
        f"<td>{s.local_bought_wh / 1000:.2f}</td><td>{s.local_sold_wh / 1000:.2f}</td>"
        f"<td>{s.bill_mc / MC_PER_UNIT:.2f}</td>"
        f"<td>{s.savings_vs_grid_only_mc / MC_PER_UNIT:.2f}</td></tr>"
        for s in summaries
    )
    return f"<table>{head}{body}</table>"


def write_report(result: RunResult, scenario: Scenario, out_dir: Path) -> Path:
    """Write every output into ``out_dir`` (created); returns the HTML page's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prices = scenario.prices
    summaries = [
        compute_household_summary(result, h, prices.grid_import, prices.grid_export)
        for h in range(len(result.households))
    ]
    kpis = compute_kpis(result)
    _write_csv(out_dir / "households.csv", _household_rows(summaries))
    _write_csv(out_dir / "slots.csv", list(compute_slot_rows(result)))  # type: ignore[arg-type]
    _write_csv(out_dir / "household_slots.csv", _raw_rows(result))
    summary = {
        "scenario": scenario.name,
        "digest": scenario.digest,
        "seed": scenario.seed,
        "market": scenario.market,
        "households": len(result.households),
        "kpis": kpis,
        "bills": {s.name: s.bill_mc / MC_PER_UNIT for s in summaries},
        "messages_by_kind": dict(result.messages_by_kind),
        "dso_received": result.dso_received / MC_PER_UNIT,
        "dso_paid": result.dso_paid / MC_PER_UNIT,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    plot_bills(
        [s.name for s in summaries],
        [s.bill_mc / MC_PER_UNIT for s in summaries],
        [s.bill_grid_only_mc / MC_PER_UNIT for s in summaries],
        out_dir / "bills.png",
    )
    plot_energy_per_slot(result, out_dir / "energy_per_slot.png")
    plot_price_volume(result, out_dir / "price_volume.png")
    plot_fig4_offers(result, out_dir / "fig4_offers.png")
    plot_fig5_queue(result, out_dir / "fig5_queue.png")
    plot_fig6_pairing_time([(scenario.name, result)], out_dir / "fig6_pairing_time.png")
    page = _PAGE.format(
        name=html.escape(scenario.name),
        households=len(result.households),
        market=html.escape(scenario.market),
        days=scenario.days,
        start=scenario.start.isoformat(),
        digest=scenario.digest,
        seed=scenario.seed,
        self_sufficiency=kpis["self_sufficiency"],
        self_consumption=kpis["self_consumption"],
        bill=sum(s.bill_mc for s in summaries) / MC_PER_UNIT,
        baseline=sum(s.bill_grid_only_mc for s in summaries) / MC_PER_UNIT,
        without=sum(s.bill_without_market_mc for s in summaries) / MC_PER_UNIT,
        household_table=_household_table(summaries),
        local=kpis["local_traded_kwh"],
        bought=kpis["grid_bought_kwh"],
        sold=kpis["grid_sold_kwh"],
        messages=int(kpis["messages"]),
        max_queue=int(kpis["max_queue"]),
        dso=kpis["mean_pairing_s_dso"],
        sm=kpis["mean_pairing_s_sm"],
        n_dso=int(kpis["pairings_dso"]),
        n_sm=int(kpis["pairings_sm"]),
    )
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
