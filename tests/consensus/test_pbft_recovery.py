"""Crash recovery (issue 8): prepared proofs go to disk with the votes, and come back.

A replica that restarts without the prepared certificates it had would send a
VIEW-CHANGE without them: exactly what a faulty replica does, so the next view
change would count it among the f. These tests restart a replica mid-view from
nothing but its persisted vote log and check that it reports what it prepared.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gridledger.consensus.effects import (
    PHASE_COMMIT,
    PHASE_PREPARED,
    PHASE_VIEW_CHANGE,
    Effect,
    PersistVotes,
    VoteRecord,
)
from gridledger.consensus.messages import (
    ClientRequest,
    NewView,
    Prepare,
    PreparedProof,
    PrePrepare,
    ViewChange,
    compute_batch_digest,
)
from gridledger.consensus.pbft import (
    PbftConfig,
    ReplicaState,
    compute_live_votes,
    decode_vote_log,
    encode_vote_log,
    new_replica_state,
    on_message,
)
from gridledger.consensus.viewchange import get_checked_pre_prepare
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.signatures import Ed25519PrivateKey

from .helpers import get_sent, make_auth, make_cluster

BATCH = (ClientRequest(b"c", 1, b"x"),)


def _disk(votes: tuple[VoteRecord, ...], effects: list[Effect]) -> tuple[VoteRecord, ...]:
    """What a driver keeps after these effects (through the real encoding)."""
    for e in effects:
        if isinstance(e, PersistVotes):
            votes = decode_vote_log(encode_vote_log(compute_live_votes(votes, e)))
    return votes


def _prepare_at_replica_1() -> tuple[
    PbftConfig, list[Ed25519PrivateKey], list[ReplicaState], PrePrepare, tuple[VoteRecord, ...]
]:
    """Seq 1 prepares at replica 1 in view 0 (no commits from others): its vote log."""
    config, keys, states = make_cluster()
    auths = [make_auth(config, keys, i) for i in range(4)]
    pp = PrePrepare(0, 1, compute_batch_digest(5, BATCH), BATCH, 5)
    disk: tuple[VoteRecord, ...] = ()
    disk = _disk(disk, on_message(states[1], auths[0].seal(pp), 10))
    for sender in (2, 3):
        prepare = Prepare(pp.view, pp.seq, pp.batch_digest)
        disk = _disk(disk, on_message(states[1], auths[sender].seal(prepare), 11))
    return config, keys, states, pp, disk


def test_the_prepared_proof_is_persisted_with_the_commit_vote() -> None:
    _, _, states, pp, disk = _prepare_at_replica_1()
    assert states[1].log[1].prepared
    proofs = [v for v in disk if v.phase == PHASE_PREPARED]
    assert [(v.view, v.seq) for v in proofs] == [(0, 1)]
    assert decode_as(PreparedProof, proofs[0].digest) == states[1].log[1].proof
    assert VoteRecord(0, 1, PHASE_COMMIT, pp.batch_digest) in disk


def test_restart_mid_view_keeps_prepared_proofs_for_the_next_view_change() -> None:
    config, keys, states, pp, disk = _prepare_at_replica_1()
    restarted = new_replica_state(config, 1, keys[1], votes=disk)
    assert restarted.view == 0 and not restarted.in_view_change
    assert restarted.log[1].proof is not None and restarted.log[1].pre_prepare is None
    # Replicas 2 and 3 ask for view 1 (f+1): the restarted replica joins, and as the
    # new primary (view 1 -> replica 1) it must re-propose the prepared batch at seq 1.
    effects: list[Effect] = []
    for sender in (2, 3):
        vc = make_auth(config, keys, sender).seal(ViewChange(1, 0, None, ()))
        effects += on_message(restarted, vc, 100)
    sent = get_sent(effects)
    own_vc = [m for m in sent if isinstance(m, ViewChange)]
    assert len(own_vc) == 1 and len(own_vc[0].prepared_proofs) == 1
    assert get_checked_pre_prepare(own_vc[0].prepared_proofs[0]) == pp
    new_view = [m for m in sent if isinstance(m, NewView)]
    assert len(new_view) == 1
    o_set = [states[0].auth.open(e) for e in new_view[0].pre_prepares]
    assert [(p.seq, p.batch_digest) for p in o_set if isinstance(p, PrePrepare)] == [
        (1, pp.batch_digest)
    ]


def test_prepared_proofs_survive_view_changes_on_disk_until_their_seq_is_stable() -> None:
    *_, disk = _prepare_at_replica_1()
    moved = compute_live_votes(
        disk, PersistVotes((VoteRecord(3, 0, PHASE_VIEW_CHANGE, b""),), 0, 3)
    )
    assert [v.seq for v in moved if v.phase == PHASE_PREPARED] == [1]  # kept across views
    assert all(v.view == 3 for v in moved if v.phase != PHASE_PREPARED)  # votes are not
    stable = compute_live_votes(moved, PersistVotes((), 4, 3))
    assert [v for v in stable if v.phase == PHASE_PREPARED] == []
    newer = VoteRecord(2, 1, PHASE_PREPARED, b"newer proof")
    both = compute_live_votes(disk, PersistVotes((newer,), 0, 0))
    assert [v for v in both if v.phase == PHASE_PREPARED] == [newer]  # the highest view wins


def test_a_corrupt_or_foreign_proof_record_is_skipped_on_restart() -> None:
    config, keys, _, pp, disk = _prepare_at_replica_1()
    real = next(v for v in disk if v.phase == PHASE_PREPARED)
    proof = decode_as(PreparedProof, real.digest)
    bad = (
        VoteRecord(0, 2, PHASE_PREPARED, b"\xff not cbor"),
        VoteRecord(0, 3, PHASE_PREPARED, real.digest),  # the proof is for seq 1
        VoteRecord(0, 4, PHASE_PREPARED, encode(PreparedProof(proof.pre_prepare, ()))),
    )
    restarted = new_replica_state(config, 1, keys[1], votes=(*disk, *bad))
    assert sorted(s for s, slot in restarted.log.items() if slot.proof) == [1]
    # Its VIEW-CHANGE stays valid (one bad proof would make the whole message invalid).
    vc = make_auth(config, keys, 2).seal(ViewChange(1, 0, None, ()))
    effects = on_message(restarted, vc, 10)
    effects += on_message(
        restarted, make_auth(config, keys, 3).seal(ViewChange(1, 0, None, ())), 10
    )
    own = [m for m in get_sent(effects) if isinstance(m, ViewChange)]
    assert len(own) == 1 and len(own[0].prepared_proofs) == 1
    assert get_checked_pre_prepare(own[0].prepared_proofs[0]) == pp


@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(1, 12), st.booleans(), st.integers(0, 8)),
        max_size=30,
    )
)
def test_live_proofs_are_the_highest_view_per_seq_above_the_watermark(
    steps: list[tuple[int, int, bool, int]],
) -> None:
    """Whatever sequence of effects: one proof record per seq above the last watermark,
    the one of the highest view seen, and no slot vote of a view below the last one."""
    disk: tuple[VoteRecord, ...] = ()
    best: dict[int, int] = {}
    low = view = 0
    for v, seq, is_proof, new_low in steps:
        view, low = max(view, v), max(low, new_low)
        phase = PHASE_PREPARED if is_proof else PHASE_COMMIT
        rec = VoteRecord(v, seq, phase, bytes([v, seq]))
        disk = compute_live_votes(disk, PersistVotes((rec,), low, view))
        if is_proof:
            best[seq] = max(best.get(seq, -1), v)
    proofs = {r.seq: r.view for r in disk if r.phase == PHASE_PREPARED}
    assert proofs == {s: v for s, v in best.items() if s > low}
    assert all(r.view >= view and r.seq > low for r in disk if r.phase == PHASE_COMMIT)
