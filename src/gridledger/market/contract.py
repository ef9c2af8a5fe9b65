"""The market contract: namespace ``market``, run by every replica.

Kinds:

* ``market.order`` - :class:`SignedOrder` (checks and matching in :mod:`.orders`);
* ``market.cancel`` - :class:`SignedCancel` by the order's pseudonym key;
* ``market.attest`` - :class:`SignedAttestation` closing a trade's energy leg;
* ``market.piece-offer`` / ``market.piece-request`` - the fixed-piece market (:mod:`.pieces`);
  ``market.signed-piece-request`` - an accountable request under a round pseudonym.

End of every block (:meth:`MarketContract.end_block`), at block time ``now``:

1. gate closure: every open slot whose gate is at or before ``now`` is closed; in a
   sealed-bid mode (``pay-as-bid``, ``uniform``) its book clears first; what is
   left of its orders expires (counted as cancelled);
2. the piece pools: stale offers expire, the DSO buys the surplus;
3. deadlines: every trade and pairing whose deadline is before ``now`` is settled,
   or becomes evidence / a void pairing (:mod:`.settlement`, :mod:`.pieces`);
4. market data: this block's trades (price, quantity, slot), volume, and the open
   book of every open slot as (price, quantity) levels, with no pseudonym or
   order id, at ``md/<height>`` and ``md-latest``.

Any check failure is a :class:`~gridledger.errors.GridledgerError` whose reason the
ledger puts in the rejected receipt; the transaction's writes are discarded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.errors import EncodingError
from gridledger.ledger.contracts import BlockContext, StateView
from gridledger.ledger.errors import ContractRejection
from gridledger.ledger.tx import Transaction
from gridledger.market import keys
from gridledger.market.book import get_levels, get_queue
from gridledger.market.clearing import Bid, compute_pay_as_bid, compute_uniform_price
from gridledger.market.messages import (
    KIND_ATTEST,
    KIND_CANCEL,
    KIND_ORDER,
    KIND_PIECE_OFFER,
    KIND_PIECE_REQUEST,
    KIND_SIGNED_PIECE_REQUEST,
    BlockMarketData,
    MarketConfig,
    Pairing,
    PieceOffer,
    PieceRequest,
    PublicTrade,
    RestingRecord,
    SignedAttestation,
    SignedCancel,
    SignedOrder,
    SignedPieceRequest,
    SlotDepth,
    Trade,
    decode_resting,
)
from gridledger.market.orders import (
    compute_gate_ms,
    process_cancel,
    process_expire_slot,
    process_order,
    process_reduce_resting,
)
from gridledger.market.pieces import (
    process_offer,
    process_pairing_due,
    process_pool,
    process_request,
    process_signed_request,
)
from gridledger.market.settlement import (
    NAMESPACE,
    process_attestation,
    process_trade,
    process_trade_due,
)
from gridledger.market.units import BUY, SELL

MAX_DUE_PER_BLOCK = 10_000


class MarketContract:
    """The continuous double auction, the fixed-piece market and their settlement."""

    def __init__(self, config: MarketConfig) -> None:
        self.config = config

    @property
    def namespace(self) -> str:
        return NAMESPACE

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(
            {
                KIND_ORDER,
                KIND_CANCEL,
                KIND_ATTEST,
                KIND_PIECE_OFFER,
                KIND_PIECE_REQUEST,
                KIND_SIGNED_PIECE_REQUEST,
            }
        )

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        try:
            handler = _HANDLERS[tx.kind]
        except KeyError:
            raise ContractRejection(f"unknown kind {tx.kind}") from None
        try:
            return handler(view, self.config, tx.payload, ctx)
        except EncodingError as exc:
            raise ContractRejection(f"{tx.kind}: malformed payload ({exc.reason})") from None

    def end_block(self, view: StateView, ctx: BlockContext) -> None:
        now = ctx.timestamp_ms
        open_pieces = 0
        for key, _ in view.scan(keys.OPEN_SLOT):
            slot = int.from_bytes(key[len(keys.OPEN_SLOT) :], "big")
            if compute_gate_ms(self.config, slot) <= now:
                process_close_slot(view, self.config, ctx, slot)
            else:
                open_pieces += process_pool(view, self.config, ctx, slot)
        process_deadlines(view, self.config, ctx)
        process_market_data(view, self.config, ctx, open_pieces)


def _on_order(view: StateView, config: MarketConfig, payload: bytes, ctx: BlockContext) -> bytes:
    return process_order(view, config, decode_as(SignedOrder, payload), ctx, payload)


def _on_cancel(view: StateView, config: MarketConfig, payload: bytes, ctx: BlockContext) -> bytes:
    return process_cancel(view, decode_as(SignedCancel, payload))


def _on_attest(view: StateView, config: MarketConfig, payload: bytes, ctx: BlockContext) -> bytes:
    signed = decode_as(SignedAttestation, payload)
    return process_attestation(view, config, signed, ctx.timestamp_ms)


def _on_offer(view: StateView, config: MarketConfig, payload: bytes, ctx: BlockContext) -> bytes:
    return process_offer(view, config, decode_as(PieceOffer, payload), ctx.timestamp_ms)


def _on_request(view: StateView, config: MarketConfig, payload: bytes, ctx: BlockContext) -> bytes:
    return process_request(view, config, decode_as(PieceRequest, payload), ctx)


def _on_signed_request(
    view: StateView, config: MarketConfig, payload: bytes, ctx: BlockContext
) -> bytes:
    return process_signed_request(view, config, decode_as(SignedPieceRequest, payload), ctx)


_HANDLERS: dict[str, Callable[[StateView, MarketConfig, bytes, BlockContext], bytes]] = {
    KIND_ORDER: _on_order,
    KIND_CANCEL: _on_cancel,
    KIND_ATTEST: _on_attest,
    KIND_PIECE_OFFER: _on_offer,
    KIND_PIECE_REQUEST: _on_request,
    KIND_SIGNED_PIECE_REQUEST: _on_signed_request,
}


def process_close_slot(view: StateView, config: MarketConfig, ctx: BlockContext, slot: int) -> None:
    """Gate closure of ``slot``: clear it (sealed-bid modes), expire the rest, drop its pool."""
    if config.clearing != "cda":
        process_sealed_clearing(view, config, ctx, slot)
    process_expire_slot(view, slot)
    for key, _ in view.scan(keys.POOL + keys.u64(slot)):
        view.delete(key)
    view.delete(keys.OPEN_SLOT + keys.u64(slot))
    view.put(keys.CLOSED_SLOT + keys.u64(slot), b"\x01")


def process_sealed_clearing(
    view: StateView, config: MarketConfig, ctx: BlockContext, slot: int
) -> None:
    """Clear a slot's book at once: pay-as-bid or uniform price (for comparison)."""
    resting: dict[bytes, tuple[bytes, RestingRecord]] = {}
    sides: tuple[list[Bid], list[Bid]] = ([], [])
    for side in (BUY, SELL):
        for key, raw in view.scan(keys.compute_book_prefix(slot, side)):
            record = decode_resting(raw)
            resting[record.order_id] = (key, record)
            sides[side].append(Bid(record.order_id, record.price, record.remaining, record.seq))
    if config.clearing == "pay-as-bid":
        cleared = compute_pay_as_bid(sides[BUY], sides[SELL])
    else:
        cleared = compute_uniform_price(sides[BUY], sides[SELL], config.tick)
    for ct in cleared:
        buy_key, buy = resting[ct.buy_id]
        sell_key, sell = resting[ct.sell_id]
        process_trade(view, config, ctx, buy, sell, ct.price, ct.quantity)
        for order_id, key, record in ((ct.buy_id, buy_key, buy), (ct.sell_id, sell_key, sell)):
            process_reduce_resting(view, key, record, ct.quantity, cancelled=False)
            left = record.remaining - ct.quantity
            resting[order_id] = (key, dataclasses.replace(record, remaining=left))


