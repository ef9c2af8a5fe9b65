"""The transport interface between replicas.

A replica hands opaque frames (the canonical bytes of a signed envelope, or a
state-transfer request) to a :class:`Transport` and receives frames from it
through one callback, tagged with the sender's replica id. The transport does
not interpret the frames; every consensus message also carries its sender's
signature, checked by the replica. The sender id handed to the receiver must be
authenticated by the transport (node-level messages such as sync status and
block replies are attributed to it): :class:`~gridledger.consensus.tcp.TcpTransport`
runs a mutual Ed25519 challenge-response handshake per connection, with an
ephemeral X25519 exchange inside it, and then seals every frame with
ChaCha20-Poly1305 under a per-direction key and a counter nonce, so a frame is
delivered only if the authenticated peer sent it, once, in order
(``docs/protocols/transport.md``). A transport never raises into the receiver's
caller for a bad frame: it drops the frame's connection and counts the reason.
Implementations: :class:`~gridledger.consensus.tcp.TcpTransport` (asyncio TCP
on loopback) and :class:`MemoryHub` / :class:`MemoryTransport`
(in-process, for tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from gridledger.errors import ConsensusError

Receiver = Callable[[int, bytes], None]
"""Called with ``(sender_id, frame)`` for every frame that arrives."""


class TransportError(ConsensusError):
    """A frame could not be sent or received (unknown peer, frame too large, closed)."""


class Transport(Protocol):
    """Frames between the replicas of one consortium."""

    node_id: int

    def set_receiver(self, receiver: Receiver) -> None:
        """Install the callback that gets every incoming frame."""
        ...

    async def start(self) -> None:
        """Start listening and connecting; returns once the listener is up."""
        ...

    async def close(self) -> None:
        """Stop every connection and task; pending frames are dropped."""
        ...

    def send(self, to: int, frame: bytes) -> None:
        """Queue ``frame`` for peer ``to``; never blocks, may drop if the queue is full."""
        ...

    def broadcast(self, frame: bytes) -> None:
        """Queue ``frame`` for every peer except this node."""
        ...

    def get_connected_peers(self) -> list[int]:
        """The peers with an open outgoing connection right now."""
        ...


class MemoryHub:
    """An in-process network joining :class:`MemoryTransport` endpoints (for tests)."""

    def __init__(self) -> None:
        self.endpoints: dict[int, MemoryTransport] = {}
        self.down: set[int] = set()

    def attach(self, node_id: int) -> MemoryTransport:
        endpoint = MemoryTransport(self, node_id)
        self.endpoints[node_id] = endpoint
        return endpoint

    def deliver(self, sender: int, to: int, frame: bytes) -> None:
        target = self.endpoints.get(to)
        if target is None or to in self.down or sender in self.down:
            return
        loop = asyncio.get_running_loop()
        loop.call_soon(target.on_frame, sender, frame)


class MemoryTransport:
    """One endpoint on a :class:`MemoryHub`; delivery is asynchronous but in order."""

    def __init__(self, hub: MemoryHub, node_id: int) -> None:
        self.hub = hub
        self.node_id = node_id
        self._receiver: Receiver | None = None
        self._open = False

    def set_receiver(self, receiver: Receiver) -> None:
        self._receiver = receiver

    async def start(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    def on_frame(self, sender: int, frame: bytes) -> None:
        if self._open and self._receiver is not None:
            self._receiver(sender, frame)

    def send(self, to: int, frame: bytes) -> None:
        if self._open and to != self.node_id:
            self.hub.deliver(self.node_id, to, frame)

    def broadcast(self, frame: bytes) -> None:
        for peer in self.hub.endpoints:
            self.send(peer, frame)

    def get_connected_peers(self) -> list[int]:
        return sorted(p for p in self.hub.endpoints if p != self.node_id)
