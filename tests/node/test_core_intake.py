"""Client intake and execution in the node core, at the load the benchmark uses.

Four :class:`~gridledger.node.core.NodeCore` replicas over an in-memory FIFO
"network" (synchronous delivery, simulated milliseconds): clients send every
transaction to every replica, as the documented client rule says. Checks that
the lean hot path keeps every protocol check (a bad signature is refused by
every replica), parses each transaction once per replica, and that admission
control answers ``busy`` past its bound and keeps nothing of the refused ones.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any

import pytest

import gridledger.node.core as core_mod
from gridledger.consensus.params import ConsensusParams
from gridledger.crypto.encoding import encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import Validator
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvContract, KvSet
from gridledger.ledger.execution import Dropped, get_nonce_problem
from gridledger.ledger.state import compute_state_key
from gridledger.ledger.storage import MemoryBlockStore
from gridledger.ledger.tx import Transaction
from gridledger.node.core import (
    BlockCommitted,
    NodeCore,
    NodeEffect,
    NodeLimits,
    Transmit,
    compute_dropped_json,
)

CHAIN = "intake-chain"
N = 4


def _key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey(hashlib.sha256(label.encode()).digest())


KEYS = [_key(f"intake-replica-{i}") for i in range(N)]
GENESIS = GenesisConfig.create(
    CHAIN, [Validator(i, k.public_key.raw) for i, k in enumerate(KEYS)], 1_000
)
PARAMS = ConsensusParams(max_batch=50, batch_delay_ms=10)


class Cluster:
    """Four cores, frames delivered in FIFO order, time advanced by hand."""

    def __init__(self, limits: NodeLimits | None = None) -> None:
        self.now = 10_000
        self.cores = [
            NodeCore(
                replica_id=i,
                key=KEYS[i],
                genesis=GENESIS,
                store=MemoryBlockStore(),
                registry=ContractRegistry((KvContract(),)),
                params=PARAMS,
                rng=DeterministicRng(f"intake/{i}"),
                limits=limits,
            )
            for i in range(N)
        ]
        self.queue: deque[tuple[int, int, bytes]] = deque()
        self.committed: list[list[BlockCommitted]] = [[] for _ in range(N)]
        self.cut: set[int] = set()  # replicas whose frames are lost

    def carry(self, i: int, effects: Sequence[NodeEffect]) -> None:
        for e in effects:
            if isinstance(e, Transmit):
                targets = [e.to] if e.to is not None else [j for j in range(N) if j != i]
                for j in targets:
                    self.queue.append((j, i, e.frame))
            elif isinstance(e, BlockCommitted):
                self.committed[i].append(e)

    def submit_all(self, payloads: list[bytes]) -> list[list[dict[str, Any]]]:
        answers = []
        for i, core in enumerate(self.cores):
            results, effects = core.submit(payloads, self.now)
            answers.append(results)
            self.carry(i, effects)
        self.pump()
        return answers

    def pump(self) -> None:
        for _ in range(100_000):  # bounded
            if not self.queue:
                return
            j, i, frame = self.queue.popleft()
            if j in self.cut or i in self.cut:
                continue  # a partition: lost, as over a broken link
            self.carry(j, self.cores[j].on_frame(i, frame, self.now))
        raise AssertionError("frames kept coming")

    def run(self, ms: int) -> None:
        for _ in range(ms // 10):
            self.now += 10
            for i, core in enumerate(self.cores):
                self.carry(i, core.on_tick(self.now))
            self.pump()


def _tx(nonce: int, value: bytes = b"v", signer: str = "client") -> Transaction:
    return Transaction.create(CHAIN, KV_SET_KIND, KvSet(b"k%d" % nonce, value), _key(signer), nonce)


def test_a_bad_signature_is_refused_by_every_replica() -> None:
    """The hot path verifies once per replica, but it does verify: no replica applies it."""
    cluster = Cluster()
    good = _tx(1)
    forged = Transaction(
        good.chain_id, good.kind, encode(KvSet(b"stolen", b"x")), good.sender, 2, good.signature
    )
    answers = cluster.submit_all([encode(good), encode(forged)])
    assert all(a[1]["status"] == "pending" for a in answers)  # checked at execution
    cluster.run(500)
    for core in cluster.cores:
        good_r = core.get_receipt_json(good.tx_hash)
        bad_r = core.get_receipt_json(forged.tx_hash)
        assert good_r is not None and good_r["status"] == "committed"
        assert bad_r is not None and bad_r["status"] == "dropped"  # left out of the block
        assert bad_r["reason"] == "bad signature"
        assert forged not in core.ledger.get_block(bad_r["height"]).transactions
        state = core.ledger.state
        assert state.get(compute_state_key("test", b"stolen")) is None
        assert not get_nonce_problem(state, forged.sender, forged.nonce)
    roots = {core.ledger.state_root for core in cluster.cores}
    assert len(roots) == 1


def test_each_replica_parses_each_transaction_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sent to every replica and ordered in a pre-prepare: decoded once per replica."""
    calls: list[bytes] = []
    real = core_mod.decode_transaction

    def counting(data: bytes, **kw: Any) -> Transaction:
        calls.append(data)
        return real(data, **kw)

    monkeypatch.setattr(core_mod, "decode_transaction", counting)
    cluster = Cluster()
    txs = [_tx(i) for i in range(1, 121)]
    cluster.submit_all([encode(t) for t in txs])
    cluster.run(500)
    assert all(core.executed_txs == len(txs) for core in cluster.cores)
    assert len(calls) == N * len(txs)


