"""Liveness under a byzantine minority (issue 8): view synchronisation as Castro & Liskov
specify it, certificates that reach a lagging replica, and isolated replicas that stay.

Each regression test is written from the defect's description: the view-change timer
that started before 2f+1 replicas wanted a view change; the first checkpoint per sender
that was final (so a faulty replica's wrong one blocked a certificate); peers that never
re-sent what they had certified; an isolated replica left alone in a higher view after
the partition healed; request timers that accused a primary making progress.
"""

from __future__ import annotations

from gridledger.consensus.effects import NeedStateTransfer, Send, ViewChanged
from gridledger.consensus.messages import (
    Checkpoint,
    CheckpointCertificate,
    ClientRequest,
    NewView,
    SignedEnvelope,
    Status,
    ViewChange,
)
from gridledger.consensus.pbft import (
    MAX_BACKOFF_EXPONENT,
    MAX_CHECKPOINT_DIGESTS,
    PbftConfig,
    ReplicaState,
    is_in_contact,
    new_replica_state,
    on_client_request,
    on_message,
    on_tick,
)
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.certificate import (
    BlockVote,
    CommitCertificate,
    VoteSignature,
    sign_vote,
)
from gridledger.node.simnet import Behaviour, Partition, SimNetwork

from .helpers import assert_all_done, get_sent, make_auth, make_cluster, pump

REQ = ClientRequest(b"client", 1, b"payload")
REQ2 = ClientRequest(b"client", 2, b"payload-2")


def _hear_from(
    states: list[ReplicaState],
    keys: list[Ed25519PrivateKey],
    to: int,
    peers: tuple[int, ...],
    now_ms: int,
) -> None:
    """Deliver a fresh STATUS (view 0) from each of ``peers`` to replica ``to``."""
    config = states[to].config
    for p in peers:
        st = Status(0, False, 0, 0, now_ms)
        on_message(states[to], make_auth(config, keys, p).seal(st), now_ms)


def _view_change(
    config: PbftConfig, keys: list[Ed25519PrivateKey], sender: int, view: int
) -> SignedEnvelope:
    """A valid VIEW-CHANGE to ``view`` from ``sender`` at genesis (no checkpoint, no proofs)."""
    return make_auth(config, keys, sender).seal(ViewChange(view, 0, None, ()))


def _time_out_request(state: ReplicaState, now_ms: int) -> int:
    """Give ``state`` a pending request and tick past its request timer; returns the time."""
    on_client_request(state, REQ, now_ms)
    deadline = state.request_deadline_ms
    assert deadline is not None
    on_tick(state, deadline)
    return deadline


# -- the view-change timer ------------------------------------------------------------


def test_view_change_timer_starts_only_once_2f_plus_1_view_changes_are_in() -> None:
    config, keys, states = make_cluster()
    r = states[2]
    _hear_from(states, keys, 2, (1, 3), 0)
    now = _time_out_request(r, 0)
    assert r.in_view_change and r.view == 1
    assert r.view_change_deadline_ms is None  # only its own VIEW-CHANGE so far
    on_message(r, _view_change(config, keys, 3, 1), now + 5)
    assert r.view_change_deadline_ms is None  # 2 of 2f+1 = 3
    for t in range(now, now + 20 * config.view_change_timeout_ms, 100):
        on_tick(r, t)  # however long it waits alone, it does not climb views
    assert r.view == 1 and r.view_change_deadline_ms is None
    later = now + 20 * config.view_change_timeout_ms
    on_message(r, _view_change(config, keys, 0, 1), later)
    assert r.view_change_deadline_ms == later + config.view_change_timeout_ms


def test_view_change_timeouts_back_off_exponentially() -> None:
    """Each view change that brings no execution waits twice as long (capped)."""
    config, keys, states = make_cluster(7)  # replica 6 leads none of the views 1..5
    r = states[6]
    _hear_from(states, keys, 6, (1, 2, 3, 4), 0)
    now = _time_out_request(r, 0)
    waits = []
    for view in range(1, 6):
        assert r.view == view and r.in_view_change
        for peer in (0, 1, 2, 3):
            on_message(r, _view_change(config, keys, peer, view), now)
        deadline = r.view_change_deadline_ms
        assert deadline is not None
        waits.append(deadline - now)
        now = deadline
        effects = on_tick(r, now)  # the new primary never answered: next view
        assert any(isinstance(m, ViewChange) and m.new_view == view + 1 for m in get_sent(effects))
    t = config.view_change_timeout_ms
    assert waits == [t << min(k, MAX_BACKOFF_EXPONENT) for k in range(5)]


