"""Faults: crashes, view changes, byzantine replicas, replays, restarts, state transfer."""

from __future__ import annotations

from gridledger.consensus.effects import Broadcast, Effect, NeedStateTransfer, ViewChanged
from gridledger.consensus.messages import (
    ClientRequest,
    Commit,
    Message,
    Prepare,
    PreparedProof,
    PrePrepare,
    SignedEnvelope,
    ViewChange,
    compute_batch_digest,
    decode_message,
)
from gridledger.consensus.pbft import on_message
from gridledger.consensus.viewchange import (
    compute_new_view_pre_prepares,
    compute_null_pre_prepare,
    is_valid_view_change,
)
from gridledger.node.simnet import Behaviour, Partition, SimNetwork

from .helpers import assert_all_done, make_auth, make_cluster


def _load(sim: SimNetwork, rounds: int, per_round: int, every_ms: int, start_ms: int = 0) -> None:
    for i in range(rounds):
        sim.submit(per_round, at_ms=start_ms + i * every_ms)


def test_crashed_primary_is_replaced_and_the_others_keep_committing() -> None:
    sim = SimNetwork(4, seed=21)
    sim.crash(0, 0)
    _load(sim, 5, 4, 100)
    assert sim.run_until_done(20_000)
    assert_all_done(sim)
    for r in sim.replicas[1:]:
        assert r.state.view == 1 and not r.state.in_view_change
        assert r.app.head >= 1
    assert any(" view 1" in line for line in sim.trace)


def test_primary_crash_mid_run_keeps_committed_blocks() -> None:
    sim = SimNetwork(4, seed=22, drop_rate=0.05)
    sim.crash(0, 400)
    _load(sim, 10, 3, 100)
    assert sim.run_until_done(30_000)
    assert_all_done(sim)
    assert {r.state.view for r in sim.replicas[1:]} == {1}


def test_two_consecutive_primaries_crashed_at_n7() -> None:
    sim = SimNetwork(7, seed=23)
    sim.crash(0, 0)
    sim.crash(1, 0)
    _load(sim, 3, 4, 100)
    assert sim.run_until_done(30_000)
    assert_all_done(sim)
    assert {r.state.view for r in sim.replicas[2:]} == {2}


def test_equivocating_primary_is_replaced_without_divergence() -> None:
    for seed, n in ((31, 4), (32, 4), (33, 7)):
        sim = SimNetwork(n, seed=seed, behaviours={0: Behaviour.EQUIVOCATE})
        _load(sim, 5, 4, 50)
        assert sim.run_until_done(30_000)
        assert_all_done(sim)
        honest = sim.get_honest()
        assert all(r.state.view >= 1 for r in honest)
        assert sum(r.state.equivocations for r in honest) >= 1


def test_silent_backup_does_not_stop_progress() -> None:
    sim = SimNetwork(4, seed=34, behaviours={2: Behaviour.SILENT})
    _load(sim, 5, 4, 50)
    assert sim.run_until_done(10_000)
    assert_all_done(sim)
    assert all(r.state.view == 0 for r in sim.get_honest())


def test_tampering_replica_is_rejected_and_progress_continues() -> None:
    sim = SimNetwork(4, seed=35, behaviours={3: Behaviour.TAMPER})
    _load(sim, 5, 4, 50)
    assert sim.run_until_done(10_000)
    assert_all_done(sim)
    rejected = sum(
        r.state.rejected.get(k, 0) for r in sim.get_honest() for k in ("bad-signature", "malformed")
    )
    assert rejected > 10


def test_replayed_old_view_message_is_rejected() -> None:
    sim = SimNetwork(4, seed=36)
    captured: list[SignedEnvelope] = []

    def capture(replica: int, effect: Effect) -> None:
        if (
            isinstance(effect, Broadcast)
            and replica == 1
            and isinstance(decode_message(effect.envelope.body), (Prepare, Commit))
        ):
            captured.append(effect.envelope)

    sim.on_effect = capture
    _load(sim, 2, 2, 50)
    assert sim.run_until_done(5_000)
    sim.on_effect = None
    sim.crash(0, sim.now_ms)
    _load(sim, 2, 2, 50, start_ms=sim.now_ms + 10)
    assert sim.run_until_done(20_000)
    target = sim.replicas[2].state
    assert target.view == 1 and captured
    before = target.rejected.get("old-view", 0)
    log_before = {s: (sl.prepare_digests.copy(), sl.commits.copy()) for s, sl in target.log.items()}
    for env in captured:
        assert on_message(target, env, sim.now_ms) == []
    assert target.rejected["old-view"] == before + len(captured)
    assert {s: (sl.prepare_digests, sl.commits) for s, sl in target.log.items()} == log_before


