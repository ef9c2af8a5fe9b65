"""The one error tree of gridledger.

Every error the package raises on purpose derives from :class:`GridledgerError`,
so that the CLI and the API can turn any of them into one clear line instead
of a traceback. Each layer owns a subtree; the concrete classes live beside
the code that raises them (``<layer>/errors.py``) and derive from the layer's
root here::

    GridledgerError
    ├── ConfigError            bad configuration file or command-line input
    ├── CryptoError            crypto/ (encoding, signatures, blind RSA, sharing, ...)
    ├── LedgerError            ledger/ (transactions, blocks, proofs, storage, contracts)
    ├── ConsensusError         consensus/ (PBFT, DPoS, transport)
    ├── IdentityError          identity/ (CA, RM, MM, TC, tracing)
    ├── PaymentError           payments/ (mint, wallet, billing)
    ├── MarketError            market/ (double auction, fixed-piece market)
    ├── AggregationError       aggregation/ (signcrypted meter data)
    └── NodeError              node/ (process, API, CLI wiring)

Errors carry typed fields (``reason`` and whatever the subclass adds) so that
callers can act on them without parsing messages.
"""

from __future__ import annotations


class GridledgerError(Exception):
    """Root of every error gridledger raises deliberately."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(GridledgerError):
    """A configuration file, directory or command-line argument is unusable."""


class CryptoError(GridledgerError):
    """A cryptographic primitive refused its input or a check failed."""


class LedgerError(GridledgerError):
    """A transaction, block, proof, store or contract operation failed."""


class ConsensusError(GridledgerError):
    """A consensus message or transport operation was refused."""


class IdentityError(GridledgerError):
    """A certificate, registration, pseudonym or tracing step was refused."""


class PaymentError(GridledgerError):
    """A coin, withdrawal, deposit or bill was refused."""


class MarketError(GridledgerError):
    """An order, match or settlement was refused."""


class AggregationError(GridledgerError):
    """A meter report, signcryption or aggregate check failed."""


class NodeError(GridledgerError):
    """The node process, its API or its CLI could not do what was asked."""
