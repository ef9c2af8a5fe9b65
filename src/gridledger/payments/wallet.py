"""A household's side of e-coins: pure functions, no I/O (the caller moves the messages).

Withdrawal (identified or anonymous) is the same three steps as RFC 9474::

    pending = prepare_coins(keys, rng)               # serials, blinded messages (secret)
    ...send compute_blinded(pending) to the mint, get blind signatures back...
    coins   = finalize_coins(pending, blind_sigs)    # unblinded, each checked

Paying an invoice: :func:`choose_coins` (exact subset; with powers of two a greedy
pick finds one whenever one exists) or, when none exists, :func:`choose_refresh`
first; then :func:`create_payment` seals the coins and a random receipt to the
invoice's ``payee_enc_key``. The payee runs :func:`open_payment` (every check a
payee can make off chain) and :func:`build_redeem`, then asks the mint for fresh
coins with :func:`build_reissue_request`, authorised by the invoice's one-time key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509

from gridledger.crypto import blind_rsa
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.encryption import (
    EncryptionPrivateKey,
    EncryptionPublicKey,
    open_sealed,
    seal,
)
from gridledger.crypto.errors import EncodingError
from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import Ed25519PrivateKey, RsaPrivateKey
from gridledger.errors import CryptoError
from gridledger.identity.ca import compute_certificate_der
from gridledger.ledger.tx import Transaction
from gridledger.payments.coins import (
    SERIAL_SIZE,
    VARIANT,
    Coin,
    DenominationKey,
    DenominationVerifier,
    compute_coin_message,
)
from gridledger.payments.errors import (
    InsufficientCoins,
    MintRejected,
    PaymentError,
    PaymentMessageRejected,
)
from gridledger.payments.invoice import Invoice
from gridledger.payments.messages import (
    DEPOSIT_SIGNATURE_TAG,
    KIND_PAY,
    KIND_REDEEM,
    KIND_REFRESH,
    KIND_REVEAL,
    MAX_COINS,
    RECEIPT_SIZE,
    REISSUE_TAG,
    WITHDRAW_SIGNATURE_TAG,
    BlindedCoin,
    DepositBody,
    DepositRequest,
    PaymentContents,
    PaymentMessage,
    Redeem,
    Refresh,
    ReissueBody,
    ReissueRequest,
    Reveal,
    WithdrawBody,
    WithdrawRequest,
    compute_payment_context,
    compute_receipt_hash,
)
from gridledger.payments.units import Money, compute_denominations


@dataclass(frozen=True)
class HeldCoin:
    """A coin in a wallet, with the value of its denomination."""

    coin: Coin
    value: Money


@dataclass(frozen=True)
class PendingCoin:
    """A coin being withdrawn: its key, serial and blinding (secret until finalized)."""

    denomination: DenominationKey
    public: DenominationVerifier
    serial: bytes = field(repr=False)
    blinding: blind_rsa.BlindingResult = field(repr=False)

    @property
    def blinded(self) -> BlindedCoin:
        return BlindedCoin(self.public.key_id, self.blinding.blinded_msg)


@dataclass
class Wallet:
    """The coins a household holds (one mutable state object)."""

    coins: list[HeldCoin] = field(default_factory=list)

    @property
    def balance(self) -> Money:
        return Money(sum(c.value for c in self.coins))


# -- withdrawal -----------------------------------------------------------------------


def choose_denomination_keys(
    keys: Iterable[DenominationKey], amount: int, now_ms: int
) -> tuple[DenominationKey, ...]:
    """One withdrawable key per bit of ``amount`` (the newest key of each value)."""
    by_value: dict[int, DenominationKey] = {}
    for key in keys:
        if key.is_withdrawable(now_ms):
            best = by_value.get(key.value)
            if best is None or key.valid_from_ms > best.valid_from_ms:
                by_value[key.value] = key
    chosen = []
    for value in compute_denominations(amount):
        if value not in by_value:
            raise PaymentError(f"no withdrawable denomination of {value}")
        chosen.append(by_value[value])
    return tuple(chosen)


def prepare_coins(keys: Sequence[DenominationKey], rng: Rng) -> tuple[PendingCoin, ...]:
    """Draw a serial per coin and blind its message under its denomination key."""
    pending = []
    for key in keys:
        public = DenominationVerifier.from_key(key)
        serial = rng.random_bytes(SERIAL_SIZE)
        msg = compute_coin_message(serial, public.key_id)
        blinding = blind_rsa.blind(public.public_key, VARIANT, msg, rng)
        pending.append(PendingCoin(key, public, serial, blinding))
    return tuple(pending)


def finalize_coins(
    pending: Sequence[PendingCoin], blind_signatures: Sequence[bytes]
) -> tuple[HeldCoin, ...]:
    """Unblind each signature; :class:`MintRejected` if the mint sent a bad one."""
    if len(blind_signatures) != len(pending):
        raise MintRejected("the mint answered with the wrong number of signatures")
    coins = []
    for p, blind_sig in zip(pending, blind_signatures, strict=True):
        msg = compute_coin_message(p.serial, p.public.key_id)
        try:
            sig = blind_rsa.finalize(p.public.public_key, VARIANT, msg, blind_sig, p.blinding.inv)
        except CryptoError:
            raise MintRejected("a blind signature from the mint does not verify") from None
        coins.append(HeldCoin(Coin(p.serial, p.public.key_id, sig), p.denomination.value))
    return tuple(coins)


def build_withdraw_request(
    chain_id: str,
    certificate: x509.Certificate,
    key: RsaPrivateKey,
    period: int,
    pending: Sequence[PendingCoin],
    now_ms: int,
    rng: Rng,
) -> WithdrawRequest:
    """An identified wallet-loading request, signed with the household's certificate key."""
    body = WithdrawBody(
        chain_id,
        compute_certificate_der(certificate),
        period,
        rng.random_bytes(16),
        now_ms,
        tuple(p.blinded for p in pending),
    )
    return WithdrawRequest(body, key.sign(WITHDRAW_SIGNATURE_TAG, encode(body)))


