"""A household's side of the market: pure helpers, no I/O (the caller submits and reads).

* transactions: ``build_*_tx`` wrap each message for the ledger (any sender key;
  a fresh one per message links nothing);
* orders: :func:`create_order` draws the nonce and, for a sell, fresh one-time
  settlement keys (kept in :class:`OrderSecrets`, never sent);
  :func:`sign_order` / :func:`sign_cancel` sign with the round's pseudonym key;
* paying a trade: :func:`create_trade_payment` seals coins to the trade's invoice
  (the payments layer's message; the buyer posts it with any one-time key);
  the seller opens it and redeems with its one-time key
  (:func:`build_trade_redeem`), which is the only key the payments contract
  accepts for that invoice;
* attesting: :func:`create_attestation` for a meter's or the substation's service;
* pieces: :func:`create_piece_offer` / :func:`create_piece_request`, and
  :func:`is_our_pairing` (a seller checks a pairing pays *its* keys before it
  delivers), :func:`verify_pairing` (a light meter checks a pairing against a
  certified header); :func:`is_offer_stale` tells a seller when to re-announce.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gridledger.crypto.encoding import encode
from gridledger.crypto.encryption import EncryptionPrivateKey
from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.light import LightClient
from gridledger.ledger.smt import StateProof
from gridledger.ledger.state import compute_state_key
from gridledger.ledger.tx import Transaction
from gridledger.market.keys import PAIRING as PAIRING_KEY
from gridledger.market.messages import (
    ATTESTATION_TAG,
    CANCEL_TAG,
    KIND_ATTEST,
    KIND_CANCEL,
    KIND_ORDER,
    KIND_PIECE_OFFER,
    KIND_PIECE_REQUEST,
    KIND_SIGNED_PIECE_REQUEST,
    NONCE_SIZE,
    ORDER_TAG,
    PIECE_REQUEST_TAG,
    BoundPieceRequest,
    Cancel,
    DeliveryAttestation,
    OfferRecord,
    Order,
    Pairing,
    PieceOffer,
    PieceRequest,
    SignedAttestation,
    SignedCancel,
    SignedOrder,
    SignedPieceRequest,
    Trade,
)
from gridledger.payments.coins import DenominationVerifier
from gridledger.payments.invoice import Invoice
from gridledger.payments.messages import PaymentMessage
from gridledger.payments.wallet import (
    HeldCoin,
    build_redeem_tx,
    create_payment,
    open_payment,
)

NAMESPACE = "market"


@dataclass(frozen=True)
class OrderSecrets:
    """The one-time keys of a sell order or a piece offer (``None`` for a buy/request)."""

    redeem_key: Ed25519PrivateKey | None
    enc_key: EncryptionPrivateKey | None


def create_order(
    pseudonym: bytes, round_: int, slot: int, quantity: int, price: int, rng: Rng
) -> tuple[Order, OrderSecrets]:
    """An unsigned order; quantity > 0 sells (with fresh one-time keys), < 0 buys."""
    if quantity > 0:
        redeem = Ed25519PrivateKey.generate(rng)
        enc = EncryptionPrivateKey.generate(rng)
        secrets = OrderSecrets(redeem, enc)
        keys = (redeem.public_key.raw, enc.public_key.raw)
    else:
        secrets = OrderSecrets(None, None)
        keys = (b"", b"")
    nonce = rng.random_bytes(NONCE_SIZE)
    return Order(pseudonym, round_, slot, quantity, price, keys[0], keys[1], nonce), secrets


def sign_order(order: Order, pseudonym_key: Ed25519PrivateKey) -> SignedOrder:
    return SignedOrder(order, pseudonym_key.sign(ORDER_TAG, encode(order)))


def sign_cancel(order_id: bytes, pseudonym_key: Ed25519PrivateKey) -> SignedCancel:
    cancel = Cancel(order_id)
    return SignedCancel(cancel, pseudonym_key.sign(CANCEL_TAG, encode(cancel)))


def create_trade_payment(
    invoice: Invoice, coins: Sequence[HeldCoin], rng: Rng
) -> tuple[PaymentMessage, bytes]:
    """The buyer's payment of a trade's invoice: coins sealed to the seller's one-time key."""
    return create_payment(NAMESPACE, invoice, coins, rng)


def build_trade_redeem(
    chain_id: str,
    invoice: Invoice,
    message: PaymentMessage,
    secrets: OrderSecrets,
    verifiers: Mapping[bytes, DenominationVerifier],
    now_ms: int,
    nonce: int = 0,
) -> Transaction:
    """The seller opens the buyer's payment (checks coins, sum, receipt) and redeems it.

    A sell order filled by several trades redeems each with the same one-time key:
    ``nonce`` counts them (0, 1, ...); their credits add up until the key's reissue.
    """
    if secrets.redeem_key is None or secrets.enc_key is None:
        raise ValueError("only a seller holds one-time settlement keys")
    contents = open_payment(NAMESPACE, invoice, message, secrets.enc_key, verifiers, now_ms)
    return build_redeem_tx(chain_id, message, contents, secrets.redeem_key, nonce)


