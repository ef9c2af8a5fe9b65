"""The ordering service on a real NATS JetStream cluster (3 servers on 127.0.0.1, stream R3)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridledger.consensus.ordering.config import OrderingConfig
from gridledger.consensus.ordering.servers import NatsCluster, plan_nats_cluster, start_nats_cluster
from gridledger.crypto.encoding import encode
from gridledger.ledger.light import LightClient
from tests.consensus.ordering.helpers import CHAIN, make_genesis
from tests.consensus.ordering.nats_cluster import NatsConsortium
from tests.node.helpers import make_kv_txs

pytestmark = pytest.mark.slow
CONFIG = OrderingConfig(max_block_requests=100, cut_delay_ms=30, stream_replicas=3)


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsCluster]:
    cluster = start_nats_cluster(plan_nats_cluster(tmp_path, 3))
    try:
        yield cluster
    finally:
        cluster.stop()


def _converged(c: NatsConsortium, want: set[bytes]) -> bool:
    heights = c.get_heights()
    if len(set(heights.values())) != 1:
        return False
    return all(want <= set(c.get_committed(i)) for i in c.ids)


def test_a_server_and_a_replica_killed_under_load_lose_no_acknowledged_transaction(
    nats: NatsCluster,
) -> None:
    async def scenario() -> None:
        genesis, keys = make_genesis(3, CONFIG)
        c = NatsConsortium(genesis, keys, nats.urls)
        try:
            for i in c.ids:
                await c.start_replica(i)
            txs = make_kv_txs(300, chain_id=CHAIN)
            down = False
            for j, tx in enumerate(txs):
                if j == 100:
                    nats.kill("n1")  # a NATS server crashes
                if j == 150:
                    await c.crash_replica(2)  # and a replica
                    down = True
                if j == 250:
                    await c.start_replica(2)  # back, from its store and log position
                    down = False
                target = j % 3
                c.submit(0 if down and target == 2 else target, encode(tx))
                await asyncio.sleep(0.004)
            keys = set(c.tx_keys)
            assert len(keys) == 300
            await c.wait_for(lambda: keys <= set(c.acked) | c.unacked, 40)
            acked = c.get_acked_tx_hashes()
            # Bounded retries ride out the failover; only appends of the crashed replica
            # still in flight when it went down may be unacknowledged (their clients retry).
            assert len(acked) >= 250, (len(acked), len(keys & c.unacked), c.errors)
            assert await c.wait_for(lambda: _converged(c, acked), 30), c.get_heights()
            for i in c.ids:
                committed = c.get_committed(i)
                assert len(committed) == len(set(committed))  # once each
            heads = {c.stores[i].get_header(c.get_heights()[i]) for i in c.ids}
            assert len(heads) == 1
            store = c.stores[0]
            light = LightClient(genesis)
            height = store.head_height() or 0
            proven = max(h for h in range(height + 1) if store.get_certificate(h) is not None)
            assert proven >= height - 2
            for h in range(1, proven + 1):
                header, cert = store.get_header(h), store.get_certificate(h)
                assert header is not None and cert is not None
                light.add_header(header, cert)
        finally:
            await c.stop()

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_a_duplicate_submission_commits_once(nats: NatsCluster) -> None:
    async def scenario() -> None:
        genesis, keys = make_genesis(3, CONFIG)
        c = NatsConsortium(genesis, keys, nats.urls)
        try:
            for i in c.ids:
                await c.start_replica(i)
            txs = make_kv_txs(20, chain_id=CHAIN)
            for tx in txs:
                for i in c.ids:  # the same transaction to every replica, twice
                    c.submit(i, encode(tx))
                    c.submit(i, encode(tx))
            want = {tx.tx_hash for tx in txs}
            assert await c.wait_for(lambda: _converged(c, want), 20)
            assert sorted(c.get_committed(1)) == sorted(want)
            assert await c.wait_for(lambda: not c.tasks, 20)  # every append answered
            logs = list(c.logs.values())
            # Three replicas appended each transaction; the stream stored it once.
            assert sum(g.duplicates for g in logs) >= 2 * 20
            assert sum(g.appended for g in logs) <= 20 + c.get_heights()[0] + 3  # + cut markers
            assert sorted(c.get_committed(1)) == sorted(want)
        finally:
            await c.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