def build_deposit_request(
    chain_id: str,
    certificate: x509.Certificate,
    key: RsaPrivateKey,
    period: int,
    coins: Sequence[HeldCoin],
    now_ms: int,
    rng: Rng,
) -> DepositRequest:
    """An identified end-of-period deposit of ``coins``."""
    body = DepositBody(
        chain_id,
        compute_certificate_der(certificate),
        period,
        rng.random_bytes(16),
        now_ms,
        tuple(c.coin for c in coins),
    )
    return DepositRequest(body, key.sign(DEPOSIT_SIGNATURE_TAG, encode(body)))


def build_reissue_request(
    chain_id: str, owner: Ed25519PrivateKey, pending: Sequence[PendingCoin]
) -> ReissueRequest:
    """Fresh coins for the credit of ``owner`` (the invoice's one-time redeem key)."""
    body = ReissueBody(chain_id, owner.public_key.raw, tuple(p.blinded for p in pending))
    return ReissueRequest(body, owner.sign(REISSUE_TAG, body.request_hash))


# -- paying ---------------------------------------------------------------------------


def choose_coins(wallet: Wallet, amount: int) -> tuple[HeldCoin, ...] | None:
    """Coins summing to exactly ``amount``, or ``None`` if no subset does.

    Greedy, largest first: with power-of-two values, if any subset sums to the
    amount then one containing the largest coin <= the remainder does (coins
    no larger than a power of two d that sum past d have a prefix summing to d).
    Raises :class:`InsufficientCoins` if the wallet holds less than ``amount``.
    """
    if amount <= 0:
        raise PaymentError("amount must be positive")
    if wallet.balance < amount:
        raise InsufficientCoins(amount, wallet.balance)
    chosen = []
    remaining = amount
    for held in sorted(wallet.coins, key=lambda c: -c.value):
        if held.value <= remaining:
            chosen.append(held)
            remaining -= held.value
            if remaining == 0:
                return tuple(chosen)
    return None


def choose_refresh(wallet: Wallet, amount: int) -> tuple[HeldCoin, ...]:
    """Coins to refresh so that ``amount`` becomes payable exactly: smallest first, >= amount."""
    if wallet.balance < amount:
        raise InsufficientCoins(amount, wallet.balance)
    chosen: list[HeldCoin] = []
    for held in sorted(wallet.coins, key=lambda c: c.value):
        if sum(c.value for c in chosen) >= amount:
            break
        chosen.append(held)
    return tuple(chosen)


def process_remove_coins(wallet: Wallet, coins: Iterable[HeldCoin]) -> None:
    """Take ``coins`` out of the wallet (they were paid, deposited or refreshed)."""
    gone = {c.coin.coin_id for c in coins}
    wallet.coins = [c for c in wallet.coins if c.coin.coin_id not in gone]


