"""A simulated network in simulated time: seeded drop, delay, duplicate, reorder, partition.

The hub is a discrete-event scheduler and a link model in one: drivers schedule
events (a tick, a client request, a crash) with :meth:`SimHub.schedule`, replicas
hand frames to :meth:`SimHub.transmit`, and :meth:`SimHub.run_until` pops events
in ``(time, insertion order)`` order and hands each to the driver's dispatcher.
Every random choice comes from one :class:`~gridledger.crypto.rng.DeterministicRng`,
so the same seed gives the same trace, byte for byte.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gridledger.crypto.rng import DeterministicRng

PPM = 1_000_000


@dataclass(frozen=True)
class Partition:
    """From ``start_ms`` until ``end_ms`` only replicas in the same group can talk."""

    start_ms: int
    end_ms: int
    groups: tuple[frozenset[int], ...]

    def is_cut(self, a: int, b: int, now_ms: int) -> bool:
        if not self.start_ms <= now_ms < self.end_ms:
            return False
        return not any(a in g and b in g for g in self.groups)


@dataclass
class LinkStats:
    """What the links carried."""

    messages: int = 0  # frames handed to the network
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0


@dataclass(frozen=True)
class NetworkModel:
    """How links behave: loss, delay range, duplication, reordering, partitions."""

    drop_rate: float = 0.0
    delay_ms: tuple[int, int] = (1, 10)
    duplicate_rate: float = 0.0
    reorder: bool = True
    partitions: tuple[Partition, ...] = field(default_factory=tuple)


Event = tuple[int, int, str, int, object]  # (time, order, kind, target, payload)
Dispatcher = Callable[[str, int, object], None]


class SimHub:
    """The event queue and the links of one simulation."""

    def __init__(self, model: NetworkModel, rng: DeterministicRng) -> None:
        self.model = model
        self.rng = rng
        self.drop_ppm = int(model.drop_rate * PPM)
        self.duplicate_ppm = int(model.duplicate_rate * PPM)
        self.partitions: list[Partition] = list(model.partitions)
        self.now_ms = 0
        self.stats = LinkStats()
        self._queue: list[Event] = []
        self._order = 0
        self._link_clock: dict[tuple[int, int], int] = {}

    def schedule(self, at_ms: int, kind: str, target: int, payload: object) -> None:
        """Run ``(kind, target, payload)`` through the dispatcher at ``at_ms``."""
        self._order += 1
        heapq.heappush(self._queue, (at_ms, self._order, kind, target, payload))

    def get_delay(self) -> int:
        lo, hi = self.model.delay_ms
        return lo + self.rng.randbelow(hi - lo + 1)

    def is_cut(self, a: int, b: int) -> bool:
        return any(p.is_cut(a, b, self.now_ms) for p in self.partitions)

    def transmit(self, sender: int, to: int, frame: bytes, kind: str = "deliver") -> None:
        """Put one frame on the link sender → to, subject to every fault of the model."""
        self.stats.messages += 1
        if self.is_cut(sender, to) or self.rng.randbelow(PPM) < self.drop_ppm:
            self.stats.dropped += 1
            return
        copies = 2 if self.rng.randbelow(PPM) < self.duplicate_ppm else 1
        self.stats.duplicated += copies - 1
        for _ in range(copies):
            at = self.now_ms + self.get_delay()
            if not self.model.reorder:
                at = max(at, self._link_clock.get((sender, to), 0))
                self._link_clock[(sender, to)] = at
            self.schedule(at, kind, to, (sender, frame))

    def run_until(self, until_ms: int, dispatch: Dispatcher, max_events: int = 2_000_000) -> None:
        """Process events in time order up to ``until_ms`` (or ``max_events`` of them)."""
        for _ in range(max_events):
            if not self._queue or self._queue[0][0] > until_ms:
                break
            at, _, kind, target, payload = heapq.heappop(self._queue)
            self.now_ms = at
            dispatch(kind, target, payload)
        self.now_ms = max(self.now_ms, until_ms)

    def has_events_before(self, until_ms: int) -> bool:
        return bool(self._queue) and self._queue[0][0] <= until_ms


def compute_targets(sender: int, replicas: Sequence[int], to: int | None) -> list[int]:
    """The receivers of a send (``to``) or a broadcast (``None``: everyone but the sender)."""
    return [to] if to is not None else [r for r in replicas if r != sender]
