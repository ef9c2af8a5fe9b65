"""Own votes on stable storage: PersistVotes before every send, restarts that remember."""

from __future__ import annotations

import pytest

from gridledger.consensus.effects import (
    PHASE_COMMIT,
    PHASE_NEW_VIEW,
    PHASE_PRE_PREPARE,
    PHASE_PREPARE,
    PHASE_PREPARED,
    PHASE_VIEW_CHANGE,
    Broadcast,
    Effect,
    PersistVotes,
    Send,
    VoteRecord,
)
from gridledger.consensus.messages import (
    Checkpoint,
    ClientRequest,
    Commit,
    Message,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    compute_batch_digest,
    decode_message,
)
from gridledger.consensus.pbft import (
    ReplicaState,
    compute_live_votes,
    decode_vote_log,
    encode_vote_log,
    new_replica_state,
    on_client_request,
    on_message,
    on_tick,
)
from gridledger.consensus.pbft_engine import VOTES_KEY, get_proof_key
from gridledger.crypto.errors import EncodingError
from gridledger.node.simnet import Behaviour, SimNetwork

from .helpers import assert_all_done, make_auth, make_cluster

BATCH = (ClientRequest(b"c", 1, b"x"),)


def _sent(effects: list[Effect]) -> list[object]:
    return [decode_message(e.envelope.body) for e in effects if isinstance(e, (Send, Broadcast))]


def _persisted(effects: list[Effect]) -> tuple[VoteRecord, ...]:
    persists = [e for e in effects if isinstance(e, PersistVotes)]
    assert len(persists) <= 1
    if persists:
        assert effects[0] is persists[0], "PersistVotes must come before every other effect"
        return persists[0].votes
    return ()


def _restart(state: ReplicaState, votes: tuple[VoteRecord, ...]) -> ReplicaState:
    key = state.key
    return new_replica_state(state.config, state.replica_id, key, votes=votes)


def test_restarted_backup_refuses_to_prepare_a_conflicting_batch() -> None:
    config, keys, states = make_cluster()
    auth0 = make_auth(config, keys, 0)  # the primary of view 0, byzantine here
    pp_d = PrePrepare(0, 1, compute_batch_digest(5, BATCH), BATCH, 5)
    pp_other = PrePrepare(0, 1, compute_batch_digest(6, BATCH), BATCH, 6)

    effects = on_message(states[1], auth0.seal(pp_d), 10)
    votes = _persisted(effects)
    assert votes == (VoteRecord(0, 1, PHASE_PREPARE, pp_d.batch_digest),)
    assert Prepare(0, 1, pp_d.batch_digest) in _sent(effects)

    # Crash; restart with the votes; the primary equivocates at (0, 1).
    restarted = _restart(states[1], votes)
    assert restarted.view == 0 and restarted.log == {}
    effects = on_message(restarted, auth0.seal(pp_other), 20)
    sent = _sent(effects)
    assert not any(isinstance(m, Prepare) for m in sent)
    assert restarted.rejected.get("conflicting-vote") == 1
    assert restarted.equivocations == 1  # it knows the primary signed two batches
    assert any(isinstance(m, ViewChange) and m.new_view == 1 for m in sent)
    assert VoteRecord(1, 0, PHASE_VIEW_CHANGE, b"") in _persisted(effects)

    # The same pre-prepare again is fine: the same prepare is re-sent, nothing new to persist.
    again = _restart(states[1], votes)
    effects = on_message(again, auth0.seal(pp_d), 20)
    assert _sent(effects) == [Prepare(0, 1, pp_d.batch_digest)]
    assert _persisted(effects) == ()

    # Restarted WITHOUT its votes (the old behaviour), it prepares the other batch too.
    amnesiac = _restart(states[1], ())
    effects = on_message(amnesiac, auth0.seal(pp_other), 20)
    assert Prepare(0, 1, pp_other.batch_digest) in _sent(effects)


def test_restarted_backup_does_not_commit_another_batch() -> None:
    """A COMMIT vote alone (the primary's case: no PREPARE) also pins the slot."""
    config, keys, states = make_cluster()
    auth0 = make_auth(config, keys, 0)
    pp_other = PrePrepare(0, 3, compute_batch_digest(6, BATCH), BATCH, 6)
    votes = (VoteRecord(0, 3, PHASE_COMMIT, b"\x01" * 32),)
    restarted = _restart(states[2], votes)
    effects = on_message(restarted, auth0.seal(pp_other), 20)
    assert not any(isinstance(m, (Prepare, Commit)) for m in _sent(effects))
    assert restarted.rejected.get("conflicting-vote") == 1


def _propose(state: ReplicaState, client: bytes, now_ms: int) -> list[Effect]:
    effects = on_client_request(state, ClientRequest(client, 1, b"p"), now_ms)
    return effects + on_tick(state, now_ms + 50)


