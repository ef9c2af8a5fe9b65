"""The order book in state: price levels and FIFO queues, read with gets, not scans.

Per delivery slot and side::

    lv/<slot><side>               the open price levels, best first (CBOR list of ints)
    q/<slot><side><price>         the level's queue: arrival numbers, 8 bytes each, oldest first
    b/<slot><side><pkey><seq>     the resting order (RestingRecord)

An incoming order reads the level list, then each crossed level's queue, then
the resting orders it trades with: O(levels + fills) gets and no prefix scan, so
its cost does not grow with the book or with the writes already in the block.
The ``b/`` keys sort best-first as well (bids by ``2**63 - price``), so the
end-of-block work (depth, gate closure) can still walk a side with one scan.
"""

from __future__ import annotations

import bisect

from gridledger.crypto.encoding import decode, encode
from gridledger.ledger.contracts import StateView
from gridledger.market import keys
from gridledger.market.messages import RestingRecord
from gridledger.market.units import BUY

_SEQ = 8


def _levels_key(slot: int, side: int) -> bytes:
    return keys.LEVELS + keys.u64(slot) + bytes([side])


def _queue_key(slot: int, side: int, price: int) -> bytes:
    return keys.QUEUE + keys.u64(slot) + bytes([side]) + keys.u64(price)


def get_levels(view: StateView, slot: int, side: int) -> list[int]:
    """Open price levels of a side, best first (bids high to low, asks low to high)."""
    raw = view.get(_levels_key(slot, side))
    if raw is None:
        return []
    levels = decode(raw)
    assert isinstance(levels, list)  # written by put_levels
    return levels


def put_levels(view: StateView, slot: int, side: int, levels: list[int]) -> None:
    if levels:
        view.put(_levels_key(slot, side), encode(levels))
    else:
        view.delete(_levels_key(slot, side))


def get_queue(view: StateView, slot: int, side: int, price: int) -> list[int]:
    """Arrival numbers of the orders resting at ``price``, oldest first."""
    raw = view.get(_queue_key(slot, side, price)) or b""
    return [int.from_bytes(raw[i : i + _SEQ], "big") for i in range(0, len(raw), _SEQ)]


def put_queue(view: StateView, slot: int, side: int, price: int, queue: list[int]) -> None:
    if queue:
        view.put(_queue_key(slot, side, price), b"".join(keys.u64(s) for s in queue))
    else:
        view.delete(_queue_key(slot, side, price))


def insert_level(levels: list[int], side: int, price: int) -> None:
    """Insert ``price`` into a best-first level list (no-op if present)."""
    keyed = [-p for p in levels] if side == BUY else levels
    probe = -price if side == BUY else price
    i = bisect.bisect_left(keyed, probe)
    if i == len(levels) or levels[i] != price:
        levels.insert(i, price)


def process_add(view: StateView, record: RestingRecord) -> bytes:
    """Rest ``record`` at the back of its level; return its book key."""
    key = keys.compute_book_key(record.slot, record.side, record.price, record.seq)
    view.put(key, encode(record))
    queue = get_queue(view, record.slot, record.side, record.price)
    if not queue:
        levels = get_levels(view, record.slot, record.side)
        insert_level(levels, record.side, record.price)
        put_levels(view, record.slot, record.side, levels)
    queue.append(record.seq)
    put_queue(view, record.slot, record.side, record.price, queue)
    return key


def process_remove(view: StateView, record: RestingRecord) -> None:
    """Take a resting order out of its queue (and its level, if it was the last one)."""
    view.delete(keys.compute_book_key(record.slot, record.side, record.price, record.seq))
    queue = get_queue(view, record.slot, record.side, record.price)
    queue.remove(record.seq)
    put_queue(view, record.slot, record.side, record.price, queue)
    if not queue:
        levels = get_levels(view, record.slot, record.side)
        levels.remove(record.price)
        put_levels(view, record.slot, record.side, levels)


def process_clear_side(view: StateView, slot: int, side: int) -> None:
    """Drop a side's levels and queues (its orders are removed by the caller)."""
    for price in get_levels(view, slot, side):
        put_queue(view, slot, side, price, [])
    put_levels(view, slot, side, [])
