"""Sealed-bid clearing on chain (the comparison modes): orders rest until the gate, then
the slot clears at once, pay-as-bid or at one uniform price; what is left expires."""

from __future__ import annotations

from gridledger.crypto.encoding import decode_as
from gridledger.market import keys
from gridledger.market.messages import (
    BlockMarketData,
    OrderStatus,
    SignedOrder,
    Trade,
    compute_order_id,
)
from gridledger.market.orders import get_order_status

from .helpers import SLOT, SLOT_MS, Chain, World, make_chain


def run(world: World, mode: str) -> tuple[list[Trade], list[bytes], Chain]:
    chain = make_chain(world, world.market_config(clearing=mode))
    p = world.pseudonyms
    orders = [
        chain.order(p[0], -2, 100)[0],  # bids
        chain.order(p[1], -2, 90)[0],
        chain.order(p[2], -2, 70)[0],
        chain.order(p[3], 2, 60)[0],  # asks
        chain.order(p[4], 2, 80)[0],
        chain.order(p[5], 2, 95)[0],
    ]
    chain.commit_ok(*orders)
    assert list(chain.view().scan(keys.TRADE)) == []  # nothing trades before the gate
    chain.commit_ok(at_ms=SLOT * SLOT_MS - chain.config.gate_lead_ms)
    trades = [decode_as(Trade, raw) for _, raw in chain.view().scan(keys.TRADE)]
    ids = [compute_order_id(decode_as(SignedOrder, tx.payload)) for tx in orders]
    return trades, ids, chain


def test_uniform_price_clears_the_efficient_pairs_at_one_price(world: World) -> None:
    trades, ids, chain = run(world, "uniform")
    assert sorted((t.buy_order, t.sell_order, t.quantity) for t in trades) == sorted(
        [(ids[0], ids[3], 2), (ids[1], ids[4], 2)]
    )
    assert {t.price for t in trades} == {85}
    data = decode_as(BlockMarketData, chain.get(keys.MARKET_DATA_LATEST) or b"")
    assert data.volume == 4 and data.depth == ()
    status = get_order_status(chain.view(), ids[2])
    assert status == OrderStatus(ids[2], 2, 0, 2, b"")  # expired at the gate


def test_pay_as_bid_pays_each_buyer_its_bid(world: World) -> None:
    trades, _, _ = run(world, "pay-as-bid")
    assert sorted(t.price for t in trades) == [90, 100]
