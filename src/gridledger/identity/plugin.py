"""The identity package as a contract plugin: ``PLUGIN`` adds the identity contract.

A chain runs the identity contract exactly when its genesis carries the identity
section (:mod:`gridledger.identity.genesis`); a genesis without it gives a
KV-only chain, and a partial or corrupt section is a
:class:`~gridledger.errors.ConfigError` before the replica starts.
"""

from __future__ import annotations

from gridledger.identity.contracts import NAMESPACE, IdentityContract
from gridledger.identity.genesis import get_identity_config
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.contracts import Contract


class IdentityPlugin:
    """Builds :class:`IdentityContract` from the genesis's identity section."""

    @property
    def name(self) -> str:
        return NAMESPACE

    def build_contracts(self, genesis: GenesisConfig) -> tuple[Contract, ...]:
        """``(IdentityContract(config),)`` if the genesis enables identity, else ``()``."""
        config = get_identity_config(genesis)
        if config is None:
            return ()
        return (IdentityContract(config),)


PLUGIN = IdentityPlugin()