def test_busy_past_the_admission_bound_and_nothing_kept() -> None:
    cluster = Cluster(NodeLimits(max_inflight_txs=5, busy_retry_ms=150, max_busy_retry_ms=400))
    txs = [_tx(i) for i in range(1, 9)]
    answers = cluster.submit_all([encode(t) for t in txs])
    for a in answers:
        assert [r["status"] for r in a] == ["pending"] * 5 + ["busy"] * 3
        assert all(r["retry_after_ms"] == 400 for r in a[5:])  # nothing committed yet
        assert all(r["tx_hash"] == t.tx_hash.hex() for r, t in zip(a, txs, strict=True))
    cluster.run(500)
    for core in cluster.cores:
        assert core.executed_txs == 5
        assert core.get_receipt_json(txs[7].tx_hash) is None
        assert core.get_status()["busy_answers"] == 3
        assert core.get_status()["inflight_txs"] == 0
    # Capacity is back once the accepted ones committed: the retry goes through.
    retry = cluster.submit_all([encode(t) for t in txs[5:]])
    assert all(r["status"] == "pending" for a in retry for r in a)
    cluster.run(500)
    assert all(core.executed_txs == 8 for core in cluster.cores)


def test_a_resent_transaction_is_answered_not_reordered() -> None:
    cluster = Cluster()
    tx = _tx(1)
    cluster.submit_all([encode(tx)])
    again = cluster.submit_all([encode(tx)])
    assert all(a[0]["status"] == "pending" for a in again)  # in flight: no second request
    cluster.run(300)
    final = cluster.submit_all([encode(tx)])
    assert all(a[0]["status"] == "committed" for a in final)
    cluster.run(300)
    assert all(core.executed_txs == 1 for core in cluster.cores)


def test_a_used_nonce_is_refused_at_intake_and_its_own_copy_answered() -> None:
    cluster = Cluster()
    tx = _tx(1)
    cluster.submit_all([encode(tx)])
    cluster.run(300)
    reuse = _tx(1, b"other value")
    answers = cluster.submit_all([encode(reuse), encode(tx)])
    for a in answers:
        assert (a[0]["status"], a[0]["error"]) == ("invalid", "replayed-nonce")
        assert a[1]["status"] == "committed" and a[1]["tx_hash"] == tx.tx_hash.hex()
    assert all(core.get_status()["inflight_txs"] == 0 for core in cluster.cores)


def test_a_nonce_reused_in_flight_is_dropped_and_reported() -> None:
    """Two different transactions with one nonce, both accepted: one executes, the
    other is left out of the block, and every replica says so (for its waiters)."""
    cluster = Cluster()
    first, second = _tx(7), _tx(7, b"second")
    cluster.submit_all([encode(first), encode(second)])
    cluster.run(500)
    for i, core in enumerate(cluster.cores):
        (event,) = [e for e in cluster.committed[i] if e.block.transactions]
        assert event.block.transactions == (first,)
        assert event.dropped == (Dropped(second.tx_hash, "replayed nonce"),)
        answer = compute_dropped_json(event.dropped[0], event.block.height)
        assert core.get_receipt_json(second.tx_hash) == answer  # also when asked later
        assert answer["status"] == "dropped" and answer["height"] == event.block.height
        assert core.get_status()["inflight_txs"] == 0
    # Sent again, it gets the same answer from every replica (f+1 can agree on it).
    again = cluster.submit_all([encode(second)])
    assert len({str(a[0]) for a in again}) == 1 and again[0][0]["status"] == "dropped"


def test_a_transaction_left_out_while_its_replica_was_away_is_dropped_there_too() -> None:
    """Replica 3 accepted a transaction, then was cut off while the others ordered a
    different one with the same nonce; it learns the block by state transfer (which
    carries no drops). Asked again, it answers ``dropped`` and lets the transaction go."""
    cluster = Cluster()
    first, second = _tx(9), _tx(9, b"second")
    cluster.cut = {3}
    results, effects = cluster.cores[3].submit([encode(second)], cluster.now)
    cluster.carry(3, effects)  # its frames are lost: replica 3 is cut off
    assert results[0]["status"] == "pending"
    cluster.submit_all([encode(first)])  # replica 3's copy of this one is lost too
    cluster.run(2_500)  # long enough that replica 3's forward of it is lost as well
    assert all(core.get_receipt_json(first.tx_hash) for core in cluster.cores[:3])
    cluster.cut = set()
    cluster.run(6_000)  # height gossip, then state transfer
    lagging = cluster.cores[3]
    assert lagging.ledger.height == cluster.cores[0].ledger.height
    assert lagging.get_status()["inflight_txs"] == 1  # the import did not say
    (again,) = lagging.submit([encode(second)], cluster.now)[0]
    assert (again["status"], again["reason"]) == ("dropped", "replayed nonce")
    assert lagging.get_status()["inflight_txs"] == 0
    assert lagging.submit([encode(second)], cluster.now)[0] == [again]  # and it stays so


