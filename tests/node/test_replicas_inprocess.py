"""Four replicas in one process over real TCP on 127.0.0.1 commit the same blocks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gridledger.consensus.effects import (
    PHASE_COMMIT,
    PHASE_PRE_PREPARE,
    PHASE_PREPARE,
    VoteRecord,
)
from gridledger.consensus.messages import (
    Commit,
    Prepare,
    PrePrepare,
    SignedEnvelope,
    decode_message,
)
from gridledger.consensus.pbft import decode_vote_log
from gridledger.consensus.pbft_engine import PbftEngine
from gridledger.crypto.encoding import TYPE_KEY, decode, encode, from_value, wire_name
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.tx import Transaction
from gridledger.node.client import ConsortiumClient
from gridledger.node.config import load_config
from gridledger.node.core import ENGINE_CHANNEL, NodeLimits
from gridledger.node.replica import VOTES_META, Replica

from .helpers import make_consortium, make_kv_txs, running_consortium, wait_until


def test_four_replicas_commit_the_same_blocks(tmp_path: Path) -> None:
    layout = make_consortium(tmp_path / "c")

    async def scenario() -> None:
        async with running_consortium(layout) as (replicas, client):
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
            # so is a whole resubmitted batch, and a wait on many committed hashes, at any
            # replica and at once (no waiting for a block that will never come)
            for replica in range(4):
                batch = await client.call(
                    replica, "submit", {"txs": [encode(t).hex() for t in txs[:50]]}, 5
                )
                assert [r["status"] for r in batch["receipts"]] == ["committed"] * 50
                hashes = [t.tx_hash.hex() for t in txs[200:260]]
                waited = await client.call(replica, "wait", {"hashes": hashes, "timeout": 0.5}, 5)
                assert [r["status"] for r in waited["receipts"]] == ["committed"] * 60

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_votes_reach_sqlite_before_the_network(tmp_path: Path) -> None:
    """Every PRE-PREPARE/PREPARE/COMMIT a replica transmits is already in its vote log."""
    layout = make_consortium(tmp_path / "c")
    checked: list[int] = []
    unpersisted: list[str] = []

    def guard(replica: Replica) -> None:
        engine = replica.core.engine
        assert isinstance(engine, PbftEngine)
        send, broadcast = replica.transport.send, replica.transport.broadcast

        def check(frame: bytes) -> None:
            if frame[0] != ENGINE_CHANNEL:
                return  # node frames (gossip, block fetch) carry no votes
            value = decode(frame[1:])
            if not isinstance(value, dict) or value.get(TYPE_KEY) != wire_name(SignedEnvelope):
                return
            msg = decode_message(from_value(SignedEnvelope, value).body)
            phase = {PrePrepare: PHASE_PRE_PREPARE, Prepare: PHASE_PREPARE, Commit: PHASE_COMMIT}
            if type(msg) not in phase:
                return
            assert isinstance(msg, (PrePrepare, Prepare, Commit))
            raw = replica.store.get_meta(VOTES_META)
            on_disk = decode_vote_log(raw) if raw is not None else ()
            vote = VoteRecord(msg.view, msg.seq, phase[type(msg)], msg.batch_digest)
            checked.append(replica.id)
            if vote not in on_disk and msg.seq > engine.state.low_watermark:
                unpersisted.append(f"replica {replica.id} sent {vote} before persisting it")

        def checked_send(to: int, frame: bytes) -> None:
            check(frame)
            send(to, frame)

        def checked_broadcast(frame: bytes) -> None:
            check(frame)
            broadcast(frame)

        replica.transport.send = checked_send  # type: ignore[method-assign]
        replica.transport.broadcast = checked_broadcast  # type: ignore[method-assign]

    async def scenario() -> None:
        replicas = [Replica(load_config(p), synchronous="NORMAL") for p in layout.configs]
        for r in replicas:
            guard(r)
            await r.start()
        client = ConsortiumClient(layout.get_api_addresses())
        try:
            txs = make_kv_txs(60)
            receipts = await client.submit([encode(tx) for tx in txs], timeout=15)
            assert all(r["status"] == "committed" for r in receipts)
        finally:
            await client.close()
            for r in replicas:
                await r.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert unpersisted == []
    assert set(checked) == {0, 1, 2, 3}


def test_concurrent_waits_on_overlapping_transactions_all_get_receipts(tmp_path: Path) -> None:
    """Several calls waiting on the same transactions (one future per call) are all woken."""
    layout = make_consortium(tmp_path / "c")

    async def scenario() -> None:
        async with running_consortium(layout) as (_, client):
            txs = make_kv_txs(30)
            hashes = [t.tx_hash.hex() for t in txs]
            waits = [
                asyncio.create_task(
                    client.call(0, "wait", {"hashes": hashes[:20], "timeout": 10}, 15)
                ),
                asyncio.create_task(
                    client.call(
                        0, "wait", {"hashes": hashes[10:] + hashes[10:12], "timeout": 10}, 15
                    )
                ),
            ]
            never = asyncio.create_task(
                client.call(0, "wait", {"hashes": ["ab" * 32, hashes[0]], "timeout": 1}, 15)
            )
            await asyncio.sleep(0.2)
            receipts = await client.submit([encode(t) for t in txs], timeout=15)
            assert all(r["status"] == "committed" for r in receipts)
            first, second = [w["receipts"] for w in await asyncio.gather(*waits)]
            assert [r["status"] for r in first] == ["committed"] * 20
            assert [r["status"] for r in second] == ["committed"] * 22
            assert second[-2:] == second[:2]  # the same hash twice in one call
            partial = (await never)["receipts"]
            assert [r["status"] for r in partial] == ["pending", "committed"]
            # a late wait after the timed-out one is answered from the chain at once
            again = await client.call(0, "wait", {"hashes": hashes, "timeout": 0.1}, 5)
            assert [r["status"] for r in again["receipts"]] == ["committed"] * 30

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_the_client_sends_again_what_a_replica_refused_as_busy(tmp_path: Path) -> None:
    """Replicas that hold at most 10 transactions refuse the rest of a batch of 40 as
    ``busy``; the client comes back after ``retry_after_ms`` until every one committed,
    both on the every-replica path and on the primary-only path."""
    layout = make_consortium(tmp_path / "c")
    limits = NodeLimits(
        max_inflight_txs=10, min_inflight_txs=10, busy_retry_ms=50, max_busy_retry_ms=100
    )

    async def scenario() -> None:
        async with running_consortium(layout, limits) as (replicas, client):
            txs = make_kv_txs(80)
            first = await client.submit([encode(t) for t in txs[:40]], timeout=20)
            assert [r["status"] for r in first] == ["committed"] * 40
            rest = txs[40:]
            second = await client.submit_via_primary(
                [encode(t) for t in rest], [t.tx_hash for t in rest], 0, timeout=20
            )
            assert [r["status"] for r in second] == ["committed"] * 40
            assert sum(r.core.busy_answers for r in replicas) > 0  # the bound did bite

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_reused_nonce_gets_one_agreed_answer_on_every_path(tmp_path: Path) -> None:
    """Two transactions with one (sender, nonce): the first ordered commits, the other
    is ``dropped`` (both sent together) or ``invalid`` (sent after), and f+1 replicas
    say so on the every-replica path, on the primary-only path and when asked later."""
    layout = make_consortium(tmp_path / "c")

    async def scenario() -> None:
        async with running_consortium(layout) as (_replicas, client):
            a, other = make_kv_txs(2, seed=7)
            b = Transaction.create(a.chain_id, a.kind, other.payload, _key(7), a.nonce)
            assert a.tx_hash != b.tx_hash and (a.sender, a.nonce) == (b.sender, b.nonce)
            together = await client.submit([encode(a), encode(b)], timeout=15)
            statuses = sorted(r["status"] for r in together)
            assert statuses == ["committed", "dropped"]
            late = next(r for r in together if r["status"] == "dropped")
            assert late["reason"] == "replayed nonce"
            for r in range(4):  # asked later, every replica gives the same answer
                again = await client.call(r, "wait", {"hashes": [late["tx_hash"]]}, 5)
                assert again["receipts"] == [late]
            c = Transaction.create(a.chain_id, a.kind, b"\x00", _key(7), a.nonce)
            (after,) = await client.submit_via_primary([encode(c)], [c.tx_hash], 0, timeout=15)
            assert (after["status"], after["error"]) == ("invalid", "replayed-nonce")

    asyncio.run(asyncio.wait_for(scenario(), 60))


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey(seed.to_bytes(32, "big"))
