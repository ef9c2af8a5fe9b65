"""Orders on chain: seed 000's rules through the contract, refusals with reasons, cancel,
gate closure and the public market data."""

from __future__ import annotations

import dataclasses

from gridledger.crypto.encoding import decode, decode_as
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.market import client, keys
from gridledger.market.messages import (
    ORDER_TAG,
    BlockMarketData,
    OrderReceipt,
    OrderStatus,
    SignedOrder,
    Trade,
    compute_order_id,
)
from gridledger.market.orders import get_order_status
from gridledger.payments.invoice import get_invoice
from tests.ledger.helpers import CHAIN

from .helpers import NOW_MS, ROUND, SLOT, SLOT_MS, Chain, World, make_chain


def receipt_of(chain: Chain, tx: object) -> OrderReceipt:
    (r,) = chain.commit_ok(tx)  # type: ignore[arg-type]
    return decode_as(OrderReceipt, r.data)


def trades_of(chain: Chain, receipt: OrderReceipt) -> list[Trade]:
    return [chain.decode(Trade, keys.TRADE + t) for t in receipt.trades]  # type: ignore[misc]


def test_seed000_price_time_priority_mid_price_and_partial_fill(world: World) -> None:
    chain = make_chain(world)
    a, b, c, d = world.pseudonyms[:4]
    sell_late_better, _ = chain.order(a, 10, 101)
    sell_early, _ = chain.order(b, 10, 105)
    sell_same_price_later, _ = chain.order(c, 10, 105)
    chain.commit_ok(sell_early)
    chain.commit_ok(sell_late_better)
    chain.commit_ok(sell_same_price_later)
    buy, _ = chain.order(d, -25, 110)  # negative quantity buys (seed 000)
    r = receipt_of(chain, buy)
    trades = trades_of(chain, r)
    assert [(t.seller, t.quantity, t.price) for t in trades] == [
        (a.raw, 10, 106),  # best price first; (110+101)/2 = 105.5 -> 106 (half to even)
        (b.raw, 10, 108),  # then time priority at 105: b before c; 107.5 -> 108
        (c.raw, 5, 108),  # partial fill of c
    ]
    assert all(t.buyer == d.raw for t in trades) and r.filled == 25
    c_id = trades[2].sell_order
    status = get_order_status(chain.view(), c_id)
    assert status is not None and (status.filled, status.cancelled) == (5, 0) and status.book_key


def test_partial_fill_keeps_priority_on_chain(world: World) -> None:
    chain = make_chain(world)
    a, b, c, d = world.pseudonyms[:4]
    first, _ = chain.order(a, 10, 100)
    second, _ = chain.order(b, 10, 100)
    chain.commit_ok(first, second)
    chain.commit_ok(chain.order(c, -4, 100)[0])
    r = receipt_of(chain, chain.order(d, -8, 100)[0])
    assert [(t.seller, t.quantity) for t in trades_of(chain, r)] == [(a.raw, 6), (b.raw, 2)]


def test_no_trade_when_bid_below_ask_and_book_is_published(world: World) -> None:
    chain = make_chain(world)
    a, b = world.pseudonyms[:2]
    chain.commit_ok(chain.order(a, 10, 120)[0], chain.order(b, -7, 119)[0])
    data = chain.decode(BlockMarketData, keys.MARKET_DATA_LATEST)
    assert isinstance(data, BlockMarketData)
    assert data.trades == () and data.volume == 0
    (depth,) = data.depth
    assert (depth.slot, depth.bids, depth.asks) == (SLOT, ((119, 7),), ((120, 10),))


def test_market_data_lists_trades_without_identities(world: World) -> None:
    chain = make_chain(world)
    a, b = world.pseudonyms[:2]
    chain.commit_ok(chain.order(a, 10, 100)[0])
    chain.commit_ok(chain.order(b, -4, 110)[0])
    raw = chain.get(keys.MARKET_DATA_LATEST)
    assert raw is not None
    data = decode_as(BlockMarketData, raw)
    assert [(t.slot, t.price, t.quantity) for t in data.trades] == [(SLOT, 105, 4)]
    assert data.volume == 4 and data.depth[0].asks == ((100, 6),)
    assert a.raw not in raw and b.raw not in raw  # no pseudonym in the public data


