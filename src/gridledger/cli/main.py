"""The ``gridledger`` command line.

Every command has ``--help``. A user mistake (a missing directory, a corrupt
config, a refused transaction) ends in one clear line on stderr and exit code 2,
never a traceback: :func:`main` turns every :class:`GridledgerError` into that.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from gridledger.errors import ConfigError, GridledgerError

app = typer.Typer(
    name="gridledger",
    help="Private peer-to-peer electricity trading over a consortium blockchain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


DEMO_OUT = Path("demo-out")


@app.command()
def demo(
    which: str = typer.Argument(
        "trading-day", help="trading-day (the default) or identity (the identity walk-through)."
    ),
    seed: int = typer.Option(7, help="Seed of the demo's deterministic randomness."),
    out: Annotated[Path, typer.Option(help="Where the trading day's report goes.")] = DEMO_OUT,
    households: int = typer.Option(10, min=2, help="Households in the trading day."),
) -> None:
    """Run the end-to-end demo on the embedded default scenario.

    ``trading-day``: 4 aggregators under PBFT in simulated time, households registered
    under pseudonyms, a day of double-auction trading on real readings paid with e-coins,
    one reneging trader traced by t of n trustees, bills, and a report.
    ``identity``: the identity protocols step by step on 4 replica processes over TCP.
    """
    if which == "identity":
        from gridledger.sim.demo import run_demo

        run_demo(seed=seed)
        return
    if which != "trading-day":
        raise ConfigError(f"unknown demo {which!r}: trading-day or identity")
    from gridledger.sim.day_demo import run_day_demo

    run_day_demo(seed=seed, out=out, households=households)


def _register_subcommands() -> None:
    """Attach the sub-apps of the layers that provide them (kept lazy and optional)."""
    from gridledger.cli.consortium import consortium_app, explorer_app, node_app
    from gridledger.cli.http import api_app
    from gridledger.sim.cli import app as sim_app

    app.add_typer(consortium_app, name="consortium")
    app.add_typer(node_app, name="node")
    app.add_typer(explorer_app, name="explorer")
    app.add_typer(api_app, name="api")
    app.add_typer(sim_app, name="sim", help="Simulate a microgrid on real household data.")


@app.callback()
def _root() -> None:
    """Private peer-to-peer electricity trading over a consortium blockchain."""


_register_subcommands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a gridledger error becomes one line on stderr and exit code 2.

    Usage errors are click's own (exit code 2, with the usage line); ``--help``
    exits 0.
    """
    try:
        app(args=argv, prog_name="gridledger")
    except GridledgerError as exc:
        typer.secho(f"error: {exc.reason}", err=True, fg=typer.colors.RED)
        return 2
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        return 130
    return 0


def run() -> None:
    """Console-script wrapper: exit with :func:`main`'s status."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
