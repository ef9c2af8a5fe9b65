"""Errors of the market layer::

    MarketError
    ├── OrderRejected          an order or cancel fails a check (``reason`` says which)
    │   ├── CertificateRefused the pseudonym has no certificate for the round, it is not
    │   │                      valid at block time, or it was revoked
    │   ├── BadSignature       the pseudonym key did not sign the order or cancel
    │   ├── PriceRejected      off the tick or outside the price bounds
    │   ├── QuantityRejected   zero, off the lot, or too large
    │   ├── SlotClosed         the delivery slot's gate has closed
    │   └── DuplicateOrder     the same signed order was already submitted
    ├── PieceRejected          a fixed-piece offer or request fails a check
    └── SettlementRejected     an attestation does not fit its trade (unknown, wrong
                               attester, past the deadline, already attested)

    ConfigError
    └── MarketConfigError      the market's genesis section is missing or corrupt
                               (a ``ConfigError``, as the plugin loader expects)

Every error carries ``reason``; the contract copies it into the rejected
receipt and writes nothing: the ledger discards a rejected transaction's
writes (most checks run before the first write anyway; an accountable piece
request's cost bound is checked on the pairing it would make).
"""

from __future__ import annotations

from gridledger.errors import ConfigError, MarketError

__all__ = [
    "BadSignature",
    "CertificateRefused",
    "DuplicateOrder",
    "MarketConfigError",
    "MarketError",
    "OrderRejected",
    "PieceRejected",
    "PriceRejected",
    "QuantityRejected",
    "SettlementRejected",
    "SlotClosed",
]


class OrderRejected(MarketError):
    """An order or a cancel fails a check before it reaches the book."""


class CertificateRefused(OrderRejected):
    """The order's pseudonym is not certified for its round at block time, or is revoked."""

    def __init__(self, pseudonym: bytes, reason: str) -> None:
        super().__init__(f"pseudonym {pseudonym.hex()[:16]}: {reason}")
        self.pseudonym = pseudonym


class BadSignature(OrderRejected):
    """The pseudonym key's signature on the order (or cancel) does not verify."""


class PriceRejected(OrderRejected):
    """``price`` is off the tick or outside ``[low, high]``."""

    def __init__(self, price: int, reason: str) -> None:
        super().__init__(f"price {price}: {reason}")
        self.price = price


class QuantityRejected(OrderRejected):
    """``quantity`` is zero, not a multiple of the lot, or above the per-order maximum."""

    def __init__(self, quantity: int, reason: str) -> None:
        super().__init__(f"quantity {quantity}: {reason}")
        self.quantity = quantity


class SlotClosed(OrderRejected):
    """The gate of delivery slot ``slot`` closed at ``gate_ms`` (block time is past it)."""

    def __init__(self, slot: int, gate_ms: int) -> None:
        super().__init__(f"slot {slot} closed at {gate_ms}")
        self.slot = slot
        self.gate_ms = gate_ms


class DuplicateOrder(OrderRejected):
    """The order id (hash of the signed order) is already known: a replay."""


class PieceRejected(MarketError):
    """A fixed-piece offer or request fails a check (key reused, slot closed, malformed)."""


class SettlementRejected(MarketError):
    """A delivery attestation does not fit its trade."""


class MarketConfigError(ConfigError):
    """The market's genesis section is missing a field or holds an inconsistent value."""
