"""``consortium init --engine jetstream`` and ``up``: NATS servers and replica processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridledger.cli.consortium import consortium_app
from gridledger.crypto.encoding import encode
from gridledger.node.client import ConsortiumClient
from gridledger.node.consortium import ConsortiumProcesses, init_consortium, load_genesis
from tests.node.helpers import FAST, get_free_ports, make_kv_txs


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["jetstream", "dpos"])
def test_a_consortium_of_processes_commits_with_another_engine(tmp_path: Path, engine: str) -> None:
    free = get_free_ports(8)
    layout = init_consortium(
        tmp_path / "c",
        4,
        chain_id="gridledger-local",
        identity=None,
        consensus=FAST,
        ports=[(free[i], free[4 + i]) for i in range(4)],
        engine=engine,
    )
    assert (layout.root / "nats.json").exists() == (engine == "jetstream")
    txs = [encode(tx) for tx in make_kv_txs(60, chain_id="gridledger-local")]

    async def scenario() -> None:
        client = ConsortiumClient(layout.get_api_addresses())
        try:
            receipts = await client.submit(txs, timeout=40)
            assert [r["status"] for r in receipts] == ["committed"] * 60
            again = await client.submit(txs[:5], timeout=20)  # a duplicate commits once
            assert [r["height"] for r in again] == [r["height"] for r in receipts[:5]]
            status = await client.call(2, "status", {})
            assert status["engine"] == engine and status["height"] >= 1
        finally:
            await client.close()

    with ConsortiumProcesses(layout) as procs:
        procs.start()
        assert (procs.nats is not None) == (engine == "jetstream")
        procs.wait_ready(30)
        asyncio.run(asyncio.wait_for(scenario(), 80))


@pytest.mark.parametrize("engine", ["dpos", "jetstream"])
def test_cli_init_names_the_engine_in_the_genesis(tmp_path: Path, engine: str) -> None:
    root = tmp_path / "c"
    args = ["init", "--nodes", "4", "--dir", str(root), "--no-identity", "--engine", engine]
    res = CliRunner().invoke(consortium_app, [*args, "--base-port", "17500"])
    assert res.exit_code == 0, res.output
    assert f"(engine {engine})" in res.output
    genesis = load_genesis(root / "genesis.cbor")
    assert genesis.engine == engine
    assert (root / "nats.json").exists() == (engine == "jetstream")


def test_cli_init_refuses_an_unknown_engine_in_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        consortium_app, ["init", "--dir", str(tmp_path / "c"), "--no-identity", "--engine", "pow"]
    )
    assert res.exit_code != 0
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown consensus engine" in lines[0]
