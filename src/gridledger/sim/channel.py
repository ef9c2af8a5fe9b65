"""Seed 003's shared broadcast channel: one FIFO queue, one message on the bus at a time.

Two models (``[channel] model``):

* ``fixed``: every message occupies the bus for ``message_ms``, "independently
  of its length" (seed 003 §7: 30 ms); it is delivered when its slot ends.
* ``lan``: a message occupies the bus for ``size * 8 / bandwidth`` and is
  delivered ``latency_ms`` after that (the bus is free again meanwhile).

The channel is pure bookkeeping in simulated time (integer microseconds): the
simulation asks :meth:`Channel.on_enqueue` and :meth:`Channel.on_sent` what to
schedule; nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from gridledger.sim.scenario import ChannelSpec

__all__ = ["Channel", "Kind", "Message", "QueueTrace"]


class Kind(Enum):
    """Seed 003's messages (papers_features.md §4.4), with a nominal size in bytes.

    Sizes are what our encodings of each message would take (X25519 keys,
    RSA-2048 coins, HPKE overhead, a 32-byte HMAC); they matter only for the
    ``lan`` channel model.
    """

    OFFER = ("Offer", 100)
    REQUEST = ("Request", 56)
    PAIRING = ("Pairing", 170)
    PAYMENT = ("Payment", 470)
    COIN_CHECK = ("CoinCheck", 420)
    COIN_CHECK_ANSWER = ("CoinCheckAnswer", 130)
    WITHDRAW_REQUEST = ("WithdrawRequest", 360)
    WITHDRAW_SIGNATURE = ("WithdrawSignature", 300)
    RECEIPT = ("Receipt", 110)

    @property
    def label(self) -> str:
        """The paper's name of the message."""
        return self.value[0]

    @property
    def size(self) -> int:
        """Nominal encoded size in bytes."""
        return self.value[1]


@dataclass(frozen=True)
class Message:
    """A message waiting for or on the bus; ``ref`` is the offer, request or pairing id."""

    kind: Kind
    ref: int
    enqueued_us: int


@dataclass
class QueueTrace:
    """Largest number of pending messages in each second of simulated time (Fig. 5)."""

    per_second: dict[int, int] = field(default_factory=dict)
    sent: int = 0
    sent_by_kind: dict[str, int] = field(default_factory=dict)

    def on_length(self, now_us: int, length: int) -> None:
        """Record the queue length at ``now_us``."""
        second = now_us // 1_000_000
        if length > self.per_second.get(second, -1):
            self.per_second[second] = length


class Channel:
    """The FIFO queue of the bus and the timing of the configured model."""

    def __init__(self, spec: ChannelSpec) -> None:
        self.spec = spec
        self.queue: deque[Message] = deque()
        self.busy = False
        self.trace = QueueTrace()

    def compute_airtime_us(self, kind: Kind) -> int:
        """How long ``kind`` occupies the bus."""
        if self.spec.model == "fixed":
            return self.spec.message_ms * 1000
        return max(1, kind.size * 8 * 1000 // self.spec.bandwidth_kbps)

    def compute_latency_us(self) -> int:
        """Delay between the end of a message's airtime and its delivery."""
        return 0 if self.spec.model == "fixed" else self.spec.latency_ms * 1000

    @property
    def pending(self) -> int:
        """Messages waiting, including the one on the bus."""
        return len(self.queue)

    def on_enqueue(self, message: Message, now_us: int) -> Message | None:
        """Queue ``message``; returns it if the bus was idle and it starts now."""
        self.queue.append(message)
        self.trace.on_length(now_us, self.pending)
        if self.busy:
            return None
        self.busy = True
        return message

    def on_sent(self, now_us: int) -> tuple[Message, Message | None]:
        """The head message's airtime ended: returns it and the next one to start, if any."""
        done = self.queue.popleft()
        self.trace.sent += 1
        label = done.kind.label
        self.trace.sent_by_kind[label] = self.trace.sent_by_kind.get(label, 0) + 1
        self.trace.on_length(now_us, self.pending)
        if self.queue:
            return done, self.queue[0]
        self.busy = False
        return done, None
