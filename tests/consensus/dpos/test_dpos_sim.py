"""DPoS on the simulated network: slots, misses, elections, forks, double production, proofs."""

from __future__ import annotations

import pytest

from gridledger.consensus.dpos.config import (
    Schedule,
    compute_full_key,
    compute_schedule_key,
    compute_slot_time,
    get_owner,
)
from gridledger.consensus.dpos.contract import VOTE_KIND, DposVote
from gridledger.consensus.dpos.engine import DposEngine
from gridledger.consensus.dpos.messages import (
    Proposal,
    sign_proposal,
    verify_double_production,
)
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.certificate import CertificateError, CommitCertificate
from gridledger.ledger.finality import build_bft_rule, get_finality_rule
from gridledger.ledger.light import LightClient
from gridledger.ledger.tx import Transaction
from gridledger.node.simcluster import SimCluster
from tests.consensus.dpos.helpers import CHAIN, INTERVAL_MS, make_cluster
from tests.node.helpers import make_kv_txs


def _state(cluster: SimCluster, replica: int, key: bytes) -> bytes | None:
    return cluster.get_core(replica).ledger.state.get(compute_full_key(key))


def _schedule(cluster: SimCluster, replica: int, round_: int) -> Schedule:
    raw = _state(cluster, replica, compute_schedule_key(round_))
    assert raw is not None, f"no schedule for round {round_} on chain"
    return decode_as(Schedule, raw)


def _engine(cluster: SimCluster, replica: int) -> DposEngine:
    engine = cluster.get_core(replica).engine
    assert isinstance(engine, DposEngine)
    return engine


def _assert_converged(cluster: SimCluster, live: list[int], min_height: int) -> int:
    assert cluster.get_safety_violations() == []
    heights = {cluster.get_core(i).ledger.height for i in live}
    height = min(heights)
    assert height >= min_height, heights
    hashes = {cluster.get_core(i).store.get_header(height).header_hash for i in live}  # type: ignore[union-attr]
    assert len(hashes) == 1
    return height


def _assert_light_client_follows(cluster: SimCluster, replica: int, height: int) -> None:
    """A light client takes every header up to the newest proof (at most 3 below ``height``)."""
    core = cluster.get_core(replica)
    light = LightClient(cluster.genesis)
    proven = max(h for h in range(height + 1) if core.store.get_certificate(h) is not None)
    assert proven >= height - 3
    height = proven
    for h in range(1, height + 1):
        header, cert = core.store.get_header(h), core.store.get_certificate(h)
        assert header is not None and cert is not None, f"height {h} has no proof"
        light.add_header(header, cert)
    assert light.head == core.store.get_header(height)


def _missed_owner(cluster: SimCluster, replica: int, slot: int) -> int | None:
    raw = _state(cluster, replica, b"missed/" + slot.to_bytes(8, "big"))
    return None if raw is None else int.from_bytes(raw, "big")