def create_attestation(attester: Ed25519PrivateKey, trade: Trade) -> SignedAttestation:
    """A measurement service's statement that the trade's energy was delivered in its slot."""
    att = DeliveryAttestation(trade.trade_id, trade.slot, trade.quantity, attester.public_key.raw)
    return SignedAttestation(att, attester.sign(ATTESTATION_TAG, encode(att)))


def create_piece_offer(slot: int, rng: Rng) -> tuple[PieceOffer, OrderSecrets]:
    """Seed 003's anonymous offer of one piece: fresh one-time keys and a nonce."""
    redeem = Ed25519PrivateKey.generate(rng)
    enc = EncryptionPrivateKey.generate(rng)
    offer = PieceOffer(
        slot, redeem.public_key.raw, enc.public_key.raw, rng.random_bytes(NONCE_SIZE)
    )
    return offer, OrderSecrets(redeem, enc)


def create_piece_request(slot: int, rng: Rng) -> PieceRequest:
    """Seed 003's anonymous request for one piece: a random nonce only."""
    return PieceRequest(slot, rng.random_bytes(NONCE_SIZE))


def sign_piece_request(
    request: PieceRequest,
    pseudonym_key: Ed25519PrivateKey,
    round_: int,
    *,
    max_amount: int,
    not_after_ms: int,
) -> SignedPieceRequest:
    """An accountable request: bound to the round's pseudonym, which then owes its pairing.

    It pairs only in a block no later than ``not_after_ms`` and only at a cost of
    at most ``max_amount``, a cap on the cost and nothing else: with
    ``config.dso_import_price`` the DSO's fallback is accepted too; with
    ``config.piece_price`` only a peer's piece, provided the DSO sells dearer than
    peers (with equal prices the cap cannot tell them apart). A refused request
    is on chain: anyone may send it again until ``not_after_ms``, so the
    requester watches for a pairing until a committed block is past that time.
    """
    body = BoundPieceRequest(
        request, pseudonym_key.public_key.raw, round_, max_amount, not_after_ms
    )
    return SignedPieceRequest(body, pseudonym_key.sign(PIECE_REQUEST_TAG, encode(body)))


def build_signed_piece_tx(
    chain_id: str, signed: SignedPieceRequest, sender: Ed25519PrivateKey, nonce: int = 0
) -> Transaction:
    return Transaction.create(chain_id, KIND_SIGNED_PIECE_REQUEST, signed, sender, nonce)


def is_our_pairing(pairing: Pairing, secrets: OrderSecrets) -> bool:
    """Whether a pairing pays the keys we offered under (deliver only then)."""
    if secrets.redeem_key is None or secrets.enc_key is None:
        return False
    return (pairing.redeem_key, pairing.enc_key) == (
        secrets.redeem_key.public_key.raw,
        secrets.enc_key.public_key.raw,
    )


def is_offer_stale(record: OfferRecord, now_ms: int, lead_ms: int = 0) -> bool:
    """Whether an offer has expired (or will within ``lead_ms``): re-announce with new keys."""
    return now_ms + lead_ms >= record.expires_ms


def build_order_tx(
    chain_id: str, signed: SignedOrder, sender: Ed25519PrivateKey, nonce: int = 0
) -> Transaction:
    """The ledger transaction of an order; ``sender`` is any key (a fresh one links nothing)."""
    return Transaction.create(chain_id, KIND_ORDER, signed, sender, nonce)


def build_cancel_tx(
    chain_id: str, signed: SignedCancel, sender: Ed25519PrivateKey, nonce: int = 0
) -> Transaction:
    return Transaction.create(chain_id, KIND_CANCEL, signed, sender, nonce)


def build_attest_tx(
    chain_id: str, signed: SignedAttestation, sender: Ed25519PrivateKey, nonce: int = 0
) -> Transaction:
    return Transaction.create(chain_id, KIND_ATTEST, signed, sender, nonce)


def build_piece_tx(
    chain_id: str, message: PieceOffer | PieceRequest, sender: Ed25519PrivateKey, nonce: int = 0
) -> Transaction:
    """An offer or a request; send each from a fresh key so that pieces stay unlinkable."""
    kind = KIND_PIECE_OFFER if isinstance(message, PieceOffer) else KIND_PIECE_REQUEST
    return Transaction.create(chain_id, kind, message, sender, nonce)


def verify_pairing(light: LightClient, height: int, pairing: Pairing, proof: StateProof) -> None:
    """Check a pairing against a certified header before paying or delivering.

    Seed 003's pairing message is unsigned; here it is chain state, and a header is
    trusted only with 2f+1 validators' signatures (:class:`LightClient`), so a meter
    holding only headers can tell the consortium's pairing from a forged one that
    names someone else's key. Raises :class:`~gridledger.ledger.errors.ProofError`.
    """
    key = compute_state_key(NAMESPACE, PAIRING_KEY + pairing.pairing_id)
    light.verify_state_value(height, key, encode(pairing), proof)