def test_f_plus_1_view_changes_for_higher_views_make_a_replica_join_the_smallest() -> None:
    config, keys, states = make_cluster()
    r = states[3]
    on_message(r, _view_change(config, keys, 0, 5), 10)
    assert r.view == 0 and not r.in_view_change  # one replica (maybe faulty) is not enough
    on_message(r, _view_change(config, keys, 1, 2), 20)
    assert r.view == 2 and r.in_view_change  # f+1 = 2: the smallest of {5, 2}
    assert r.view_change_deadline_ms is None  # 2 view changes for view 2 so far (with its own)


def test_a_replica_that_hears_fewer_than_2f_peers_does_not_accuse_its_primary() -> None:
    _, keys, states = make_cluster()
    r = states[3]
    _hear_from(states, keys, 3, (1,), 0)  # one peer only: probably cut off itself
    now = _time_out_request(r, 0)
    assert not r.in_view_change and r.view == 0
    assert r.request_deadline_ms is not None and r.request_deadline_ms > now  # re-armed
    _hear_from(states, keys, 3, (1, 2), now + 10)
    assert is_in_contact(r, now + 10)
    on_tick(r, r.request_deadline_ms)
    assert r.in_view_change and r.view == 1


def test_a_replayed_status_does_not_count_as_contact() -> None:
    config, keys, states = make_cluster()
    r = states[3]
    envs = [make_auth(config, keys, p).seal(Status(0, False, 0, 0, 5)) for p in (1, 2)]
    for env in envs:
        on_message(r, env, 10)
    assert is_in_contact(r, 10)
    late = 10 + 10 * config.view_change_timeout_ms
    assert not is_in_contact(r, late)
    for env in envs:  # a faulty replica replays the old heartbeats of two honest ones
        on_message(r, env, late)
    assert not is_in_contact(r, late)


def test_request_timer_restarts_whenever_a_request_executes() -> None:
    """A backup waiting for REQ does not accuse a primary that executes other requests."""
    config, _, states = make_cluster()
    t = config.view_change_timeout_ms
    backup = states[1]
    on_client_request(backup, REQ, 0)  # the primary never proposes REQ ...
    assert backup.request_deadline_ms == t
    halfway = t // 2
    effects = on_client_request(states[0], REQ2, halfway)  # ... but orders REQ2
    effects += on_tick(states[0], halfway + config.batch_timeout_ms)
    pump(states, 0, effects, halfway + config.batch_timeout_ms)
    assert backup.last_executed == 1
    assert backup.request_deadline_ms == halfway + config.batch_timeout_ms + t


# -- checkpoints and certificates for a lagging replica -------------------------------


def _checkpoint(keys: list[Ed25519PrivateKey], sender: int, seq: int, digest: bytes) -> Checkpoint:
    return Checkpoint(seq, digest, sign_vote(keys[sender], BlockVote("sim-chain", seq, digest)))


def _certificate(keys: list[Ed25519PrivateKey], seq: int, digest: bytes) -> CommitCertificate:
    sigs = tuple(
        VoteSignature(i, sign_vote(keys[i], BlockVote("sim-chain", seq, digest))) for i in range(3)
    )
    return CommitCertificate("sim-chain", seq, digest, sigs)


def test_a_wrong_first_checkpoint_from_a_faulty_replica_is_not_final() -> None:
    config, keys, states = make_cluster()
    lagging = states[3]  # has not executed seq 4 itself: it needs 2f+1 = 3 votes
    good, wrong = b"\x01" * 32, b"\x02" * 32
    seq = config.checkpoint_interval
    on_message(lagging, make_auth(config, keys, 0).seal(_checkpoint(keys, 0, seq, wrong)), 1)
    for sender in (1, 2):
        on_message(
            lagging, make_auth(config, keys, sender).seal(_checkpoint(keys, sender, seq, good)), 2
        )
    assert seq not in lagging.certified
    on_message(lagging, make_auth(config, keys, 0).seal(_checkpoint(keys, 0, seq, good)), 3)
    assert lagging.certified[seq][0] == good and lagging.best_certified == seq


