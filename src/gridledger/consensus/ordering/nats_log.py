"""The log adapter: the replica shell's NATS JetStream client for the ``jetstream`` engine.

The engine is pure; this is the edge. It

* makes sure the chain's stream exists (``num_replicas`` from the genesis,
  file storage, a 2-minute deduplication window);
* publishes what the engine asks to append with ``Nats-Msg-Id`` set to the
  entry's key, retrying (bounded) across a server failover: a retry of a
  stored entry is answered as a duplicate, so nothing is stored twice;
* consumes the stream with an ordered consumer starting after the replica's
  log position and hands each entry, in stream order, to a callback (the
  shell then calls ``NodeCore.on_log``).

An append is *acknowledged* when JetStream answered with a sequence number: by
then a majority of the stream's replicas stored it, and it will be consumed by
every replica even if a server or the appending replica crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from gridledger.consensus.ordering.config import compute_stream_name, compute_subject
from gridledger.errors import ConsensusError

DEDUP_WINDOW_S = 120.0
APPEND_TIMEOUT_S = 2.0
APPEND_ATTEMPTS = 200
APPEND_DEADLINE_S = 30.0
START_ATTEMPTS = 40


class LogUnavailable(ConsensusError):
    """The ordering service did not acknowledge an append (after bounded retries)."""


class JetStreamLog:
    """One replica's connection to the chain's stream."""

    def __init__(self, servers: Sequence[str], chain_id: str, stream_replicas: int) -> None:
        self.servers = list(servers)
        self.stream = compute_stream_name(chain_id)
        self.subject = compute_subject(chain_id)
        self.stream_replicas = stream_replicas
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._sub: object | None = None
        self.appended = 0
        self.duplicates = 0
        self.retries = 0

    async def start(self, after_seq: int, on_entry: Callable[[int, bytes], None]) -> None:
        """Connect, ensure the stream, deliver every entry after ``after_seq`` to ``on_entry``."""
        self._nc = await nats.connect(
            servers=self.servers,
            connect_timeout=2,
            reconnect_time_wait=0.1,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
        )
        self._js = self._nc.jetstream(timeout=APPEND_TIMEOUT_S)
        await self._ensure_stream()

        async def deliver(msg: Msg) -> None:
            on_entry(msg.metadata.sequence.stream, msg.data)

        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1
        )
        for attempt in range(START_ATTEMPTS):  # a failover may be electing a stream leader
            try:
                self._sub = await self._js.subscribe(
                    self.subject,
                    cb=deliver,
                    ordered_consumer=True,
                    config=config,
                    idle_heartbeat=0.5,
                )
                return
            except (TimeoutError, NatsError):
                if attempt == START_ATTEMPTS - 1:
                    raise LogUnavailable(f"cannot consume stream {self.stream}") from None
                await asyncio.sleep(0.25)

    async def _ensure_stream(self) -> None:
        assert self._js is not None
        config = StreamConfig(
            name=self.stream,
            subjects=[self.subject],
            num_replicas=self.stream_replicas,
            storage=StorageType.FILE,
            duplicate_window=DEDUP_WINDOW_S,
        )
        for attempt in range(START_ATTEMPTS):
            try:
                await self._js.add_stream(config)
                return
            except BadRequestError:
                return  # it exists (another replica created it)
            except (TimeoutError, NatsError):
                if attempt == START_ATTEMPTS - 1:
                    raise LogUnavailable(f"cannot create stream {self.stream}") from None
                await asyncio.sleep(0.25)  # the cluster is still electing its meta leader

    async def append(self, key: str, payload: bytes) -> int:
        """Append once per ``key``; the entry's stream sequence once acknowledged.

        Retries for up to :data:`APPEND_DEADLINE_S` (a failover answers "no
        responders" until the stream has elected a new leader), at most
        :data:`APPEND_ATTEMPTS` times; a retry of an entry already stored is
        answered as a duplicate with its original sequence.
        """
        assert self._js is not None, "start() first"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + APPEND_DEADLINE_S
        for attempt in range(APPEND_ATTEMPTS):
            try:
                ack = await self._js.publish(
                    self.subject, payload, headers={"Nats-Msg-Id": key}, timeout=APPEND_TIMEOUT_S
                )
            except (TimeoutError, NatsError):
                self.retries += 1
                if loop.time() >= deadline or self._nc is None or self._nc.is_closed:
                    break  # out of time, or this replica closed its connection (stopping)
                await asyncio.sleep(min(0.5, 0.05 * 2**attempt))
                continue
            if ack.duplicate:
                self.duplicates += 1
            else:
                self.appended += 1
            return ack.seq
        raise LogUnavailable(f"no acknowledgement for {key!r} within {APPEND_DEADLINE_S} s")

    async def close(self) -> None:
        if self._nc is not None:
            nc, self._nc = self._nc, None
            with contextlib.suppress(NatsError):
                await nc.close()
