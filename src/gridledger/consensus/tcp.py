"""Asyncio TCP transport between replicas: a signed handshake, then sealed frames.

Wire format: every frame is a 4-byte big-endian length followed by that many
bytes; frames above the limit are refused on both ends (the reader drops the
connection). Each node dials one outgoing connection per peer and only writes
frames on it; incoming connections are only read.

Handshake (the connector C dials the acceptor A; both are in the validator set
and sign with their replica Ed25519 keys; ``X_A``, ``X_C`` are fresh X25519
public keys)::

    A -> C  TcpChallenge(chain_id, A, a, X_A)                 a: fresh 32 random bytes
    C -> A  TcpHello(chain_id, C, A, a, c, X_A, X_C, sig_C)   c: fresh 32 random bytes
    A -> C  TcpWelcome(chain_id, A, C, c, a, X_C, X_A, sig_A)

``sig_C`` covers ``encode(HelloBody(...))`` under :data:`HELLO_TAG`, ``sig_A``
covers ``encode(WelcomeBody(...))`` under :data:`WELCOME_TAG` (distinct tags: a
welcome can never pass as a hello). A checks the chain id, that the hello is
addressed to A, that C is a known peer, that ``a`` and ``X_A`` are the ones it
just sent (so a hello captured from an earlier connection is useless) and
``sig_C`` against C's key in the validator set; C checks the same of the
welcome against the key of the replica it meant to dial. Any failure closes the
connection, is counted per reason (:meth:`TcpTransport.get_auth_failures`) and
logged at warning level the first time for each reason, then at debug level.

Keys (transcript-bound, one per direction)::

    th          = H(TRANSCRIPT_TAG, encode([encode(hello.body), encode(welcome.body)]))
    k_CA || k_AC = HKDF-SHA256(ikm = X25519(x_C, X_A), salt = th, info = KEYS_INFO, 64 bytes)

Both ephemeral keys are signed by their owners inside the bodies, so an
on-path attacker cannot substitute its own; each connection gets fresh keys.
Every later frame is ``counter (8 bytes, big-endian) || ChaCha20-Poly1305(k,
nonce = 0^4 || counter, payload)`` with the key of its direction and a counter
that starts at 0 and grows by one per frame. The reader accepts exactly the next
counter: a replayed frame (lower counter), a reordered or dropped one (higher
counter), a tampered, forged or reflected one (the tag does not verify under
this direction's key) and an oversize or truncated one are each counted per
reason (:meth:`TcpTransport.get_frame_failures`), logged with the peer, and end
the connection; the connector redials and both sides start a fresh session.

Flood limits. At most ``max_pending`` incoming connections may be mid-handshake
at once, and at most ``max_pending_per_source`` from one source address; a new
connection beyond a limit evicts the *oldest* pending handshake of its own
source (if that source is at its limit) or of the source holding the most
pending handshakes. Idle unauthenticated connections therefore never lock a
member out: its connection is the newest, and a flood from other addresses
evicts its own. The whole handshake must finish within ``handshake_timeout``
seconds on both sides. Once authenticated, a replica keeps one incoming
connection per peer (a newer one replaces the older).

Each peer has a bounded outgoing queue drained by its own writer task; when
the queue is full the oldest frame is dropped (PBFT recovers lost messages
through retransmission, view change or state transfer), so a slow or dead peer
never blocks the event loop or the other peers. A lost or refused connection
is redialled with exponential back-off.

The handshake itself is sans-I/O (:func:`compute_challenge`,
:func:`process_hello`, :func:`compute_connector_hello`,
:func:`process_welcome`): the socket code only moves its frames, and tests can
play either side by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import struct
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gridledger.consensus.transport import Receiver, TransportError
from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.hashing import HashTag, hash_bytes, register_tag
from gridledger.crypto.rng import SYSTEM_RNG, Rng
from gridledger.crypto.signatures import Ed25519PrivateKey, Ed25519PublicKey
from gridledger.errors import CryptoError, GridledgerError
from gridledger.ledger.certificate import Validator

log = logging.getLogger(__name__)

DEFAULT_MAX_FRAME = 32 * 1024 * 1024
DEFAULT_QUEUE_FRAMES = 20_000
DEFAULT_HANDSHAKE_TIMEOUT = 5.0
DEFAULT_MAX_PENDING = 64
DEFAULT_MAX_PENDING_PER_SOURCE = 8
CHALLENGE_SIZE = 32
EPHEMERAL_SIZE = 32
COUNTER_SIZE = 8
TAG_SIZE = 16
FRAME_OVERHEAD = COUNTER_SIZE + TAG_SIZE
MAX_COUNTER = 2**64 - 1
_HANDSHAKE_MAX_FRAME = 1024
_HEADER = struct.Struct(">I")
_COUNTER = struct.Struct(">Q")
_NONCE_PREFIX = bytes(4)
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0

HELLO_TAG = register_tag("gridledger/consensus/tcp-hello/2")
WELCOME_TAG = register_tag("gridledger/consensus/tcp-welcome/2")
TRANSCRIPT_TAG = register_tag("gridledger/consensus/tcp-transcript/1")
KEYS_INFO = b"gridledger/consensus/tcp-frame-keys/1"


@wire_type("consensus.tcp-challenge/2")
@dataclass(frozen=True)
class TcpChallenge:
    """First frame of the acceptor: who it is, a fresh challenge and its ephemeral key."""

    chain_id: str
    acceptor: int
    challenge: bytes
    ephemeral: bytes


@wire_type("consensus.tcp-hello-body/2")
@dataclass(frozen=True)
class HelloBody:
    """What the connector signs: both challenges and both ephemeral keys."""

    chain_id: str
    sender: int
    receiver: int
    acceptor_challenge: bytes
    connector_challenge: bytes
    acceptor_ephemeral: bytes
    connector_ephemeral: bytes


@wire_type("consensus.tcp-hello/2")
@dataclass(frozen=True)
class TcpHello:
    body: HelloBody
    signature: bytes


@wire_type("consensus.tcp-welcome-body/2")
@dataclass(frozen=True)
class WelcomeBody:
    """What the acceptor signs back: both challenges and both ephemeral keys."""

    chain_id: str
    sender: int
    receiver: int
    connector_challenge: bytes
    acceptor_challenge: bytes
    connector_ephemeral: bytes
    acceptor_ephemeral: bytes


@wire_type("consensus.tcp-welcome/2")
@dataclass(frozen=True)
class TcpWelcome:
    body: WelcomeBody
    signature: bytes


class HandshakeError(TransportError):
    """The peer failed the authenticated handshake; ``kind`` names the reason."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class FrameError(TransportError):
    """A frame was refused and its connection must be dropped; ``kind`` names the reason.

    Kinds: ``oversize`` (length above the limit), ``truncated`` (shorter than a
    counter and a tag), ``replayed`` (counter already seen), ``out-of-order``
    (counter ahead of the next one), ``forged`` (the AEAD tag does not verify:
    tampered, reflected, or sealed under another session's key), ``exhausted``
    (the counter would wrap).
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


# -- frames ------------------------------------------------------------------------------


def encode_frame(payload: bytes) -> bytes:
    """Length prefix + payload."""
    return _HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader, max_frame: int) -> bytes:
    """Read one length-prefixed frame; raise :class:`FrameError` if it is too large."""
    header = await reader.readexactly(_HEADER.size)
    (size,) = _HEADER.unpack(header)
    if size > max_frame:
        raise FrameError("oversize", f"frame of {size} bytes exceeds the limit of {max_frame}")
    return await reader.readexactly(size)


class FrameSealer:
    """Seals the frames of one direction of one session (counter nonces from 0)."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._aead = ChaCha20Poly1305(key)
        self.counter = 0

    def seal(self, payload: bytes) -> bytes:
        """``counter || ciphertext || tag`` for the next counter."""
        if self.counter > MAX_COUNTER:
            raise FrameError("exhausted", "frame counter would wrap; reconnect")
        counter = _COUNTER.pack(self.counter)
        self.counter += 1
        return counter + self._aead.encrypt(_NONCE_PREFIX + counter, payload, None)


