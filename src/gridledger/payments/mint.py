"""The mint, run by the substation/DSO: blind signing, credits, deposits, bills.

One :class:`Mint` state object; every step is a function of (mint, message, now)
that checks everything first and writes last, and returns the transaction the
mint posts (signed with its operator key, the genesis ``mint_key``):

* :func:`process_withdrawal` - identified wallet loading: the household's X.509
  certificate (household role, chains to the roots, not revoked) and its RSA-PSS
  signature over the request, a fresh timestamp and unused nonce; blind-signs
  every coin and posts the household's cumulative count and value for the
  period (``payments.withdrawn``). The blinded messages never leave the mint.
* :func:`process_reissue` - anonymous re-withdrawal: the credit of a one-time
  key (opened on chain by a redeem or refresh) buys fresh coins of exactly its
  value. **Order**: post the returned ``payments.reissue`` transaction and hand
  out the blind signatures only after its receipt is ``ok``; the chain, not the
  mint's memory, makes a credit single-use across mint restarts and replicas.
* :func:`process_deposit` - identified end-of-period deposit; the coins are
  checked here and spent on chain by ``payments.deposit``.
* :func:`build_bill_tx` - closes a household's period; the contract computes
  ``withdrawn - deposited + grid_charge`` from the chain's own totals.
* DSO as a trading party: :func:`create_dso_invoice` (the DSO is paid like any
  seller) and :func:`build_absorb_tx` (it keeps the credit instead of reissuing),
  :func:`process_dso_withdrawal` (coins for the DSO's own purchases, recorded).
* :func:`process_add_keys` - key rotation (``payments.denominations``).

Speed: blind signing is gmpy2 CRT with constant-time exponentiation
(:class:`~gridledger.crypto.blind_rsa.BlindSigner`, built once per key).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509

from gridledger.crypto import blind_rsa
from gridledger.crypto.encoding import encode
from gridledger.crypto.encryption import EncryptionPrivateKey
from gridledger.crypto.errors import BlindSignatureError, InvalidSignature, KeyFormatError
from gridledger.crypto.hashing import HashTag
from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import Ed25519PrivateKey, Ed25519PublicKey, RsaPrivateKey
from gridledger.errors import IdentityError
from gridledger.identity.ca import HOUSEHOLD_ROLES, get_rsa_key, load_certificate, verify_member
from gridledger.ledger.tx import Transaction
from gridledger.payments.coins import Coin, DenominationKey, DenominationVerifier
from gridledger.payments.config import PaymentsConfig
from gridledger.payments.errors import MintRejected, PaymentError
from gridledger.payments.invoice import INVOICE_ID_SIZE, Invoice
from gridledger.payments.messages import (
    DEPOSIT_SIGNATURE_TAG,
    KIND_ABSORB,
    KIND_BILL,
    KIND_DENOMINATIONS,
    KIND_DEPOSIT,
    KIND_DSO_INVOICE,
    KIND_DSO_MINT,
    KIND_REISSUE,
    KIND_WITHDRAWN,
    REISSUE_TAG,
    WITHDRAW_SIGNATURE_TAG,
    Absorb,
    AccountTotals,
    BillRequest,
    BlindedCoin,
    Credit,
    DenominationUpdate,
    DepositRecord,
    DepositRequest,
    DsoMint,
    ReissueRecord,
    ReissueRequest,
    WithdrawalRecord,
    WithdrawRequest,
    WithdrawResponse,
)
from gridledger.payments.units import Money
from gridledger.payments.wallet import HeldCoin, finalize_coins, prepare_coins

DEFAULT_FRESHNESS_MS = 300_000
MAX_COINS_PER_REQUEST = 256
NONCE_SIZE = 16


@dataclass(frozen=True)
class MintKey:
    """A denomination key with its CRT signer."""

    denomination: DenominationKey
    verifier: DenominationVerifier
    signer: blind_rsa.BlindSigner = field(repr=False)


@dataclass
class Mint:
    """The mint's state: keys, roots, local withdrawal totals, used nonces and credits."""

    chain_id: str
    operator: Ed25519PrivateKey = field(repr=False)
    roots: tuple[x509.Certificate, ...]
    keys: dict[bytes, MintKey] = field(default_factory=dict)
    freshness_ms: int = DEFAULT_FRESHNESS_MS
    withdrawn: dict[tuple[str, int], AccountTotals] = field(default_factory=dict)
    nonces: dict[bytes, int] = field(default_factory=dict)
    reissued: set[bytes] = field(default_factory=set)
    next_nonce: int = 1


