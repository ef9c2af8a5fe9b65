"""Shared helpers for the consensus tests."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence

from gridledger.consensus.effects import Broadcast, Effect, Execute, Send
from gridledger.consensus.messages import Authenticator, Message, decode_message
from gridledger.consensus.pbft import (
    PbftConfig,
    ReplicaState,
    new_replica_state,
    on_executed,
    on_message,
)
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.node.simnet import SimNetwork, make_config, make_keys


def make_cluster(
    n: int = 4, seed: int = 0, **overrides: int
) -> tuple[PbftConfig, list[Ed25519PrivateKey], list[ReplicaState]]:
    """n fresh replica states sharing one config (for handler-level tests)."""
    keys = make_keys(n, seed)
    config = make_config(keys, **overrides)
    return config, keys, [new_replica_state(config, i, k) for i, k in enumerate(keys)]


def make_auth(config: PbftConfig, keys: list[Ed25519PrivateKey], i: int) -> Authenticator:
    return Authenticator(config.chain_id, config.validators, i, keys[i])


def assert_all_done(sim: SimNetwork) -> None:
    assert len(sim.completed_ms) == sim.submitted_count, (
        f"{len(sim.completed_ms)}/{sim.submitted_count} requests completed"
    )
    assert sim.check_safety() == []


def get_sent(effects: Sequence[Effect]) -> list[Message]:
    """The messages a handler call sends (Send and Broadcast), decoded."""
    return [decode_message(e.envelope.body) for e in effects if isinstance(e, (Send, Broadcast))]


def compute_app_digest(seq: int) -> bytes:
    """The block digest of the toy application of :func:`pump` (the same at every replica)."""
    return hashlib.sha256(b"pump-block" + seq.to_bytes(8, "big")).digest()


def pump(
    states: list[ReplicaState],
    sender: int,
    effects: list[Effect],
    now_ms: int,
    *,
    alive: set[int] | None = None,
    max_steps: int = 10_000,
) -> list[tuple[int, Effect]]:
    """Carry out ``effects`` of replica ``sender`` among ``states`` until quiet (handler tests).

    Sends and broadcasts are delivered at once (only to ``alive`` replicas, all by
    default); an ``Execute`` is answered with ``on_executed`` and a digest that
    depends on the seq only. Returns every effect seen, with the replica that
    produced it. Bounded by ``max_steps``.
    """
    live = set(range(len(states))) if alive is None else alive
    queue: deque[tuple[int, Effect]] = deque((sender, e) for e in effects)
    seen: list[tuple[int, Effect]] = []
    for _ in range(max_steps):
        if not queue:
            return seen
        rid, effect = queue.popleft()
        seen.append((rid, effect))
        if isinstance(effect, Execute):
            more = on_executed(states[rid], effect.seq, compute_app_digest(effect.seq))
            queue.extend((rid, e) for e in more)
        elif isinstance(effect, (Send, Broadcast)):
            targets = [effect.to] if isinstance(effect, Send) else range(len(states))
            for to in targets:
                if to != rid and to in live:
                    more = on_message(states[to], effect.envelope, now_ms)
                    queue.extend((to, e) for e in more)
    raise AssertionError("pump: the cluster did not go quiet")
