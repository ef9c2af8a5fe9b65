"""Asyncio TCP transport between replicas, with a mutually authenticated handshake.

Wire format: every frame is a 4-byte big-endian length followed by that many
bytes; frames above ``max_frame`` are refused on both ends (the reader closes
the connection). Each node dials one outgoing connection per peer and only
writes frames on it; incoming connections are only read.

Handshake (the connector C dials the acceptor A; both are in the validator set
and sign with their replica Ed25519 keys)::

    A -> C  TcpChallenge(chain_id, A, a)              a: fresh 32 random bytes
    C -> A  TcpHello(chain_id, C, A, a, c, sig_C)     c: fresh 32 random bytes
    A -> C  TcpWelcome(chain_id, A, C, c, a, sig_A)

``sig_C`` covers ``encode(HelloBody(chain_id, C, A, a, c))`` under
:data:`HELLO_TAG`, ``sig_A`` covers ``encode(WelcomeBody(chain_id, A, C, c, a))``
under :data:`WELCOME_TAG` (distinct tags: a welcome can never pass as a hello).
A checks the chain id, that the hello is addressed to A, that C is a known peer,
that ``a`` is the challenge it just sent (so a hello captured from an earlier
connection is useless) and ``sig_C`` against C's key in the validator set; C
checks the same of the welcome against the key of the replica it meant to
dial. Any failure closes the connection, is counted per reason
(:meth:`TcpTransport.get_auth_failures`) and logged at warning level the first
time for each reason, then at debug level. A's reader hands frames to the
receiver only after the handshake, attributed to the authenticated C. The
whole handshake must finish within ``handshake_timeout`` seconds on both
sides, and at most ``max_pending`` incoming connections may be mid-handshake
at once (further ones are closed at once).

The handshake authenticates the endpoints against any process that can open a
connection but lacks the replica key; it does not encrypt or MAC the frames
that follow (an on-path attacker able to hijack an established TCP stream is
out of scope; consensus envelopes stay individually signed).

Each peer has a bounded outgoing queue drained by its own writer task; when
the queue is full the oldest frame is dropped (PBFT recovers lost messages
through retransmission, view change or state transfer), so a slow or dead peer
never blocks the event loop or the other peers. A lost or refused connection
is redialled with exponential back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import struct
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from gridledger.consensus.transport import Receiver, TransportError
from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.hashing import HashTag, register_tag
from gridledger.crypto.rng import SYSTEM_RNG, Rng
from gridledger.crypto.signatures import Ed25519PrivateKey, Ed25519PublicKey
from gridledger.errors import CryptoError, GridledgerError
from gridledger.ledger.certificate import Validator

log = logging.getLogger(__name__)

DEFAULT_MAX_FRAME = 32 * 1024 * 1024
DEFAULT_QUEUE_FRAMES = 20_000
DEFAULT_HANDSHAKE_TIMEOUT = 5.0
DEFAULT_MAX_PENDING = 64
CHALLENGE_SIZE = 32
_HANDSHAKE_MAX_FRAME = 1024
_HEADER = struct.Struct(">I")
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0

HELLO_TAG = register_tag("gridledger/consensus/tcp-hello/1")
WELCOME_TAG = register_tag("gridledger/consensus/tcp-welcome/1")


@wire_type("consensus.tcp-challenge/1")
@dataclass(frozen=True)
class TcpChallenge:
    """First frame of the acceptor: who it is and a fresh challenge."""

    chain_id: str
    acceptor: int
    challenge: bytes


@wire_type("consensus.tcp-hello-body/1")
@dataclass(frozen=True)
class HelloBody:
    """What the connector signs: the acceptor's challenge and its own."""

    chain_id: str
    sender: int
    receiver: int
    acceptor_challenge: bytes
    connector_challenge: bytes


@wire_type("consensus.tcp-hello/1")
@dataclass(frozen=True)
class TcpHello:
    body: HelloBody
    signature: bytes


@wire_type("consensus.tcp-welcome-body/1")
@dataclass(frozen=True)
class WelcomeBody:
    """What the acceptor signs back: the connector's challenge (and its own)."""

    chain_id: str
    sender: int
    receiver: int
    connector_challenge: bytes
    acceptor_challenge: bytes


@wire_type("consensus.tcp-welcome/1")
@dataclass(frozen=True)
class TcpWelcome:
    body: WelcomeBody
    signature: bytes


