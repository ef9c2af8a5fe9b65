"""Normal-case operation: agreement, certificates, replies, batching, GC."""

from __future__ import annotations

import dataclasses

from gridledger.consensus.client import ReplyCollector
from gridledger.consensus.effects import Broadcast, Effect, Execute, ReplyToClient
from gridledger.consensus.messages import (
    ClientRequest,
    PrePrepare,
    Reply,
    compute_reply_result,
    compute_request_digest,
    decode_message,
)
from gridledger.consensus.pbft import (
    HOLD_FACTOR,
    get_committed_seqs,
    new_replica_state,
    on_client_request,
    on_tick,
)
from gridledger.crypto.encoding import encode
from gridledger.ledger.certificate import verify_certificate
from gridledger.node.simnet import SimNetwork

from .helpers import assert_all_done, get_sent, make_auth, make_cluster, pump


def test_four_replicas_commit_the_same_blocks() -> None:
    sim = SimNetwork(4, seed=11)
    for i in range(6):
        sim.submit(10, at_ms=i * 40)
    assert sim.run_until_done(10_000)
    sim.run_until(sim.now_ms + 500)
    assert_all_done(sim)
    heads = {r.app.head for r in sim.replicas}
    assert len(heads) == 1 and heads.pop() >= 4
    first = sim.replicas[0].app
    for r in sim.replicas[1:]:
        assert r.app.digests == first.digests
        assert r.app.batches == first.batches
    for r in sim.replicas:
        # late retransmissions for garbage-collected seqs are the only refusals
        assert r.state.view == 0 and set(r.state.rejected) <= {"below-watermark"}


def test_execute_is_in_seq_order_with_increasing_timestamps() -> None:
    sim = SimNetwork(4, seed=12, delay_ms=(1, 30))
    executed: dict[int, list[Execute]] = {i: [] for i in range(4)}

    def record(replica: int, effect: Effect) -> None:
        if isinstance(effect, Execute):
            executed[replica].append(effect)

    sim.on_effect = record
    for i in range(10):
        sim.submit(5, at_ms=i * 7)
    assert sim.run_until_done(10_000)
    for effects in executed.values():
        assert [e.seq for e in effects] == list(range(1, len(effects) + 1))
        stamps = [e.timestamp_ms for e in effects]
        assert stamps == sorted(set(stamps))


def test_every_block_gets_a_certificate_that_verifies() -> None:
    sim = SimNetwork(4, seed=13)
    sim.submit(40)
    assert sim.run_until_done(10_000)
    sim.run_until(sim.now_ms + 500)
    head = sim.replicas[0].app.head
    assert sorted(sim.certificates) == list(range(1, head + 1))
    for seq, cert in sim.certificates.items():
        verify_certificate(cert, sim.config.validators, chain_id=sim.config.chain_id)
        assert cert.header_hash == sim.replicas[0].app.digests[seq]
        assert len(cert.signatures) >= sim.config.quorum


class _PrimaryInFlight:
    """Watches the primary (replica 0): the most pre-prepares in flight at once, and
    the largest batch it proposed."""

    def __init__(self, sim: SimNetwork) -> None:
        self.outstanding: set[int] = set()
        self.peak = 0
        self.largest_batch = 0
        sim.on_effect = self.watch

    def watch(self, replica: int, effect: Effect) -> None:
        if replica != 0:
            return
        if isinstance(effect, Broadcast):
            msg = decode_message(effect.envelope.body)
            if isinstance(msg, PrePrepare):
                self.largest_batch = max(self.largest_batch, len(msg.batch))
                self.outstanding.add(msg.seq)
                self.peak = max(self.peak, len(self.outstanding))
        elif isinstance(effect, Execute):
            self.outstanding.discard(effect.seq)


def test_primary_batches_and_pipelines() -> None:
    sim = SimNetwork(4, seed=14, delay_ms=(20, 40), config_overrides={"batch_max": 4})
    primary = _PrimaryInFlight(sim)
    sim.submit(40)
    assert sim.run_until_done(10_000)
    assert sim.replicas[0].app.head == 10  # 40 requests in batches of 4
    assert primary.largest_batch == 4
    assert primary.peak >= 5  # several seqs in flight at once


def test_checkpoint_gc_keeps_the_log_bounded() -> None:
    sim = SimNetwork(4, seed=15, config_overrides={"batch_max": 1})
    cfg = sim.config
    peak_log = 0

    def watch(replica: int, effect: Effect) -> None:
        nonlocal peak_log
        peak_log = max(peak_log, len(sim.replicas[replica].state.log))

    sim.on_effect = watch
    for i in range(12):
        sim.submit(10, at_ms=i * 30)
    assert sim.run_until_done(20_000)
    sim.run_until(sim.now_ms + 500)
    for r in sim.replicas:
        st = r.state
        assert r.app.head == 120
        assert st.low_watermark >= 120 - cfg.checkpoint_interval
        assert st.low_watermark % cfg.checkpoint_interval == 0
        assert all(s > st.low_watermark for s in st.log)
        assert len(st.log) <= cfg.watermark_window
        assert len(st.checkpoints) <= cfg.watermark_window
        assert len(get_committed_seqs(st)) <= cfg.watermark_window
    assert peak_log <= cfg.watermark_window + 1


