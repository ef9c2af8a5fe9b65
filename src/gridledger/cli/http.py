"""CLI sub-app ``gridledger api``: read a node through its HTTP API.

The CLI, the HTTP API and the dashboard answer from the same
:class:`~gridledger.node.service.NodeService`, so they cannot disagree::

    gridledger api dashboard DIR             # each replica's dashboard URL
    gridledger api get DIR /v1/market/slots  # any GET route, JSON out
    gridledger api trades DIR                # the newest public trades, one per line

A problem document from the node becomes one line ``error: <code>: <detail>``
and exit code 2 (as every gridledger error does).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from gridledger.cli.consortium import one_line_errors
from gridledger.errors import NodeError
from gridledger.node.config import Address
from gridledger.node.consortium import load_layout

TIMEOUT_S = 10.0

api_app = typer.Typer(
    help="Read a node through its HTTP API (the dashboard's API).", no_args_is_help=True
)


@api_app.callback()
def _api() -> None:
    """Read a node through its HTTP API (the dashboard's API)."""


def get_http_address(directory: Path, replica: int) -> Address:
    addresses = load_layout(directory).get_http_addresses()
    if replica not in addresses:
        raise NodeError(f"replica {replica} of {directory} has no HTTP address in its config")
    return addresses[replica]


def get_json(address: Address, path: str) -> Any:
    """GET ``path`` from the node at ``address``; a problem document becomes a NodeError."""
    if not path.startswith("/"):
        raise NodeError(f"path must start with '/': {path!r}")
    url = f"http://{address.host}:{address.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        try:
            problem = json.loads(exc.read())
            reason = f"{problem['code']}: {problem['detail']}"
        except (ValueError, KeyError, TypeError):
            reason = f"HTTP {exc.code}"
        raise NodeError(reason) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise NodeError(f"cannot reach {url}: {exc}") from None


Directory = Annotated[Path, typer.Argument(help="Consortium directory.")]
Replica = Annotated[int, typer.Option("--replica", help="Which replica to ask.")]


@api_app.command("dashboard")
@one_line_errors
def dashboard_command(directory: Directory) -> None:
    """Print each replica's dashboard URL."""
    addresses = load_layout(directory).get_http_addresses()
    if not addresses:
        raise NodeError(f"no replica of {directory} has an HTTP address")
    for rid, address in sorted(addresses.items()):
        typer.echo(f"replica {rid}: http://{address.host}:{address.port}/")


@api_app.command("get")
@one_line_errors
def get_command(
    directory: Directory,
    path: Annotated[str, typer.Argument(help="A GET route, e.g. /v1/blocks?limit=5")],
    replica: Replica = 0,
) -> None:
    """GET any route of the HTTP API and print its JSON."""
    typer.echo(json.dumps(get_json(get_http_address(directory, replica), path), indent=2))


@api_app.command("trades")
@one_line_errors
def trades_command(
    directory: Directory,
    limit: int = typer.Option(20, "--limit", help="How many trades (1..100)."),
    replica: Replica = 0,
) -> None:
    """The newest public trades: block, slot, price, quantity."""
    body = get_json(get_http_address(directory, replica), f"/v1/market/trades?limit={limit}")
    for t in body["trades"]:
        typer.echo(
            f"block {t['height']}: slot {t['slot']} price {t['price']} quantity {t['quantity']}"
        )
    if not body["trades"]:
        typer.echo("no trades yet")
