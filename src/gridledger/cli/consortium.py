"""CLI sub-apps for running a local consortium, one replica, and exploring the chain.

Registered by :mod:`gridledger.cli.main` as::

    app.add_typer(consortium_app, name="consortium")   # init, up, status, submit
    app.add_typer(node_app, name="node")               # run
    app.add_typer(explorer_app, name="explorer")       # block, tx

Every command turns a :class:`~gridledger.errors.GridledgerError` (missing
directory, corrupt config, unreachable replicas) into one line on stderr and
exit code 2.
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.errors import EncodingError
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.errors import ConfigError, GridledgerError, NodeError
from gridledger.ledger.block import Block, BlockHeader
from gridledger.ledger.certificate import CommitCertificate
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvSet
from gridledger.ledger.execution import Receipt
from gridledger.ledger.light import LightClient
from gridledger.ledger.merkle import MerkleProof
from gridledger.ledger.tx import Transaction
from gridledger.node.client import ClientError, ConsortiumClient
from gridledger.node.consortium import (
    DEFAULT_BASE_PORT,
    ConsortiumLayout,
    ConsortiumProcesses,
    get_status_all,
    init_consortium,
    load_genesis,
    load_layout,
)
from gridledger.node.identity_material import IDENTITY_DIR, REPLICA_CERT_FILE, IdentitySetup

P = ParamSpec("P")
R = TypeVar("R")

consortium_app = typer.Typer(
    help="Create, start and inspect a local consortium of replicas.", no_args_is_help=True
)
node_app = typer.Typer(help="Run one replica.", no_args_is_help=True)
explorer_app = typer.Typer(
    help="Read blocks and verify transactions against certified headers.", no_args_is_help=True
)


@consortium_app.callback()
def _consortium() -> None:
    """Create, start and inspect a local consortium of replicas."""


@node_app.callback()
def _node() -> None:
    """Run one replica."""


@explorer_app.callback()
def _explorer() -> None:
    """Read blocks and verify transactions against certified headers."""


def one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn gridledger errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except GridledgerError as exc:
            typer.echo(f"error: {exc.reason}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:  # a path the checks above did not foresee
            where = f": {exc.filename}" if exc.filename else ""
            typer.echo(f"error: {exc.strerror or exc}{where}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _decode(cls: type[R], hex_text: str) -> R:
    try:
        return decode_as(cls, bytes.fromhex(hex_text))
    except (ValueError, EncodingError) as exc:
        raise NodeError(f"a replica sent a malformed {cls.__name__}: {exc}") from None


# -- consortium -----------------------------------------------------------------------------


@consortium_app.command("init")
@one_line_errors
def init_command(
    directory: Annotated[
        Path, typer.Option("--dir", "-d", help="Directory to create (must be empty).")
    ],
    nodes: int = typer.Option(4, "--nodes", "-n", help="Number of replicas (n = 3f+1)."),
    base_port: int = typer.Option(
        DEFAULT_BASE_PORT, "--base-port", help="Replica i listens on P+i, its API on P+100+i."
    ),
    chain_id: str = typer.Option("gridledger-local", "--chain-id", help="Chain identifier."),
    tc_threshold: int = typer.Option(
        3, "--tc-threshold", "-t", help="Trustees needed to trace a pseudonym (t)."
    ),
    tc_trustees: int = typer.Option(5, "--tc-trustees", help="Trace-center trustees (n)."),
    identity: bool = typer.Option(
        True, "--identity/--no-identity", help="Create the CA, RM, MM and TC trustees."
    ),
    engine: str = typer.Option(
        "pbft",
        "--engine",
        help="Consensus: pbft (byzantine), dpos (elected producers), "
        "jetstream (crash-fault ordering service; 'up' starts 3 NATS servers).",
    ),
) -> None:
    """Write keys, identity material, a genesis block and one config per replica into DIR."""
    setup = IdentitySetup(tc_threshold=tc_threshold, tc_trustees=tc_trustees) if identity else None
    layout = init_consortium(
        directory, nodes, base_port, chain_id=chain_id, identity=setup, engine=engine
    )
    f = (nodes - 1) // 3
    typer.echo(
        f"initialised {layout.n} replicas (f={f}) of chain {layout.chain_id} in {directory}"
        f" (engine {engine})"
    )
    for path in layout.configs:
        typer.echo(f"  {path.name}")
    if setup is not None:
        typer.echo(
            f"  {IDENTITY_DIR}/: CA, RM (identity + pseudonym keys), MM, "
            f"{setup.tc_threshold}-of-{setup.tc_trustees} TC trustees "
            f"(DKG over {setup.group.name}); replica certificates in node-<i>/{REPLICA_CERT_FILE}"
        )


@consortium_app.command("up")
@one_line_errors
def up_command(
    directory: Annotated[Path, typer.Argument(help="Consortium directory (from 'init').")],
    duration: float | None = typer.Option(
        None, "--duration", help="Stop after S seconds (default: until Ctrl-C / SIGTERM)."
    ),
    ready_timeout: float = typer.Option(30.0, "--ready-timeout", help="Seconds to wait for APIs."),
) -> None:
    """Start every replica as its own process; stop them all on Ctrl-C or SIGTERM."""
    layout = load_layout(directory)
    layout.load_configs()  # fail early, with one line, on a bad config
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    old_int = signal.signal(signal.SIGINT, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    procs = ConsortiumProcesses(layout)
    try:
        procs.start()
        procs.wait_ready(ready_timeout)
        typer.echo(f"{layout.n} replicas up; logs in {directory / 'logs'}; Ctrl-C to stop")
        deadline = None if duration is None else time.monotonic() + duration
        while not stop["now"] and (deadline is None or time.monotonic() < deadline):
            dead = procs.get_dead()
            if dead:
                rid, code = next(iter(dead.items()))
                raise NodeError(
                    f"replica {rid} exited with code {code}; see {layout.log_path(rid)}"
                )
            time.sleep(0.2)
    finally:
        codes = procs.stop()
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        typer.echo("stopped: " + ", ".join(f"replica {r} exit {c}" for r, c in codes.items()))


@consortium_app.command("status")
@one_line_errors
def status_command(
    directory: Annotated[Path, typer.Argument(help="Consortium directory.")],
    blocks: int = typer.Option(3, "--blocks", help="How many recent blocks to list."),
    as_json: bool = typer.Option(False, "--json", help="Print raw JSON."),
) -> None:
    """Height, view, primary, peers and the last blocks of every replica."""
    layout = load_layout(directory)
    statuses = get_status_all(layout)
    if as_json:
        typer.echo(json.dumps({str(k): _jsonable(v) for k, v in statuses.items()}, indent=2))
        return
    up = 0
    for rid, st in sorted(statuses.items()):
        if isinstance(st, ClientError):
            typer.echo(f"replica {rid}: DOWN ({st.reason})")
            continue
        up += 1
        typer.echo(
            f"replica {rid}: height {st['height']} view {st['view']} primary {st['primary']} "
            f"peers {st['peers']} head {st['head_hash'][:16]}"
            + (" (syncing)" if st["syncing"] else "")
        )
    if up == 0:
        raise NodeError(f"no replica of {directory} is reachable (is 'up' running?)")
    for line in _recent_blocks(layout, statuses, blocks):
        typer.echo(line)


def _jsonable(value: Any) -> Any:
    return {"error": value.reason} if isinstance(value, ClientError) else value


def _recent_blocks(layout: ConsortiumLayout, statuses: dict[int, Any], count: int) -> list[str]:
    live = [rid for rid, st in statuses.items() if not isinstance(st, ClientError)]
    rid = live[0]
    height = statuses[rid]["height"]

    async def fetch() -> list[str]:
        client = ConsortiumClient(layout.get_api_addresses())
        lines = [f"last blocks (replica {rid}):"]
        try:
            for h in range(height, max(height - count, -1), -1):
                res = await client.call(rid, "block", {"height": h}, timeout=5)
                block = _decode(Block, res["block"])
                certified = "certified" if res["certificate"] else "uncertified"
                lines.append(
                    f"  #{h} {res['header_hash'][:16]} txs {len(block.transactions)} "
                    f"t={block.header.timestamp_ms} {certified}"
                )
        finally:
            await client.close()
        return lines

    return asyncio.run(fetch())


@consortium_app.command("submit")
@one_line_errors
def submit_command(
    directory: Annotated[Path, typer.Argument(help="Consortium directory.")],
    kind: str = typer.Option(KV_SET_KIND, "--kind", help="Transaction kind (test.kv-set)."),
    key: str = typer.Option(..., "--key", help="Key to set."),
    value: str = typer.Option(..., "--value", help="Value to store."),
    timeout: float = typer.Option(15.0, "--timeout", help="Seconds to wait for f+1 receipts."),
) -> None:
    """Sign a transaction with a fresh key, submit it, and wait until f+1 replicas agree."""
    if kind != KV_SET_KIND:
        raise ConfigError(f"only --kind {KV_SET_KIND} can be built from the command line")
    layout = load_layout(directory)
    signer = Ed25519PrivateKey.generate()
    tx = Transaction.create(
        layout.chain_id, kind, KvSet(key.encode(), value.encode()), signer, nonce=1
    )

    async def submit() -> dict[str, Any]:
        client = ConsortiumClient(layout.get_api_addresses())
        try:
            return (await client.submit([encode(tx)], timeout=timeout))[0]
        finally:
            await client.close()

    receipt = asyncio.run(submit())
    if receipt.get("status") != "committed":
        raise NodeError(
            f"transaction {tx.tx_hash.hex()} {receipt.get('status')}: "
            f"{receipt.get('reason', 'not committed in time')}"
        )
    typer.echo(
        f"committed {receipt['tx_hash']} in block {receipt['height']} "
        f"(index {receipt['index']}, block {receipt['block_hash'][:16]}), agreed by f+1 replicas"
    )


# -- node -----------------------------------------------------------------------------------


@node_app.command("run")
@one_line_errors
def run_command(
    config: Annotated[Path, typer.Argument(help="Node config file (JSON or TOML).")],
    duration: float | None = typer.Option(None, "--duration", help="Stop after S seconds."),
    simulation_clock_offset_ms: int | None = typer.Option(
        None,
        "--simulation-clock-offset-ms",
        help="SIMULATION CHAINS ONLY (refused unless the genesis declares one): block times "
        "read wall time + this offset, raised later by the simulator.",
    ),
    max_tx_bytes: int | None = typer.Option(
        None, "--max-tx-bytes", help="Largest transaction accepted (default 65536)."
    ),
) -> None:
    """Run one replica in the foreground until Ctrl-C or SIGTERM."""
    from gridledger.node.core import NodeLimits
    from gridledger.node.run import run_event_loop, run_replica, setup_logging
    from gridledger.node.sim_clock import SimulationClock

    if max_tx_bytes is not None and not 1_024 <= max_tx_bytes <= 4 * 1024 * 1024:
        raise ConfigError("--max-tx-bytes must be in 1024..4194304")
    clock = (
        None if simulation_clock_offset_ms is None else SimulationClock(simulation_clock_offset_ms)
    )
    limits = None if max_tx_bytes is None else NodeLimits(max_tx_bytes=max_tx_bytes)
    setup_logging()
    run_event_loop(run_replica(config, duration, clock=clock, limits=limits))


# -- explorer -------------------------------------------------------------------------------


async def _ask_any(layout: ConsortiumLayout, method: str, params: dict[str, Any]) -> Any:
    """Ask the replicas in turn; the first answer wins (answers are verified by the caller)."""
    client = ConsortiumClient(layout.get_api_addresses())
    errors = []
    try:
        for rid in client.conns:
            try:
                return await client.call(rid, method, params, timeout=5)
            except ClientError as exc:
                errors.append(exc.reason)
    finally:
        await client.close()
    raise NodeError(errors[-1] if errors else "no replica answered")


@explorer_app.command("block")
@one_line_errors
def block_command(
    directory: Annotated[Path, typer.Argument(help="Consortium directory.")],
    height: int = typer.Option(..., "--height", help="Block height."),
) -> None:
    """Print a block: header, certificate signers and transactions with their receipts."""
    layout = load_layout(directory)
    res = asyncio.run(_ask_any(layout, "block", {"height": height}))
    block = _decode(Block, res["block"])
    h = block.header
    typer.echo(f"block {h.height} of chain {h.chain_id}")
    typer.echo(f"  hash          {h.header_hash.hex()}")
    typer.echo(f"  prev_hash     {h.prev_hash.hex()}")
    typer.echo(f"  tx_root       {h.tx_root.hex()}")
    typer.echo(f"  receipts_root {h.receipts_root.hex()}")
    typer.echo(f"  state_root    {h.state_root.hex()}")
    typer.echo(f"  timestamp_ms  {h.timestamp_ms}")
    if res["certificate"]:
        cert = _decode(CommitCertificate, res["certificate"])
        typer.echo(f"  certificate   signed by replicas {[s.replica_id for s in cert.signatures]}")
    else:
        typer.echo("  certificate   (not yet collected)")
    typer.echo(f"  transactions  {len(block.transactions)}")
    receipts = [_decode(Receipt, r) for r in res["receipts"]]
    for tx, receipt in zip(block.transactions, receipts, strict=False):
        outcome = "ok" if receipt.ok else f"rejected: {receipt.reason}"
        typer.echo(f"    {tx.tx_hash.hex()} {tx.kind} nonce {tx.nonce} {outcome}")


@explorer_app.command("tx")
@one_line_errors
def tx_command(
    directory: Annotated[Path, typer.Argument(help="Consortium directory.")],
    tx_hash: str = typer.Option(..., "--hash", help="Transaction hash (hex)."),
) -> None:
    """Verify a transaction's inclusion: Merkle proof against a light client's certified header."""
    layout = load_layout(directory)
    try:
        wanted = bytes.fromhex(tx_hash)
    except ValueError:
        raise ConfigError(f"--hash {tx_hash!r} is not hex") from None
    genesis = load_genesis(load_layout(directory).load_configs()[0].genesis_file)

    async def fetch() -> tuple[Any, list[Any]]:
        proof = await _ask_any(layout, "tx_proof", {"hash": wanted.hex()})
        headers: list[Any] = []
        while len(headers) < proof["height"]:
            start = len(headers) + 1
            res = await _ask_any(layout, "headers", {"from": start, "to": proof["height"]})
            if not res["headers"]:
                break
            headers.extend(res["headers"])
        return proof, headers

    proof, headers = asyncio.run(fetch())
    light = LightClient(genesis)
    for entry in headers:
        if entry["certificate"] is None:
            raise NodeError("a header on the way has no certificate yet; retry in a moment")
        light.add_header(
            _decode(BlockHeader, entry["header"]), _decode(CommitCertificate, entry["certificate"])
        )
    height = proof["height"]
    light.verify_tx_inclusion(height, wanted, _decode(MerkleProof, proof["proof"]))
    receipt = _decode(Receipt, proof["receipt"])
    light.verify_receipt(height, receipt, _decode(MerkleProof, proof["receipt_proof"]))
    if receipt.tx_hash != wanted:
        raise NodeError("the replica returned the receipt of another transaction")
    outcome = "accepted" if receipt.ok else f"rejected ({receipt.reason})"
    typer.echo(f"transaction {wanted.hex()}")
    typer.echo(
        f"  included in block {height} (header {light.get_header(height).header_hash.hex()})"
    )
    typer.echo(f"  Merkle proof verified against tx_root; receipt verified: {outcome}")
    typer.echo(f"  light client checked {height} certified headers from genesis")
