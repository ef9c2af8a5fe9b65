"""A contract registered by a plugin runs on a live consortium, with no change to node/.

The plugin below lives only in this test: it writes its genesis section when
the consortium is created, and every replica (4, over loopback TCP) then runs
its contract and end-of-block hook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.contracts import BlockContext, StateView
from gridledger.ledger.errors import ContractRejection
from gridledger.ledger.plugins import GenesisSetup, register_plugin, unregister_plugin
from gridledger.ledger.tx import Transaction
from gridledger.node.client import ConsortiumClient
from gridledger.node.config import load_config
from gridledger.node.consortium import init_consortium
from gridledger.node.replica import Replica

from .helpers import FAST, get_free_ports, wait_until

CHAIN = "plugin-chain"


@wire_type("test.tally-vote/1")
@dataclass(frozen=True)
class TallyVote:
    option: str


class TallyContract:
    """Counts votes per option; the end-of-block hook records the leader per block."""

    namespace = "tally"
    kinds = frozenset({"tally.vote"})

    def __init__(self, options: tuple[str, ...]) -> None:
        self.options = options

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        vote = decode_as(TallyVote, tx.payload)
        if vote.option not in self.options:
            raise ContractRejection(f"no option {vote.option!r}")
        key = b"count/" + vote.option.encode()
        count = int.from_bytes(view.get(key) or b"\0", "big") + 1
        view.put(key, count.to_bytes(4, "big"))
        return count.to_bytes(4, "big")

    def end_block(self, view: StateView, ctx: BlockContext) -> None:
        counts = [(int.from_bytes(v, "big"), k) for k, v in view.scan(b"count/")]
        if counts:
            view.put(b"leader", max(counts)[1][len(b"count/") :])


@dataclass(frozen=True)
class TallyPlugin:
    name: str = "tally"

    def make_genesis_section(self, setup: GenesisSetup) -> Mapping[bytes, bytes]:
        (setup.root / "tally").mkdir()
        return {b"tally/genesis/options": b"solar,wind"}

    def build_contracts(self, genesis: GenesisConfig) -> tuple[TallyContract, ...]:
        options = dict(genesis.state).get(b"tally/genesis/options")
        return () if options is None else (TallyContract(tuple(options.decode().split(","))),)


@pytest.fixture
def tally_plugin() -> Iterator[None]:
    register_plugin(TallyPlugin())
    yield
    unregister_plugin("tally")


def test_a_plugin_contract_runs_on_a_live_consortium(tmp_path: Path, tally_plugin: None) -> None:
    ports = get_free_ports(8)
    layout = init_consortium(
        tmp_path / "c",
        4,
        consensus=FAST,
        ports=[(ports[2 * i], ports[2 * i + 1]) for i in range(4)],
        chain_id=CHAIN,
        identity=None,
    )
    assert (tmp_path / "c" / "tally").is_dir()

    async def scenario() -> None:
        replicas = [Replica(load_config(p), synchronous="NORMAL") for p in layout.configs]
        for r in replicas:
            await r.start()
        client = ConsortiumClient(layout.get_api_addresses())
        try:
            voter = Ed25519PrivateKey(b"\x03" * 32)
            votes = ["wind", "solar", "wind", "hydro"]
            txs = [
                Transaction.create(CHAIN, "tally.vote", TallyVote(o), voter, i)
                for i, o in enumerate(votes)
            ]
            receipts = await client.submit([encode(tx) for tx in txs], timeout=15)
            assert [r["status"] for r in receipts] == ["committed"] * 3 + ["rejected"]
            assert "no option 'hydro'" in receipts[3]["reason"]
            await wait_until(
                lambda: all(r.ledger.state.get(b"tally/leader") == b"wind" for r in replicas),
                10,
                "the end-of-block hook on every replica",
            )
            roots = {
                r.ledger.head.state_root
                for r in replicas
                if r.ledger.height == replicas[0].ledger.height
            }
            assert len(roots) == 1
        finally:
            await client.close()
            for r in replicas:
                await r.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