def test_trade_publishes_invoice_to_sellers_one_time_keys(world: World) -> None:
    chain = make_chain(world)
    a, b = world.pseudonyms[:2]
    sell, secrets = chain.order(a, 10, 100)
    chain.commit_ok(sell)
    (trade,) = trades_of(chain, receipt_of(chain, chain.order(b, -10, 100)[0]))
    invoice = get_invoice(chain.view(), "market", trade.trade_id)
    assert invoice is not None and secrets.redeem_key and secrets.enc_key
    assert invoice.amount == 100 * 10
    assert invoice.payee_redeem_key == secrets.redeem_key.public_key.raw
    assert invoice.payee_enc_key == secrets.enc_key.public_key.raw
    assert invoice.deadline_ms == trade.deadline_ms == (SLOT + 1) * SLOT_MS + chain.config.settle_ms


def refused(chain: Chain, tx: object) -> str:
    (r,) = chain.commit(tx)  # type: ignore[arg-type]
    assert not r.ok
    return r.reason


def signed_with(chain: Chain, who_key: Ed25519PrivateKey, **fields: object) -> object:
    order, _ = client.create_order(who_key.public_key.raw, ROUND, SLOT, 10, 100, chain.rng)
    order = dataclasses.replace(order, **fields)  # type: ignore[arg-type]
    return chain.tx("market.order", client.sign_order(order, who_key))


def test_refusals_carry_their_reason(world: World) -> None:
    chain = make_chain(world)
    a = world.pseudonyms[0]
    assert "validity window" in refused(chain, chain.order(world.expired, 10, 100)[0])
    assert "revoked" in refused(chain, chain.order(world.revoked, 10, 100)[0])
    assert "round" in refused(chain, chain.order(world.other_round, 10, 100)[0])
    stranger = Ed25519PrivateKey.generate(chain.rng)
    assert "no published certificate" in refused(chain, signed_with(chain, stranger))
    assert "zero quantity" in refused(
        chain, signed_with(chain, a.key, quantity=0, redeem_key=b"", enc_key=b"")
    )
    # a sell order whose encryption key nobody can seal to would leave its buyer unable to pay
    assert "low order" in refused(chain, signed_with(chain, a.key, enc_key=bytes(32)))
    assert "outside the bounds" in refused(chain, signed_with(chain, a.key, price=401))
    assert "outside the bounds" in refused(chain, signed_with(chain, a.key, price=49))
    closed_slot = NOW_MS // SLOT_MS  # the current slot: its gate closed before it began
    assert "closed" in refused(chain, chain.order(a, 10, 100, slot=closed_slot)[0])
    far = (NOW_MS + 8 * 86_400_000) // SLOT_MS
    assert "beyond the trading horizon" in refused(chain, chain.order(a, 10, 100, slot=far)[0])
    order, _ = client.create_order(a.raw, ROUND, SLOT, 10, 100, chain.rng)
    forged = SignedOrder(order, world.pseudonyms[1].key.sign(ORDER_TAG, b"x"))
    assert "signature" in refused(chain, chain.tx("market.order", forged))
    assert "malformed" in refused(chain, chain.tx("market.order", b"\x01\x02"))


def test_price_off_the_tick_and_quantity_off_the_lot(world: World) -> None:
    chain = make_chain(world, world.market_config(tick=5, lot=10, min_price=50, max_price=400))
    a = world.pseudonyms[0]
    assert "not on the tick 5" in refused(chain, chain.order(a, 10, 101)[0])
    assert "not a multiple of the lot 10" in refused(chain, chain.order(a, 15, 100)[0])
    chain.commit_ok(chain.order(a, 20, 105)[0])


