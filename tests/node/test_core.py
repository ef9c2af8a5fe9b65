"""The node core's own rules: idempotent client intake, admission control, bad frames."""

from __future__ import annotations

import cbor2
import pytest

from gridledger.crypto.encoding import encode
from gridledger.node.core import ENGINE_CHANNEL, NODE_CHANNEL, NodeLimits
from gridledger.node.simnet import SimNetwork

from .helpers import make_kv_txs


def _committed_sim() -> tuple[SimNetwork, list[bytes]]:
    sim = SimNetwork(4, seed=5)
    txs = [sim.make_transaction(k) for k in range(12)]
    for tx in txs:
        sim.submit_transaction(tx)
    assert sim.run_until_done(10_000)
    sim.run_until(sim.now_ms + 500)
    return sim, [encode(tx) for tx in txs]


def test_resubmitting_committed_transactions_answers_with_their_receipts() -> None:
    sim, payloads = _committed_sim()
    for replica in sim.replicas:
        results, effects = replica.core.submit(payloads, sim.clock_ms)
        assert [r["status"] for r in results] == ["committed"] * len(payloads)
        assert len({r["block_hash"] for r in results}) >= 1
        assert effects == []  # nothing goes to the engine again


def test_a_pending_transaction_is_not_requested_twice() -> None:
    sim = SimNetwork(4, seed=6)
    core = sim.replicas[1].core  # a backup: it holds requests for the primary
    payload = encode(sim.make_transaction(0))
    first, _ = core.submit([payload], sim.clock_ms)
    again, effects = core.submit([payload], sim.clock_ms)
    assert first[0]["status"] == again[0]["status"] == "pending"
    assert effects == []


def test_past_the_admission_bound_the_answer_is_busy_and_nothing_is_kept() -> None:
    sim = SimNetwork(4, seed=7, limits=NodeLimits(max_inflight_txs=3))
    core = sim.replicas[2].core
    payloads = [encode(sim.make_transaction(k)) for k in range(5)]
    results, _ = core.submit(payloads, sim.clock_ms)
    assert [r["status"] for r in results] == ["pending"] * 3 + ["busy"] * 2
    assert all(r["retry_after_ms"] > 0 for r in results[3:])
    assert core.get_status()["inflight_txs"] == 3 and core.busy_answers == 2


def test_invalid_transactions_are_refused_with_a_reason() -> None:
    sim = SimNetwork(4, seed=8)
    core = sim.replicas[0].core
    (other_chain,) = make_kv_txs(1, chain_id="elsewhere")
    results, effects = core.submit([b"\x00garbage", encode(other_chain)], sim.clock_ms)
    assert [r["status"] for r in results] == ["invalid", "invalid"]
    assert "chain" in results[1]["reason"]
    assert effects == []


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x07whatever",
        bytes([ENGINE_CHANNEL]) + b"\xff\xfe",
        bytes([ENGINE_CHANNEL]) + cbor2.dumps({"_t": ["a", "list"]}),
        bytes([ENGINE_CHANNEL]) + cbor2.dumps({"_t": {"a": "map"}}),
        bytes([NODE_CHANNEL]) + cbor2.dumps({"_t": ["a", "list"]}),
        bytes([NODE_CHANNEL]) + cbor2.dumps({"_t": {"a": 1}}),
        bytes([NODE_CHANNEL]) + cbor2.dumps({"_t": "node.blocks/1", "request_id": "x"}),
        bytes([NODE_CHANNEL]) + cbor2.dumps([1, 2, 3]),
        bytes([NODE_CHANNEL]) + b"\x00" * 64,
    ],
)
def test_malformed_frames_are_counted_never_raised(frame: bytes) -> None:
    sim, _ = _committed_sim()
    core = sim.replicas[0].core

    def refused() -> int:
        engine_rejected = core.engine.get_status()["rejected"]
        return sum(core.bad_frames.values()) + sum(engine_rejected.values())

    before = refused()
    assert core.on_frame(1, frame, sim.clock_ms) == []
    assert refused() == before + 1
    # the replica still works
    sim.submit(3)
    assert sim.run_until_done(sim.now_ms + 10_000)


def test_frames_from_unknown_senders_are_dropped() -> None:
    sim = SimNetwork(4, seed=9)
    core = sim.replicas[0].core
    assert core.on_frame(0, bytes([NODE_CHANNEL]) + b"x", 0) == []  # itself
    assert core.on_frame(9, bytes([NODE_CHANNEL]) + b"x", 0) == []  # not a validator
    assert core.bad_frames["unknown-sender"] == 2
