"""Seed 003's fixed-piece market as contract logic (§4 of the spec, proc. 4-6).

A piece is the power-time tuple ``(piece_power_w, piece_ms[slot % len])``: one
coin amount (``piece_price``) buys it, so a longer time in a slot is a lower
price per Wh (the paper's variable prices). Messages are anonymous: an offer
names only one-time keys, a request only a random nonce.

* :func:`process_offer` - checks (keys well formed, the redeem key never used,
  the slot's gate ahead, 16-byte nonce) then pools the offer in arrival order,
  valid ``offer_validity_ms`` (and never past the gate).
* :func:`process_request` - pairs the request with the oldest live offer of the
  slot (first come, first served); with none open, the DSO offers grid energy
  at ``dso_import_price`` to the DSO's keys. The pairing and its invoice are
  written in the same transaction: the pairing is the contract's own output,
  certified with the block by 2f+1 replicas, so no meter can forge one that
  names its key, nor replay one (a request nonce and an offer pair once).
* :func:`process_pool` (end of block) - expires offers past their validity
  (their sellers re-announce with fresh keys, :mod:`gridledger.market.client`)
  and, when more than ``surplus_threshold`` live offers wait in a slot, pairs
  the oldest surplus ones with the DSO as buyer at ``dso_export_price``.
* :func:`process_pairing_due` - a pairing unpaid at its deadline is void; its
  offer, if still valid, goes back to the pool in its old place.
* :func:`process_signed_request` - an accountable request
  (:class:`~gridledger.market.messages.SignedPieceRequest`): the same pairing, but
  signed under a certified round pseudonym (checked as an order's is), and only
  up to the cost and the block time the requester signed; unpaid at its deadline
  it also leaves a ``ContractDefault`` naming that pseudonym, the evidence
  identity's trustees trace (seed 003's anonymous request cannot be).
"""

from __future__ import annotations

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.encryption import is_valid_encryption_public_key
from gridledger.crypto.errors import InvalidSignature, KeyFormatError
from gridledger.crypto.hashing import hash_bytes
from gridledger.crypto.signatures import Ed25519PublicKey, is_valid_ed25519_public_key
from gridledger.identity.messages import ContractDefault, compute_contract_default_key
from gridledger.identity.verification import get_identity_reader
from gridledger.ledger.contracts import BlockContext, StateView
from gridledger.market import keys
from gridledger.market.errors import BadSignature, PieceRejected
from gridledger.market.messages import (
    LEG_MONEY,
    NONCE_SIZE,
    PIECE_ID_TAG,
    PIECE_REQUEST_TAG,
    MarketConfig,
    OfferRecord,
    Pairing,
    PieceOffer,
    PieceRequest,
    SignedPieceRequest,
    compute_evidence_id,
)
from gridledger.market.orders import compute_gate_ms, is_slot_open
from gridledger.market.pseudonyms import check_pseudonym
from gridledger.market.settlement import NAMESPACE, get_next_seq
from gridledger.payments.contract import LEG_PAYMENT_POSTED, LEG_UNPAID, get_leg_status
from gridledger.payments.invoice import Invoice, compute_invoice_key, get_payment
from gridledger.payments.units import Money


def compute_piece_energy_mj(config: MarketConfig, slot: int) -> int:
    """A piece's energy in W·ms (mJ): its power times its duration in this slot."""
    return config.piece_power_w * config.piece_ms[slot % len(config.piece_ms)]


def _check_slot(view: StateView, config: MarketConfig, slot: int, now_ms: int) -> None:
    if slot < 0 or not is_slot_open(view, config, slot, now_ms):
        raise PieceRejected(f"slot {slot} is closed")


def process_offer(view: StateView, config: MarketConfig, offer: PieceOffer, now_ms: int) -> bytes:
    """Pool an anonymous offer of one piece; receipt: the offer id."""
    if len(offer.nonce) != NONCE_SIZE or len(offer.enc_key) != 32:
        raise PieceRejected("offer needs a 16-byte nonce and a 32-byte encryption key")
    if not is_valid_ed25519_public_key(offer.redeem_key):
        raise PieceRejected("offer's redeem key is not an Ed25519 public key")
    if not is_valid_encryption_public_key(offer.enc_key):
        raise PieceRejected("offer's encryption key is of low order: nobody could pay it")
    _check_slot(view, config, offer.slot, now_ms)
    if view.get(keys.USED_KEY + offer.redeem_key) is not None:
        raise PieceRejected("one-time key used before")
    offer_id = hash_bytes(PIECE_ID_TAG, b"offer" + encode(offer))
    seq = get_next_seq(view)
    expires = min(now_ms + config.offer_validity_ms, compute_gate_ms(config, offer.slot))
    record = OfferRecord(offer_id, offer.slot, offer.redeem_key, offer.enc_key, seq, expires)
    view.put(keys.USED_KEY + offer.redeem_key, offer_id)
    view.put(keys.OFFER + offer_id, encode(record))
    view.put(keys.POOL + keys.u64(offer.slot) + keys.u64(seq), encode(record))
    view.put(keys.OPEN_SLOT + keys.u64(offer.slot), b"")
    return offer_id


