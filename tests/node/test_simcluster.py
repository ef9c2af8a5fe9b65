"""The engine-neutral simulation driver: any engine, crashes, partitions, safety records."""

from __future__ import annotations

import pytest

from gridledger.consensus.params import ConsensusParams
from gridledger.consensus.simhub import NetworkModel
from gridledger.crypto.encoding import encode
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.plugins import build_registry
from gridledger.node.core import BlockCommitted
from gridledger.node.simcluster import SimCluster
from tests.consensus.dpos.helpers import make_cluster
from tests.ledger.helpers import REPLICA_KEYS, VALIDATORS
from tests.node.helpers import make_kv_txs

CHAIN = "test-chain"
PARAMS = ConsensusParams(batch_delay_ms=10, view_change_timeout_ms=1_000, tick_ms=20)


def _pbft_cluster(seed: str, model: NetworkModel | None = None) -> SimCluster:
    genesis = GenesisConfig.create(CHAIN, VALIDATORS, 0)
    return SimCluster(
        genesis, list(REPLICA_KEYS), model=model, seed=seed, params=PARAMS, tick_ms=20
    )


def test_pbft_runs_over_the_generic_driver_with_a_crash_and_a_restart() -> None:
    cluster = _pbft_cluster("sc-pbft")
    seen: list[int] = []
    cluster.on_effect = lambda rid, e: seen.append(rid) if isinstance(e, BlockCommitted) else None
    txs = make_kv_txs(40, chain_id=CHAIN)
    for j, tx in enumerate(txs):
        cluster.submit(j % 3, encode(tx), at_ms=10 + 20 * j)  # 3 is down for a while
    cluster.at(300, lambda: cluster.crash(3))
    cluster.at(2_000, lambda: cluster.restart(3))
    cluster.run_until(8_000)
    assert cluster.stats.crashes == 1 and cluster.stats.restarts == 1
    assert cluster.get_safety_violations() == []
    heights = cluster.get_heights()
    assert len(set(heights.values())) == 1 and heights[0] >= 2
    assert set(cluster.stats.commit_ms) >= {tx.tx_hash for tx in txs}
    assert set(seen) == {0, 1, 2, 3}
    with pytest.raises(KeyError):
        cluster.crash(2)
        cluster.get_core(2)


def test_same_seed_same_trace_and_a_partition_delays_but_does_not_fork() -> None:
    def run(seed: str) -> tuple[dict[int, int], bytes]:
        model = NetworkModel(delay_ms=(1, 15), drop_rate=0.02)
        cluster = _pbft_cluster(seed, model)
        cluster.partition([[0, 1], [2, 3]], 100, 1_500)
        for j, tx in enumerate(make_kv_txs(20, chain_id=CHAIN)):
            cluster.submit(j % 4, encode(tx), at_ms=50 + 30 * j)
        cluster.run_until(6_000)
        assert cluster.get_safety_violations() == []
        return cluster.get_heights(), cluster.get_core(0).ledger.head.header_hash

    assert run("sc-seed") == run("sc-seed")


def test_safety_check_reports_diverging_blocks() -> None:
    cluster = make_cluster(4, 4, seed="sc-safety")
    cluster.run_until(3_000)
    assert cluster.get_safety_violations() == []
    cluster.chains[2][1] = b"\x00" * 32  # what a fork would leave behind
    assert any("height 1" in v for v in cluster.get_safety_violations())


def test_inject_reaches_the_engine_and_garbage_is_counted_not_raised() -> None:
    cluster = make_cluster(4, 4, seed="sc-inject")
    cluster.inject(1, 0, b"\xff\x00garbage")
    cluster.run_until(1_000)
    assert cluster.get_core(0).engine.get_status()["rejected"]["malformed"] == 1


def test_one_key_per_validator_is_required() -> None:
    genesis = GenesisConfig.create(CHAIN, VALIDATORS, 0)
    with pytest.raises(ValueError):
        SimCluster(genesis, list(REPLICA_KEYS[:3]), registry_factory=build_registry)