def test_restarted_primary_never_reuses_a_pre_prepared_seq() -> None:
    _, _, states = make_cluster()
    primary = states[0]
    effects = _propose(primary, b"a", 0)
    pps = [m for m in _sent(effects) if isinstance(m, PrePrepare)]
    assert [pp.seq for pp in pps] == [1]
    votes = _persisted(effects)
    assert votes == (VoteRecord(0, 1, PHASE_PRE_PREPARE, pps[0].batch_digest),)

    restarted = _restart(primary, votes)
    effects = _propose(restarted, b"b", 1000)
    new_pps = [m for m in _sent(effects) if isinstance(m, PrePrepare)]
    assert [pp.seq for pp in new_pps] == [2]  # seq 1 is taken; never a second batch there
    assert _persisted(effects) == (VoteRecord(0, 2, PHASE_PRE_PREPARE, new_pps[0].batch_digest),)

    # Without its votes it would pre-prepare another batch at seq 1: equivocation.
    amnesiac = _restart(primary, ())
    effects = _propose(amnesiac, b"b", 1000)
    conflicting = [m for m in _sent(effects) if isinstance(m, PrePrepare)]
    assert [pp.seq for pp in conflicting] == [1]
    assert conflicting[0].batch_digest != pps[0].batch_digest


def test_restart_resumes_in_the_view_it_reached() -> None:
    _, _, states = make_cluster()
    # Entered view 2 and prepared seq 5 there: back in view 2, not in a view change.
    votes = (
        VoteRecord(1, 0, PHASE_VIEW_CHANGE, b""),  # an older view: ignored
        VoteRecord(2, 0, PHASE_VIEW_CHANGE, b""),
        VoteRecord(2, 0, PHASE_NEW_VIEW, b""),
        VoteRecord(2, 5, PHASE_PREPARE, b"\x02" * 32),
    )
    st = _restart(states[1], votes)
    assert (st.view, st.in_view_change) == (2, False)
    # Only asked for view 3: still in that view change, asks again at its first tick.
    st = _restart(states[1], (*votes, VoteRecord(3, 0, PHASE_VIEW_CHANGE, b"")))
    assert (st.view, st.in_view_change) == (3, True)
    sent = _sent(on_tick(st, 100))
    assert [m.new_view for m in sent if isinstance(m, ViewChange)] == [3]
    # The primary of view 2 resumes proposing above the seqs it pre-prepared there.
    primary = _restart(states[2], (VoteRecord(2, 7, PHASE_PRE_PREPARE, b"\x03" * 32),))
    assert primary.is_primary and primary.next_seq == 8


def test_vote_log_roundtrip_and_compaction() -> None:
    d = b"\x05" * 32
    old = (
        VoteRecord(0, 0, PHASE_VIEW_CHANGE, b""),
        VoteRecord(0, 3, PHASE_PREPARE, d),
        VoteRecord(1, 0, PHASE_VIEW_CHANGE, b""),
        VoteRecord(1, 4, PHASE_PREPARE, d),
        VoteRecord(1, 9, PHASE_PREPARE, d),
    )
    new = (VoteRecord(1, 9, PHASE_COMMIT, d), VoteRecord(1, 9, PHASE_PREPARE, d))
    live = compute_live_votes(old, PersistVotes(new, low_watermark=4, view=1))
    assert live == (
        VoteRecord(1, 0, PHASE_VIEW_CHANGE, b""),
        VoteRecord(1, 9, PHASE_COMMIT, d),
        VoteRecord(1, 9, PHASE_PREPARE, d),
    )
    assert decode_vote_log(encode_vote_log(live)) == live
    assert decode_vote_log(encode_vote_log(())) == ()
    with pytest.raises(EncodingError):
        decode_vote_log(encode_vote_log([]) + b"\x00")
    with pytest.raises(ValueError):
        VoteRecord(0, 1, "maybe", d)


def test_every_vote_is_persisted_before_it_is_sent_across_view_changes() -> None:
    """In a run with a crashed primary, a view change and a restart, every PRE-PREPARE
    (normal or in a NEW-VIEW), PREPARE and COMMIT a replica sends was persisted first."""
    sim = SimNetwork(4, seed=61, drop_rate=0.05)
    persisted: dict[int, set[tuple[int, int, str, bytes]]] = {i: set() for i in range(4)}
    unpersisted: list[str] = []
    sends = 0

    def check(replica: int, effect: Effect) -> None:
        nonlocal sends
        if isinstance(effect, PersistVotes):
            persisted[replica] |= {(v.view, v.seq, v.phase, v.digest) for v in effect.votes}
            return
        if not isinstance(effect, (Send, Broadcast)):
            return
        msg = decode_message(effect.envelope.body)
        votes: list[tuple[int, int, str, bytes]] = []
        if isinstance(msg, PrePrepare):
            votes.append((msg.view, msg.seq, PHASE_PRE_PREPARE, msg.batch_digest))
        elif isinstance(msg, Prepare):
            votes.append((msg.view, msg.seq, PHASE_PREPARE, msg.batch_digest))
        elif isinstance(msg, Commit):
            votes.append((msg.view, msg.seq, PHASE_COMMIT, msg.batch_digest))
        elif isinstance(msg, NewView):
            for env in msg.pre_prepares:
                pp = decode_message(env.body)
                assert isinstance(pp, PrePrepare)
                votes.append((pp.view, pp.seq, PHASE_PRE_PREPARE, pp.batch_digest))
        for vote in votes:
            sends += 1
            if vote not in persisted[replica]:
                unpersisted.append(f"r{replica} sent {vote} unpersisted")

    sim.on_effect = check
    sim.crash(0, 300)
    sim.crash(2, 900)
    sim.restart(2, 1300)
    for i in range(12):
        sim.submit(3, at_ms=i * 100)
    assert sim.run_until_done(30_000)
    assert_all_done(sim)
    assert unpersisted == []
    assert sends > 30
    assert {r.state.view for r in sim.replicas[1:]} == {1}