class HandshakeError(TransportError):
    """The peer failed the authenticated handshake; ``kind`` names the reason."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


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


def compute_hello(
    key: Ed25519PrivateKey,
    chain_id: str,
    sender: int,
    receiver: int,
    acceptor_challenge: bytes,
    connector_challenge: bytes,
) -> bytes:
    """The encoded, signed hello of ``sender`` answering ``receiver``'s challenge."""
    body = HelloBody(chain_id, sender, receiver, acceptor_challenge, connector_challenge)
    return encode(TcpHello(body, key.sign(HELLO_TAG, encode(body))))


def compute_welcome(
    key: Ed25519PrivateKey,
    chain_id: str,
    sender: int,
    receiver: int,
    connector_challenge: bytes,
    acceptor_challenge: bytes,
) -> bytes:
    """The encoded, signed welcome of acceptor ``sender`` to connector ``receiver``."""
    body = WelcomeBody(chain_id, sender, receiver, connector_challenge, acceptor_challenge)
    return encode(TcpWelcome(body, key.sign(WELCOME_TAG, encode(body))))


_M = TypeVar("_M", TcpChallenge, TcpHello, TcpWelcome)


def _decode(cls: type[_M], frame: bytes) -> _M:
    try:
        return decode_as(cls, frame, max_size=_HANDSHAKE_MAX_FRAME)
    except (GridledgerError, ValueError, TypeError):
        raise HandshakeError("malformed", f"not a {cls.__name__} frame") from None


def _check_challenge(got: bytes, expected: bytes) -> None:
    if len(got) != CHALLENGE_SIZE or not hmac.compare_digest(got, expected):
        raise HandshakeError("wrong-challenge", "the signed challenge is not the one sent")