def _pair(
    view: StateView,
    config: MarketConfig,
    ctx: BlockContext,
    slot: int,
    offer: OfferRecord | None,
    request_id: bytes,
) -> Pairing:
    """Write a pairing and its invoice; ``offer`` None: the DSO sells."""
    if offer is None:
        offer_id, redeem, enc, amount = (
            b"",
            config.dso_redeem_key,
            config.dso_enc_key,
            config.dso_import_price,
        )
    elif not request_id:
        offer_id, redeem, enc, amount = (
            offer.offer_id,
            offer.redeem_key,
            offer.enc_key,
            config.dso_export_price,
        )
    else:
        offer_id, redeem, enc, amount = (
            offer.offer_id,
            offer.redeem_key,
            offer.enc_key,
            config.piece_price,
        )
    pairing_id = hash_bytes(PIECE_ID_TAG, b"pairing" + offer_id + request_id + keys.u64(ctx.height))
    deadline = ctx.timestamp_ms + config.pay_window_ms
    pairing = Pairing(
        pairing_id, offer_id, request_id, slot, compute_piece_energy_mj(config, slot),
        amount, redeem, enc, deadline, ctx.height,
    )  # fmt: skip
    view.put(keys.PAIRING + pairing_id, encode(pairing))
    view.put(
        compute_invoice_key(pairing_id),
        encode(Invoice(pairing_id, Money(amount), redeem, enc, deadline)),
    )
    keys.process_due(view.put, deadline, keys.DUE_PAIRING, pairing_id)
    return pairing


def _take_oldest_offer(view: StateView, slot: int, now_ms: int) -> OfferRecord | None:
    for key, raw in view.scan(keys.POOL + keys.u64(slot)):
        record = decode_as(OfferRecord, raw)
        view.delete(key)
        if record.expires_ms > now_ms:
            return record
    return None


def process_request(
    view: StateView, config: MarketConfig, request: PieceRequest, ctx: BlockContext
) -> bytes:
    """Pair an anonymous request first come first served (the DSO if no local offer is open).

    Receipt: the :class:`Pairing`.
    """
    request_id = hash_bytes(PIECE_ID_TAG, b"request" + encode(request))
    return _pair_request(view, config, request, ctx, request.nonce, request_id)


def _pair_request(
    view: StateView,
    config: MarketConfig,
    request: PieceRequest,
    ctx: BlockContext,
    nonce_id: bytes,
    request_id: bytes,
) -> bytes:
    if len(request.nonce) != NONCE_SIZE:
        raise PieceRejected("request needs a 16-byte nonce")
    _check_slot(view, config, request.slot, ctx.timestamp_ms)
    if view.get(keys.PIECE_NONCE + nonce_id) is not None:
        raise PieceRejected("request nonce used before (a replay)")
    view.put(keys.PIECE_NONCE + nonce_id, b"\x01")
    offer = _take_oldest_offer(view, request.slot, ctx.timestamp_ms)
    return encode(_pair(view, config, ctx, request.slot, offer, request_id))


def process_signed_request(
    view: StateView, config: MarketConfig, signed: SignedPieceRequest, ctx: BlockContext
) -> bytes:
    """An accountable request: the pseudonym signed it and may trade in its round, then
    it pairs as :func:`process_request`; the signed request is kept as the proof that
    this pseudonym owes the pairing. Receipt: the :class:`Pairing`."""
    body = signed.body
    if len(body.pseudonym) != 32:
        raise PieceRejected("pseudonym must be 32 bytes")
    try:
        Ed25519PublicKey(body.pseudonym).verify(PIECE_REQUEST_TAG, encode(body), signed.signature)
    except (InvalidSignature, KeyFormatError):
        raise BadSignature("the pseudonym key's signature on the request does not verify") from None
    check_pseudonym(get_identity_reader(view), body.pseudonym, body.round, ctx.timestamp_ms)
    if ctx.timestamp_ms > body.not_after_ms:
        raise PieceRejected(
            f"request expired: block time {ctx.timestamp_ms} ms is past its "
            f"not_after_ms {body.not_after_ms}"
        )
    # Its own nonce and id space: whoever lifts the inner request and sends it
    # anonymously first gets an anonymous pairing, and neither burns this one's nonce
    # nor collides with its pairing.
    signed_id = hash_bytes(PIECE_ID_TAG, b"signed-request" + encode(body))
    raw = _pair_request(view, config, body.request, ctx, signed_id, signed_id)
    pairing = decode_as(Pairing, raw)
    if pairing.amount > body.max_amount:  # the rejection discards the pairing's writes
        raise PieceRejected(
            f"the pairing would cost {pairing.amount}, the request allows at most "
            f"{body.max_amount} (not final: anyone may send it again until "
            f"not_after_ms {body.not_after_ms})"
        )
    view.put(keys.BOUND_REQUEST + pairing.pairing_id, encode(signed))
    return raw