@pytest.mark.parametrize("lose_votes", [False, True])
def test_simulated_disk_keeps_votes_across_a_restart(lose_votes: bool) -> None:
    sim = SimNetwork(4, seed=62)
    sim.crash(0, 0)  # view 1 for the others
    sim.crash(2, 1500)
    sim.restart(2, 1700, lose_votes=lose_votes)
    for i in range(6):
        sim.submit(2, at_ms=i * 200)
    sim.run_until(1500)
    assert sim.replicas[2].state.view == 1 and sim.replicas[2].votes
    sim.run_until(1701)
    r2 = sim.replicas[2]
    if lose_votes:
        assert (r2.state.view, r2.votes, r2.state.my_votes) == (0, (), {})
    else:
        assert (r2.state.view, r2.state.in_view_change) == (1, False)
        assert all(v.view == 1 for v in r2.votes)
    assert sim.run_until_done(30_000)
    assert_all_done(sim)


def test_a_replica_upgraded_on_a_log_with_proofs_inline_restarts_again() -> None:
    """Replica 2's disk as the code before proofs had their own keys wrote it; it starts
    on the new code, votes, crashes and must start again with what it prepared."""
    sim = SimNetwork(4, seed=62)
    sim.message_filter = lambda s, t, msg: not isinstance(msg, Checkpoint)  # nothing stable
    sim.submit(4, at_ms=0)
    sim.run_until(1000)
    r2 = sim.replicas[2]
    votes = r2.votes
    proofs = [v for v in votes if v.phase == PHASE_PREPARED]
    assert proofs, "the scenario needs a live prepared proof"
    sim.crash(2, 1000)
    sim.run_until(1001)
    r2.store.update_meta([(VOTES_KEY, encode_vote_log(votes))], [get_proof_key(v) for v in proofs])
    sim.restart(2, 1100)
    sim.submit(2, at_ms=1200)  # votes after the upgrade: a write in the new layout
    sim.run_until(2000)
    sim.crash(2, 2000)
    sim.restart(2, 2100)
    sim.run_until(2200)  # raised ConfigError ("not on disk") before the fix
    assert sim.replicas[2].alive
    assert set(proofs) <= set(sim.replicas[2].votes)


def _run_equivocation_against_a_restart(lose_votes: bool) -> tuple[SimNetwork, list[str]]:
    """The byzantine primary 0 sends batch A to replica 1 and batch B to replicas 2, 3; the
    prepares that would reveal it are held back. Replica 2 prepares B, crashes, restarts,
    and the primary now retransmits A to it."""
    sim = SimNetwork(4, seed=63, behaviours={0: Behaviour.EQUIVOCATE})
    sent: dict[tuple[int, int, int], set[bytes]] = {}

    def watch(replica: int, effect: Effect) -> None:
        if replica != 0 and isinstance(effect, (Send, Broadcast)):
            msg = decode_message(effect.envelope.body)
            if isinstance(msg, (PrePrepare, Prepare, Commit)):
                sent.setdefault((replica, msg.view, msg.seq), set()).add(msg.batch_digest)

    def hold_back(sender: int, to: int, msg: Message) -> bool:
        return not (
            sim.now_ms < 1000 and sender in (2, 3) and to in (0, 1) and isinstance(msg, Prepare)
        )

    sim.on_effect = watch
    sim.message_filter = hold_back
    sim.crash(2, 100)
    sim.restart(2, 150, lose_votes=lose_votes)
    sim.submit(3, at_ms=0)
    assert sim.run_until_done(30_000)
    assert_all_done(sim)
    twice = [f"r{r} at ({v}, {s})" for (r, v, s), ds in sorted(sent.items()) if len(ds) > 1]
    return sim, twice


def test_restarted_replica_resists_an_equivocating_primary_in_the_simulator() -> None:
    sim, twice = _run_equivocation_against_a_restart(lose_votes=False)
    assert twice == []
    assert sim.replicas[2].state.rejected.get("conflicting-vote", 0) >= 1
    # The same run with the vote log lost: replica 2 prepares both batches at (0, 1).
    _, twice = _run_equivocation_against_a_restart(lose_votes=True)
    assert twice == ["r2 at (0, 1)"]