def _check_signature(
    key: Ed25519PublicKey, tag: HashTag, body: HelloBody | WelcomeBody, signature: bytes
) -> None:
    try:
        key.verify(tag, encode(body), signature)
    except CryptoError:
        raise HandshakeError("bad-signature", f"signature of replica {body.sender}") from None


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
        key: Ed25519PrivateKey,
        validators: Sequence[Validator],
        max_frame: int = DEFAULT_MAX_FRAME,
        max_queue: int = DEFAULT_QUEUE_FRAMES,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        max_pending: int = DEFAULT_MAX_PENDING,
        rng: Rng = SYSTEM_RNG,
    ) -> None:
        self.node_id = node_id
        self.chain_id = chain_id
        self.listen = listen
        self.max_frame = max_frame
        self.handshake_timeout = handshake_timeout
        self.max_pending = max_pending
        self._key = key
        self._rng = rng
        self._keys = {v.replica_id: Ed25519PublicKey(v.public_key) for v in validators}
        if self._keys.get(node_id) != key.public_key:
            raise TransportError(f"the key is not replica {node_id}'s key in the validator set")
        self._peers = {
            pid: _Peer(pid, host, port, max_queue)
            for pid, (host, port) in peers.items()
            if pid != node_id and pid in self._keys
        }
        self._receiver: Receiver | None = None
        self._server: asyncio.Server | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._pending = 0
        self._auth_failures: Counter[str] = Counter()
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
        """The peers with an open, authenticated outgoing connection right now."""
        return sorted(p.peer_id for p in self._peers.values() if p.connected)

    def get_dropped(self) -> dict[int, int]:
        """Frames dropped per peer because its queue was full."""
        return {p.peer_id: p.dropped for p in self._peers.values()}

    def get_auth_failures(self) -> dict[str, int]:
        """Failed handshakes (both directions) per reason, e.g. ``{"bad-signature": 2}``."""
        return dict(self._auth_failures)

    def _on_auth_failure(self, kind: str, detail: str, where: str) -> None:
        self._auth_failures[kind] += 1
        count = self._auth_failures[kind]
        # warning the first time per reason, then debug: a spoofer cannot flood the log
        level = logging.WARNING if count == 1 else logging.DEBUG
        log.log(
            level,
            "replica %d: %s handshake refused (%s, %d so far): %s",
            self.node_id,
            where,
            kind,
            count,
            detail,
        )

    # -- outgoing ---------------------------------------------------------------

    async def _run_peer(self, peer: _Peer) -> None:
        backoff = _BACKOFF_MIN
        while not self._closing:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(peer.host, peer.port), timeout=2.0
                )
            except (OSError, TimeoutError):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            try:
                try:
                    await asyncio.wait_for(
                        self._connector_handshake(peer, reader, writer), self.handshake_timeout
                    )
                except HandshakeError as exc:
                    self._on_auth_failure(exc.kind, exc.reason, f"outgoing to {peer.peer_id}")
                    raise ConnectionError("handshake refused") from None
                except (TransportError, asyncio.IncompleteReadError, TimeoutError):
                    raise ConnectionError("handshake failed") from None
                backoff = _BACKOFF_MIN
                peer.connected = True
                await self._drain_queue(peer, writer)
            except (OSError, ConnectionError):
                log.debug("connection to replica %d lost", peer.peer_id)
                if not peer.connected:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
            finally:
                peer.connected = False
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    async def _connector_handshake(
        self, peer: _Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        challenge = _decode(TcpChallenge, await read_frame(reader, _HANDSHAKE_MAX_FRAME))
        if challenge.chain_id != self.chain_id:
            raise HandshakeError("wrong-chain", f"challenge for chain {challenge.chain_id!r}")
        if challenge.acceptor != peer.peer_id:
            raise HandshakeError("wrong-replica", f"reached replica {challenge.acceptor}")
        if len(challenge.challenge) != CHALLENGE_SIZE:
            raise HandshakeError("malformed", "challenge of the wrong size")
        mine = self._rng.random_bytes(CHALLENGE_SIZE)
        hello = compute_hello(
            self._key, self.chain_id, self.node_id, peer.peer_id, challenge.challenge, mine
        )
        writer.write(encode_frame(hello))
        await writer.drain()
        welcome = _decode(TcpWelcome, await read_frame(reader, _HANDSHAKE_MAX_FRAME))
        body = welcome.body
        if body.chain_id != self.chain_id:
            raise HandshakeError("wrong-chain", f"welcome for chain {body.chain_id!r}")
        if body.sender != peer.peer_id or body.receiver != self.node_id:
            raise HandshakeError("wrong-replica", f"welcome from {body.sender} to {body.receiver}")
        _check_challenge(body.connector_challenge, mine)
        _check_challenge(body.acceptor_challenge, challenge.challenge)
        _check_signature(self._keys[peer.peer_id], WELCOME_TAG, body, welcome.signature)

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

    async def _acceptor_handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> int:
        """Challenge the connector, check its hello, sign its challenge back; its id."""
        mine = self._rng.random_bytes(CHALLENGE_SIZE)
        writer.write(encode_frame(encode(TcpChallenge(self.chain_id, self.node_id, mine))))
        await writer.drain()
        hello = _decode(TcpHello, await read_frame(reader, _HANDSHAKE_MAX_FRAME))
        body = hello.body
        if body.chain_id != self.chain_id:
            raise HandshakeError("wrong-chain", f"hello for chain {body.chain_id!r}")
        if body.receiver != self.node_id:
            raise HandshakeError("wrong-replica", f"hello addressed to replica {body.receiver}")
        if body.sender not in self._peers:
            raise HandshakeError("unknown-replica", f"hello from unknown replica {body.sender}")
        _check_challenge(body.acceptor_challenge, mine)
        if len(body.connector_challenge) != CHALLENGE_SIZE:
            raise HandshakeError("malformed", "connector challenge of the wrong size")
        _check_signature(self._keys[body.sender], HELLO_TAG, body, hello.signature)
        welcome = compute_welcome(
            self._key, self.chain_id, self.node_id, body.sender, body.connector_challenge, mine
        )
        writer.write(encode_frame(welcome))
        await writer.drain()
        return body.sender

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._readers.add(task)
        pending = False
        try:
            if self._pending >= self.max_pending:
                raise HandshakeError("too-many-pending", f"{self._pending} handshakes under way")
            self._pending += 1
            pending = True
            sender = await asyncio.wait_for(
                self._acceptor_handshake(reader, writer), self.handshake_timeout
            )
            self._pending -= 1
            pending = False
            while True:
                frame = await read_frame(reader, self.max_frame)
                if self._receiver is not None:
                    self._receiver(sender, frame)
        except HandshakeError as exc:
            self._on_auth_failure(exc.kind, exc.reason, "incoming")
        except TimeoutError:
            self._on_auth_failure("timeout", "no handshake in time", "incoming")
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # closing: asyncio's stream callback must not see a cancelled task
        except TransportError as exc:
            log.warning("dropping incoming connection: %s", exc.reason)
        finally:
            if pending:
                self._pending -= 1
            if task is not None:
                self._readers.discard(task)
            writer.close()
