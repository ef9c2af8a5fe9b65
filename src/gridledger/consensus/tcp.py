"""Asyncio TCP transport between replicas.

Wire format: every frame is a 4-byte big-endian length followed by that many
bytes; frames above ``max_frame`` are refused on both ends (the reader closes
the connection). Each node dials one outgoing connection per peer and only
writes on it; the first frame it sends is a hello naming its replica id (and
the chain id, so that two consortia on one host cannot cross wires). Incoming
connections are only read.

Each peer has a bounded outgoing queue drained by its own writer task; when
the queue is full the oldest frame is dropped (PBFT recovers lost messages
through retransmission, view change or state transfer), so a slow or dead peer
never blocks the event loop or the other peers. A lost connection is redialled
with exponential back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque

from gridledger.consensus.transport import Receiver, TransportError

log = logging.getLogger(__name__)

DEFAULT_MAX_FRAME = 32 * 1024 * 1024
DEFAULT_QUEUE_FRAMES = 20_000
_HEADER = struct.Struct(">I")
_HELLO_MAGIC = b"GLTCP1\x00"
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0


def encode_frame(payload: bytes) -> bytes:
    """Length prefix + payload."""
    return _HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader, max_frame: int) -> bytes:
    """Read one length-prefixed frame; raise :class:`TransportError` if it is too large."""
    header = await reader.readexactly(_HEADER.size)
    (size,) = _HEADER.unpack(header)
    if size > max_frame:
        raise TransportError(f"frame of {size} bytes exceeds the limit of {max_frame}")
    return await reader.readexactly(size)


def compute_hello(node_id: int, chain_id: str) -> bytes:
    return _HELLO_MAGIC + _HEADER.pack(node_id) + chain_id.encode()


def parse_hello(frame: bytes, chain_id: str) -> int:
    """The sender id of a hello frame, or :class:`TransportError`."""
    n = len(_HELLO_MAGIC)
    if not frame.startswith(_HELLO_MAGIC) or len(frame) < n + _HEADER.size:
        raise TransportError("not a hello frame")
    (sender,) = _HEADER.unpack(frame[n : n + _HEADER.size])
    if frame[n + _HEADER.size :].decode(errors="replace") != chain_id:
        raise TransportError("hello from another chain")
    return int(sender)


class _Peer:
    """Outgoing side of one peer: a bounded queue and a writer task."""

    def __init__(self, peer_id: int, host: str, port: int, max_frames: int) -> None:
        self.peer_id = peer_id
        self.host = host
        self.port = port
        self.queue: deque[bytes] = deque(maxlen=max_frames)
        self.wakeup = asyncio.Event()
        self.connected = False
        self.dropped = 0
        self.task: asyncio.Task[None] | None = None

    def push(self, frame: bytes) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(frame)
        self.wakeup.set()


class TcpTransport:
    """Frames between replicas over asyncio TCP (see the module docstring)."""

    def __init__(
        self,
        node_id: int,
        chain_id: str,
        listen: tuple[str, int],
        peers: dict[int, tuple[str, int]],
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_queue: int = DEFAULT_QUEUE_FRAMES,
    ) -> None:
        self.node_id = node_id
        self.chain_id = chain_id
        self.listen = listen
        self.max_frame = max_frame
        self._peers = {
            pid: _Peer(pid, host, port, max_queue)
            for pid, (host, port) in peers.items()
            if pid != node_id
        }
        self._receiver: Receiver | None = None
        self._server: asyncio.Server | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def port(self) -> int:
        """The bound port (useful when listening on port 0)."""
        if self._server is None or not self._server.sockets:
            return self.listen[1]
        return int(self._server.sockets[0].getsockname()[1])

    def set_receiver(self, receiver: Receiver) -> None:
        self._receiver = receiver

    def set_peer_address(self, peer_id: int, host: str, port: int) -> None:
        """Change where a peer is dialled (before :meth:`start`, or for tests)."""
        peer = self._peers[peer_id]
        peer.host, peer.port = host, port

    async def start(self) -> None:
        host, port = self.listen
        try:
            self._server = await asyncio.start_server(self._on_connection, host, port)
        except OSError as exc:
            raise TransportError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        for peer in self._peers.values():
            peer.task = asyncio.create_task(self._run_peer(peer), name=f"tcp-peer-{peer.peer_id}")

    async def close(self) -> None:
        self._closing = True
        tasks = [p.task for p in self._peers.values() if p.task is not None]
        tasks += list(self._readers)
        for task in tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def send(self, to: int, frame: bytes) -> None:
        if len(frame) > self.max_frame:
            raise TransportError(f"frame of {len(frame)} bytes exceeds the limit")
        peer = self._peers.get(to)
        if peer is None:
            raise TransportError(f"unknown peer {to}")
        peer.push(frame)

    def broadcast(self, frame: bytes) -> None:
        if len(frame) > self.max_frame:
            raise TransportError(f"frame of {len(frame)} bytes exceeds the limit")
        for peer in self._peers.values():
            peer.push(frame)

    def get_connected_peers(self) -> list[int]:
        return sorted(p.peer_id for p in self._peers.values() if p.connected)

    def get_dropped(self) -> dict[int, int]:
        """Frames dropped per peer because its queue was full."""
        return {p.peer_id: p.dropped for p in self._peers.values()}

    # -- outgoing ---------------------------------------------------------------

    async def _run_peer(self, peer: _Peer) -> None:
        backoff = _BACKOFF_MIN
        while not self._closing:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(peer.host, peer.port), timeout=2.0
                )
            except (OSError, TimeoutError):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            backoff = _BACKOFF_MIN
            peer.connected = True
            try:
                writer.write(encode_frame(compute_hello(self.node_id, self.chain_id)))
                await self._drain_queue(peer, writer)
            except (OSError, ConnectionError):
                log.debug("connection to replica %d lost", peer.peer_id)
            finally:
                peer.connected = False
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    async def _drain_queue(self, peer: _Peer, writer: asyncio.StreamWriter) -> None:
        while not self._closing:
            if not peer.queue:
                peer.wakeup.clear()
                await peer.wakeup.wait()
            chunks: list[bytes] = []
            size = 0
            while peer.queue and size < 4 * 1024 * 1024:
                frame = peer.queue.popleft()
                chunks.append(encode_frame(frame))
                size += len(frame)
            writer.writelines(chunks)
            await writer.drain()
            if writer.is_closing():
                raise ConnectionError("closed")

    # -- incoming ---------------------------------------------------------------

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._readers.add(task)
        try:
            hello = await asyncio.wait_for(read_frame(reader, 1024), timeout=5.0)
            sender = parse_hello(hello, self.chain_id)
            if sender not in self._peers:
                raise TransportError(f"hello from unknown replica {sender}")
            while True:
                frame = await read_frame(reader, self.max_frame)
                if self._receiver is not None:
                    self._receiver(sender, frame)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass  # closing: asyncio's stream callback must not see a cancelled task
        except TransportError as exc:
            log.warning("dropping incoming connection: %s", exc.reason)
        finally:
            if task is not None:
                self._readers.discard(task)
            writer.close()
