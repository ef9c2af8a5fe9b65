"""Four replicas in one process over real TCP on 127.0.0.1 commit the same blocks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gridledger.crypto.encoding import encode
from gridledger.node.client import ConsortiumClient
from gridledger.node.config import load_config
from gridledger.node.replica import Replica

from .helpers import make_consortium, make_kv_txs, wait_until


def test_four_replicas_commit_the_same_blocks(tmp_path: Path) -> None:
    layout = make_consortium(tmp_path / "c")

    async def scenario() -> None:
        replicas = [Replica(load_config(p), synchronous="NORMAL") for p in layout.configs]
        for r in replicas:
            await r.start()
        client = ConsortiumClient(layout.get_api_addresses())
        try:
            txs = make_kv_txs(300)
            receipts = await client.submit([encode(tx) for tx in txs[:100]], timeout=15)
            first = receipts[0]
            assert [r["status"] for r in receipts] == ["committed"] * 100
            assert {r["tx_hash"] for r in receipts} == {tx.tx_hash.hex() for tx in txs[:100]}
            receipts = await client.submit([encode(tx) for tx in txs[100:]], timeout=15)
            assert all(r["status"] == "committed" for r in receipts)
            height = max(r.ledger.height for r in replicas)
            await wait_until(
                lambda: all(r.ledger.height == height for r in replicas), 10, "equal heights"
            )
            heads = {r.ledger.head.header_hash for r in replicas}
            assert len(heads) == 1
            for h in range(1, height + 1):
                assert len({r.store.get_header(h) for r in replicas}) == 1
            assert (
                sum(len(replicas[0].ledger.get_block(h).transactions) for h in range(1, height + 1))
                == 300
            )
            await wait_until(
                lambda: all(r.store.get_certificate(height) is not None for r in replicas),
                10,
                "certificates",
            )
            # a resubmitted transaction is answered from the chain, not executed twice
            again = await client.submit([encode(txs[0])], timeout=3)
            assert again == [first]
        finally:
            await client.close()
            for r in replicas:
                await r.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