def test_replayed_order_and_reused_settlement_key_are_refused(world: World) -> None:
    chain = make_chain(world)
    a = world.pseudonyms[0]
    tx, _ = chain.order(a, 10, 100)
    chain.commit_ok(tx)
    replay = chain.tx("market.order", tx.payload)  # same signed order, new transaction
    assert "already submitted" in refused(chain, replay)
    order = decode_as(SignedOrder, tx.payload).order
    again = dataclasses.replace(order, nonce=b"\x07" * 16)
    assert "used before" in refused(
        chain, chain.tx("market.order", client.sign_order(again, a.key))
    )


def test_cancel_by_owner_only_and_conservation(world: World) -> None:
    chain = make_chain(world)
    a, b = world.pseudonyms[:2]
    tx, _ = chain.order(a, 10, 100)
    chain.commit_ok(tx)
    chain.commit_ok(chain.order(b, -3, 100)[0])
    order_id = compute_order_id(decode_as(SignedOrder, tx.payload))
    theft = chain.tx("market.cancel", client.sign_cancel(order_id, b.key))
    assert "did not sign the cancel" in refused(chain, theft)
    (r,) = chain.commit_ok(chain.tx("market.cancel", client.sign_cancel(order_id, a.key)))
    assert decode(r.data) == 7
    status = get_order_status(chain.view(), order_id)
    assert status == OrderStatus(order_id, 10, 3, 7, b"")
    again = chain.tx("market.cancel", client.sign_cancel(order_id, a.key))
    assert "nothing of the order is open" in refused(chain, again)


def test_gate_closure_expires_open_orders_at_block_time(world: World) -> None:
    chain = make_chain(world)
    a, b = world.pseudonyms[:2]
    tx, _ = chain.order(a, 10, 100)
    chain.commit_ok(tx)
    gate = SLOT * SLOT_MS - chain.config.gate_lead_ms
    chain.commit_ok(at_ms=gate - 1)
    late, _ = chain.order(b, -10, 100)
    (r,) = chain.commit(late, at_ms=gate)
    assert not r.ok and f"slot {SLOT} closed" in r.reason
    order_id = compute_order_id(decode_as(SignedOrder, tx.payload))
    assert get_order_status(chain.view(), order_id) == OrderStatus(order_id, 10, 0, 10, b"")
    assert chain.get(keys.CLOSED_SLOT + keys.u64(SLOT)) is not None
    assert list(chain.view().scan(keys.compute_book_prefix(SLOT, 1))) == []


def test_self_trade_is_prevented_by_cancelling_the_resting_order(world: World) -> None:
    chain = make_chain(world)
    a, b = world.pseudonyms[:2]
    own, _ = chain.order(a, 10, 100)
    chain.commit_ok(own)
    chain.commit_ok(chain.order(b, 10, 101)[0])
    r = receipt_of(chain, chain.order(a, -10, 101)[0])
    (trade,) = trades_of(chain, r)
    assert trade.seller == b.raw
    own_id = compute_order_id(decode_as(SignedOrder, own.payload))
    assert get_order_status(chain.view(), own_id) == OrderStatus(own_id, 10, 0, 10, b"")


def test_client_transaction_builders(world: World) -> None:
    chain = make_chain(world)
    a = world.pseudonyms[0]
    order, _ = client.create_order(a.raw, ROUND, SLOT, -5, 100, chain.rng)
    signed = client.sign_order(order, a.key)
    relay = Ed25519PrivateKey.generate(chain.rng)  # a fresh sender per order links nothing
    (r,) = chain.commit_ok(client.build_order_tx(CHAIN, signed, relay))
    order_id = decode_as(OrderReceipt, r.data).order_id
    cancel = client.build_cancel_tx(CHAIN, client.sign_cancel(order_id, a.key), relay, 1)
    chain.commit_ok(cancel)
    offer, _ = client.create_piece_offer(SLOT, chain.rng)
    request = client.create_piece_request(SLOT, chain.rng)
    assert client.build_piece_tx(CHAIN, offer, relay).kind == "market.piece-offer"
    assert client.build_piece_tx(CHAIN, request, relay).kind == "market.piece-request"
