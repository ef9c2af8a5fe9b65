"""Server-sent events: a committed block and its trades reach a subscriber of another replica."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx

from gridledger.node.http.stream import QUEUE_SIZE, Broadcaster, compute_sse
from tests.market.helpers import World
from tests.node.http.helpers import RunningConsortium, make_crossing_orders


def read_events(
    response: httpx.Response, wanted: set[str], timeout: float
) -> list[tuple[str, Any]]:
    """Events from an open stream until every kind in ``wanted`` was seen (bounded in time)."""
    events: list[tuple[str, Any]] = []
    event = ""
    deadline = time.monotonic() + timeout
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            events.append((event, json.loads(line[6:])))
            if wanted <= {e for e, _ in events}:
                break
        if time.monotonic() > deadline:
            raise AssertionError(f"no {wanted} within {timeout}s; got {events[:3]}")
    return events


def test_blocks_and_trades_are_streamed(consortium: RunningConsortium, live_world: World) -> None:
    txs = make_crossing_orders(live_world, 3)
    url = consortium.url(2) + "/v1/stream"
    with httpx.stream("GET", url, params={"topics": "blocks,trades"}, timeout=15) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        sender = threading.Thread(target=consortium.submit, args=(txs,), daemon=True)
        sender.start()
        events = read_events(response, {"block", "trade"}, 15)
        sender.join(20)
    block = next(data for kind, data in events if kind == "block")
    trade = next(data for kind, data in events if kind == "trade")
    assert block["height"] >= 1 and len(block["hash"]) == 64
    assert set(trade) == {"height", "timestamp_ms", "slot", "price", "quantity"}
    deadline = time.monotonic() + 5
    while consortium.replicas[2].broadcaster.count and time.monotonic() < deadline:
        time.sleep(0.05)  # the closed stream is unsubscribed
    assert consortium.replicas[2].broadcaster.count == 0


def test_blocks_only_stream_gets_no_trades() -> None:
    async def scenario() -> None:
        hub = Broadcaster()
        blocks = hub.subscribe(frozenset({"blocks"}))
        trades = hub.subscribe(frozenset({"trades"}))
        hub.on_block({"height": 1}, [{"price": 5}, {"price": 6}])
        assert blocks.queue.qsize() == 1 and trades.queue.qsize() == 2

    asyncio.run(scenario())


def test_a_slow_subscriber_is_dropped_not_waited_for() -> None:
    async def scenario() -> None:
        hub = Broadcaster()
        slow = hub.subscribe(frozenset({"blocks"}))
        fast = hub.subscribe(frozenset({"blocks"}))
        for h in range(QUEUE_SIZE + 5):
            hub.on_block({"height": h}, [])
            while not fast.queue.empty():
                fast.queue.get_nowait()
        assert slow.dropped and not fast.dropped
        assert hub.count == 1 and hub.dropped == 1
        texts = [t async for t in hub.iter_events(slow)]
        assert texts == ["retry: 2000\n: connected\n\n"]  # the stream ends at once

    asyncio.run(scenario())


def test_sse_text_is_one_event() -> None:
    text = compute_sse("block", {"a": "x\ny"}, 7)
    assert text == 'event: block\nid: 7\ndata: {"a":"x\\ny"}\n\n'
    assert text.count("\n\n") == 1
