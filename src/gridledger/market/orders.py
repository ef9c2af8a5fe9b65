"""Orders on chain: the checks before acceptance, matching against the state book, cancel.

:func:`check_order` runs, in order (cheap first; the first failure is the reason):

1. form: 32-byte pseudonym, 16-byte nonce; a sell names two 32-byte one-time
   keys (a valid Ed25519 point for redeeming), a buy names none;
2. quantity: not zero, a multiple of the lot, at most ``max_quantity``;
3. price: inside ``[min_price, max_price]`` and on the tick;
4. slot: its gate (``slot * slot_ms - gate_lead_ms``) is still ahead of block time and
   it starts within ``horizon_ms``;
5. signature: the pseudonym key signed ``encode(order)`` under the order tag;
6. certificate: the pseudonym's certificate on chain is for the order's round,
   valid at block time, not revoked (pseudonym revocations included), issued by
   the genesis MM and RM keys still valid
   (:func:`gridledger.market.pseudonyms.check_pseudonym`, the identity layer's
   check with the certificate-chain work cached);
7. not a replay (the order id, a hash of the order, is new), and a sell's
   one-time redeem key was never used before.

:func:`process_order` then matches it against the slot's book in state with
the engine's rules (:mod:`gridledger.market.engine`): price-time priority with
time = consensus order, mid price rounded to the tick, partial fills keep their
place. One refinement the in-memory engine shares: a pseudonym never trades with
itself; the resting order of the same pseudonym is cancelled instead
(cancel-resting self-trade prevention), so no obligation has one party twice.
"""

from __future__ import annotations

import dataclasses

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.encryption import is_valid_encryption_public_key
from gridledger.crypto.errors import InvalidSignature, KeyFormatError
from gridledger.crypto.signatures import Ed25519PublicKey, is_valid_ed25519_public_key
from gridledger.identity.verification import get_identity_reader
from gridledger.ledger.contracts import BlockContext, StateView
from gridledger.market import keys
from gridledger.market.book import (
    get_levels,
    get_queue,
    process_add,
    process_clear_side,
    process_remove,
    put_levels,
    put_queue,
)
from gridledger.market.engine import compute_mid_price, is_crossing
from gridledger.market.errors import (
    BadSignature,
    DuplicateOrder,
    OrderRejected,
    PriceRejected,
    QuantityRejected,
    SlotClosed,
)
from gridledger.market.messages import (
    CANCEL_TAG,
    NONCE_SIZE,
    ORDER_TAG,
    MarketConfig,
    OrderReceipt,
    OrderStatus,
    RestingRecord,
    SignedCancel,
    SignedOrder,
    compute_order_id,
    decode_resting,
)
from gridledger.market.pseudonyms import check_pseudonym
from gridledger.market.settlement import get_next_seq, process_trade
from gridledger.market.units import BUY, SELL


def compute_gate_ms(config: MarketConfig, slot: int) -> int:
    """When slot ``slot``'s gate closes: no order for it is accepted at or after this time."""
    return slot * config.slot_ms - config.gate_lead_ms


def is_slot_open(view: StateView, config: MarketConfig, slot: int, now_ms: int) -> bool:
    """Whether orders and offers for ``slot`` are taken at ``now_ms``: its gate is ahead,
    it starts within the horizon, and it was not closed."""
    if now_ms >= compute_gate_ms(config, slot):
        return False
    if slot * config.slot_ms > now_ms + config.horizon_ms:
        return False
    return view.get(keys.CLOSED_SLOT + keys.u64(slot)) is None


