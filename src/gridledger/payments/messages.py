"""Wire types of the payments protocol: transactions, their state records, mint requests.

Transactions (kind: payload, who may send it):

* ``payments.pay``: :class:`PaymentMessage`, anyone (the payer, under any key);
* ``payments.redeem``: :class:`Redeem`, only the invoice's ``payee_redeem_key``;
* ``payments.reveal``: :class:`Reveal`, only the invoice's ``payee_redeem_key``, while
  the invoice is unpaid: proves a posted payment does not open to valid coins;
* ``payments.refresh``: :class:`Refresh`, anyone; the sender's key gets the credit;
* ``payments.reissue``: :class:`ReissueRecord`, the mint (consumes a credit);
* ``payments.absorb``: :class:`Absorb`, the mint (the DSO keeps a credit it was paid);
* ``payments.withdrawn``: :class:`WithdrawalRecord`, the mint (per household and period);
* ``payments.deposit``: :class:`DepositRecord`, the mint (coins deposited while identified);
* ``payments.bill``: :class:`BillRequest`, the mint (closes a household's period);
* ``payments.dso-mint``: :class:`DsoMint`, the mint (coins it withdrew to pay with);
* ``payments.dso-invoice``: :class:`~gridledger.payments.invoice.Invoice`, the mint;
* ``payments.denominations``: :class:`DenominationUpdate`, the mint (key rotation).

Interactive, never on chain: :class:`WithdrawRequest` / :class:`WithdrawResponse`
(identified, X.509), :class:`ReissueRequest` (anonymous, one-time key),
:class:`DepositRequest` (identified) and :class:`PaymentContents` (inside HPKE).
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.crypto.encoding import encode, wire_type
from gridledger.crypto.hashing import hash_bytes, register_tag, tagged_message
from gridledger.payments.coins import Coin, DenominationKey
from gridledger.payments.units import Money

KIND_PAY = "payments.pay"
KIND_REDEEM = "payments.redeem"
KIND_REFRESH = "payments.refresh"
KIND_REISSUE = "payments.reissue"
KIND_ABSORB = "payments.absorb"
KIND_WITHDRAWN = "payments.withdrawn"
KIND_DEPOSIT = "payments.deposit"
KIND_BILL = "payments.bill"
KIND_DSO_MINT = "payments.dso-mint"
KIND_DSO_INVOICE = "payments.dso-invoice"
KIND_DENOMINATIONS = "payments.denominations"
KIND_REVEAL = "payments.reveal"

RECEIPT_SIZE = 32
MAX_COINS = 64
MAX_CIPHERTEXT = MAX_COINS * 400 + 256

RECEIPT_TAG = register_tag("gridledger/payments/receipt/1")
PAYMENT_TAG = register_tag("gridledger/payments/payment-message/1")
PAYMENT_CONTEXT_TAG = register_tag("gridledger/payments/payment-context/1")
REISSUE_TAG = register_tag("gridledger/payments/reissue-request/1")
WITHDRAW_SIGNATURE_TAG = register_tag("gridledger/payments/withdraw-request/1")
DEPOSIT_SIGNATURE_TAG = register_tag("gridledger/payments/deposit-request/1")


def _check_coins(coins: tuple[Coin, ...]) -> None:
    if not 0 < len(coins) <= MAX_COINS:
        raise ValueError(f"1..{MAX_COINS} coins")


# -- on chain -------------------------------------------------------------------------


@wire_type("payments.payment-message/1")
@dataclass(frozen=True)
class PaymentMessage:
    """The payer's coins and receipt, sealed to the invoice's ``payee_enc_key``.

    ``locks`` are the coins' :attr:`~gridledger.payments.coins.Coin.lock` hashes, in
    clear: until the invoice's deadline only this payment's redeem may spend them.
    """

    namespace: str
    invoice_id: bytes
    ciphertext: bytes
    receipt_hash: bytes
    locks: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if len(self.ciphertext) > MAX_CIPHERTEXT or len(self.receipt_hash) != 32:
            raise ValueError("ciphertext too long or receipt hash not 32 bytes")
        if not 0 < len(self.locks) <= MAX_COINS or any(len(x) != 32 for x in self.locks):
            raise ValueError(f"1..{MAX_COINS} coin locks of 32 bytes")
        if len(set(self.locks)) != len(self.locks):
            raise ValueError("a coin lock appears twice")

    @property
    def payment_hash(self) -> bytes:
        return hash_bytes(PAYMENT_TAG, encode(self))


@wire_type("payments.posted-payment/1")
@dataclass(frozen=True)
class PostedPayment:
    """State record of a ``payments.pay``: its receipt hash, sender, block time and tx hash.

    The ciphertext stays in the block (find it by ``tx_hash``), not in the state.
    """

    receipt_hash: bytes
    payer: bytes
    timestamp_ms: int
    tx_hash: bytes
    locks: tuple[bytes, ...]


@wire_type("payments.reveal/1")
@dataclass(frozen=True)
class Reveal:
    """The payee shows a posted payment is bad: its one-time X25519 private key and the
    message (from the block), so that every replica can open it."""

    message: PaymentMessage
    enc_private_key: bytes


@wire_type("payments.redeem/1")
@dataclass(frozen=True)
class Redeem:
    """The payee spends ``coins`` on its invoice, naming the posted payment and its receipt."""

    namespace: str
    invoice_id: bytes
    payment_hash: bytes
    receipt: bytes
    coins: tuple[Coin, ...]

    def __post_init__(self) -> None:
        _check_coins(self.coins)
        if len(self.receipt) != RECEIPT_SIZE:
            raise ValueError("receipt is 32 bytes")


@wire_type("payments.refresh/1")
@dataclass(frozen=True)
class Refresh:
    """Spend ``coins`` into a credit of the sender's one-time key (change, Taler's refresh)."""

    coins: tuple[Coin, ...]

    def __post_init__(self) -> None:
        _check_coins(self.coins)


@wire_type("payments.credit/1")
@dataclass(frozen=True)
class Credit:
    """State record ``credit/<key>``: owed to a one-time key; status open/reissued/absorbed."""

    amount: Money
    status: str


@wire_type("payments.reissue-record/1")
@dataclass(frozen=True)
class ReissueRecord:
    """The mint consumed ``owner_key``'s credit for the request the owner signed."""

    owner_key: bytes
    amount: Money
    request_hash: bytes
    owner_signature: bytes


