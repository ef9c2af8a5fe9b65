"""The continuous double auction's matching engine: price-time priority, in memory.

Seed 000's rule (§2.2 M1-3, decisions §10.5): bids sorted high to low, asks low
to high, ties broken by arrival (``seq``, which on chain is consensus order);
an incoming order trades while it crosses the best opposite price (bid >= ask),
at the mid price of the two limits rounded to the tick (half to even), for
``min`` of the two remaining quantities; the rest of a partly filled resting
order keeps its place; whatever of the incoming order is left rests.

Cost: a price level is a FIFO queue, found through a binary heap of the level
keys (bids by ``-price`` so the best level is always on top), so an order costs
O(log L) for L levels plus O(1) per fill. A cancel marks the order
dead in O(1) and its queue drops it when it reaches the front (lazy deletion);
the per-level open quantity is kept exactly, for the public book depth.

The engine is pure and deterministic: the same orders in the same order give
the same fills on every machine. The on-chain book
(:mod:`gridledger.market.book`) applies the same rules to state; a property test
replays random streams through both and compares the fills.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from typing import NamedTuple

from gridledger.market.units import BUY, SELL


def compute_mid_price(bid: int, ask: int, tick: int) -> int:
    """``(bid + ask) / 2`` rounded to a multiple of ``tick``, half to even.

    ``bid`` and ``ask`` are multiples of ``tick`` with ``bid >= ask``, so the
    result lies in ``[ask, bid]``.
    """
    ticks = bid // tick + ask // tick
    half, odd = divmod(ticks, 2)
    if odd and half % 2 == 1:
        half += 1
    return half * tick


def is_crossing(side: int, limit: int, best_opposite: int) -> bool:
    """Whether an order on ``side`` at ``limit`` trades with the best opposite price."""
    return limit >= best_opposite if side == BUY else limit <= best_opposite


class RestingOrder:
    """An order in the book (mutable: ``remaining`` shrinks as it fills)."""

    __slots__ = ("order_id", "owner", "price", "remaining", "seq", "side")

    def __init__(
        self, order_id: bytes, side: int, price: int, remaining: int, seq: int, owner: bytes = b""
    ) -> None:
        self.order_id = order_id
        self.side = side
        self.price = price
        self.remaining = remaining
        self.seq = seq
        self.owner = owner


class Fill(NamedTuple):
    """One match: ``quantity`` at ``price`` between a buy and a sell order.

    ``maker_id`` rested in the book; ``taker_id`` arrived and crossed it.
    """

    buy_id: bytes
    sell_id: bytes
    taker_id: bytes
    maker_id: bytes
    price: int
    quantity: int


class OrderBook:
    """One delivery slot's book: price levels of FIFO queues on each side.

    Each side is a dict ``key -> deque`` plus a binary heap of the keys (bids keyed
    by ``-price``), so the best level is ``heap[0]``: O(1) to read, O(log L) to add
    or drop a level. A level leaves the heap only from the top, when its queue is
    empty, so the heap never holds a key without a level.
    """

    def __init__(self, tick: int = 1) -> None:
        if tick <= 0:
            raise ValueError("tick must be positive")
        self.tick = tick
        self._levels: tuple[dict[int, deque[RestingOrder]], ...] = ({}, {})
        self._heaps: tuple[list[int], list[int]] = ([], [])
        self._level_qty: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self._orders: dict[bytes, RestingOrder] = {}

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def get_order(self, order_id: bytes) -> RestingOrder | None:
        return self._orders.get(order_id)

    def get_best(self, side: int) -> int | None:
        """The best open price on ``side`` (``None``: that side is empty)."""
        heap, levels = self._heaps[side], self._levels[side]
        while heap:
            key = heap[0]
            queue = levels[key]
            _drop_dead(queue)
            if queue:
                return -key if side == BUY else key
            heapq.heappop(heap)
            del levels[key]
        return None

    def get_depth(self, side: int, limit: int = 10) -> list[tuple[int, int]]:
        """Up to ``limit`` best levels of ``side`` as ``(price, open quantity)``."""
        qty = self._level_qty[side]
        prices = sorted(qty, reverse=side == BUY)[:limit]
        return [(price, qty[price]) for price in prices]

    def iter_orders(self, side: int) -> Iterator[RestingOrder]:
        """Open orders of ``side`` in priority order."""
        levels = self._levels[side]
        for key in sorted(levels):
            for order in levels[key]:
                if order.remaining:
                    yield order

    def add(self, order: RestingOrder) -> None:
        """Rest ``order`` at the back of its price level (no matching)."""
        if order.order_id in self._orders:
            raise ValueError("order id already in the book")
        side = order.side
        levels = self._levels[side]
        key = -order.price if side == BUY else order.price
        queue = levels.get(key)
        if queue is None:
            queue = levels[key] = deque()
            heapq.heappush(self._heaps[side], key)
        queue.append(order)
        self._orders[order.order_id] = order
        qty = self._level_qty[side]
        qty[order.price] = qty.get(order.price, 0) + order.remaining

    def cancel(self, order_id: bytes) -> int:
        """Withdraw an open order; return the quantity cancelled (0: not open)."""
        order = self._orders.pop(order_id, None)
        if order is None:
            return 0
        left = order.remaining
        order.remaining = 0  # dropped lazily when it reaches the front of its queue
        self._reduce_level(order.side, order.price, left)
        return left

    def _reduce_level(self, side: int, price: int, by: int) -> None:
        qty = self._level_qty[side]
        left = qty[price] - by
        if left:
            qty[price] = left
        else:
            del qty[price]

    def process_order(
        self, order_id: bytes, side: int, price: int, quantity: int, seq: int, owner: bytes = b""
    ) -> list[Fill]:
        """Match an incoming limit order, rest what is left; return the fills in order.

        ``owner`` (a pseudonym; empty: anonymous) never trades with itself: a resting
        order of the same owner that would cross is cancelled instead.
        """
        if side not in (BUY, SELL) or quantity <= 0:
            raise ValueError("side must be BUY or SELL and quantity positive")
        if order_id in self._orders:
            raise ValueError("order id already in the book")
        fills: list[Fill] = []
        remaining = quantity
        buying = side == BUY
        opposite = SELL if buying else BUY
        heap, levels = self._heaps[opposite], self._levels[opposite]
        level_qty = self._level_qty[opposite]
        orders = self._orders
        tick = self.tick
        while remaining and heap:
            key = heap[0]
            best = key if buying else -key
            if (best > price) if buying else (best < price):
                break
            ticks = (price + best) // tick  # both on the tick: the mid in half ticks
            half = ticks >> 1
            if ticks & 1 and half & 1:  # .5 rounds to the even tick
                half += 1
            trade_price = half * tick
            queue = levels[key]
            while remaining and queue:
                maker = queue[0]
                if not maker.remaining:
                    queue.popleft()
                    continue
                if owner and maker.owner == owner:  # self-trade prevention: cancel resting
                    self.cancel(maker.order_id)
                    queue.popleft()
                    continue
                q = remaining if remaining < maker.remaining else maker.remaining
                remaining -= q
                maker.remaining -= q
                mid = maker.order_id
                if buying:
                    fills.append(Fill(order_id, mid, order_id, mid, trade_price, q))
                else:
                    fills.append(Fill(mid, order_id, order_id, mid, trade_price, q))
                left = level_qty[best] - q
                if left:
                    level_qty[best] = left
                else:
                    del level_qty[best]
                if not maker.remaining:
                    queue.popleft()
                    del orders[mid]
            if not queue:
                heapq.heappop(heap)
                del levels[key]
        if remaining:  # rest (add(), inlined: this is the hot path)
            own = self._levels[side]
            key = -price if buying else price
            level = own.get(key)
            if level is None:
                level = own[key] = deque()
                heapq.heappush(self._heaps[side], key)
            resting = RestingOrder(order_id, side, price, remaining, seq, owner)
            level.append(resting)
            orders[order_id] = resting
            qty = self._level_qty[side]
            qty[price] = qty.get(price, 0) + remaining
        return fills

    def is_crossed(self) -> bool:
        """Whether the best bid is at or above the best ask (never true after matching)."""
        bid, ask = self.get_best(BUY), self.get_best(SELL)
        return bid is not None and ask is not None and bid >= ask


def _drop_dead(queue: deque[RestingOrder]) -> None:
    while queue and not queue[0].remaining:
        queue.popleft()
