"""Request dedup by digest, byte budgets, request forwarding, the verified-frame cache."""

from __future__ import annotations

import pytest

from gridledger.consensus.effects import Broadcast, Effect, Execute, Send
from gridledger.consensus.errors import ConfigInvalid
from gridledger.consensus.messages import (
    MAX_ENVELOPE_BYTES,
    Checkpoint,
    ClientRequest,
    ForwardedRequests,
    NewView,
    PrePrepare,
    compute_batch_digest,
    compute_request_digest,
    compute_request_size,
    decode_message,
)
from gridledger.consensus.pbft import (
    PbftConfig,
    compute_new_view_bound,
    on_client_request,
    on_client_requests,
    on_frame,
    on_tick,
)
from gridledger.crypto.encoding import encode
from gridledger.node.simnet import SimNetwork, make_config, make_keys

from .helpers import make_auth, make_cluster


def _send_all(sim: SimNetwork, req: ClientRequest, at_ms: int) -> None:
    sim.submit_request(req, at_ms)


def test_a_forged_huge_request_id_does_not_block_the_client() -> None:
    # The replica maps (tx.sender, tx.nonce) to (client, request_id): an attacker who
    # forges the victim's sender with request id 2**64-1 must not censor the victim.
    sim = SimNetwork(4, seed=41)
    forged = ClientRequest(b"victim", 2**64 - 1, b"forged, bad signature")
    legit = ClientRequest(b"victim", 2, b"legit")
    later = ClientRequest(b"alice", 10, b"ten")
    earlier = ClientRequest(b"alice", 5, b"five")
    _send_all(sim, forged, 0)
    _send_all(sim, later, 0)
    _send_all(sim, legit, 300)
    _send_all(sim, earlier, 300)
    sim.run_until(5_000)
    for req in (forged, legit, later, earlier):
        assert compute_request_digest(req) in sim.completed_ms
    assert all("stale-request" not in r.state.rejected for r in sim.replicas)
    assert sim.check_safety() == []


def test_an_executed_request_is_ordered_once() -> None:
    sim = SimNetwork(4, seed=42)
    req = ClientRequest(b"c", 1, b"once")
    executed: list[ClientRequest] = []

    def hook(rid: int, effect: Effect) -> None:
        if rid == 1 and isinstance(effect, Execute):
            executed.extend(effect.requests)

    sim.on_effect = hook
    for t in (0, 50, 400, 900):
        _send_all(sim, req, t)
    sim.run_until(3_000)
    assert compute_request_digest(req) in sim.completed_ms
    assert executed == [req]


def test_a_request_larger_than_a_batch_is_dropped_with_a_reason() -> None:
    config, _, states = make_cluster(batch_max_bytes=4096)
    st = states[0]
    big = ClientRequest(b"c", 1, b"x" * 4096)
    assert compute_request_size(big) > config.batch_max_bytes
    assert on_client_request(st, big, 1) == []
    assert st.rejected.get("request-too-large") == 1 and not st.pending


def test_batches_are_cut_by_bytes_and_backups_refuse_oversized_ones() -> None:
    sim = SimNetwork(4, seed=43, config_overrides={"batch_max_bytes": 4096, "batch_max": 64})
    sizes: list[int] = []

    def hook(rid: int, effect: Effect) -> None:
        if isinstance(effect, Broadcast):
            msg = decode_message(effect.envelope.body)
            if isinstance(msg, PrePrepare) and msg.batch:
                sizes.append(sum(compute_request_size(r) for r in msg.batch))

    sim.on_effect = hook
    sim.submit(20, at_ms=0, payload_size=1000)
    assert sim.run_until_done(10_000)
    assert sizes and max(sizes) <= 4096 and len(sizes) >= 5

    config, keys, states = make_cluster(batch_max_bytes=4096)
    batch = tuple(ClientRequest(b"c%d" % i, 1, b"y" * 1000) for i in range(5))
    pp = PrePrepare(0, 1, compute_batch_digest(10, batch), batch, 10)
    frame = encode(make_auth(config, keys, 0).seal(pp))
    on_frame(states[1], frame, 10)
    assert states[1].rejected.get("batch-too-large") == 1
    assert not states[1].verified_cache  # rejected and large: not cached


def test_config_refuses_a_new_view_above_the_envelope_limit() -> None:
    keys = make_keys(4, 0)
    with pytest.raises(ConfigInvalid, match="batch_max_bytes"):
        make_config(keys, watermark_window=64, batch_max_bytes=1024 * 1024)
    # The defaults fit for every n up to 31.
    for n in (4, 7, 10, 31):
        cfg = PbftConfig("c", make_config(make_keys(n, 0)).validators)
        assert cfg.batch_max_bytes >= 4096
        bound = compute_new_view_bound(n, cfg.watermark_window, cfg.batch_max_bytes)
        assert bound < MAX_ENVELOPE_BYTES


