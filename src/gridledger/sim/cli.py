"""``gridledger sim``: run a scenario, reproduce seed 003's Table 1 and Figs. 4-6.

The lead mounts :data:`app` as ``gridledger sim``; every user mistake is a
``GridledgerError`` that the main CLI prints as one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gridledger.sim.errors import ScenarioError

__all__ = ["app", "reproduce_figures"]

app = typer.Typer(
    help="Simulate a microgrid on real household data; reproduce the papers' experiments.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("run")
def run_command(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario TOML (default: the packaged one).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory for CSV, JSON, PNG and HTML.")] = Path(
        "sim-report"
    ),
    data_dir: Annotated[Path | None, typer.Option(help="Directory of the shared data.")] = None,
) -> None:
    """Run a scenario and write its report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from gridledger.sim.report import write_report
    from gridledger.sim.results import compute_kpis
    from gridledger.sim.run import run_scenario
    from gridledger.sim.scenario import load_default_scenario, load_scenario

    loaded = (
        load_scenario(scenario, data_dir) if scenario else load_default_scenario(data_dir=data_dir)
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=True
    ) as bar:
        task = bar.add_task(f"simulating {loaded.name}", total=loaded.slots)
        result = run_scenario(loaded, lambda done, _total: bar.update(task, completed=done))
    page = write_report(result, loaded, out)
    kpis = compute_kpis(result)
    typer.echo(
        f"{loaded.name}: {len(result.households)} households, "
        f"self-sufficiency {kpis['self_sufficiency']:.0%}, "
        f"self-consumption {kpis['self_consumption']:.0%}, "
        f"{kpis['local_traded_kwh']:.1f} kWh traded locally"
    )
    typer.echo(f"report: {page}")


@app.command("day")
def day_command(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario TOML (default: the packaged one).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory for CSV, JSON, PNG and HTML.")] = Path(
        "day-report"
    ),
    data_dir: Annotated[Path | None, typer.Option(help="Directory of the shared data.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: the scenario's).")] = None,
    renege: Annotated[bool, typer.Option(help="One buyer reneges and is traced.")] = True,
    processes: Annotated[
        bool,
        typer.Option(
            "--processes",
            help="Run the 4 replicas as separate processes over TCP on 127.0.0.1 "
            "(default: in this process, in simulated time).",
        ),
    ] = False,
    market: Annotated[
        str,
        typer.Option(
            help="double-auction, fixed-piece (seed 003's pieces), or scenario (the file's "
            "[scenario] market)."
        ),
    ] = "double-auction",
) -> None:
    """Run a scenario's day on the real stack: 4 PBFT replicas, pseudonyms, e-coins, tracing."""
    from gridledger.sim.day_report import write_day_report
    from gridledger.sim.scenario import load_default_scenario, load_scenario
    from gridledger.sim.trading_day import run_trading_day

    loaded = (
        load_scenario(scenario, data_dir) if scenario else load_default_scenario(data_dir=data_dir)
    )
    result = run_trading_day(
        loaded,
        seed=seed,
        renege=renege,
        progress=typer.echo,
        replicas="processes" if processes else "in-process",
        market=_choose_market(market, loaded.market),
    )
    page = write_day_report(result, out)
    k = result.kpis
    typer.echo(
        f"{loaded.name}: {len(result.households)} households, {len(result.trades)} trades, "
        f"self-sufficiency {k['self_sufficiency']:.0%}, traced {result.traced or 'nobody'}"
    )
    typer.echo(f"report: {page}")


def _choose_market(option: str, scenario_market: str) -> str:
    """``--market``: a market's name, or ``scenario`` for the file's own."""
    from gridledger.sim.trading_day import MARKETS

    chosen = scenario_market if option == "scenario" else option
    if chosen not in MARKETS:
        raise ScenarioError("day", "--market", f"must be one of {', '.join(MARKETS)} or scenario")
    return chosen


def _parse_hours(value: str | None) -> range | None:
    """``"9-17"`` -> ``range(9, 17)`` (hours 9 to 16); ``None``: the whole day."""
    if value is None:
        return None
    first, _, end = value.partition("-")
    if not (first.isdigit() and end.isdigit() and 0 <= int(first) < int(end) <= 24):
        raise ScenarioError(
            "compare-markets", "--hours", f"expected START-END in 0..24, got {value!r}"
        )
    return range(int(first), int(end))


@app.command("compare-markets")
def compare_markets_command(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario TOML (default: the packaged one).")
    ] = None,
    households: Annotated[int, typer.Option(help="Households (the scenario's first N).")] = 10,
    hours: Annotated[
        str | None, typer.Option(help="Trading hours START-END, e.g. 9-17 (default: all day).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: the scenario's).")] = None,
    renege: Annotated[
        bool, typer.Option(help="One trader reneges and is traced in each day.")
    ] = True,
    out: Annotated[
        Path | None, typer.Option(help="Also write both days' reports and comparison.md here.")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Directory of the shared data.")] = None,
) -> None:
    """The same real-stack day on the double auction and on seed 003's fixed-piece market."""
    from gridledger.sim.day_compare import compare_markets, format_comparison
    from gridledger.sim.day_report import write_day_report
    from gridledger.sim.scenario import load_default_scenario, load_scenario

    if not 1 <= households <= 180:
        raise ScenarioError("compare-markets", "--households", "must be in 1..180")
    span = _parse_hours(hours)
    loaded = (
        load_scenario(scenario, data_dir) if scenario else load_default_scenario(data_dir=data_dir)
    )
    both = compare_markets(
        loaded, seed=seed, households=households, hours=span, renege=renege, progress=typer.echo
    )
    table = format_comparison(both)
    typer.echo(table)
    if out is not None:
        write_day_report(both.double_auction, out / "double-auction")
        write_day_report(both.fixed_piece, out / "fixed-piece")
        (out / "comparison.md").write_text(table + "\n")
        typer.echo(f"reports: {out}")