@wire_type("payments.absorb/1")
@dataclass(frozen=True)
class Absorb:
    """The DSO keeps the credit of its own one-time key (it was the payee)."""

    owner_key: bytes


@wire_type("payments.withdrawal-record/1")
@dataclass(frozen=True)
class WithdrawalRecord:
    """Cumulative coins the mint sold ``account`` in ``period`` (never decreases)."""

    account: str
    period: int
    count: int
    value: Money


@wire_type("payments.deposit-record/1")
@dataclass(frozen=True)
class DepositRecord:
    """Coins ``account`` deposited while identified in ``period`` (added to its total)."""

    account: str
    period: int
    coins: tuple[Coin, ...]

    def __post_init__(self) -> None:
        _check_coins(self.coins)


@wire_type("payments.totals/1")
@dataclass(frozen=True)
class AccountTotals:
    """State record of a household's withdrawals or deposits in one period."""

    count: int
    value: Money


@wire_type("payments.bill-request/1")
@dataclass(frozen=True)
class BillRequest:
    """Close ``account``'s ``period``; ``grid_charge`` is grid energy not paid in coins
    (negative: the DSO owes the household for energy it took)."""

    account: str
    period: int
    grid_charge: Money


@wire_type("payments.bill/1")
@dataclass(frozen=True)
class Bill:
    """The only identified figure: ``total = withdrawn - deposited + grid_charge``."""

    account: str
    period: int
    withdrawn: Money
    deposited: Money
    grid_charge: Money
    total: Money


@wire_type("payments.dso-mint/1")
@dataclass(frozen=True)
class DsoMint:
    """Coins the mint withdrew for the DSO's own purchases (added to the period's total)."""

    period: int
    count: int
    value: Money


@wire_type("payments.denomination-update/1")
@dataclass(frozen=True)
class DenominationUpdate:
    """New denomination keys (rotation); old ones stay until their windows end."""

    keys: tuple[DenominationKey, ...]


@wire_type("payments.supply/1")
@dataclass(frozen=True)
class Supply:
    """State record ``supply``: chain-wide sums for the conservation check."""

    withdrawn: int
    deposited: int
    redeemed: int
    refreshed: int
    reissued: int
    absorbed: int
    dso_minted: int


# -- interactive ----------------------------------------------------------------------


@wire_type("payments.blinded-coin/1")
@dataclass(frozen=True)
class BlindedCoin:
    """One coin to sign: the denomination key id and the RFC 9474 blinded message."""

    key_id: bytes
    blinded_msg: bytes


@wire_type("payments.withdraw-body/1")
@dataclass(frozen=True)
class WithdrawBody:
    """What the household signs with its certificate's RSA key."""

    chain_id: str
    certificate_der: bytes
    period: int
    nonce: bytes
    timestamp_ms: int
    blinded: tuple[BlindedCoin, ...]


@wire_type("payments.withdraw-request/1")
@dataclass(frozen=True)
class WithdrawRequest:
    """An identified withdrawal (wallet loading): the body and the household's signature."""

    body: WithdrawBody
    signature: bytes


@wire_type("payments.withdraw-response/1")
@dataclass(frozen=True)
class WithdrawResponse:
    """The mint's blind signatures, in the order of the request."""

    blind_signatures: tuple[bytes, ...]


@wire_type("payments.reissue-body/1")
@dataclass(frozen=True)
class ReissueBody:
    """Fresh coins for the credit of ``owner_key`` (a one-time Ed25519 key)."""

    chain_id: str
    owner_key: bytes
    blinded: tuple[BlindedCoin, ...]

    @property
    def request_hash(self) -> bytes:
        return hash_bytes(REISSUE_TAG, encode(self))


@wire_type("payments.reissue-request/1")
@dataclass(frozen=True)
class ReissueRequest:
    """The body and ``owner_key``'s signature over its hash (single use, checked on chain)."""

    body: ReissueBody
    signature: bytes


@wire_type("payments.deposit-body/1")
@dataclass(frozen=True)
class DepositBody:
    """What a household signs to deposit its coins at the end of a period."""

    chain_id: str
    certificate_der: bytes
    period: int
    nonce: bytes
    timestamp_ms: int
    coins: tuple[Coin, ...]


@wire_type("payments.deposit-request/1")
@dataclass(frozen=True)
class DepositRequest:
    """An identified deposit: the body and the household's RSA-PSS signature."""

    body: DepositBody
    signature: bytes


@wire_type("payments.payment-contents/1")
@dataclass(frozen=True)
class PaymentContents:
    """The plaintext of a payment message: the coins and the receipt."""

    coins: tuple[Coin, ...]
    receipt: bytes


def compute_receipt_hash(receipt: bytes) -> bytes:
    return hash_bytes(RECEIPT_TAG, receipt)


def compute_payment_context(namespace: str, invoice_id: bytes, receipt_hash: bytes) -> bytes:
    """HPKE ``info``: binds the ciphertext to one invoice and one receipt hash."""
    return tagged_message(PAYMENT_CONTEXT_TAG, encode([namespace, invoice_id, receipt_hash]))
