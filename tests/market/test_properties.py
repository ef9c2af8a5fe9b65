"""Properties over random order streams through the contract (hypothesis):

* the same stream gives the same receipts and state root on independent replicas;
* the on-chain book gives exactly the in-memory engine's fills (the same rules);
* the book is never crossed after a block; filled + open + cancelled = submitted;
* after the deadlines every matched quantity is settled or stands as evidence.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridledger.crypto.encoding import decode_as
from gridledger.market import client, keys
from gridledger.market.book import get_levels, get_queue
from gridledger.market.engine import OrderBook
from gridledger.market.messages import (
    DefaultRecord,
    OrderReceipt,
    OrderStatus,
    RestingRecord,
    SignedOrder,
    Trade,
    compute_order_id,
)
from gridledger.market.units import BUY, SELL

from .helpers import Chain, World, make_chain

Step = tuple[int, int, int, int, bool]  # who, signed quantity, price, cancel pick, pays+delivers

steps = st.lists(
    st.tuples(
        st.integers(0, 7),
        st.integers(-12, 12).filter(bool),
        st.integers(95, 105),
        st.integers(-1, 40),  # >= 0: cancel that earlier order after this one
        st.booleans(),
    ),
    min_size=1,
    max_size=24,
)

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def run_stream(world: World, stream: list[Step]) -> tuple[Chain, list[bytes], list[Trade]]:
    """Each step is one block: the order, then (maybe) a cancel of an earlier order by its owner.

    Returns the chain, the order ids and the trades in the order they happened.
    """
    chain = make_chain(world)
    order_ids: list[bytes] = []
    trades: list[Trade] = []
    for who, qty, price, pick, _ in stream:
        tx, _ = chain.order(world.pseudonyms[who], qty, price)
        txs = [tx]
        order_ids.append(compute_order_id(decode_as(SignedOrder, tx.payload)))
        if 0 <= pick < len(order_ids) - 1:
            owner = world.pseudonyms[stream[pick][0]]
            txs.append(chain.tx("market.cancel", client.sign_cancel(order_ids[pick], owner.key)))
        receipt = chain.commit(*txs)[0]
        assert receipt.ok, receipt.reason
        for trade_id in decode_as(OrderReceipt, receipt.data).trades:
            trades.append(decode_as(Trade, chain.get(keys.TRADE + trade_id) or b""))
        assert_not_crossed(chain)
    return chain, order_ids, trades


def assert_not_crossed(chain: Chain) -> None:
    """Best bid < best ask, and the level lists and queues index exactly the book entries."""
    view = chain.view()
    best: dict[int, int | None] = {}
    for side in (BUY, SELL):
        entries = [
            decode_as(RestingRecord, raw)
            for _, raw in view.scan(keys.compute_book_prefix(chain.slot, side))
        ]
        levels = get_levels(view, chain.slot, side)
        assert levels == list(dict.fromkeys(r.price for r in entries))
        for level in levels:
            assert get_queue(view, chain.slot, side, level) == [
                r.seq for r in entries if r.price == level
            ]
        best[side] = levels[0] if levels else None
    bid, ask = best[BUY], best[SELL]
    if bid is not None and ask is not None:
        assert bid < ask


@SETTINGS
@given(steps)
def test_replicas_agree_and_contract_matches_the_engine(world: World, stream: list[Step]) -> None:
    chain_a, ids, trades = run_stream(world, stream)
    chain_b, _, _ = run_stream(world, stream)
    assert chain_a.ledger.state.root == chain_b.ledger.state.root

    book = OrderBook()
    expected = []
    for i, (who, qty, price, pick, _) in enumerate(stream):
        side = SELL if qty > 0 else BUY
        owner = world.pseudonyms[who].raw
        for f in book.process_order(ids[i], side, price, abs(qty), i, owner):
            expected.append((f.buy_id, f.sell_id, f.price, f.quantity))
        if 0 <= pick < i:
            book.cancel(ids[pick])
    assert [(t.buy_order, t.sell_order, t.price, t.quantity) for t in trades] == expected


@SETTINGS
@given(steps)
def test_conservation_and_every_match_ends_settled_or_as_evidence(
    world: World, stream: list[Step]
) -> None:
    chain, ids, trades = run_stream(world, stream)
    for order_id, (_, qty, _, _, _) in zip(ids, stream, strict=True):
        status = decode_as(OrderStatus, chain.get(keys.ORDER_STATUS + order_id) or b"")
        open_qty = 0
        if status.book_key:
            open_qty = decode_as(RestingRecord, chain.get(status.book_key) or b"").remaining
        assert status.filled + open_qty + status.cancelled == status.submitted == abs(qty)
    honest = {ids[i] for i, step in enumerate(stream) if step[4]}
    txs = []
    for t in trades:
        if t.buy_order in honest:
            txs.append(chain.paid_stub(t.trade_id))
        if t.sell_order in honest:
            txs.append(chain.tx("market.attest", client.create_attestation(world.attester, t)))
    chain.commit_ok(*txs)
    if trades:
        chain.commit_ok(at_ms=max(t.deadline_ms for t in trades) + 1)
    evidence = [decode_as(DefaultRecord, raw) for _, raw in chain.view().scan(keys.EVIDENCE)]
    accused = {(e.trade_id, e.leg) for e in evidence}
    for t in trades:
        settled = chain.get(keys.SETTLED + t.trade_id) is not None
        legs = {leg for tid, leg in accused if tid == t.trade_id}
        assert settled != bool(legs)  # exactly one of: settled, or evidence
        assert ("money" in legs) == (t.buy_order not in honest)
        assert ("energy" in legs) == (t.sell_order not in honest)
    for e in evidence:  # evidence names exactly the pseudonym that owed the leg
        trade = next(t for t in trades if t.trade_id == e.trade_id)
        assert e.accused == (trade.buyer if e.leg == "money" else trade.seller)
    assert list(chain.view().scan(keys.DUE)) == []
    assert list(chain.view().scan(keys.DUE_ITEM)) == []
