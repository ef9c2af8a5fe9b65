"""Errors of the payments layer::

    PaymentError
    ├── CoinRejected            a coin fails a check (``serial`` names it)
    │   ├── ForgedCoin          its signature does not verify (forged, or serial/key altered)
    │   ├── UnknownDenomination its key id is not a published denomination key
    │   ├── ExpiredDenomination the block time is outside its key's spending window
    │   ├── DoubleSpent         it is already spent or deposited (also twice in one message)
    │   └── CoinLocked          a posted payment locks it to another invoice until its deadline
    ├── NotAuthorised           the sender may not do this (a thief redeeming, a non-mint)
    ├── RedeemRejected          a pay or redeem does not fit its invoice (unknown, past its
    │                           deadline, already paid, wrong amount, wrong receipt)
    ├── PaymentMessageRejected  the payee's off-chain check of a payment message failed
    ├── MintRejected            the mint refuses a withdrawal, reissue or deposit request
    ├── PeriodClosed            the household's bill for that period is already on chain
    └── InsufficientCoins       the wallet cannot make up the amount

Every error carries ``reason`` (which the ledger copies into a rejected receipt);
the contract and the mint check everything before they write anything.
"""

from __future__ import annotations

from gridledger.errors import PaymentError

__all__ = [
    "CoinLocked",
    "CoinRejected",
    "DoubleSpent",
    "ExpiredDenomination",
    "ForgedCoin",
    "InsufficientCoins",
    "MintRejected",
    "NotAuthorised",
    "PaymentError",
    "PaymentMessageRejected",
    "PeriodClosed",
    "RedeemRejected",
    "UnknownDenomination",
]


class CoinRejected(PaymentError):
    """A coin fails a check; ``serial`` is the coin's 32-byte serial."""

    def __init__(self, serial: bytes, reason: str) -> None:
        super().__init__(f"coin {serial.hex()[:16]}: {reason}")
        self.serial = serial


class ForgedCoin(CoinRejected):
    """The denomination signature does not verify: forged, or serial or key id altered."""

    def __init__(self, serial: bytes) -> None:
        super().__init__(serial, "forged or altered (signature does not verify)")


class UnknownDenomination(CoinRejected):
    """The coin names a key id that no published denomination key has."""

    def __init__(self, serial: bytes, key_id: bytes) -> None:
        super().__init__(serial, f"unknown denomination key {key_id.hex()[:16]}")
        self.key_id = key_id


class ExpiredDenomination(CoinRejected):
    """The block time lies outside the denomination key's spending window."""

    def __init__(self, serial: bytes, key_id: bytes, at_ms: int) -> None:
        super().__init__(serial, f"denomination key {key_id.hex()[:16]} not valid at {at_ms}")
        self.key_id = key_id
        self.at_ms = at_ms


class DoubleSpent(CoinRejected):
    """The coin is already spent or deposited, or appears twice in one message."""

    def __init__(self, serial: bytes) -> None:
        super().__init__(serial, "already spent")


class CoinLocked(CoinRejected):
    """A payment posted for another invoice locks the coin until that invoice's deadline."""

    def __init__(self, serial: bytes) -> None:
        super().__init__(serial, "locked to another posted payment")


class NotAuthorised(PaymentError):
    """``sender`` (an Ed25519 key) lacks the authority: not the invoice's payee, not the mint."""

    def __init__(self, sender: bytes, reason: str) -> None:
        super().__init__(reason)
        self.sender = sender


class RedeemRejected(PaymentError):
    """A pay or redeem does not fit its invoice: unknown, past its deadline, paid, wrong sum."""


class PaymentMessageRejected(PaymentError):
    """The payee's check of a payment message failed (decryption, sum, receipt, coins)."""


class MintRejected(PaymentError):
    """The mint refuses a request: bad certificate or signature, replay, no credit, window."""


class PeriodClosed(PaymentError):
    """The bill of ``account`` for ``period`` is on chain; its figures are final."""

    def __init__(self, account: str, period: int) -> None:
        super().__init__(f"period {period} of {account!r} is already billed")
        self.account = account
        self.period = period


class InsufficientCoins(PaymentError):
    """The wallet holds less than ``amount`` (``held`` is what it has)."""

    def __init__(self, amount: int, held: int) -> None:
        super().__init__(f"wallet holds {held}, {amount} needed")
        self.amount = amount
        self.held = held