def test_duplicated_messages_are_idempotent() -> None:
    sim = SimNetwork(4, seed=37, duplicate_rate=0.5)
    _load(sim, 4, 4, 50)
    assert sim.run_until_done(10_000)
    assert_all_done(sim)
    assert sim.stats.duplicated > 10
    assert sum(r.state.duplicates for r in sim.replicas) > 10


def test_messages_outside_the_watermarks_are_dropped() -> None:
    config, keys, states = make_cluster()
    auth0 = make_auth(config, keys, 0)
    far = config.watermark_window + 1
    batch = (ClientRequest(b"c", 1, b"x"),)
    pp = PrePrepare(0, far, compute_batch_digest(1, batch), batch, 1)
    assert on_message(states[1], auth0.seal(pp), 10) == []
    assert on_message(states[1], make_auth(config, keys, 2).seal(Prepare(0, 0, b"d")), 10) == []
    assert states[1].rejected == {"above-watermark": 1, "below-watermark": 1}
    assert states[1].log == {}


def test_bad_pre_prepares_are_refused() -> None:
    config, keys, states = make_cluster()
    auth0 = make_auth(config, keys, 0)
    batch = (ClientRequest(b"c", 1, b"x"),)
    cases = {
        "bad-digest": PrePrepare(0, 1, b"\x00" * 32, batch, 5),
        "timestamp-ahead": PrePrepare(0, 1, compute_batch_digest(10**9, batch), batch, 10**9),
        "duplicate-request": PrePrepare(0, 1, compute_batch_digest(5, batch * 2), batch * 2, 5),
        "bad-batch-size": PrePrepare(0, 1, compute_batch_digest(5, ()), (), 5),
    }
    for reason, pp in cases.items():
        assert on_message(states[1], auth0.seal(pp), 10) == []
        assert states[1].rejected.get(reason) == 1, reason
    # from a backup, not the primary
    good = PrePrepare(0, 1, compute_batch_digest(5, batch), batch, 5)
    assert on_message(states[1], make_auth(config, keys, 2).seal(good), 10) == []
    assert states[1].rejected["not-primary"] == 1
    # and the genuine one is accepted: the backup persists, then broadcasts its prepare
    effects = on_message(states[1], auth0.seal(good), 10)
    assert [type(e).__name__ for e in effects] == ["PersistVotes", "Broadcast"]


def test_a_pre_prepare_stamped_far_in_the_past_is_refused() -> None:
    """A faulty primary must not backdate a fresh batch (block time drives deadlines):
    a backup whose clock reads 10 h refuses a batch stamped at 5 ms, accepts one
    stamped just inside the tolerance."""
    config, keys, states = make_cluster()
    auth0 = make_auth(config, keys, 0)
    batch = (ClientRequest(b"c", 1, b"x"),)
    now_ms = 10 * 3_600_000
    old = PrePrepare(0, 1, compute_batch_digest(5, batch), batch, 5)
    assert on_message(states[1], auth0.seal(old), now_ms) == []
    assert states[1].rejected.get("timestamp-behind") == 1
    assert states[1].log.get(1) is None or states[1].log[1].pre_prepare is None
    ts = now_ms - config.timestamp_tolerance_ms
    recent = PrePrepare(0, 1, compute_batch_digest(ts, batch), batch, ts)
    effects = on_message(states[2], auth0.seal(recent), now_ms)
    assert [type(e).__name__ for e in effects] == ["PersistVotes", "Broadcast"]


