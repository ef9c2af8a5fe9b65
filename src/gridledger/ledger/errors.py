"""Errors of the ledger layer::

    LedgerError
    ├── TransactionError        a transaction is malformed or its signature does not verify
    ├── ContractRejection       a contract refuses a transaction (recorded, no state change)
    ├── UnknownTransactionKind  no registered contract handles the transaction's kind
    ├── RegistryError           a contract or kind is registered twice, or a namespace is bad
    ├── StorageError            the block store refused a write or holds inconsistent data
    ├── ProofError              a Merkle or state proof does not verify
    ├── ChainError              a block does not link to its parent, or its header is wrong
    └── CertificateError        a commit certificate lacks a quorum or has a bad signature

Inside :func:`~gridledger.ledger.execution.apply_block` the first three never
escape: they turn into a rejected :class:`~gridledger.ledger.execution.Receipt`
carrying their ``reason``, so that every replica records the same outcome.
"""

from __future__ import annotations

from gridledger.errors import LedgerError
from gridledger.ledger.certificate import CertificateError

__all__ = [
    "CertificateError",
    "ChainError",
    "ContractRejection",
    "LedgerError",
    "ProofError",
    "RegistryError",
    "StorageError",
    "TransactionError",
    "UnknownTransactionKind",
]


class TransactionError(LedgerError):
    """A transaction is malformed, for another chain, or its signature does not verify."""


class ContractRejection(LedgerError):
    """A contract refuses a transaction; raised from ``Contract.process`` with a ``reason``.

    The transaction is recorded with ``Receipt(ok=False, reason=...)`` and its
    writes are discarded.
    """


class UnknownTransactionKind(LedgerError):
    """No registered contract handles ``kind``."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"no contract handles transaction kind {kind!r}")
        self.kind = kind


class RegistryError(LedgerError):
    """A contract registration was refused: duplicate kind or namespace, or a bad name."""


class StorageError(LedgerError):
    """A block store refused a write (wrong height, closed) or found inconsistent data."""


class ProofError(LedgerError):
    """A Merkle inclusion proof or a state proof does not verify against its root."""


class ChainError(LedgerError):
    """A block header does not link to its parent, names another chain, or does not match."""