def test_client_needs_f_plus_one_matching_replies() -> None:
    config, keys, _ = make_cluster()
    collector = ReplyCollector(config.chain_id, config.validators)
    digest = b"\x07" * 32
    good = compute_reply_result(3, b"\xaa" * 32)
    bad = compute_reply_result(3, b"\xbb" * 32)
    auths = [make_auth(config, keys, i) for i in range(4)]
    assert collector.process_reply(auths[3].seal(Reply(0, digest, 3, bad))) is None
    assert collector.process_reply(auths[0].seal(Reply(0, digest, 0, good))) is None
    # a reply claiming another replica's identity does not count
    assert collector.process_reply(auths[2].seal(Reply(0, digest, 1, good))) is None
    assert collector.process_reply(auths[1].seal(Reply(1, digest, 1, good))) == good
    assert collector.results == {digest: good}


def test_simulated_clients_complete_with_matching_replies() -> None:
    sim = SimNetwork(4, seed=16)
    sim.submit(12)
    assert sim.run_until_done(10_000)
    assert len(sim.collector.results) == 12
    for digest, result in sim.collector.results.items():
        blocks = sim.replicas[0].app.digests.items()
        seqs = [s for s, r in blocks if result == compute_reply_result(s, r)]
        assert len(seqs) == 1, digest.hex()


def test_duplicate_requests_are_ordered_once_and_answered_from_cache() -> None:
    sim = SimNetwork(4, seed=17)
    tx = sim.make_transaction(0)
    sim.submit_transaction(tx)
    req = ClientRequest(tx.sender, tx.nonce, encode(tx))
    sim.run_until(5)
    for _ in range(3):
        sim.submit_transaction(tx, at_ms=sim.now_ms + 1)
    assert sim.run_until_done(10_000)
    executed = sum(len(r.app.batches) for r in sim.replicas[:1])
    assert executed >= 1
    st = sim.replicas[1].state
    digest = compute_request_digest(req)
    assert digest in st.executed_requests
    # After execution, the same request again only yields the cached reply.
    effects = on_client_request(st, req, sim.now_ms)
    assert len(effects) == 1 and st.duplicates >= 1
    # No per-client ordering: another request of the same client with a lower id is
    # a new request (dedup is by digest; the ledger enforces nonces).
    other = ClientRequest(req.client, req.request_id + 1, b"other")
    assert on_client_request(st, other, sim.now_ms) == []
    assert compute_request_digest(other) in st.pending
    assert "stale-request" not in st.rejected
    total = sum(len(b) for b in [sim.replicas[0].app.batches])
    assert total == sim.replicas[0].app.head


def _count_blocks_and_peak(limit: int) -> tuple[int, int]:
    """Blocks made and the most pre-prepares in flight at the primary, for one load."""
    sim = SimNetwork(
        4,
        seed=17,
        delay_ms=(20, 40),
        config_overrides={"batch_max": 100, "batch_timeout_ms": 20, "max_inflight_batches": limit},
    )
    primary = _PrimaryInFlight(sim)
    for i in range(30):
        sim.submit(2, at_ms=i * 6)
    assert sim.run_until_done(10_000)
    assert_all_done(sim)
    return sim.replicas[0].app.head, primary.peak


def test_primary_holds_a_partial_batch_while_enough_are_in_flight() -> None:
    """Group commit: with one batch in flight the next waits, then carries all that came."""
    blocks_held, peak_held = _count_blocks_and_peak(1)
    blocks_free, peak_free = _count_blocks_and_peak(0)
    assert peak_held == 1 < peak_free
    assert blocks_held < blocks_free  # the same 60 requests in fewer, larger blocks


def test_a_held_batch_waits_at_most_hold_factor_timeouts() -> None:
    _config, _keys, states = make_cluster(batch_timeout_ms=20, max_inflight_batches=1)
    primary = states[0]
    first = ClientRequest(b"c1", 1, b"one")
    on_client_request(primary, first, 1_000)

    def proposed(effects: list[Effect]) -> list[tuple[int, tuple[ClientRequest, ...]]]:
        return [(m.seq, m.batch) for m in get_sent(effects) if isinstance(m, PrePrepare)]

    assert proposed(on_tick(primary, 1_020)) == [(1, (first,))]  # nothing in flight: not held
    second = ClientRequest(b"c2", 1, b"two")
    on_client_request(primary, second, 1_030)
    # the first batch never executes (its backups are silent): the second is held ...
    for now in range(1_050, 1_030 + HOLD_FACTOR * 20, 20):
        assert all(seq == 1 for seq, _ in proposed(on_tick(primary, now)))
    # ... but not longer than HOLD_FACTOR batch timeouts
    late = proposed(on_tick(primary, 1_030 + HOLD_FACTOR * 20))
    assert (2, (second,)) in late


def test_replies_can_be_turned_off_without_changing_what_executes() -> None:
    """A node that answers with ledger receipts runs PBFT with client_replies=False."""
    executed: dict[bool, list[tuple[int, int]]] = {}
    for replies in (True, False):
        config, _, states = make_cluster(batch_max=2)
        states = [
            new_replica_state(
                dataclasses.replace(config, client_replies=replies), s.replica_id, s.key
            )
            for s in states
        ]
        effects: list[tuple[int, Effect]] = []
        for i in range(4):
            req = ClientRequest(b"client", i, b"tx %d" % i)
            for rid, state in enumerate(states):
                effects += pump(states, rid, on_client_request(state, req, 0), 0)
        executed[replies] = sorted((rid, e.seq) for rid, e in effects if isinstance(e, Execute))
        answered = [e for _, e in effects if isinstance(e, ReplyToClient)]
        assert bool(answered) is replies
        assert all(not s.last_replies for s in states) is not replies
    assert executed[True] == executed[False] and executed[True]