def test_a_faulty_replica_cannot_flood_one_seq_with_checkpoint_digests() -> None:
    config, keys, states = make_cluster()
    r = states[3]
    auth0 = make_auth(config, keys, 0)
    for i in range(MAX_CHECKPOINT_DIGESTS + 5):
        on_message(r, auth0.seal(_checkpoint(keys, 0, 4, bytes([i]) * 32)), 1)
    assert len(r.checkpoints[4]) == MAX_CHECKPOINT_DIGESTS
    assert r.rejected["checkpoint-flood"] == 5


def test_a_lagging_replica_gets_the_stable_certificate_when_its_status_shows_it() -> None:
    """Even if a faulty replica only ever sent it wrong checkpoints, a peer's certificate
    (self-authenticating) lets the lagging replica fetch the blocks."""
    config, keys, states = make_cluster()
    seq, digest = config.checkpoint_interval * 2, b"\x07" * 32
    cert = _certificate(keys, seq, digest)
    ahead = new_replica_state(
        config, 1, keys[1], stable_seq=seq, stable_digest=digest, stable_certificate=cert
    )
    lagging = states[3]
    status = make_auth(config, keys, 3).seal(Status(0, False, 0, 0, 100))
    reply = on_message(ahead, status, 100)
    sends = [e for e in reply if isinstance(e, Send) and e.to == 3]
    assert [type(m) for m in get_sent(sends)] == [CheckpointCertificate]
    assert on_message(ahead, status, 150) == []  # a replay: no second answer
    effects = on_message(lagging, sends[0].envelope, 110)
    assert lagging.best_certified == seq
    assert any(isinstance(e, NeedStateTransfer) and e.target_seq == seq for e in effects) or (
        lagging.behind_since_ms is not None
    )


def test_a_forged_or_partial_certificate_is_rejected() -> None:
    config, keys, states = make_cluster()
    r = states[3]
    seq, digest = config.checkpoint_interval, b"\x07" * 32
    cert = _certificate(keys, seq, digest)
    auth1 = make_auth(config, keys, 1)
    short = CommitCertificate("sim-chain", seq, digest, cert.signatures[:2])
    forged = CommitCertificate("sim-chain", seq, b"\x08" * 32, cert.signatures)
    odd = _certificate(keys, seq + 1, digest)
    for bad in (short, forged):
        assert on_message(r, auth1.seal(CheckpointCertificate(bad)), 5) == []
    on_message(r, auth1.seal(CheckpointCertificate(odd)), 5)
    assert r.rejected == {"bad-certificate": 2, "not-stable-seq": 1}
    assert r.best_certified == 0


# -- NEW-VIEW relayed by any replica ---------------------------------------------------


def test_any_replica_relays_the_new_view_to_one_that_still_asks_for_it() -> None:
    config, keys, states = make_cluster()
    # Replicas 1, 2, 3 move to view 1 (replica 0, the old primary, is down); 3 misses
    # the NEW-VIEW, which replica 1 (the new primary) would withhold if it were faulty.
    vcs = {i: _view_change(config, keys, i, 1) for i in (1, 2, 3)}
    for to in (1, 2):
        for sender, env in vcs.items():
            if sender != to:
                pump(states, to, on_message(states[to], env, 10), 10, alive={1, 2})
    assert states[2].view == 1 and not states[2].in_view_change
    lagging = states[3]
    for sender in (1, 2):  # f+1 view changes for view 1: it joins
        pump(states, 3, on_message(lagging, vcs[sender], 20), 20, alive=set())
    assert lagging.in_view_change and lagging.view == 1
    assert lagging.my_view_change is not None
    later = 10 + config.retransmit_interval_ms  # relays are rate-limited per peer
    asked = on_message(states[2], lagging.my_view_change, later)
    relays = [e for e in asked if isinstance(e, Send) and e.to == 3]
    assert [type(m) for m in get_sent(relays)] == [NewView]
    assert relays[0].envelope.sender == 1  # the primary's own signed NEW-VIEW
    effects = on_message(lagging, relays[0].envelope, later + 10)
    assert not lagging.in_view_change and lagging.view == 1
    assert any(isinstance(e, ViewChanged) for e in effects)
    # The old primary comes back still installed in view 0: its heartbeat (it waits
    # for a request) brings it the NEW-VIEW of view 1, which it installs directly.
    old = states[0]
    on_client_request(old, REQ, later)
    status = make_auth(config, keys, 0).seal(Status(0, False, 0, 0, later))
    relayed = [e for e in on_message(states[1], status, later) if isinstance(e, Send)]
    assert [type(m) for m in get_sent(relayed)] == [NewView]
    on_message(old, relayed[0].envelope, later + 5)
    assert old.view == 1 and not old.in_view_change


