"""An ordering-service consortium: node cores with the jetstream engine."""

from __future__ import annotations

from gridledger.consensus import ordering  # noqa: F401  (registers the engine and its rule)
from gridledger.consensus.ordering.config import ENGINE_NAME, OrderingConfig, make_genesis_section
from gridledger.consensus.params import ConsensusParams
from gridledger.consensus.simhub import NetworkModel
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import Validator
from gridledger.node.simcluster import SimCluster

CHAIN = "ordering-test"


def make_keys(n: int) -> list[Ed25519PrivateKey]:
    return [
        Ed25519PrivateKey(i.to_bytes(4, "big") + b"ordering-key".ljust(28, b".")) for i in range(n)
    ]


def make_genesis(
    n: int, config: OrderingConfig | None = None
) -> tuple[GenesisConfig, list[Ed25519PrivateKey]]:
    keys = make_keys(n)
    validators = [Validator(i, k.public_key.raw) for i, k in enumerate(keys)]
    section = make_genesis_section(config or OrderingConfig(max_block_requests=50, cut_delay_ms=30))
    genesis = GenesisConfig.create(CHAIN, validators, 0, section, engine=ENGINE_NAME)
    return genesis, keys


def make_cluster(
    n: int = 4, *, seed: str = "ordering", config: OrderingConfig | None = None
) -> SimCluster:
    genesis, keys = make_genesis(n, config)
    return SimCluster(
        genesis,
        keys,
        model=NetworkModel(delay_ms=(1, 10)),
        seed=seed,
        params=ConsensusParams(),
        tick_ms=10,
    )