def test_view_change_completes_with_full_batches_and_a_crashed_primary() -> None:
    # Checkpoints are held back, so the window fills up with full batches (the worst
    # case for the size of VIEW-CHANGE and NEW-VIEW), then the primary crashes.
    overrides = {
        "batch_max": 1000,
        "checkpoint_interval": 16,
        "watermark_window": 64,
        "batch_timeout_ms": 20,
        "view_change_timeout_ms": 2000,
        "retransmit_interval_ms": 1000,
        "state_transfer_delay_ms": 1000,
    }
    sim = SimNetwork(4, seed=44, delay_ms=(5, 30), config_overrides=overrides)
    largest = {"NewView": 0, "ViewChange": 0}

    def hook(rid: int, effect: Effect) -> None:
        if isinstance(effect, (Broadcast, Send)):
            msg = decode_message(effect.envelope.body)
            name = type(msg).__name__
            if name in largest:
                largest[name] = max(largest[name], len(encode(effect.envelope)))
            if isinstance(msg, NewView):
                assert len(msg.view_changes) >= 3

    sim.on_effect = hook
    sim.message_filter = lambda s, t, m: not isinstance(m, Checkpoint) or sim.now_ms > 6_000
    per_batch = sim.config.batch_max_bytes // compute_request_size(
        ClientRequest(b"client-0000", 0, b"x" * 4000)
    )
    for w in range(8):
        sim.submit(per_batch * 9, at_ms=w * 50, payload_size=4000)
    sim.crash(0, 450)
    sim.run_until(40_000)
    live = sim.replicas[1:]
    assert all(r.state.view >= 1 and not r.state.in_view_change for r in live)
    assert 0 < largest["NewView"] <= MAX_ENVELOPE_BYTES
    assert largest["ViewChange"] > sim.config.batch_max_bytes * 16  # really carried batches
    assert min(r.app.head for r in live) >= 64
    assert sim.check_safety() == []


def test_a_backup_forwards_a_request_only_it_received() -> None:
    sim = SimNetwork(4, seed=45)
    req = ClientRequest(b"lonely", 1, b"sent to one backup")
    sim.submit_request(req, 5, only=2)
    sim.run_until(3_000)
    assert all(r.state.view == 0 for r in sim.replicas)
    assert all(compute_request_digest(req) in r.state.executed_requests for r in sim.replicas)


def test_a_forward_is_accepted_only_by_the_primary() -> None:
    config, keys, states = make_cluster()
    req = ClientRequest(b"c", 1, b"fwd")
    frame = encode(make_auth(config, keys, 2).seal(req))
    on_frame(states[1], frame, 1)
    assert states[1].rejected.get("forward-to-backup") == 1 and not states[1].pending
    on_frame(states[0], frame, 1)
    assert compute_request_digest(req) in states[0].pending


def test_a_backup_forwards_its_waiting_requests_under_few_signatures() -> None:
    """Past saturation many requests wait past the forward delay at once: one
    envelope carries as many as a batch holds, not one signature per request."""
    config, _keys, states = make_cluster()
    backup = states[1]
    reqs = [ClientRequest(b"c", i, b"x" * 200) for i in range(2 * config.batch_max + 5)]
    for req in reqs:
        on_client_request(backup, req, 10)
    signed_before = backup.auth.signatures
    effects = on_tick(backup, 10 + config.forward_delay_ms)
    forwards = [e for e in effects if isinstance(e, Send) and e.to == 0]
    messages = [decode_message(e.envelope.body) for e in forwards]
    assert all(isinstance(m, ForwardedRequests) for m in messages)
    assert len(forwards) == 3 and backup.auth.signatures - signed_before == 3
    carried = [r for m in messages if isinstance(m, ForwardedRequests) for r in m.requests]
    assert carried == reqs  # in arrival order, each once
    assert all(len(encode(e.envelope)) <= MAX_ENVELOPE_BYTES for e in forwards)
    # The primary takes them all; another backup refuses the forward.
    for e in forwards:
        on_frame(states[0], encode(e.envelope), 20 + config.forward_delay_ms)
        on_frame(states[2], encode(e.envelope), 20 + config.forward_delay_ms)
    primary_holds = set(states[0].pending) | set(states[0].inflight)
    assert {compute_request_digest(r) for r in reqs} <= primary_holds
    assert states[2].rejected.get("forward-to-backup") == 3 and not states[2].pending


def test_a_forward_larger_than_a_batch_is_refused_whole() -> None:
    """A byzantine backup cannot fill the primary's pending pool under one signature."""
    config, keys, states = make_cluster()
    auth = make_auth(config, keys, 2)
    too_many = ForwardedRequests(
        tuple(ClientRequest(b"c", i, b"x") for i in range(config.batch_max + 1))
    )
    on_frame(states[0], encode(auth.seal(too_many)), 1)
    per_request = config.batch_max_bytes // 2
    too_big = ForwardedRequests(tuple(ClientRequest(b"c", i, bytes(per_request)) for i in range(3)))
    on_frame(states[0], encode(auth.seal(too_big)), 2)
    assert states[0].rejected.get("forward-too-large") == 2 and not states[0].pending
    fits = ForwardedRequests(tuple(ClientRequest(b"c", i, b"x") for i in range(config.batch_max)))
    on_frame(states[0], encode(auth.seal(fits)), 3)
    assert len(states[0].pending) == config.batch_max


def test_requests_taken_together_end_as_when_taken_one_by_one() -> None:
    """A client's batch goes to the engine in one call: the primary proposes the same
    batches, with one look at its queue instead of one per request."""
    reqs = [ClientRequest(b"c", i, b"x%d" % i) for i in range(2 * 50 + 7)]
    _config, _keys, one_by_one = make_cluster(batch_max=50)
    _config2, _keys2, together = make_cluster(batch_max=50)
    sent_one: list[Effect] = []
    for req in reqs:
        sent_one.extend(on_client_request(one_by_one[0], req, 10))
    sent_together = on_client_requests(together[0], reqs, 10)

    def batches(effects: list[Effect]) -> list[tuple[int, ...]]:
        out = []
        for e in effects:
            if isinstance(e, Broadcast):
                msg = decode_message(e.envelope.body)
                if isinstance(msg, PrePrepare):
                    out.append(tuple(r.request_id for r in msg.batch))
        return out

    assert batches(sent_together) == batches(sent_one) != []
    assert set(together[0].pending) == set(one_by_one[0].pending)
    assert set(together[0].unproposed) == set(one_by_one[0].unproposed)
