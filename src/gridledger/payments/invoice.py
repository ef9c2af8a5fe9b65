"""Invoices (what a contract asks to be paid) and payment records (what closed them).

The cross-contract convention: any contract that wants money for something
(the market for a trade's money leg, the DSO for grid energy) publishes an
:class:`Invoice` at ``b"invoice/" + invoice_id`` in *its own* namespace, encoded
with :func:`~gridledger.crypto.encoding.encode`. The invoice names two one-time
keys of the payee: ``payee_redeem_key`` (Ed25519), the only key that may redeem
coins against it, and ``payee_enc_key`` (X25519), to which the payer encrypts
the coins. The payments contract records the redeem at
``payments/paid/<namespace>/<invoice_id>`` as a :class:`PaymentRecord`; the
publishing contract calls :func:`get_payment` to close its money leg. A record
exists only if the payee revealed the receipt whose hash the payer posted.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.crypto.encoding import decode_as, wire_type
from gridledger.crypto.errors import EncodingError
from gridledger.ledger.contracts import StateView
from gridledger.payments.errors import RedeemRejected
from gridledger.payments.units import MAX_DENOMINATION_EXPONENT, Money

NAMESPACE = "payments"
INVOICE_ID_SIZE = 32
MAX_AMOUNT = (1 << (MAX_DENOMINATION_EXPONENT + 1)) - 1


@wire_type("payments.invoice/1")
@dataclass(frozen=True)
class Invoice:
    """A request for exactly ``amount``, redeemable by ``payee_redeem_key`` until the deadline."""

    invoice_id: bytes
    amount: Money
    payee_redeem_key: bytes
    payee_enc_key: bytes
    deadline_ms: int

    def __post_init__(self) -> None:
        if len(self.invoice_id) != INVOICE_ID_SIZE:
            raise ValueError("invoice_id is 32 bytes")
        if not 0 < self.amount <= MAX_AMOUNT:
            raise ValueError(f"amount must be in 1..{MAX_AMOUNT}")
        if len(self.payee_redeem_key) != 32 or len(self.payee_enc_key) != 32:
            raise ValueError("payee keys are 32 bytes (Ed25519, X25519)")
        if self.deadline_ms < 0:
            raise ValueError("deadline_ms must be non-negative")


@wire_type("payments.payment-record/1")
@dataclass(frozen=True)
class PaymentRecord:
    """A closed invoice: what was paid, which posted payment, its receipt hash, when."""

    namespace: str
    invoice_id: bytes
    amount: Money
    payment_hash: bytes
    receipt_hash: bytes
    payer: bytes
    height: int
    timestamp_ms: int


def compute_invoice_key(invoice_id: bytes) -> bytes:
    """Where a contract publishes an invoice, inside its own namespace."""
    return b"invoice/" + invoice_id


def compute_payment_key(namespace: str, invoice_id: bytes) -> bytes:
    """Where the payments contract records the payment of ``namespace``'s invoice."""
    return b"paid/" + namespace.encode() + b"/" + invoice_id


def get_invoice(view: StateView, namespace: str, invoice_id: bytes) -> Invoice | None:
    """The invoice ``namespace`` published, ``None`` if none; a corrupt one is refused."""
    raw = view.get_in(namespace, compute_invoice_key(invoice_id))
    if raw is None:
        return None
    try:
        invoice = decode_as(Invoice, raw)
    except EncodingError:
        raise RedeemRejected(f"invoice in {namespace!r} is malformed") from None
    if invoice.invoice_id != invoice_id:
        raise RedeemRejected("invoice is stored under another id")
    return invoice


def get_payment(view: StateView, namespace: str, invoice_id: bytes) -> PaymentRecord | None:
    """The record of the payment that closed ``namespace``'s invoice, or ``None``."""
    raw = view.get_in(NAMESPACE, compute_payment_key(namespace, invoice_id))
    return None if raw is None else decode_as(PaymentRecord, raw)