def reproduce_figures(out: Path, data_dir: Path | None = None, seed: int = 1) -> list[Path]:
    """Seed 003's Figs. 4-6 on the Table 1 scenario set-up, as PNGs in ``out``."""
    from gridledger.sim.plots import plot_fig4_offers, plot_fig5_queue, plot_fig6_pairing_time
    from gridledger.sim.reproduce import build_table1_scenario
    from gridledger.sim.run import run_scenario

    out.mkdir(parents=True, exist_ok=True)
    fig4 = run_scenario(build_table1_scenario(6, 4, data_dir, seed))
    fig5 = run_scenario(build_table1_scenario(4, 8, data_dir, seed))
    fig6 = [
        (f"SM_A={a}, SM_B={b}", run_scenario(build_table1_scenario(a, b, data_dir, seed)))
        for a, b in ((4, 8), (6, 12), (8, 16))
    ]
    return [
        plot_fig4_offers(fig4, out / "alas-sebe-fig4.png"),
        plot_fig5_queue(fig5, out / "alas-sebe-fig5.png"),
        plot_fig6_pairing_time(fig6, out / "alas-sebe-fig6.png"),
    ]


@app.command("reproduce")
def reproduce_command(
    experiment: Annotated[str, typer.Argument(help="alas-sebe-table1")],
    out: Annotated[
        Path | None, typer.Option(help="Also write Figs. 4-6 as PNGs into this directory.")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Directory of the shared data.")] = None,
) -> None:
    """Reproduce a paper's experiment and print ours next to the paper's numbers."""
    from gridledger.sim.reproduce import format_table1, reproduce_table1

    if experiment != "alas-sebe-table1":
        raise ScenarioError("reproduce", "experiment", f"unknown experiment {experiment!r}")
    typer.echo(format_table1(reproduce_table1(data_dir)))
    if out is not None:
        for path in reproduce_figures(out, data_dir):
            typer.echo(f"wrote {path}")


def _parse_counts(values: list[str]) -> list[dict[str, int]]:
    """``["A=2,B=4", "A=4,B=8"]`` -> ``[{"A": 2, "B": 4}, {"A": 4, "B": 8}]``."""
    parsed = []
    for value in values:
        counts: dict[str, int] = {}
        for part in value.split(","):
            name, _, number = part.partition("=")
            if not name.strip() or not number.strip().isdigit():
                raise ScenarioError("sweep", "--households", f"expected TYPE=COUNT, got {part!r}")
            counts[name.strip()] = int(number)
        parsed.append(counts)
    return parsed


@app.command("sweep")
def sweep_command(
    scenario: Annotated[
        Path | None, typer.Argument(help="Base scenario TOML (default: the packaged one).")
    ] = None,
    households: Annotated[
        list[str] | None, typer.Option(help="Counts per type, e.g. A=2,B=4 (repeatable).")
    ] = None,
    market: Annotated[list[str] | None, typer.Option(help="Market(s) to run (repeatable).")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds 1..SEEDS for every point.")] = 3,
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address; default: a local cluster.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Workers of the local cluster.")] = 2,
    out: Annotated[Path, typer.Option(help="CSV of key figures per run.")] = Path("sweep.csv"),
    data_dir: Annotated[Path | None, typer.Option(help="Directory of the shared data.")] = None,
) -> None:
    """Run scenario variants x seeds on Dask distributed and write their key figures."""
    import csv

    from gridledger.sim.scenario import MARKETS, load_default_scenario, load_scenario
    from gridledger.sim.sweep import compute_sweep_points, run_sweep

    base = (
        load_scenario(scenario, data_dir) if scenario else load_default_scenario(data_dir=data_dir)
    )
    for name in market or []:
        if name not in MARKETS:
            raise ScenarioError("sweep", "--market", f"must be one of {', '.join(MARKETS)}")
    if not 1 <= seeds <= 1000 or not 1 <= workers <= 64:
        raise ScenarioError("sweep", "--seeds/--workers", "seeds in [1, 1000], workers in [1, 64]")
    counts = (
        _parse_counts(households) if households else [{k.name: k.count for k in base.households}]
    )
    points = compute_sweep_points(counts, market or [base.market], list(range(1, seeds + 1)))
    rows = run_sweep(base, points, address=scheduler, workers=workers)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["households", "market", "seed", *[k for k, _ in rows[0].kpis]])
        for row in rows:
            label = " ".join(f"{k}={v}" for k, v in row.point.counts)
            writer.writerow([label, row.point.market, row.point.seed, *[v for _, v in row.kpis]])
    typer.echo(f"{len(rows)} runs -> {out}")