def process_deadlines(view: StateView, config: MarketConfig, ctx: BlockContext) -> int:
    """Judge every obligation whose deadline is before block time (at most
    ``MAX_DUE_PER_BLOCK`` a block; the rest wait for the next)."""
    done = 0
    for marker, _ in view.scan(keys.DUE):
        deadline = int.from_bytes(marker[len(keys.DUE) :], "big")
        if deadline >= ctx.timestamp_ms:
            break
        prefix = keys.DUE_ITEM + keys.u64(deadline)
        for key, _ in view.scan(prefix):
            if done >= MAX_DUE_PER_BLOCK:
                return done
            kind, ident = key[len(prefix) : len(prefix) + 1], key[len(prefix) + 1 :]
            if kind in (keys.DUE_TRADE, keys.DUE_RECHECK):
                raw = view.get(keys.TRADE + ident)
                assert raw is not None
                final = kind == keys.DUE_RECHECK
                process_trade_due(view, config, decode_as(Trade, raw), ctx, final=final)
            else:
                raw = view.get(keys.PAIRING + ident)
                assert raw is not None
                pairing = decode_as(Pairing, raw)
                final = kind == keys.DUE_PIECE_RECHECK
                process_pairing_due(view, config, pairing, ctx.timestamp_ms, ctx, final=final)
            view.delete(key)
            done += 1
        view.delete(marker)
    return done


def get_depth(view: StateView, config: MarketConfig, slot: int) -> SlotDepth:
    """A slot's open book as (price, open quantity) levels, best first, no identities.

    Reads only the best ``depth_levels`` levels (their queues and orders), not the book.
    """
    sides: list[tuple[tuple[int, int], ...]] = []
    for side in (BUY, SELL):
        out = []
        for price in get_levels(view, slot, side)[: config.depth_levels]:
            total = 0
            for seq in get_queue(view, slot, side, price):
                raw = view.get(keys.compute_book_key(slot, side, price, seq))
                total += decode_resting(raw or b"").remaining
            out.append((price, total))
        sides.append(tuple(out))
    return SlotDepth(slot, sides[BUY], sides[SELL])


def process_market_data(
    view: StateView, config: MarketConfig, ctx: BlockContext, open_pieces: int
) -> BlockMarketData:
    """Publish this block's trades, volume and open books (and forget the block's list)."""
    trades = []
    for key, raw in view.scan(keys.NEW_TRADE):
        trades.append(decode_as(PublicTrade, raw))
        view.delete(key)
    depth = []
    for key, _ in view.scan(keys.OPEN_SLOT):
        depth.append(get_depth(view, config, int.from_bytes(key[len(keys.OPEN_SLOT) :], "big")))
    data = BlockMarketData(
        ctx.height, ctx.timestamp_ms, tuple(trades), sum(t.quantity for t in trades),
        tuple(d for d in depth if d.bids or d.asks), open_pieces,
    )  # fmt: skip
    if data.trades or data.depth or open_pieces:  # quiet blocks add no state
        raw_data = encode(data)
        view.put(keys.MARKET_DATA + keys.u64(ctx.height), raw_data)
        view.put(keys.MARKET_DATA_LATEST, raw_data)
    return data
