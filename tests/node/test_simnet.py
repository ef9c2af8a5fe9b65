"""The whole node stack in simulated time: real cores, ledger and contracts, faulty network."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.identity.admission import create_signed_revocation
from gridledger.identity.contracts import KIND_REVOKE
from gridledger.ledger.tx import Transaction
from gridledger.node.core import NodeLimits
from gridledger.node.identity_material import IdentitySetup, create_identity_material
from gridledger.node.simnet import SIM_CHAIN, Partition, SimNetwork, make_keys

EPOCH_MS = 1_800_000_000_000  # a wall-clock date, so certificates are valid in block time


def _faulty(seed: int, **kw: object) -> SimNetwork:
    return SimNetwork(
        4,
        seed=seed,
        drop_rate=0.02,
        duplicate_rate=0.02,
        partitions=[Partition(2_000, 4_000, (frozenset({0, 1, 2}), frozenset({3})))],
        epoch_ms=EPOCH_MS,
        **kw,  # type: ignore[arg-type]
    )


def _run_faulty(seed: int) -> SimNetwork:
    sim = _faulty(seed)
    sim.submit(40)
    sim.crash(1, 1_000)
    sim.restart(1, 3_000)
    sim.submit(40, at_ms=5_000)
    assert sim.run_until_done(30_000)
    sim.run_until(sim.now_ms + 3_000)  # let every replica catch up
    return sim


def test_same_seed_same_blocks_and_state_roots() -> None:
    first, second = _run_faulty(7), _run_faulty(7)
    assert first.check_safety() == [] and second.check_safety() == []
    assert first.get_trace_digest() == second.get_trace_digest()
    roots = first.get_state_roots()
    assert roots == second.get_state_roots()
    heads = {r.app.head for r in first.replicas}
    assert len(heads) == 1 and heads.pop() >= 2
    # replicas agree on the state after every block, and it is the ledger's real root
    assert len({tuple(sorted(v.items())) for v in roots.values()}) == 1
    third = _run_faulty(8)
    assert third.get_trace_digest() != first.get_trace_digest()


def test_identity_contract_runs_in_simulated_time(tmp_path: Path) -> None:
    keys = make_keys(4, 3)
    material = create_identity_material(
        tmp_path,
        [k.public_key for k in keys],
        EPOCH_MS // 1000,
        IdentitySetup(),
        DeterministicRng("identity-sim"),
    )
    now_s = EPOCH_MS // 1000 + 60
    revoked = [bytes([i]) * 32 for i in range(1, 4)]
    txs = [
        Transaction.create(
            SIM_CHAIN,
            KIND_REVOKE,
            create_signed_revocation(material.operator, h, "superseded", now_s),
            Ed25519PrivateKey(bytes([9, i]) * 16),
            0,
        )
        for i, h in enumerate(revoked)
    ]
    forged = Transaction.create(
        SIM_CHAIN,
        KIND_REVOKE,
        create_signed_revocation(material.mm, b"\x77" * 32, "not an operator", now_s),
        Ed25519PrivateKey(b"\x05" * 32),
        0,
    )
    runs = []
    for _ in range(2):
        sim = SimNetwork(4, seed=3, genesis_state=material.genesis_state(), epoch_ms=EPOCH_MS)
        assert "identity.revoke" in sim.replicas[0].core.ledger.registry.kinds
        for tx in [*txs, forged]:
            sim.submit_transaction(tx, at_ms=100)
        assert sim.run_until_done(10_000)
        sim.run_until(sim.now_ms + 500)
        runs.append(sim)
    for sim in runs:
        core = sim.replicas[2].core
        receipts = {h: core.get_receipt_json(t.tx_hash) for h, t in zip(revoked, txs, strict=True)}
        assert all(r is not None and r["status"] == "committed" for r in receipts.values())
        refused = core.get_receipt_json(forged.tx_hash)
        assert refused is not None and refused["status"] == "rejected"
    assert runs[0].get_state_roots() == runs[1].get_state_roots()


@pytest.mark.slow
def test_an_hour_of_load_runs_in_seconds() -> None:
    """Ten transactions every 30 s of simulated time for an hour: 1,200 in about 240 blocks."""
    sim = SimNetwork(
        4,
        seed=11,
        tick_ms=500,
        limits=NodeLimits(gossip_ms=5_000),
        epoch_ms=EPOCH_MS,
        config_overrides={"retransmit_interval_ms": 5_000},
    )
    for at_ms in range(0, 3_600_000, 30_000):
        sim.submit(10, at_ms=at_ms)
    start = time.monotonic()
    assert sim.run_until_done(3_600_000 + 30_000)
    wall = time.monotonic() - start
    assert sim.check_safety() == []
    assert len(sim.completed_ms) == 1_200
    assert sim.replicas[0].app.head >= 120
    assert wall < 90, f"an hour took {wall:.0f} s of wall time"