class FrameOpener:
    """Opens the frames of one direction of one session, accepting only the next counter."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._aead = ChaCha20Poly1305(key)
        self.expected = 0

    def open(self, frame: bytes) -> bytes:
        """The payload of the next frame; raises :class:`FrameError` (drop the connection)."""
        if len(frame) < FRAME_OVERHEAD:
            raise FrameError("truncated", f"frame of {len(frame)} bytes")
        (counter,) = _COUNTER.unpack_from(frame)
        if counter < self.expected:
            raise FrameError("replayed", f"counter {counter}, expected {self.expected}")
        if counter > self.expected:
            raise FrameError("out-of-order", f"counter {counter}, expected {self.expected}")
        try:
            payload = self._aead.decrypt(
                _NONCE_PREFIX + frame[:COUNTER_SIZE], frame[COUNTER_SIZE:], None
            )
        except InvalidTag:
            raise FrameError("forged", f"frame {counter} does not authenticate") from None
        self.expected += 1
        return payload


@dataclass
class Session:
    """An authenticated session: the peer's replica id and one cipher per direction."""

    peer: int
    sealer: FrameSealer
    opener: FrameOpener


def compute_session_keys(shared: bytes, transcript: bytes) -> tuple[bytes, bytes]:
    """``(k_CA, k_AC)``: connector-to-acceptor and acceptor-to-connector frame keys."""
    okm = HKDF(hashes.SHA256(), 64, transcript, KEYS_INFO).derive(shared)
    return okm[:32], okm[32:]