# -- the isolated replica, on the simulator -------------------------------------------


def test_an_isolated_replica_rejoins_the_current_view_after_the_heal() -> None:
    """Issue 8's run: replica 3 is cut off for five view-change timeouts while the others
    commit, and the faulty replica 2 feeds it checkpoints for wrong digests. After the
    heal it must catch up and be in the others' view, not alone in a higher one: once
    replica 2 crashes, progress needs it."""
    cut = Partition(100, 4100, (frozenset({3}), frozenset({0, 1, 2})))
    sim = SimNetwork(4, seed=81, partitions=[cut], behaviours={2: Behaviour.WRONG_CHECKPOINT})
    views: dict[int, int] = {}
    sim.on_effect = lambda rid, e: (
        views.__setitem__(rid, e.view) if isinstance(e, ViewChanged) else None
    )
    for i in range(8):
        sim.submit(2, at_ms=i * 500)
    assert sim.run_until_done(6_000)
    sim.run_until(sim.now_ms + 1_500)
    assert sim.get_min_executed([0, 1, 3]) == sim.get_min_executed([0, 1]) >= 8
    assert views.get(3, 0) == views.get(0, 0) == views.get(1, 0)
    sim.crash(2, sim.now_ms + 100)
    sim.submit(3, at_ms=sim.now_ms + 200)
    assert sim.run_until_done(sim.now_ms + 20_000)
    sim.run_until(sim.now_ms + 1_000)
    assert_all_done(sim)
    assert sim.get_min_executed([0, 1, 3]) == sim.get_min_executed([0, 1])


def test_isolated_replicas_on_both_sides_of_a_split_come_back_to_one_view() -> None:
    """A 2-2 split stops everything; nobody hears 2f peers, so nobody climbs views."""
    cut = Partition(50, 5050, (frozenset({0, 1}), frozenset({2, 3})))
    sim = SimNetwork(4, seed=82, partitions=[cut])
    changes: list[int] = []
    sim.on_effect = lambda rid, e: changes.append(e.view) if isinstance(e, ViewChanged) else None
    for i in range(5):
        sim.submit(2, at_ms=i * 1000)
    assert sim.run_until_done(20_000)
    assert_all_done(sim)
    assert changes == []  # no view change at all: the primary was never at fault


def test_a_status_flood_gets_at_most_one_answer_per_interval() -> None:
    """A faulty peer sending fresh statuses as fast as it can does not make us sign a
    certificate for each: one answer per retransmit interval."""
    config, keys, _ = make_cluster()
    seq, digest = config.checkpoint_interval, b"\x07" * 32
    ahead = new_replica_state(
        config,
        1,
        keys[1],
        stable_seq=seq,
        stable_digest=digest,
        stable_certificate=_certificate(keys, seq, digest),
    )
    auth3 = make_auth(config, keys, 3)
    answers = 0
    for t in range(1, 1001):  # 1,000 statuses in one second
        answers += len(on_message(ahead, auth3.seal(Status(0, False, 0, 0, t)), t))
    assert answers == 1000 // config.retransmit_interval_ms
    assert ahead.last_heard_ms[3] == 1000


def test_an_idle_replica_sends_no_heartbeat() -> None:
    config, _, states = make_cluster()
    r = states[1]
    sent = []
    for t in range(0, 10 * config.retransmit_interval_ms, 10):
        sent += get_sent(on_tick(r, t))
    assert sent == []
    on_client_request(r, REQ, 10 * config.retransmit_interval_ms)
    for t in range(10 * config.retransmit_interval_ms, 12 * config.retransmit_interval_ms, 10):
        sent += get_sent(on_tick(r, t))
    assert any(isinstance(m, Status) for m in sent)
