"""The payments plugin: builds :class:`PaymentsContract` when the genesis enables payments.

The lead registers :data:`PLUGIN` under the ``gridledger.plugins`` entry point
(``payments = "gridledger.payments.plugin:PLUGIN"``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.contracts import Contract
from gridledger.payments.config import get_config
from gridledger.payments.contract import PaymentsContract
from gridledger.payments.invoice import NAMESPACE


@dataclass(frozen=True)
class PaymentsPlugin:
    """Enabled by ``payments/genesis/config`` (:func:`~gridledger.payments.config.get_config`)."""

    name: str = NAMESPACE

    def build_contracts(self, genesis: GenesisConfig) -> tuple[Contract, ...]:
        config = get_config(dict(genesis.state))
        return () if config is None else (PaymentsContract(config),)


PLUGIN = PaymentsPlugin()
