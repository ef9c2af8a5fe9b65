"""Seed 000's CDA rules, case by case, on the in-memory engine; and its invariants."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.market.engine import OrderBook, compute_mid_price
from gridledger.market.units import BUY, SELL


def oid(i: int) -> bytes:
    return i.to_bytes(4, "big")


def test_mid_price_is_the_average_rounded_half_to_even_on_the_tick() -> None:
    assert compute_mid_price(120, 100, 1) == 110
    assert compute_mid_price(101, 100, 1) == 100  # 100.5 -> 100 (even)
    assert compute_mid_price(102, 101, 1) == 102  # 101.5 -> 102 (even)
    assert compute_mid_price(130, 100, 10) == 120  # 11.5 ticks -> 12 ticks
    assert compute_mid_price(150, 100, 10) == 120  # 12.5 ticks -> 12 ticks
    assert compute_mid_price(100, 100, 5) == 100


def test_no_trade_when_bid_below_ask() -> None:
    book = OrderBook()
    assert book.process_order(oid(1), SELL, 110, 5, 1) == []
    assert book.process_order(oid(2), BUY, 109, 5, 2) == []
    assert book.get_best(BUY) == 109 and book.get_best(SELL) == 110
    assert len(book) == 2


def test_trade_when_bid_equals_ask_at_that_price() -> None:
    book = OrderBook()
    book.process_order(oid(1), SELL, 110, 5, 1)
    (fill,) = book.process_order(oid(2), BUY, 110, 5, 2)
    assert (fill.price, fill.quantity, fill.buy_id, fill.sell_id) == (110, 5, oid(2), oid(1))
    assert len(book) == 0


def test_trade_at_mid_price_of_the_two_limits() -> None:
    book = OrderBook()
    book.process_order(oid(1), BUY, 130, 5, 1)
    (fill,) = book.process_order(oid(2), SELL, 100, 5, 2)
    assert fill.price == 115 and fill.maker_id == oid(1) and fill.taker_id == oid(2)


def test_price_priority_best_price_first() -> None:
    book = OrderBook()
    book.process_order(oid(1), SELL, 105, 5, 1)
    book.process_order(oid(2), SELL, 101, 5, 2)  # better ask, later
    book.process_order(oid(3), SELL, 103, 5, 3)
    fills = book.process_order(oid(4), BUY, 110, 12, 4)
    assert [f.sell_id for f in fills] == [oid(2), oid(3), oid(1)]
    assert [f.quantity for f in fills] == [5, 5, 2]
    assert [f.price for f in fills] == [106, 106, 108]  # (110+101)/2=105.5->106, 106.5->106


def test_time_priority_at_equal_price_is_arrival_order() -> None:
    book = OrderBook()
    for i in (1, 2, 3):
        book.process_order(oid(i), BUY, 100, 1, i)
    fills = book.process_order(oid(9), SELL, 100, 2, 9)
    assert [f.buy_id for f in fills] == [oid(1), oid(2)]
    assert oid(3) in book


def test_partial_fill_keeps_time_priority() -> None:
    book = OrderBook()
    book.process_order(oid(1), SELL, 100, 10, 1)
    book.process_order(oid(2), SELL, 100, 10, 2)
    book.process_order(oid(3), BUY, 100, 4, 3)  # partly fills order 1
    order1 = book.get_order(oid(1))
    assert order1 is not None and order1.remaining == 6
    fills = book.process_order(oid(4), BUY, 100, 8, 4)
    assert [(f.sell_id, f.quantity) for f in fills] == [(oid(1), 6), (oid(2), 2)]


def test_incoming_remainder_rests_at_its_limit() -> None:
    book = OrderBook()
    book.process_order(oid(1), SELL, 100, 3, 1)
    book.process_order(oid(2), BUY, 105, 10, 2)
    assert book.get_best(BUY) == 105 and book.get_best(SELL) is None
    assert book.get_depth(BUY) == [(105, 7)]


def test_cancel_removes_open_quantity_and_priority() -> None:
    book = OrderBook()
    book.process_order(oid(1), SELL, 100, 5, 1)
    book.process_order(oid(2), SELL, 100, 5, 2)
    assert book.cancel(oid(1)) == 5
    assert book.cancel(oid(1)) == 0
    (fill,) = book.process_order(oid(3), BUY, 100, 5, 3)
    assert fill.sell_id == oid(2)
    assert book.get_depth(SELL) == []


def test_self_trade_prevention_cancels_the_resting_order() -> None:
    book = OrderBook()
    book.process_order(oid(1), SELL, 100, 5, 1, owner=b"alice")
    book.process_order(oid(2), SELL, 101, 5, 2, owner=b"bob")
    fills = book.process_order(oid(3), BUY, 101, 5, 3, owner=b"alice")
    assert [f.sell_id for f in fills] == [oid(2)]
    assert oid(1) not in book


orders = st.lists(
    st.tuples(
        st.sampled_from((BUY, SELL)),
        st.integers(90, 110),
        st.integers(1, 20),
        st.booleans(),  # cancel a random earlier order after this one
        st.integers(0, 10_000),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(orders)
def test_book_never_crossed_and_quantity_conserved(
    stream: list[tuple[int, int, int, bool, int]],
) -> None:
    book = OrderBook()
    submitted: dict[bytes, int] = {}
    filled: dict[bytes, int] = {}
    cancelled: dict[bytes, int] = {}
    for i, (side, price, qty, do_cancel, pick) in enumerate(stream):
        order_id = oid(i)
        submitted[order_id] = qty
        for f in book.process_order(order_id, side, price, qty, i):
            assert f.buy_id != f.sell_id
            filled[f.buy_id] = filled.get(f.buy_id, 0) + f.quantity
            filled[f.sell_id] = filled.get(f.sell_id, 0) + f.quantity
            assert f.price <= price if side == BUY else f.price >= price
        assert not book.is_crossed()
        if do_cancel:
            victim = oid(pick % (i + 1))
            cancelled[victim] = cancelled.get(victim, 0) + book.cancel(victim)
    for order_id, qty in submitted.items():
        resting = book.get_order(order_id)
        open_qty = resting.remaining if resting else 0
        assert filled.get(order_id, 0) + open_qty + cancelled.get(order_id, 0) == qty
    for side in (BUY, SELL):
        depth = book.get_depth(side, limit=10_000)
        assert sum(q for _, q in depth) == sum(o.remaining for o in book.iter_orders(side))