def compute_transcript(hello: HelloBody, welcome: WelcomeBody) -> bytes:
    """The hash both sides bind their keys to: both signed bodies."""
    return hash_bytes(TRANSCRIPT_TAG, encode([encode(hello), encode(welcome)]))


def _exchange(private: X25519PrivateKey, public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:  # wrong length, or a low-order point (all-zero shared secret)
        raise HandshakeError("bad-ephemeral", "unusable X25519 key") from None


def _new_ephemeral(rng: Rng) -> tuple[X25519PrivateKey, bytes]:
    private = X25519PrivateKey.from_private_bytes(rng.random_bytes(EPHEMERAL_SIZE))
    return private, private.public_key().public_bytes_raw()


# -- the handshake, sans I/O ----------------------------------------------------------------


def compute_hello(
    key: Ed25519PrivateKey,
    body: HelloBody,
) -> bytes:
    """The encoded, signed hello carrying ``body``."""
    return encode(TcpHello(body, key.sign(HELLO_TAG, encode(body))))


def compute_welcome(key: Ed25519PrivateKey, body: WelcomeBody) -> bytes:
    """The encoded, signed welcome carrying ``body``."""
    return encode(TcpWelcome(body, key.sign(WELCOME_TAG, encode(body))))


_M = TypeVar("_M", TcpChallenge, TcpHello, TcpWelcome)


def _decode(cls: type[_M], frame: bytes) -> _M:
    try:
        return decode_as(cls, frame, max_size=_HANDSHAKE_MAX_FRAME)
    except GridledgerError:
        raise HandshakeError("malformed", f"not a {cls.__name__} frame") from None


def _check_challenge(got: bytes, expected: bytes) -> None:
    if len(got) != len(expected) or not hmac.compare_digest(got, expected):
        raise HandshakeError("wrong-challenge", "the signed challenge is not the one sent")


def _check_signature(
    key: Ed25519PublicKey, tag: HashTag, body: HelloBody | WelcomeBody, signature: bytes
) -> None:
    try:
        key.verify(tag, encode(body), signature)
    except CryptoError:
        raise HandshakeError("bad-signature", f"signature of replica {body.sender}") from None


@dataclass
class AcceptorState:
    """What the acceptor remembers between its challenge and the connector's hello."""

    chain_id: str
    node_id: int
    challenge: bytes
    ephemeral: X25519PrivateKey
    ephemeral_public: bytes


def compute_challenge(chain_id: str, node_id: int, rng: Rng) -> tuple[bytes, AcceptorState]:
    """The acceptor's first frame, and its state until the hello arrives."""
    challenge = rng.random_bytes(CHALLENGE_SIZE)
    private, public = _new_ephemeral(rng)
    frame = encode(TcpChallenge(chain_id, node_id, challenge, public))
    return frame, AcceptorState(chain_id, node_id, challenge, private, public)


def process_hello(
    state: AcceptorState,
    frame: bytes,
    key: Ed25519PrivateKey,
    peers: Mapping[int, Ed25519PublicKey],
) -> tuple[bytes, Session]:
    """Check a hello; the welcome to send back and the session (or :class:`HandshakeError`)."""
    hello = _decode(TcpHello, frame)
    body = hello.body
    if body.chain_id != state.chain_id:
        raise HandshakeError("wrong-chain", f"hello for chain {body.chain_id[:64]!r}")
    if body.receiver != state.node_id:
        raise HandshakeError("wrong-replica", f"hello addressed to replica {body.receiver}")
    peer_key = peers.get(body.sender)
    if peer_key is None or body.sender == state.node_id:
        raise HandshakeError("unknown-replica", f"hello from unknown replica {body.sender}")
    _check_challenge(body.acceptor_challenge, state.challenge)
    _check_challenge(body.acceptor_ephemeral, state.ephemeral_public)
    if len(body.connector_challenge) != CHALLENGE_SIZE:
        raise HandshakeError("malformed", "connector challenge of the wrong size")
    _check_signature(peer_key, HELLO_TAG, body, hello.signature)
    shared = _exchange(state.ephemeral, body.connector_ephemeral)
    welcome = WelcomeBody(
        state.chain_id,
        state.node_id,
        body.sender,
        body.connector_challenge,
        state.challenge,
        body.connector_ephemeral,
        state.ephemeral_public,
    )
    k_ca, k_ac = compute_session_keys(shared, compute_transcript(body, welcome))
    return compute_welcome(key, welcome), Session(body.sender, FrameSealer(k_ac), FrameOpener(k_ca))


@dataclass
class ConnectorState:
    """What the connector remembers between its hello and the acceptor's welcome."""

    hello: HelloBody
    ephemeral: X25519PrivateKey


def compute_connector_hello(
    frame: bytes,
    key: Ed25519PrivateKey,
    chain_id: str,
    node_id: int,
    peer_id: int,
    rng: Rng,
) -> tuple[bytes, ConnectorState]:
    """Check the acceptor's challenge; the hello to send and the state until the welcome."""
    challenge = _decode(TcpChallenge, frame)
    if challenge.chain_id != chain_id:
        raise HandshakeError("wrong-chain", f"challenge for chain {challenge.chain_id[:64]!r}")
    if challenge.acceptor != peer_id:
        raise HandshakeError("wrong-replica", f"reached replica {challenge.acceptor}")
    if len(challenge.challenge) != CHALLENGE_SIZE or len(challenge.ephemeral) != EPHEMERAL_SIZE:
        raise HandshakeError("malformed", "challenge or ephemeral key of the wrong size")
    private, public = _new_ephemeral(rng)
    body = HelloBody(
        chain_id,
        node_id,
        peer_id,
        challenge.challenge,
        rng.random_bytes(CHALLENGE_SIZE),
        challenge.ephemeral,
        public,
    )
    return compute_hello(key, body), ConnectorState(body, private)


def process_welcome(state: ConnectorState, frame: bytes, peer_key: Ed25519PublicKey) -> Session:
    """Check the acceptor's welcome; the session (or :class:`HandshakeError`)."""
    welcome = _decode(TcpWelcome, frame)
    body, hello = welcome.body, state.hello
    if body.chain_id != hello.chain_id:
        raise HandshakeError("wrong-chain", f"welcome for chain {body.chain_id[:64]!r}")
    if body.sender != hello.receiver or body.receiver != hello.sender:
        raise HandshakeError("wrong-replica", f"welcome from {body.sender} to {body.receiver}")
    _check_challenge(body.connector_challenge, hello.connector_challenge)
    _check_challenge(body.acceptor_challenge, hello.acceptor_challenge)
    _check_challenge(body.connector_ephemeral, hello.connector_ephemeral)
    _check_challenge(body.acceptor_ephemeral, hello.acceptor_ephemeral)
    _check_signature(peer_key, WELCOME_TAG, body, welcome.signature)
    shared = _exchange(state.ephemeral, hello.acceptor_ephemeral)
    k_ca, k_ac = compute_session_keys(shared, compute_transcript(hello, body))
    return Session(body.sender, FrameSealer(k_ca), FrameOpener(k_ac))


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


@dataclass(eq=False)
class _Pending:
    """An incoming connection still in its handshake."""

    source: str
    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None


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
        max_pending_per_source: int = DEFAULT_MAX_PENDING_PER_SOURCE,
        rng: Rng = SYSTEM_RNG,
    ) -> None:
        if max_pending < 1 or max_pending_per_source < 1:
            raise TransportError("the pending-handshake limits must be at least 1")
        self.node_id = node_id
        self.chain_id = chain_id
        self.listen = listen
        self.max_frame = max_frame
        self.handshake_timeout = handshake_timeout
        self.max_pending = max_pending
        self.max_pending_per_source = max_pending_per_source
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
        self._peer_keys = {pid: self._keys[pid] for pid in self._peers}
        self._receiver: Receiver | None = None
        self._server: asyncio.Server | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._pending: OrderedDict[_Pending, None] = OrderedDict()  # oldest first
        self._pending_by_source: Counter[str] = Counter()
        self._inbound: dict[int, asyncio.StreamWriter] = {}
        self._auth_failures: Counter[str] = Counter()
        self._frame_failures: Counter[str] = Counter()
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
        """Refused or evicted handshakes (both directions) per reason: ``{"bad-signature": 2}``."""
        return dict(self._auth_failures)

    def get_frame_failures(self) -> dict[str, int]:
        """Connections dropped after the handshake, per :class:`FrameError` kind."""
        return dict(self._frame_failures)

    def get_pending_handshakes(self) -> int:
        """Incoming connections in their handshake right now."""
        return len(self._pending)

    def _on_auth_failure(self, kind: str, detail: str, where: str) -> None:
        self._auth_failures[kind] += 1
        self._log_refusal(self._auth_failures[kind], f"{where} handshake refused ({kind}", detail)

    def _on_frame_failure(self, kind: str, detail: str, peer: int) -> None:
        self._frame_failures[kind] += 1
        what = f"connection from replica {peer} dropped ({kind}"
        self._log_refusal(self._frame_failures[kind], what, detail)

    def _log_refusal(self, count: int, what: str, detail: str) -> None:
        # warning the first time per reason, then debug: a spoofer cannot flood the log
        level = logging.WARNING if count == 1 else logging.DEBUG
        log.log(level, "replica %d: %s, %d so far): %s", self.node_id, what, count, detail)

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
                    session = await asyncio.wait_for(
                        self._connector_handshake(peer, reader, writer), self.handshake_timeout
                    )
                except HandshakeError as exc:
                    self._on_auth_failure(exc.kind, exc.reason, f"outgoing to {peer.peer_id}")
                    raise ConnectionError("handshake refused") from None
                except (TransportError, asyncio.IncompleteReadError, TimeoutError):
                    raise ConnectionError("handshake failed") from None
                backoff = _BACKOFF_MIN
                peer.connected = True
                await self._drain_queue(peer, writer, session.sealer)
            except (OSError, ConnectionError, FrameError):
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
    ) -> Session:
        frame = await read_frame(reader, _HANDSHAKE_MAX_FRAME)
        hello, state = compute_connector_hello(
            frame, self._key, self.chain_id, self.node_id, peer.peer_id, self._rng
        )
        writer.write(encode_frame(hello))
        await writer.drain()
        welcome = await read_frame(reader, _HANDSHAKE_MAX_FRAME)
        return process_welcome(state, welcome, self._peer_keys[peer.peer_id])

    async def _drain_queue(
        self, peer: _Peer, writer: asyncio.StreamWriter, sealer: FrameSealer
    ) -> None:
        while not self._closing:
            if not peer.queue:
                peer.wakeup.clear()
                await peer.wakeup.wait()
            chunks: list[bytes] = []
            size = 0
            while peer.queue and size < 4 * 1024 * 1024:
                frame = peer.queue.popleft()
                chunks.append(encode_frame(sealer.seal(frame)))
                size += len(frame)
            writer.writelines(chunks)
            await writer.drain()
            if writer.is_closing():
                raise ConnectionError("closed")

    # -- incoming ---------------------------------------------------------------

    async def _acceptor_handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Session:
        """Challenge the connector, check its hello, sign its challenge back."""
        challenge, state = compute_challenge(self.chain_id, self.node_id, self._rng)
        writer.write(encode_frame(challenge))
        await writer.drain()
        hello = await read_frame(reader, _HANDSHAKE_MAX_FRAME)
        welcome, session = process_hello(state, hello, self._key, self._peer_keys)
        writer.write(encode_frame(welcome))
        await writer.drain()
        return session

    def _admit_pending(self, entry: _Pending) -> None:
        """Count a new handshake, evicting the oldest of the fullest source if over a limit."""
        source = entry.source
        if self._pending_by_source[source] >= self.max_pending_per_source:
            victim_source = source
        elif len(self._pending) >= self.max_pending:
            victim_source = max(self._pending_by_source, key=self._pending_by_source.__getitem__)
        else:
            victim_source = None
        if victim_source is not None:
            victim = next(p for p in self._pending if p.source == victim_source)
            self._release_pending(victim)
            self._on_auth_failure(
                "evicted", f"oldest pending handshake from {victim_source}", "incoming"
            )
            if victim.task is not None:
                victim.task.cancel()
            victim.writer.close()
        self._pending[entry] = None
        self._pending_by_source[source] += 1

    def _release_pending(self, entry: _Pending) -> None:
        if self._pending.pop(entry, False) is not False:
            self._pending_by_source[entry.source] -= 1
            if self._pending_by_source[entry.source] <= 0:
                del self._pending_by_source[entry.source]

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._readers.add(task)
        peername = writer.get_extra_info("peername")
        source = str(peername[0]) if isinstance(peername, tuple) and peername else "?"
        entry = _Pending(source, writer, task)
        session: Session | None = None
        try:
            self._admit_pending(entry)
            session = await asyncio.wait_for(
                self._acceptor_handshake(reader, writer), self.handshake_timeout
            )
            self._release_pending(entry)
            previous = self._inbound.get(session.peer)
            if previous is not None:
                previous.close()  # one incoming connection per peer: the newest
            self._inbound[session.peer] = writer
            await self._read_frames(reader, session)
        except HandshakeError as exc:
            self._on_auth_failure(exc.kind, exc.reason, "incoming")
        except FrameError as exc:
            if session is None:
                self._on_auth_failure(exc.kind, exc.reason, "incoming")
            else:
                self._on_frame_failure(exc.kind, exc.reason, session.peer)
        except TimeoutError:
            self._on_auth_failure("timeout", "no handshake in time", "incoming")
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # closing or evicted: asyncio's stream callback must not see a cancelled task
        except TransportError as exc:
            log.warning("dropping incoming connection: %s", exc.reason)
        finally:
            self._release_pending(entry)
            if session is not None and self._inbound.get(session.peer) is writer:
                del self._inbound[session.peer]
            if task is not None:
                self._readers.discard(task)
            writer.close()

    async def _read_frames(self, reader: asyncio.StreamReader, session: Session) -> None:
        """Open and deliver frames until one is refused (:class:`FrameError`) or EOF."""
        limit = self.max_frame + FRAME_OVERHEAD
        while True:
            payload = session.opener.open(await read_frame(reader, limit))
            if self._receiver is None:
                continue
            try:
                self._receiver(session.peer, payload)
            except Exception:  # a receiver bug must not end the connection's task silently
                self._frame_failures["receiver-error"] += 1
                first = self._frame_failures["receiver-error"] == 1
                log.log(
                    logging.ERROR if first else logging.DEBUG,
                    "replica %d: receiver failed on a frame from replica %d",
                    self.node_id,
                    session.peer,
                    exc_info=True,
                )