def test_garbage_and_foreign_chain_payloads_are_invalid_at_intake() -> None:
    cluster = Cluster()
    other = Transaction.create("other-chain", KV_SET_KIND, KvSet(b"k", b"v"), _key("c"), 1)
    answers = cluster.submit_all([b"\xff\x00", encode(other), encode(_tx(1))[:-1]])
    for a in answers:
        assert [r["status"] for r in a] == ["invalid"] * 3
    assert all(core.get_status()["inflight_txs"] == 0 for core in cluster.cores)


def test_at_capacity_answers_come_from_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusing must cost less than executing: no decode, no store read at capacity."""
    cluster = Cluster(NodeLimits(max_inflight_txs=3))
    first = [_tx(i) for i in range(1, 4)]
    cluster.submit_all([encode(t) for t in first])
    cluster.run(300)
    held = [_tx(i) for i in range(4, 7)]
    cluster.submit_all([encode(t) for t in held])  # fills the bound again
    core = cluster.cores[0]

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the capacity path must not decode or read the store")

    monkeypatch.setattr(core_mod, "decode_transaction", refuse)
    monkeypatch.setattr(core.store, "find_tx", refuse)
    answers, effects = core.submit(
        [encode(held[0]), encode(first[0]), encode(_tx(9)), b"\x00junk"], cluster.now
    )
    assert effects == []
    assert [a["status"] for a in answers] == ["pending", "committed", "busy", "busy"]
    assert answers[1]["tx_hash"] == first[0].tx_hash.hex()
    assert answers[2]["tx_hash"] == _tx(9).tx_hash.hex()


def test_retry_after_follows_the_queue_drain_time() -> None:
    limits = NodeLimits(max_inflight_txs=40, busy_retry_ms=50, max_busy_retry_ms=5_000)
    cluster = Cluster(limits)
    core = cluster.cores[0]
    assert core.get_retry_after_ms() == 50  # no rate measured yet: the floor
    cluster.submit_all([encode(_tx(i)) for i in range(1, 21)])
    cluster.run(1_500)  # 20 committed, the rate sampled over one gossip period
    cluster.submit_all([encode(_tx(i)) for i in range(21, 61)])
    rate = core.commit_rate  # the estimate under test
    assert rate > 0
    expected = int(500 * 40 / rate)
    assert core.get_retry_after_ms() == max(50, min(5_000, expected))
    answers, _ = core.submit([encode(_tx(99))], cluster.now)
    assert answers[0]["status"] == "busy"
    assert 50 <= answers[0]["retry_after_ms"] <= 5_000


def test_a_stalled_queue_asks_for_the_longest_wait() -> None:
    cluster = Cluster(NodeLimits(max_inflight_txs=2, busy_retry_ms=50, max_busy_retry_ms=900))
    core = cluster.cores[0]
    core.submit([encode(_tx(1)), encode(_tx(2))], cluster.now)  # only here: never ordered
    answers, _ = core.submit([encode(_tx(3))], cluster.now)
    assert answers[0]["status"] == "busy"
    assert answers[0]["retry_after_ms"] == 900


def test_the_admission_bound_follows_the_commit_rate() -> None:
    """Past saturation the queue holds what the recent rate clears in queue_delay_ms."""
    limits = NodeLimits(max_inflight_txs=100, min_inflight_txs=4, queue_delay_ms=500)
    cluster = Cluster(limits)
    core = cluster.cores[0]
    assert core.admission_limit == 100  # nothing committed lately: the fixed bound
    cluster.submit_all([encode(_tx(i)) for i in range(1, 21)])
    cluster.run(1_500)  # 20 committed, the rate sampled over one gossip period
    rate = core.commit_rate
    assert rate > 0
    bound = max(4, min(100, int(rate * 0.5)))
    assert core.admission_limit == bound < 100
    txs = [encode(_tx(i)) for i in range(21, 21 + bound + 3)]
    answers, _ = core.submit(txs, cluster.now)
    assert [a["status"] for a in answers] == ["pending"] * bound + ["busy"] * 3


def test_the_admission_bound_never_falls_below_its_floor() -> None:
    limits = NodeLimits(max_inflight_txs=100, min_inflight_txs=30, queue_delay_ms=1)
    cluster = Cluster(limits)
    cluster.submit_all([encode(_tx(i)) for i in range(1, 11)])
    cluster.run(1_500)
    core = cluster.cores[0]
    assert 0 < core.commit_rate * 0.001 < 30
    assert core.admission_limit == 30
