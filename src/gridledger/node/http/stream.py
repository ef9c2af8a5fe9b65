"""Fan-out of committed blocks and trades to server-sent-event subscribers.

The replica calls :meth:`Broadcaster.on_block` once per ``BlockCommitted``
effect; the event text is built once and put on every subscriber's bounded
queue. A subscriber that falls :data:`QUEUE_SIZE` events behind is dropped
(its stream ends; an ``EventSource`` reconnects and re-reads the lists), so a
slow browser can never hold memory or slow the commit path: publishing is
O(subscribers) queue puts and never awaits.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

QUEUE_SIZE = 256
MAX_SUBSCRIBERS = 1_000
HEARTBEAT_S = 15.0
TOPICS = frozenset({"blocks", "trades"})

_CLOSE = ""


def compute_sse(event: str, data: dict[str, Any], event_id: int) -> str:
    """One server-sent event (``event``, ``id``, one ``data`` line of compact JSON)."""
    body = json.dumps(data, separators=(",", ":"))
    return f"event: {event}\nid: {event_id}\ndata: {body}\n\n"


class Subscriber:
    """One stream: the topics it wants and its queue of pending event texts."""

    def __init__(self, topics: frozenset[str]) -> None:
        self.topics = topics
        self.queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = False


class Broadcaster:
    """Subscribers of one node and what has been published to them."""

    def __init__(self, max_subscribers: int = MAX_SUBSCRIBERS) -> None:
        self.max_subscribers = max_subscribers
        self._subscribers: set[Subscriber] = set()
        self._next_id = 1
        self.published = 0
        self.dropped = 0

    @property
    def count(self) -> int:
        return len(self._subscribers)

    def is_full(self) -> bool:
        return len(self._subscribers) >= self.max_subscribers

    def subscribe(self, topics: frozenset[str]) -> Subscriber:
        sub = Subscriber(topics)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def publish(self, topic: str, event: str, data: dict[str, Any]) -> None:
        """Queue one event for every subscriber of ``topic``; drop the ones that are full."""
        if not self._subscribers:
            return
        text = compute_sse(event, data, self._next_id)
        self._next_id += 1
        self.published += 1
        for sub in list(self._subscribers):
            if topic not in sub.topics:
                continue
            try:
                sub.queue.put_nowait(text)
            except asyncio.QueueFull:
                self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)
        sub.dropped = True
        self.dropped += 1
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(_CLOSE)

    def on_block(self, block: dict[str, Any], trades: list[dict[str, Any]]) -> None:
        """A block was committed: one ``block`` event, one ``trade`` event per public trade."""
        self.publish("blocks", "block", block)
        for trade in trades:
            self.publish("trades", "trade", trade)

    def close(self) -> None:
        """End every stream (the node is stopping)."""
        for sub in list(self._subscribers):
            self._drop(sub)

    async def iter_events(
        self, sub: Subscriber, heartbeat_s: float = HEARTBEAT_S
    ) -> AsyncIterator[str]:
        """The stream's text: a ``retry`` hint, then events; a comment every ``heartbeat_s``."""
        try:
            yield "retry: 2000\n: connected\n\n"
            while True:
                try:
                    async with asyncio.timeout(heartbeat_s):  # no extra task per event
                        text = await sub.queue.get()
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if text == _CLOSE:
                    return
                yield text
        finally:
            self.unsubscribe(sub)
