"""Errors of the DPoS engine and its contract::

ConsensusError (gridledger.errors)
└── DposError                  a DPoS message or setting is refused (``reason``)
    └── EvidenceInvalid        double-production evidence does not hold
ContractRejection (gridledger.ledger.errors)
└── DposRejection              the DPoS contract refuses a transaction (``reason``)
"""

from __future__ import annotations

from gridledger.errors import ConsensusError
from gridledger.ledger.errors import ContractRejection


class DposError(ConsensusError):
    """A DPoS proposal, confirmation or setting is refused; ``reason`` says why."""


class EvidenceInvalid(DposError):
    """Double-production evidence is malformed, inconsistent or not signed by the producer."""


class DposRejection(ContractRejection):
    """The DPoS contract refuses a vote or evidence; ``reason`` goes in the receipt."""