@dataclass(frozen=True)
class DsoInvoice:
    """An invoice the DSO publishes, with its one-time keys (kept by the DSO)."""

    invoice: Invoice
    redeem_key: Ed25519PrivateKey = field(repr=False)
    enc_key: EncryptionPrivateKey = field(repr=False)


def create_denomination_key(
    private_key: RsaPrivateKey,
    value: int,
    valid_from_ms: int,
    withdraw_until_ms: int,
    spend_until_ms: int,
) -> DenominationKey:
    """The public record of one coin key (publish it at genesis or by rotation)."""
    return DenominationKey(
        Money(value),
        private_key.public_key.to_der(),
        valid_from_ms,
        withdraw_until_ms,
        spend_until_ms,
    )


def create_mint(
    chain_id: str,
    operator: Ed25519PrivateKey,
    roots: Sequence[x509.Certificate],
    keys: Iterable[tuple[DenominationKey, RsaPrivateKey]],
) -> Mint:
    """A mint holding ``keys`` (each a published record and its RSA private key)."""
    mint = Mint(chain_id, operator, tuple(roots))
    for denomination, private_key in keys:
        add_mint_key(mint, denomination, private_key)
    return mint


def add_mint_key(mint: Mint, denomination: DenominationKey, private_key: RsaPrivateKey) -> None:
    verifier = DenominationVerifier.from_key(denomination)
    if verifier.public_key != private_key.public_key:
        raise PaymentError("the private key does not match the denomination record")
    signer = blind_rsa.BlindSigner.from_private_key(private_key)
    mint.keys[verifier.key_id] = MintKey(denomination, verifier, signer)


def compute_config(
    mint: Mint, invoice_namespaces: Sequence[str], keys: Sequence[DenominationKey] | None = None
) -> PaymentsConfig:
    """The genesis section for this mint (all its current keys unless ``keys`` is given)."""
    denominations = (
        tuple(keys) if keys is not None else tuple(k.denomination for k in mint.keys.values())
    )
    return PaymentsConfig(mint.operator.public_key.raw, denominations, tuple(invoice_namespaces))


def get_verifiers(mint: Mint) -> dict[bytes, DenominationVerifier]:
    """Key id → verifier: what a wallet needs to check coins (also published on chain)."""
    return {key_id: k.verifier for key_id, k in mint.keys.items()}


def _next_tx(mint: Mint, kind: str, payload: object) -> Transaction:
    tx = Transaction.create(mint.chain_id, kind, payload, mint.operator, mint.next_nonce)
    mint.next_nonce += 1
    return tx


# -- checks ---------------------------------------------------------------------------


def _check_fresh(mint: Mint, chain_id: str, nonce: bytes, timestamp_ms: int, now_ms: int) -> None:
    if chain_id != mint.chain_id:
        raise MintRejected(f"request is for chain {chain_id!r}")
    if abs(timestamp_ms - now_ms) > mint.freshness_ms:
        raise MintRejected("request timestamp is not fresh")
    if len(nonce) != NONCE_SIZE:
        raise MintRejected("nonce must be 16 bytes")
    if nonce in mint.nonces:
        raise MintRejected("request replayed")


def _remember_nonce(mint: Mint, nonce: bytes, now_ms: int) -> None:
    """Keep ``nonce`` for twice the freshness window; forget the oldest first (the dict
    keeps insertion order, which is time order while the clock moves forward)."""
    horizon = now_ms - 2 * mint.freshness_ms
    while mint.nonces:
        oldest, seen_ms = next(iter(mint.nonces.items()))
        if seen_ms >= horizon:
            break
        del mint.nonces[oldest]
    mint.nonces[nonce] = now_ms


