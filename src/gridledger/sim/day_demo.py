"""``gridledger demo``: the default trading day, with progress and a short summary."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gridledger.errors import GridledgerError
from gridledger.sim.day_report import write_day_report
from gridledger.sim.scenario import load_default_scenario
from gridledger.sim.trading_day import DayResult, check_ledger_and_bills, run_trading_day


class DemoFailed(GridledgerError):
    """The day ran but did not show what it must (a safety or accounting check failed)."""


def check_day(result: DayResult) -> list[str]:
    """The properties the demo must show; the names of those that do not hold."""
    c = result.conservation
    failed = check_ledger_and_bills(result)
    if c["withdrawn_mc"] != c["deposited_mc"]:
        failed.append("coins withdrawn = coins deposited")
    return failed


def run_day_demo(*, seed: int = 7, out: Path = Path("demo-out"), households: int = 10) -> DayResult:
    console = Console()
    console.rule("[bold]gridledger: a trading day in the microgrid")
    scenario = load_default_scenario()
    start = time.monotonic()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
        transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("starting", total=None)
        result = run_trading_day(
            scenario,
            seed=seed,
            households=households,
            progress=lambda msg: progress.update(task, description=msg),
        )
    report = write_day_report(result, out)
    k = result.kpis
    table = Table("household", "type", "bought Wh", "sold Wh", "grid Wh", "bill €", "saved €")
    for h in result.households:
        table.add_row(
            h["household"], h["type"], str(h["bought_local_wh"]), str(h["sold_local_wh"]),
            str(h["grid_import_wh"]), f"{h['bill_mc'] / 1e5:.2f}", f"{h['savings_mc'] / 1e5:.2f}",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"{len(result.trades)} trades, {k['local_volume_wh'] / 1000:.1f} kWh traded locally; "
        f"self-sufficiency {100 * k['self_sufficiency']:.1f} %, self-consumption "
        f"{100 * k['self_consumption']:.1f} %; households saved {k['savings_mc'] / 1e5:.2f} € "
        "against the DSO alone."
    )
    if result.reneger:
        console.print(
            f"[bold red]{result.reneger}[/] did not pay a trade: the chain recorded the default; "
            f"{result.trustees_used} trustees traced the pseudonym to [bold]{result.traced}[/]."
        )
    console.print(
        f"chain: {result.blocks} blocks, {result.transactions} transactions, "
        f"{result.consensus_messages} consensus messages; replicas agree: {result.heights_agree}"
    )
    console.print(f"report: [bold]{report}[/] ({time.monotonic() - start:.0f} s)")
    failed = check_day(result)
    if failed:
        raise DemoFailed(f"the day did not show: {', '.join(failed)}")
    return result
