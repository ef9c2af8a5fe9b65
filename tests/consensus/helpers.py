"""Shared helpers for the consensus tests."""

from __future__ import annotations

from gridledger.consensus.messages import Authenticator
from gridledger.consensus.pbft import PbftConfig, ReplicaState, new_replica_state
from gridledger.consensus.simnet import SimNetwork, make_config, make_keys
from gridledger.crypto.signatures import Ed25519PrivateKey


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
    assert len(sim.completed_ms) == sim._next_request, (
        f"{len(sim.completed_ms)}/{sim._next_request} requests completed"
    )
    assert sim.check_safety() == []