def test_new_view_o_set_reproposes_prepared_batches_and_fills_gaps() -> None:
    config, keys, _ = make_cluster()
    auths = [make_auth(config, keys, i) for i in range(4)]
    batch = (ClientRequest(b"c", 1, b"x"),)
    pp = PrePrepare(0, 2, compute_batch_digest(9, batch), batch, 9)
    proof = PreparedProof(
        auths[0].seal(pp), tuple(auths[i].seal(Prepare(0, 2, pp.batch_digest)) for i in (1, 2))
    )
    vc_with = ViewChange(1, 0, None, (proof,))
    vc_without = ViewChange(1, 0, None, ())
    ctx = config.get_proof_context()
    assert is_valid_view_change(ctx, auths[1], vc_with)
    o_set = compute_new_view_pre_prepares(1, [vc_with, vc_without, vc_without])
    assert o_set == [
        compute_null_pre_prepare(1, 1),
        PrePrepare(1, 2, pp.batch_digest, batch, 9),
    ]
    # A proof with too few prepares, or a prepare from the primary, is refused.
    short = PreparedProof(proof.pre_prepare, proof.prepares[:1])
    assert not is_valid_view_change(ctx, auths[1], ViewChange(1, 0, None, (short,)))
    from_primary = PreparedProof(
        proof.pre_prepare, (proof.prepares[0], auths[0].seal(Prepare(0, 2, pp.batch_digest)))
    )
    assert not is_valid_view_change(ctx, auths[1], ViewChange(1, 0, None, (from_primary,)))


def test_prepared_batch_survives_the_view_change_at_its_seq() -> None:
    """Commits are lost, so seq 1 only prepares in view 0; view 1 must re-propose it."""
    sim = SimNetwork(4, seed=41)
    original: dict[int, bytes] = {}

    def no_commits_yet(sender: int, to: int, msg: Message) -> bool:
        if isinstance(msg, PrePrepare) and msg.view == 0:
            original[msg.seq] = msg.batch_digest
        return not (isinstance(msg, Commit) and msg.view == 0)

    sim.message_filter = no_commits_yet
    sim.submit(3)
    sim.crash(0, 200)
    assert sim.run_until_done(20_000)
    assert_all_done(sim)
    for r in sim.replicas[1:]:
        assert r.state.view == 1
        assert r.app.batches[1] == original[1]


def test_restarted_replica_catches_up_by_state_transfer() -> None:
    sim = SimNetwork(4, seed=43)
    transfers: list[NeedStateTransfer] = []

    def watch(replica: int, effect: Effect) -> None:
        if replica == 3 and isinstance(effect, NeedStateTransfer):
            transfers.append(effect)

    sim.on_effect = watch
    sim.crash(3, 100)
    sim.restart(3, 2500)
    _load(sim, 40, 3, 100)
    assert sim.run_until_done(30_000)
    sim.run_until(sim.now_ms + 2000)
    assert_all_done(sim)
    assert transfers and transfers[0].target_seq > sim.config.watermark_window
    assert set(transfers[0].peers) <= {0, 1, 2}
    heads = {r.app.head for r in sim.replicas}
    assert len(heads) == 1
    assert sim.replicas[3].state.last_executed == sim.replicas[0].state.last_executed
    assert any("r3 transferred" in line for line in sim.trace)


def test_partitioned_replica_catches_up_after_healing() -> None:
    cut = Partition(200, 3000, (frozenset({0, 1, 2}), frozenset({3})))
    sim = SimNetwork(4, seed=44, partitions=[cut])
    _load(sim, 40, 3, 100)
    assert sim.run_until_done(30_000)
    sim.run_until(sim.now_ms + 3000)
    assert_all_done(sim)
    assert sim.replicas[3].app.head == sim.replicas[0].app.head
    assert sim.transfers >= 1


def test_view_changed_effects_name_the_new_primary() -> None:
    sim = SimNetwork(4, seed=45)
    seen: list[ViewChanged] = []

    def watch(replica: int, effect: Effect) -> None:
        if isinstance(effect, ViewChanged):
            seen.append(effect)

    sim.on_effect = watch
    sim.crash(0, 0)
    sim.submit(2)
    assert sim.run_until_done(20_000)
    assert seen and all(e.view == 1 and e.primary == 1 for e in seen)