def _check_household(
    mint: Mint,
    certificate_der: bytes,
    tag: HashTag,
    body: bytes,
    signature: bytes,
    now_ms: int,
    revoked: Container[bytes],
) -> str:
    """Authenticate the household; return its account name (the certificate's member id)."""
    try:
        cert = load_certificate(certificate_der)
        attributes = verify_member(
            cert, mint.roots, now_ms // 1000, HOUSEHOLD_ROLES, revoked=revoked
        )
        get_rsa_key(cert).verify(tag, body, signature)
    except IdentityError as exc:
        raise MintRejected(f"household not authenticated: {exc.reason}") from None
    except (InvalidSignature, KeyFormatError):
        raise MintRejected("household signature does not verify") from None
    return attributes.member_id


def _check_blinded(mint: Mint, blinded: Sequence[BlindedCoin], now_ms: int) -> int:
    """Check the request's coin keys; return the total value asked for."""
    if not 0 < len(blinded) <= MAX_COINS_PER_REQUEST:
        raise MintRejected(f"1..{MAX_COINS_PER_REQUEST} coins per request")
    total = 0
    for b in blinded:
        key = mint.keys.get(b.key_id)
        if key is None or not key.denomination.is_withdrawable(now_ms):
            raise MintRejected("denomination key unknown or not withdrawable now")
        total += key.denomination.value
    return total


def _sign_blinded(mint: Mint, blinded: Sequence[BlindedCoin]) -> tuple[bytes, ...]:
    """Blind-sign checked coins (:func:`_check_blinded` first)."""
    try:
        return tuple(
            blind_rsa.blind_sign(mint.keys[b.key_id].signer, b.blinded_msg) for b in blinded
        )
    except BlindSignatureError as exc:
        raise MintRejected(f"cannot sign: {exc.reason}") from None


# -- identified -----------------------------------------------------------------------


def process_withdrawal(
    mint: Mint, request: WithdrawRequest, now_ms: int, revoked: Container[bytes] = ()
) -> tuple[WithdrawResponse, Transaction]:
    """Authenticate, blind-sign, and return the response and the ``withdrawn`` record."""
    body = request.body
    _check_fresh(mint, body.chain_id, body.nonce, body.timestamp_ms, now_ms)
    account = _check_household(
        mint,
        body.certificate_der,
        WITHDRAW_SIGNATURE_TAG,
        encode(body),
        request.signature,
        now_ms,
        revoked,
    )
    if not 0 <= body.period < 2**63:
        raise MintRejected("period out of range")
    value = _check_blinded(mint, body.blinded, now_ms)
    signatures = _sign_blinded(mint, body.blinded)
    old = mint.withdrawn.get((account, body.period), AccountTotals(0, Money(0)))
    new = AccountTotals(old.count + len(body.blinded), Money(old.value + value))
    mint.withdrawn[(account, body.period)] = new
    _remember_nonce(mint, body.nonce, now_ms)
    record = WithdrawalRecord(account, body.period, new.count, new.value)
    return WithdrawResponse(signatures), _next_tx(mint, KIND_WITHDRAWN, record)


def process_deposit(
    mint: Mint, request: DepositRequest, now_ms: int, revoked: Container[bytes] = ()
) -> Transaction:
    """Authenticate and check the coins; the returned ``deposit`` spends them on chain."""
    body = request.body
    _check_fresh(mint, body.chain_id, body.nonce, body.timestamp_ms, now_ms)
    account = _check_household(
        mint,
        body.certificate_der,
        DEPOSIT_SIGNATURE_TAG,
        encode(body),
        request.signature,
        now_ms,
        revoked,
    )
    if not 0 < len(body.coins) <= MAX_COINS_PER_REQUEST // 4:
        raise MintRejected("1..64 coins per deposit")
    for coin in body.coins:
        check_coin(mint, coin, now_ms)
    _remember_nonce(mint, body.nonce, now_ms)
    return _next_tx(mint, KIND_DEPOSIT, DepositRecord(account, body.period, body.coins))


def check_coin(mint: Mint, coin: Coin, now_ms: int) -> None:
    """Raise :class:`MintRejected` unless ``coin`` is signed by one of this mint's keys."""
    key = mint.keys.get(coin.key_id)
    if key is None:
        raise MintRejected("coin under an unknown key")
    try:
        key.verifier.verify_coin(coin, now_ms)
    except PaymentError as exc:
        raise MintRejected(exc.reason) from None


