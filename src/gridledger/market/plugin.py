"""The market's contract plugin: enabled by a ``market/genesis/config`` entry in the genesis."""

from __future__ import annotations

from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.contracts import Contract
from gridledger.market.config import NAMESPACE, get_market_config
from gridledger.market.contract import MarketContract


class MarketPlugin:
    """Builds :class:`MarketContract` for a genesis with a market section (``()`` without)."""

    @property
    def name(self) -> str:
        return NAMESPACE

    def build_contracts(self, genesis: GenesisConfig) -> tuple[Contract, ...]:
        config = get_market_config(genesis)  # MarketConfigError (a ConfigError) if corrupt
        return () if config is None else (MarketContract(config),)


PLUGIN = MarketPlugin()
