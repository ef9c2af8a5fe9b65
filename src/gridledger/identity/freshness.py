"""Timestamps and nonces against replay, with a replay cache of bounded size.

A message is *fresh* if its timestamp lies within ``window_s`` of ``now`` and
its nonce has not been seen. Remembering every nonce forever would grow
without bound, so the cache keeps at most ``capacity`` entries; when it must
forget the oldest entry it raises a *floor* to that entry's timestamp and from
then on refuses anything not newer than the floor. A nonce is therefore
forgotten only once no message carrying it can be accepted any more: the
cache never lets a replay through, and under a flood it degrades into a
shorter window rather than into accepting replays.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from gridledger.identity.errors import ExpiredMessage, ReplayDetected

DEFAULT_WINDOW_S = 120
DEFAULT_CAPACITY = 100_000


@dataclass
class ReplayCache:
    """Nonces seen recently, oldest first in a heap, bounded by ``capacity``."""

    window_s: int = DEFAULT_WINDOW_S
    capacity: int = DEFAULT_CAPACITY
    floor: int = -(2**63)
    seen: set[bytes] = field(default_factory=set)
    heap: list[tuple[int, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.capacity <= 0:
            raise ValueError("window and capacity must be positive")


def is_timestamp_fresh(cache: ReplayCache, timestamp: int, now: int) -> bool:
    return abs(now - timestamp) <= cache.window_s and timestamp > cache.floor


def check_fresh(cache: ReplayCache, timestamp: int, nonce: bytes, now: int) -> None:
    """Raise unless ``(timestamp, nonce)`` would be accepted; changes nothing."""
    if not is_timestamp_fresh(cache, timestamp, now):
        raise ExpiredMessage(timestamp, now)
    if nonce in cache.seen:
        raise ReplayDetected(nonce)


def process_nonce(cache: ReplayCache, timestamp: int, nonce: bytes, now: int) -> None:
    """Check and remember ``nonce``; expire old entries, then evict down to capacity."""
    check_fresh(cache, timestamp, nonce, now)
    while cache.heap and cache.heap[0][0] < now - cache.window_s:
        _, old = heapq.heappop(cache.heap)
        cache.seen.discard(old)
    cache.seen.add(nonce)
    heapq.heappush(cache.heap, (timestamp, nonce))
    while len(cache.heap) > cache.capacity:
        ts, old = heapq.heappop(cache.heap)
        cache.seen.discard(old)
        cache.floor = max(cache.floor, ts)