def compute_grid_charge(
    imported_wh: int, exported_wh: int, import_price: int, export_price: int
) -> Money:
    """Grid energy not paid in coins, at the DSO's tariffs (money units per Wh).

    ``imported_wh * import_price - exported_wh * export_price``; negative when the
    household sold the grid more than it bought. Inputs come from the meter's
    per-period totals (the only figures the DSO needs for this).
    """
    if min(imported_wh, exported_wh, import_price, export_price) < 0:
        raise PaymentError("energy and tariffs must be non-negative")
    return Money(imported_wh * import_price - exported_wh * export_price)


def build_bill_tx(mint: Mint, account: str, period: int, grid_charge: int = 0) -> Transaction:
    """Close ``account``'s ``period`` on chain; ``grid_charge``: grid energy not paid in coins."""
    return _next_tx(mint, KIND_BILL, BillRequest(account, period, Money(grid_charge)))


# -- anonymous ------------------------------------------------------------------------


def process_reissue(
    mint: Mint, request: ReissueRequest, credit: Credit | None, now_ms: int
) -> tuple[Transaction, WithdrawResponse]:
    """Fresh coins for an open on-chain ``credit`` (read with f+1 agreement by the caller).

    Post the transaction first; release the response only once it is ``ok``.
    """
    body = request.body
    if body.chain_id != mint.chain_id:
        raise MintRejected(f"request is for chain {body.chain_id!r}")
    if credit is None or credit.status != "open" or body.owner_key in mint.reissued:
        raise MintRejected("no open credit for this key")
    try:
        Ed25519PublicKey(body.owner_key).verify(REISSUE_TAG, body.request_hash, request.signature)
    except (InvalidSignature, KeyFormatError):
        raise MintRejected("reissue not signed by the credit's one-time key") from None
    if _check_blinded(mint, body.blinded, now_ms) != credit.amount:
        raise MintRejected(f"coins must sum to the credit, {credit.amount}")
    signatures = _sign_blinded(mint, body.blinded)
    mint.reissued.add(body.owner_key)
    record = ReissueRecord(body.owner_key, credit.amount, body.request_hash, request.signature)
    return _next_tx(mint, KIND_REISSUE, record), WithdrawResponse(signatures)


# -- the DSO as a trading party and key owner -------------------------------------------


def create_dso_invoice(
    mint: Mint, amount: int, deadline_ms: int, rng: Rng
) -> tuple[DsoInvoice, Transaction]:
    """An invoice in the ``payments`` namespace with fresh one-time keys held by the DSO."""
    redeem_key = Ed25519PrivateKey.generate(rng)
    enc_key = EncryptionPrivateKey.generate(rng)
    invoice = Invoice(
        rng.random_bytes(INVOICE_ID_SIZE),
        Money(amount),
        redeem_key.public_key.raw,
        enc_key.public_key.raw,
        deadline_ms,
    )
    return DsoInvoice(invoice, redeem_key, enc_key), _next_tx(mint, KIND_DSO_INVOICE, invoice)


def build_absorb_tx(mint: Mint, owner_key: bytes) -> Transaction:
    """The DSO, paid on one of its invoices, keeps the credit (no reissue)."""
    return _next_tx(mint, KIND_ABSORB, Absorb(owner_key))


def process_dso_withdrawal(
    mint: Mint, keys: Sequence[DenominationKey], period: int, now_ms: int, rng: Rng
) -> tuple[tuple[HeldCoin, ...], Transaction]:
    """Coins for the DSO's own purchases, blind like any other, recorded as ``dso-mint``."""
    pending = prepare_coins(keys, rng)
    blinded = [p.blinded for p in pending]
    _check_blinded(mint, blinded, now_ms)
    signatures = _sign_blinded(mint, blinded)
    coins = finalize_coins(pending, signatures)
    record = DsoMint(period, len(coins), Money(sum(c.value for c in coins)))
    return coins, _next_tx(mint, KIND_DSO_MINT, record)


def process_add_keys(
    mint: Mint, keys: Sequence[tuple[DenominationKey, RsaPrivateKey]]
) -> Transaction:
    """Rotation: hold the new keys and publish them (``payments.denominations``)."""
    for denomination, private_key in keys:
        add_mint_key(mint, denomination, private_key)
    return _next_tx(mint, KIND_DENOMINATIONS, DenominationUpdate(tuple(d for d, _ in keys)))