def check_order_form(config: MarketConfig, signed: SignedOrder) -> None:
    """Steps 1-3 of the module docstring (no state)."""
    order = signed.order
    if len(order.pseudonym) != 32 or len(order.nonce) != NONCE_SIZE:
        raise OrderRejected("pseudonym must be 32 bytes and nonce 16 bytes")
    if order.quantity > 0:
        if len(order.redeem_key) != 32 or len(order.enc_key) != 32:
            raise OrderRejected("a sell order names 32-byte one-time redeem and encryption keys")
        if not is_valid_ed25519_public_key(order.redeem_key):
            raise OrderRejected("the one-time redeem key is not an Ed25519 public key")
        if not is_valid_encryption_public_key(order.enc_key):
            raise OrderRejected("the encryption key is of low order: no buyer could pay it")
    elif order.redeem_key or order.enc_key:
        raise OrderRejected("a buy order names no settlement keys")
    size = abs(order.quantity)
    if size == 0:
        raise QuantityRejected(order.quantity, "zero quantity")
    if size % config.lot:
        raise QuantityRejected(order.quantity, f"not a multiple of the lot {config.lot}")
    if size > config.max_quantity:
        raise QuantityRejected(order.quantity, f"above the maximum {config.max_quantity}")
    if not config.min_price <= order.price <= config.max_price:
        raise PriceRejected(
            order.price, f"outside the bounds [{config.min_price}, {config.max_price}]"
        )
    if order.price % config.tick:
        raise PriceRejected(order.price, f"not on the tick {config.tick}")
    if order.round < 0 or order.slot < 0:
        raise OrderRejected("round and slot must be non-negative")


def check_order(view: StateView, config: MarketConfig, signed: SignedOrder, now_ms: int) -> bytes:
    """Every check of the module docstring; return the order id."""
    check_order_form(config, signed)
    order = signed.order
    if order.slot * config.slot_ms > now_ms + config.horizon_ms:
        raise OrderRejected(f"slot {order.slot} is beyond the trading horizon")
    if not is_slot_open(view, config, order.slot, now_ms):
        raise SlotClosed(order.slot, compute_gate_ms(config, order.slot))
    try:
        Ed25519PublicKey(order.pseudonym).verify(ORDER_TAG, encode(order), signed.signature)
    except (InvalidSignature, KeyFormatError):
        raise BadSignature("the pseudonym key's signature on the order does not verify") from None
    check_pseudonym(get_identity_reader(view), order.pseudonym, order.round, now_ms)
    order_id = compute_order_id(signed)
    if view.get(keys.ORDER_STATUS + order_id) is not None:
        raise DuplicateOrder("order already submitted")
    if order.quantity > 0 and view.get(keys.USED_KEY + order.redeem_key) is not None:
        raise OrderRejected("the one-time redeem key was used before")
    return order_id


def _put_status(view: StateView, status: OrderStatus) -> None:
    view.put(keys.ORDER_STATUS + status.order_id, encode(status))


def get_order_status(view: StateView, order_id: bytes) -> OrderStatus | None:
    raw = view.get(keys.ORDER_STATUS + order_id)
    return None if raw is None else decode_as(OrderStatus, raw)


def process_reduce_resting(
    view: StateView, key: bytes, maker: RestingRecord, by: int, *, cancelled: bool
) -> bool:
    """Take ``by`` off a resting order, filled (a trade) or cancelled; return whether it is
    used up. A used-up order's entry is deleted; its queue is the caller's to update."""
    status = get_order_status(view, maker.order_id)
    assert status is not None
    left = maker.remaining - by
    if left:
        view.put(key, encode(dataclasses.replace(maker, remaining=left)))
        book_key = key
    else:
        view.delete(key)
        book_key = b""
    if cancelled:
        status = dataclasses.replace(status, cancelled=status.cancelled + by, book_key=book_key)
    else:
        status = dataclasses.replace(status, filled=status.filled + by, book_key=book_key)
    _put_status(view, status)
    return not left


