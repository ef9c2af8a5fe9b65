"""The aggregation plugin: every replica whose genesis has an aggregation section runs it.

The genesis section is one key, ``aggregation/genesis/config``, holding an
:class:`~.contract.AggregationGenesis` (the CC's Ed25519 key, Y_Pub in G1 and
G2, the report period, the grace, the batch limit and the receiver schema).
A genesis without it does not enable the contract; a corrupt one is a
:class:`~gridledger.errors.ConfigError` before the replica starts.
"""

from __future__ import annotations

from gridledger.aggregation.contract import NAMESPACE, AggregationContract, AggregationGenesis
from gridledger.aggregation.keys import SystemParams, decode_params
from gridledger.aggregation.schema import check_schema
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.signatures import is_valid_ed25519_public_key
from gridledger.errors import ConfigError, GridledgerError
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.contracts import Contract
from gridledger.ledger.state import compute_state_key

GENESIS_KEY = compute_state_key(NAMESPACE, b"genesis/config")
MAX_BATCH_LIMIT = 10_000


def check_genesis_config(config: AggregationGenesis) -> None:
    """Raise :class:`ConfigError` unless every field of the section is usable."""
    try:
        decode_params(SystemParams(config.y_pub1, config.y_pub2))
        check_schema(config.schema)
    except GridledgerError as exc:
        raise ConfigError(f"aggregation genesis: {exc.reason}") from None
    if not is_valid_ed25519_public_key(config.cc_tx_key):
        raise ConfigError("aggregation genesis: the CC key is not an Ed25519 key")
    if config.period_ms <= 0 or config.grace_periods < 0:
        raise ConfigError("aggregation genesis: period must be positive, grace non-negative")
    if not 0 < config.max_batch <= MAX_BATCH_LIMIT:
        raise ConfigError(f"aggregation genesis: max_batch must be 1..{MAX_BATCH_LIMIT}")


def get_genesis_config(genesis: GenesisConfig) -> AggregationGenesis | None:
    """The aggregation section of ``genesis``, checked, or ``None`` if it has none."""
    raw = dict(genesis.state).get(GENESIS_KEY)
    if raw is None:
        return None
    try:
        config = decode_as(AggregationGenesis, raw)
    except GridledgerError as exc:
        raise ConfigError(f"aggregation genesis does not decode: {exc.reason}") from None
    check_genesis_config(config)
    return config


def compute_genesis_entry(config: AggregationGenesis) -> tuple[bytes, bytes]:
    """The (full key, value) to put in a genesis state to enable aggregation."""
    check_genesis_config(config)
    return GENESIS_KEY, encode(config)


class AggregationPlugin:
    """``gridledger.aggregation.plugin.PLUGIN`` (entry point group ``gridledger.plugins``)."""

    name = NAMESPACE

    def build_contracts(self, genesis: GenesisConfig) -> tuple[Contract, ...]:
        config = get_genesis_config(genesis)
        return () if config is None else (AggregationContract(config),)


PLUGIN = AggregationPlugin()