def get_bound_request(view: StateView, pairing_id: bytes) -> SignedPieceRequest | None:
    raw = view.get(keys.BOUND_REQUEST + pairing_id)
    return None if raw is None else decode_as(SignedPieceRequest, raw)


def _accuse_requester(
    view: StateView, pairing: Pairing, signed: SignedPieceRequest, ctx: BlockContext
) -> bytes:
    """The money leg of an accountable pairing open past its deadline: evidence that
    identity accepts (``default/<evidence id>``), made from chain state alone."""
    evidence_id = compute_evidence_id(pairing.pairing_id, LEG_MONEY)
    default = ContractDefault(
        evidence_id, signed.body.pseudonym, signed.body.round, pairing.deadline_ms,
        f"market piece pairing {pairing.pairing_id.hex()} unpaid past its deadline",
        ctx.height, ctx.timestamp_ms,
    )  # fmt: skip
    view.put(compute_contract_default_key(evidence_id), encode(default))
    return evidence_id


def process_pool(view: StateView, config: MarketConfig, ctx: BlockContext, slot: int) -> int:
    """Expire stale offers of ``slot``; let the DSO buy the surplus; return live offers left."""
    live: list[tuple[bytes, OfferRecord]] = []
    for key, raw in view.scan(keys.POOL + keys.u64(slot)):
        record = decode_as(OfferRecord, raw)
        if record.expires_ms <= ctx.timestamp_ms:
            view.delete(key)
        else:
            live.append((key, record))
    surplus = len(live) - config.surplus_threshold
    for key, record in live[: max(surplus, 0)]:
        view.delete(key)
        _pair(view, config, ctx, slot, record, b"")
    return len(live) - max(surplus, 0)


def get_pairing(view: StateView, pairing_id: bytes) -> Pairing | None:
    raw = view.get(keys.PAIRING + pairing_id)
    return None if raw is None else decode_as(Pairing, raw)


def process_pairing_due(
    view: StateView,
    config: MarketConfig,
    pairing: Pairing,
    now_ms: int,
    ctx: BlockContext | None = None,
    *,
    final: bool = False,
) -> bool:
    """At the deadline: paid -> done (True); unpaid -> void, the offer back in its place.

    An accountable request (``ctx`` given) is judged as a trade's money leg is, from
    what the payments layer proves (:func:`get_leg_status`), never from the seller's
    silence: ``unpaid`` -> a default against its pseudonym; a payment posted but not
    redeemed -> judged again ``settle_ms`` later (``final``), when the seller could
    have redeemed or shown it bad: shown bad -> a default, otherwise
    ``unredeemed/<pairing id>`` and nobody is accused.
    """
    if get_payment(view, NAMESPACE, pairing.pairing_id) is not None:
        view.put(keys.SETTLED + pairing.pairing_id, b"\x01")
        return True
    bound = get_bound_request(view, pairing.pairing_id) if ctx is not None else None
    if bound is not None and ctx is not None:
        leg = get_leg_status(view, NAMESPACE, pairing.pairing_id, now_ms)
        if leg == LEG_PAYMENT_POSTED and not final:
            recheck = pairing.deadline_ms + config.settle_ms
            keys.process_due(view.put, recheck, keys.DUE_PIECE_RECHECK, pairing.pairing_id)
            return False
        if leg == LEG_UNPAID:
            _accuse_requester(view, pairing, bound, ctx)
        elif leg == LEG_PAYMENT_POSTED:
            view.put(keys.UNREDEEMED + pairing.pairing_id, b"\x01")
    view.put(keys.VOID + pairing.pairing_id, b"\x01")
    raw = view.get(keys.OFFER + pairing.offer_id) if pairing.offer_id else None
    if raw is not None:
        record = decode_as(OfferRecord, raw)
        if record.expires_ms > now_ms and is_slot_open(view, config, record.slot, now_ms):
            view.put(keys.POOL + keys.u64(record.slot) + keys.u64(record.seq), raw)
    return False