def test_21_producers_a_missing_producer_is_recorded_and_replaced_at_the_round_boundary() -> None:
    cluster = make_cluster(24, 21, miss_limit=0, seed="dpos-21")
    cluster.crash(5)
    for j, tx in enumerate(make_kv_txs(30, chain_id=CHAIN)):
        cluster.submit(j % 24 if j % 24 != 5 else 6, encode(tx), at_ms=100 + 37 * j)
    cluster.run_until(int(4.3 * 21 * INTERVAL_MS))
    live = [i for i in range(24) if i != 5]
    height = _assert_converged(cluster, live, min_height=50)
    # Slot 5 and slot 26 (rounds 0 and 1) were producer 5's: recorded on chain as missed.
    assert _missed_owner(cluster, 0, 5) == 5
    assert _missed_owner(cluster, 0, 26) == 5
    assert _missed_owner(cluster, 0, 6) is None
    # Elected at the first block of round 1, in force from round 2: 5 out, standby 21 in.
    round2 = _schedule(cluster, 0, 2)
    assert 5 not in round2.producers and 21 in round2.producers
    assert round2.standby[-1] == 5
    blocks = [cluster.get_core(0).ledger.get_block(h) for h in range(1, height + 1)]
    slots = {b.header.timestamp_ms // INTERVAL_MS: b.header.proposer for b in blocks}
    round2_blocks = {s: p for s, p in slots.items() if 42 <= s < 63}
    assert all(p == get_owner(round2, s) for s, p in round2_blocks.items())
    assert 21 in round2_blocks.values() and 5 not in slots.values()
    assert len(round2_blocks) == 21  # nobody missed a slot in round 2
    # Every transaction committed exactly once; every block carries a proof a light client takes.
    committed = [tx.tx_hash for b in blocks for tx in b.transactions]
    assert len(committed) == len(set(committed)) == 30
    _assert_light_client_follows(cluster, 3, height)


@pytest.mark.slow
def test_101_producers_record_a_miss_elect_a_standby_and_prove_finality() -> None:
    cluster = make_cluster(104, 101, miss_limit=0, seed="dpos-101")
    cluster.crash(5)
    for j, tx in enumerate(make_kv_txs(10, chain_id=CHAIN)):
        cluster.submit(j, encode(tx), at_ms=200 + 100 * j)
    cluster.run_until(int(1.72 * 101 * INTERVAL_MS))
    live = [i for i in range(104) if i != 5]
    height = _assert_converged(cluster, live, min_height=101)
    assert _missed_owner(cluster, 7, 5) == 5
    round2 = _schedule(cluster, 7, 2)
    assert 5 not in round2.producers and 101 in round2.producers
    assert len(round2.producers) == 101
    # Irreversible after 2/3+1 = 68 distinct producers: the executed head trails the tip.
    engine = _engine(cluster, 0)
    assert engine.irreversible_after == 68
    assert engine.head_height - engine.anchor_height >= 60
    _assert_light_client_follows(cluster, 50, height)
    cert = cluster.get_core(50).store.get_certificate(height - 5)
    assert cert is not None and len(cert.signatures) >= 70  # 2/3+1 of 104 accounting nodes


def test_votes_elect_a_standby_in_place_of_the_lowest_ranked_producer() -> None:
    cluster = make_cluster(7, 5, seed="dpos-votes")
    members = [Ed25519PrivateKey(bytes([40 + i]) * 32) for i in range(3)]
    for i, member in enumerate(members):
        tx = Transaction.create(CHAIN, VOTE_KIND, DposVote((6, 1)), member, 1)
        cluster.submit(i, encode(tx), at_ms=50 + 10 * i)
    bad = Transaction.create(CHAIN, VOTE_KIND, DposVote((99,)), members[0], 2)
    cluster.submit(0, encode(bad), at_ms=80)
    cluster.run_until(int(4.5 * 5 * INTERVAL_MS))
    _assert_converged(cluster, list(range(7)), min_height=10)
    round2 = _schedule(cluster, 2, 3)
    # 6 and 1 have three votes each, the others none: 6 is in, the highest id (4) is out.
    assert round2.producers == (0, 1, 2, 3, 6)
    assert round2.standby == (4, 5)
    receipt = cluster.get_core(1).get_receipt_json(bad.tx_hash)
    assert receipt is not None and receipt["status"] == "rejected"
    assert "not candidates" in receipt["reason"]


@pytest.mark.parametrize(("candidates", "producers", "slot"), [(6, 5, 7), (22, 21, 23)])
def test_double_production_is_detected_with_evidence_and_bars_the_producer(
    candidates: int, producers: int, slot: int
) -> None:
    cluster = make_cluster(candidates, producers, seed=f"dpos-double-{producers}")
    byzantine = 2
    key = cluster.keys[byzantine]
    # Producer 2 also signs a second block for its slot in round 1, sent to everyone.
    assert slot % producers == byzantine

    def equivocate() -> None:
        engine = _engine(cluster, 0)
        parent = engine.anchor_id
        assert parent is not None
        fake = Proposal(
            CHAIN,
            engine.anchor_height + 1,
            slot,
            parent,
            byzantine,
            compute_slot_time(slot, 0, INTERVAL_MS),
            (),
            (),
        )
        frame = encode(sign_proposal(key, fake))
        for to in range(candidates):
            if to != byzantine:
                cluster.inject(byzantine, to, frame)

    cluster.at(compute_slot_time(slot, 0, INTERVAL_MS) + 60, equivocate)
    rounds = 8 if producers < 10 else 3.2
    cluster.run_until(int(rounds * producers * INTERVAL_MS))
    _assert_converged(cluster, list(range(candidates)), min_height=20)
    evidence = _engine(cluster, 4).get_evidence()
    assert len(evidence) == 1
    assert verify_double_production(evidence[0], key.public_key.raw) == byzantine
    assert all(len(_engine(cluster, i).get_evidence()) == 1 for i in range(candidates) if i != 2)
    # The evidence went on chain; the next election bars the producer for good.
    assert _state(cluster, 4, b"offences/" + byzantine.to_bytes(4, "big")) is not None
    last_round = cluster.now_ms // INTERVAL_MS // producers
    first = 4 if producers < 10 else 3
    stored = [
        r for r in range(first, last_round + 2) if _state(cluster, 0, compute_schedule_key(r))
    ]
    assert stored and all(byzantine not in _schedule(cluster, 0, r).producers for r in stored)


def test_forks_during_a_partition_resolve_and_irreversible_blocks_never_revert() -> None:
    cluster = make_cluster(21, 21, seed="dpos-fork")
    minority, majority = list(range(0, 7)), list(range(7, 21))
    # 14 of 21 producers: one short of 2/3+1 = 15, so neither side makes anything irreversible.
    cluster.partition([minority, majority], 3_000, 3_000 + 2 * 21 * INTERVAL_MS)
    for j, tx in enumerate(make_kv_txs(20, chain_id=CHAIN)):
        cluster.submit(j % 21, encode(tx), at_ms=3_100 + 50 * j)
    before: dict[int, int] = {}

    def snapshot() -> None:
        # Only blocks produced before the split may be irreversible: no block of either fork.
        for i in range(21):
            ledger = cluster.get_core(i).ledger
            before[i] = ledger.height
            assert all(
                ledger.get_block(h).header.timestamp_ms < 3_000 for h in range(1, before[i] + 1)
            )
        assert _engine(cluster, 0).head_height > 5 and _engine(cluster, 20).head_height > 10

    cluster.at(3_000 + 2 * 21 * INTERVAL_MS - 1, snapshot)
    cluster.run_until(3_000 + 5 * 21 * INTERVAL_MS)
    assert len(before) == 21
    height = _assert_converged(cluster, list(range(21)), min_height=max(before.values()) + 10)
    assert cluster.get_safety_violations() == []
    blocks = [cluster.get_core(0).ledger.get_block(h) for h in range(1, height + 1)]
    committed = [tx.tx_hash for b in blocks for tx in b.transactions]
    assert len(committed) == len(set(committed)) == 20


def test_a_partition_with_a_two_thirds_side_keeps_finalising_and_the_rest_follow() -> None:
    cluster = make_cluster(21, 21, seed="dpos-split")
    small, large = list(range(0, 5)), list(range(5, 21))
    cluster.partition([small, large], 2_000, 2_000 + 3 * 21 * INTERVAL_MS)
    mid: dict[int, int] = {}
    cluster.at(
        2_000 + 3 * 21 * INTERVAL_MS - 1,
        lambda: mid.update({i: cluster.get_core(i).ledger.height for i in range(21)}),
    )
    cluster.run_until(2_000 + 6 * 21 * INTERVAL_MS)
    assert min(mid[i] for i in large) > max(mid[i] for i in small) + 20
    height = _assert_converged(cluster, list(range(21)), min_height=min(mid.values()) + 30)
    _assert_light_client_follows(cluster, 0, height)


def test_a_crashed_replica_restarts_and_catches_up_by_state_transfer() -> None:
    cluster = make_cluster(7, 7, seed="dpos-restart")
    cluster.at(1_000, lambda: cluster.crash(3))
    cluster.at(1_000 + 6 * 7 * INTERVAL_MS, lambda: cluster.restart(3))
    cluster.run_until(1_000 + 12 * 7 * INTERVAL_MS)
    height = _assert_converged(cluster, list(range(7)), min_height=60)
    assert _engine(cluster, 3).produced > 0  # back in its slots
    _assert_light_client_follows(cluster, 3, height)


def test_light_client_refuses_short_or_foreign_proofs() -> None:
    cluster = make_cluster(7, 7, seed="dpos-light")
    cluster.run_until(4 * 7 * INTERVAL_MS)
    core = cluster.get_core(0)
    header, cert = core.store.get_header(1), core.store.get_certificate(1)
    assert header is not None and cert is not None
    rule = get_finality_rule(cluster.genesis)
    rule.check(header, cert)
    short = CommitCertificate(cert.chain_id, cert.height, cert.header_hash, cert.signatures[:4])
    with pytest.raises(CertificateError):
        rule.check(header, short)
    other = core.store.get_header(2)
    assert other is not None
    with pytest.raises(CertificateError):
        rule.check(other, cert)
    forged = CommitCertificate(
        cert.chain_id,
        cert.height,
        cert.header_hash,
        (
            *cert.signatures[:-1],
            type(cert.signatures[0])(cert.signatures[-1].replica_id, b"\0" * 64),
        ),
    )
    with pytest.raises(CertificateError):
        rule.check(header, forged)
    assert build_bft_rule(cluster.genesis).check(header, cert) is None  # 5 of 7 is also 2f+1
