"""The market plugin: enabled by its genesis section, refuses a corrupt one."""

from __future__ import annotations

import dataclasses

import pytest

from gridledger.crypto.encoding import encode
from gridledger.errors import ConfigError
from gridledger.ledger.block import GenesisConfig
from gridledger.market.config import GENESIS_CONFIG_KEY, compute_genesis_state
from gridledger.market.contract import MarketContract
from gridledger.market.errors import MarketConfigError
from gridledger.market.messages import MarketConfig
from gridledger.market.plugin import PLUGIN
from tests.ledger.helpers import CHAIN, VALIDATORS

from .helpers import World


def genesis(state: dict[bytes, bytes]) -> GenesisConfig:
    return GenesisConfig.create(CHAIN, VALIDATORS, 0, state)


def test_enabled_only_by_its_section(world: World) -> None:
    assert PLUGIN.name == "market"
    assert PLUGIN.build_contracts(genesis({})) == ()
    (contract,) = PLUGIN.build_contracts(genesis(compute_genesis_state(world.market_config())))
    assert isinstance(contract, MarketContract)
    assert contract.config == world.market_config()


@pytest.mark.parametrize(
    "change",
    [
        {"tick": 0},
        {"min_price": 0},
        {"min_price": 51, "tick": 5},
        {"gate_lead_ms": 3_600_000},
        {"clearing": "sealed"},
        {"attesters": (b"short",)},
        {"dso_enc_key": b""},
        {"piece_ms": ()},
        {"horizon_ms": 0},
        {"dso_import_price": 2**41},
        {"settle_ms": 2**62},
        {"max_price": 400, "max_quantity": 2**40},
    ],
)
def test_corrupt_section_is_a_config_error(world: World, change: dict[str, object]) -> None:
    bad = dataclasses.replace(world.market_config(), **change)  # type: ignore[arg-type]
    with pytest.raises(MarketConfigError):
        PLUGIN.build_contracts(genesis({GENESIS_CONFIG_KEY: encode(bad)}))
    with pytest.raises(ConfigError):  # what the plugin loader expects
        compute_genesis_state(bad)


def test_undecodable_section_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="malformed"):
        PLUGIN.build_contracts(genesis({GENESIS_CONFIG_KEY: b"\x01garbage"}))
    assert isinstance(MarketConfig(), MarketConfig)
