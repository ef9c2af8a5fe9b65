"""A DPoS consortium on the simulated network, for the DPoS tests."""

from __future__ import annotations

from gridledger.consensus import dpos  # noqa: F401  (registers the engine and its rule)
from gridledger.consensus.dpos.config import ENGINE_NAME, DposConfig, make_genesis_section
from gridledger.consensus.dpos.contract import PLUGIN, DposContract
from gridledger.consensus.simhub import NetworkModel
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import Validator
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.contracts_builtin import KvContract
from gridledger.node.core import NodeLimits
from gridledger.node.simcluster import SimCluster

CHAIN = "dpos-test"
INTERVAL_MS = 500


def make_keys(n: int) -> list[Ed25519PrivateKey]:
    return [Ed25519PrivateKey(i.to_bytes(4, "big") + b"dpos-key".ljust(28, b".")) for i in range(n)]


def make_genesis(
    candidates: int, producers: int, *, miss_limit: int = 0, interval_ms: int = INTERVAL_MS
) -> tuple[GenesisConfig, list[Ed25519PrivateKey]]:
    keys = make_keys(candidates)
    validators = [Validator(i, k.public_key.raw) for i, k in enumerate(keys)]
    config = DposConfig(producers=producers, block_interval_ms=interval_ms, miss_limit=miss_limit)
    genesis = GenesisConfig.create(
        CHAIN, validators, 0, make_genesis_section(config), engine=ENGINE_NAME
    )
    return genesis, keys


def make_registry(genesis: GenesisConfig) -> ContractRegistry:
    """KV + the DPoS contract (what build_registry gives once the plugin is installed)."""
    contracts = PLUGIN.build_contracts(genesis)
    assert contracts and isinstance(contracts[0], DposContract)
    return ContractRegistry((KvContract(), *contracts))


def make_cluster(
    candidates: int,
    producers: int,
    *,
    miss_limit: int = 0,
    seed: str = "dpos",
    model: NetworkModel | None = None,
) -> SimCluster:
    genesis, keys = make_genesis(candidates, producers, miss_limit=miss_limit)
    return SimCluster(
        genesis,
        keys,
        model=model or NetworkModel(delay_ms=(2, 20)),
        seed=seed,
        limits=NodeLimits(gossip_ms=60_000),
        tick_ms=INTERVAL_MS // 5,
        registry_factory=make_registry,
    )