def create_payment(
    namespace: str, invoice: Invoice, coins: Sequence[HeldCoin], rng: Rng
) -> tuple[PaymentMessage, bytes]:
    """Seal ``coins`` and a fresh receipt to the invoice; return the message and the receipt."""
    if sum(c.value for c in coins) != invoice.amount:
        raise PaymentError("coins do not sum to the invoice amount")
    if not 0 < len(coins) <= MAX_COINS:
        raise PaymentError(f"a payment carries 1..{MAX_COINS} coins")
    if len({c.coin.coin_id for c in coins}) != len(coins):
        raise PaymentError("a coin appears twice")
    receipt = rng.random_bytes(RECEIPT_SIZE)
    receipt_hash = compute_receipt_hash(receipt)
    contents = PaymentContents(tuple(c.coin for c in coins), receipt)
    context = compute_payment_context(namespace, invoice.invoice_id, receipt_hash)
    ciphertext = seal(EncryptionPublicKey(invoice.payee_enc_key), encode(contents), context)
    locks = tuple(c.coin.lock for c in coins)
    return PaymentMessage(namespace, invoice.invoice_id, ciphertext, receipt_hash, locks), receipt


def open_payment(
    namespace: str,
    invoice: Invoice,
    message: PaymentMessage,
    enc_key: EncryptionPrivateKey,
    verifiers: Mapping[bytes, DenominationVerifier],
    now_ms: int,
) -> PaymentContents:
    """The payee's checks: for this invoice, opens, receipt matches, coins valid and summing.

    Whether a coin is already spent only the chain can say: the redeem decides.
    """
    if (message.namespace, message.invoice_id) != (namespace, invoice.invoice_id):
        raise PaymentMessageRejected("payment is for another invoice")
    if enc_key.public_key.raw != invoice.payee_enc_key:
        raise PaymentMessageRejected("not our invoice key")
    context = compute_payment_context(namespace, invoice.invoice_id, message.receipt_hash)
    try:
        contents = decode_as(PaymentContents, open_sealed(enc_key, message.ciphertext, context))
    except (CryptoError, EncodingError):
        raise PaymentMessageRejected("payment does not decrypt to coins") from None
    if compute_receipt_hash(contents.receipt) != message.receipt_hash:
        raise PaymentMessageRejected("receipt does not match its posted hash")
    if len({c.coin_id for c in contents.coins}) != len(contents.coins):
        raise PaymentMessageRejected("a coin appears twice")
    if sorted(c.lock for c in contents.coins) != sorted(message.locks):
        raise PaymentMessageRejected("the coins are not the ones the payment locked")
    total = 0
    for coin in contents.coins:
        verifier = verifiers.get(coin.key_id)
        if verifier is None:
            raise PaymentMessageRejected("coin under an unknown denomination key")
        try:
            verifier.verify_coin(coin, now_ms)
        except PaymentError as exc:
            raise PaymentMessageRejected(exc.reason) from None
        total += verifier.denomination.value
    if total != invoice.amount:
        raise PaymentMessageRejected(f"coins sum to {total}, invoice asks {invoice.amount}")
    return contents


def build_pay_tx(
    chain_id: str, message: PaymentMessage, sender: Ed25519PrivateKey, nonce: int
) -> Transaction:
    """Post the payment on chain (the payer's pseudonym or any one-time key signs it)."""
    return Transaction.create(chain_id, KIND_PAY, message, sender, nonce)


def build_redeem_tx(
    chain_id: str,
    message: PaymentMessage,
    contents: PaymentContents,
    redeem_key: Ed25519PrivateKey,
    nonce: int = 0,
) -> Transaction:
    """The payee's redeem, signed by the invoice's one-time ``payee_redeem_key``."""
    op = Redeem(
        message.namespace,
        message.invoice_id,
        message.payment_hash,
        contents.receipt,
        contents.coins,
    )
    return Transaction.create(chain_id, KIND_REDEEM, op, redeem_key, nonce)


def build_reveal_tx(
    chain_id: str,
    message: PaymentMessage,
    enc_key: EncryptionPrivateKey,
    redeem_key: Ed25519PrivateKey,
    nonce: int = 1,
) -> Transaction:
    """Show that a posted payment is bad (one-time keys only); do it before the deadline."""
    return Transaction.create(
        chain_id, KIND_REVEAL, Reveal(message, enc_key.raw()), redeem_key, nonce
    )


def build_refresh_tx(
    chain_id: str, coins: Sequence[HeldCoin], owner: Ed25519PrivateKey, nonce: int = 0
) -> Transaction:
    """Spend ``coins`` into a credit of the fresh one-time key ``owner`` (then reissue)."""
    return Transaction.create(
        chain_id, KIND_REFRESH, Refresh(tuple(c.coin for c in coins)), owner, nonce
    )
