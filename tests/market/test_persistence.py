"""The market's state survives a replica restart: reopened from SQLite, the same root, and
trading continues where it stopped, price-time priority intact (the contract keeps nothing
outside state)."""

from __future__ import annotations

from pathlib import Path

from gridledger.crypto.encoding import decode_as
from gridledger.ledger.storage_sqlite import SqliteBlockStore
from gridledger.market import keys
from gridledger.market.messages import OrderReceipt, Trade

from .helpers import World, make_chain


def test_reopened_replica_continues_the_book(tmp_path: Path, world: World) -> None:
    a, b, c = world.pseudonyms[:3]
    first = make_chain(world, store=SqliteBlockStore(tmp_path / "chain.sqlite"))
    first.commit_ok(first.order(a, 10, 100)[0], first.order(b, 5, 101)[0])
    root, height, now = first.ledger.state.root, first.ledger.height, first.now_ms
    first.ledger.store.close()

    again = make_chain(world, store=SqliteBlockStore(tmp_path / "chain.sqlite"))
    assert (again.ledger.state.root, again.ledger.height) == (root, height)
    again.now_ms, again.nonce = now, first.nonce
    (r,) = again.commit_ok(again.order(c, -12, 105)[0])
    trades = [
        decode_as(Trade, again.get(keys.TRADE + t) or b"")
        for t in decode_as(OrderReceipt, r.data).trades
    ]
    assert [(t.seller, t.quantity) for t in trades] == [(a.raw, 10), (b.raw, 2)]