def process_order(
    view: StateView,
    config: MarketConfig,
    signed: SignedOrder,
    ctx: BlockContext,
    raw: bytes | None = None,
) -> bytes:
    """Check, match (continuous mode) and rest an order; receipt: :class:`OrderReceipt`.

    ``raw``: the order's canonical encoding if the caller has it (the payload).
    """
    order_id = check_order(view, config, signed, ctx.timestamp_ms)
    order = signed.order
    seq = get_next_seq(view)
    side = SELL if order.quantity > 0 else BUY
    taker = RestingRecord(
        order_id, order.pseudonym, order.round, order.slot, side, order.price,
        abs(order.quantity), seq, order.redeem_key, order.enc_key,
    )  # fmt: skip
    view.put(keys.SIGNED_ORDER + order_id, raw if raw is not None else encode(signed))
    if side == SELL:
        view.put(keys.USED_KEY + order.redeem_key, order_id)
    trades: list[bytes] = []
    if config.clearing == "cda":
        taker = _match(view, config, ctx, taker, trades)
    filled = abs(order.quantity) - taker.remaining
    book_key = process_add(view, taker) if taker.remaining else b""
    if taker.remaining and view.get(keys.OPEN_SLOT + keys.u64(order.slot)) is None:
        view.put(keys.OPEN_SLOT + keys.u64(order.slot), b"")
    _put_status(view, OrderStatus(order_id, abs(order.quantity), filled, 0, book_key))
    return encode(OrderReceipt(order_id, seq, filled, tuple(trades)))


def _match(
    view: StateView,
    config: MarketConfig,
    ctx: BlockContext,
    taker: RestingRecord,
    trades: list[bytes],
) -> RestingRecord:
    """Cross ``taker`` with the best opposite levels while it crosses; return what is left.

    Walks the level list and each crossed level's queue (:mod:`.book`); a queue
    and the level list are written once, after the walk.
    """
    opposite = BUY if taker.side == SELL else SELL
    levels = get_levels(view, taker.slot, opposite)
    left_levels = list(levels)
    remaining = taker.remaining
    for level in levels:
        if not remaining or not is_crossing(taker.side, taker.price, level):
            break
        queue = get_queue(view, taker.slot, opposite, level)
        used = 0
        for seq in queue:
            key = keys.compute_book_key(taker.slot, opposite, level, seq)
            maker = decode_resting(view.get(key) or b"")
            if maker.pseudonym == taker.pseudonym:  # self-trade prevention: cancel resting
                process_reduce_resting(view, key, maker, maker.remaining, cancelled=True)
                used += 1
                continue
            quantity = min(remaining, maker.remaining)
            buy, sell = (taker, maker) if taker.side == BUY else (maker, taker)
            price = compute_mid_price(buy.price, sell.price, config.tick)
            trades.append(process_trade(view, config, ctx, buy, sell, price, quantity).trade_id)
            used += process_reduce_resting(view, key, maker, quantity, cancelled=False)
            remaining -= quantity
            if not remaining:
                break
        if used:
            put_queue(view, taker.slot, opposite, level, queue[used:])
            if used == len(queue):
                left_levels.remove(level)
    if left_levels != levels:
        put_levels(view, taker.slot, opposite, left_levels)
    return dataclasses.replace(taker, remaining=remaining)


def process_cancel(view: StateView, signed: SignedCancel) -> bytes:
    """Withdraw what is open of an order; only its pseudonym key may. Receipt: the quantity."""
    order_id = signed.cancel.order_id
    status = get_order_status(view, order_id)
    if status is None:
        raise OrderRejected("no such order")
    if not status.book_key:
        raise OrderRejected("nothing of the order is open")
    raw = view.get(status.book_key)
    assert raw is not None  # book_key is kept in step with the book
    resting = decode_resting(raw)
    try:
        Ed25519PublicKey(resting.pseudonym).verify(
            CANCEL_TAG, encode(signed.cancel), signed.signature
        )
    except (InvalidSignature, KeyFormatError):
        raise BadSignature("the order's pseudonym key did not sign the cancel") from None
    process_reduce_resting(view, status.book_key, resting, resting.remaining, cancelled=True)
    process_remove(view, resting)
    return encode(resting.remaining)


def process_expire_slot(view: StateView, slot: int) -> int:
    """Gate closure: cancel every order still open in ``slot``; return the quantity expired."""
    total = 0
    for side in (BUY, SELL):
        for key, raw in view.scan(keys.compute_book_prefix(slot, side)):
            resting = decode_resting(raw)
            process_reduce_resting(view, key, resting, resting.remaining, cancelled=True)
            total += resting.remaining
        process_clear_side(view, slot, side)
    return total
