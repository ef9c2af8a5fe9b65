"""The seam between a node and its consensus engine.

A consensus engine orders client requests into batches and proves which block
each height holds. The node core (:mod:`gridledger.node.core`) owns the ledger,
the store, state transfer and the clients; an engine owns only its protocol
state. They talk through events and effects, both plain values:

    node core ──on_request / on_frame / on_tick / on_executed / on_synced──▶ engine
    node core ◀──────────── list[EngineEffect], in the order to carry out ── engine

Effects an engine may return:

* :class:`PersistState` — write ``blob`` under ``key`` durably *before* any later
  effect of the same list (a replica's own votes: never two different votes
  after a crash); :class:`PersistStates` writes several keys and removes others
  in one atomic write;
* :class:`SendFrame` / :class:`BroadcastFrame` — opaque engine frames to peers;
* :class:`ExecuteBlock` — apply the ordered batch at ``height`` (strictly in
  order, once); the node answers with ``on_executed(height, header_hash)``;
* :class:`Finalized` — a proof that the header at ``height`` is final under the
  engine's :class:`~gridledger.ledger.finality.FinalityRule`;
* :class:`NeedSync` — this replica is behind: fetch and verify blocks up to
  ``target``, then call ``on_synced``;
* :class:`LeaderChanged` — informational (logs, status).

Engines are found by name (``GenesisConfig.engine``) through
:func:`register_engine`; a new engine never means editing the node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, NewType, Protocol, runtime_checkable

from gridledger.consensus.messages import ClientRequest
from gridledger.consensus.params import ConsensusParams
from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.errors import ConfigError
from gridledger.ledger.block import BlockHeader, GenesisConfig
from gridledger.ledger.certificate import CommitCertificate

ReplicaId = NewType("ReplicaId", int)
Height = NewType("Height", int)


@dataclass(frozen=True)
class PersistState:
    """Make ``blob`` durable under ``key`` before carrying out any later effect of the list."""

    key: str
    blob: bytes


@dataclass(frozen=True)
class PersistStates:
    """Make ``puts`` durable and remove ``deletes``, all in one atomic write, before
    carrying out any later effect of the list (for state kept under several keys,
    such as PBFT's vote log and its prepared proofs, each written once)."""

    puts: tuple[tuple[str, bytes], ...]
    deletes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendFrame:
    """Send the engine frame ``frame`` to replica ``to``."""

    to: int
    frame: bytes


@dataclass(frozen=True)
class BroadcastFrame:
    """Send the engine frame ``frame`` to every other replica."""

    frame: bytes


@dataclass(frozen=True)
class ExecuteBlock:
    """Execute the ordered batch as block ``height`` (``requests`` may be empty).

    ``timestamp_ms`` is agreed by the engine; ``proposer`` goes into the header.
    Keep anything that two honest replicas might see differently (the view in
    which PBFT committed) out of it.
    """

    height: int
    requests: tuple[ClientRequest, ...]
    timestamp_ms: int
    proposer: int = 0


@dataclass(frozen=True)
class Finalized:
    """``proof`` makes the block at ``height`` (hash ``header_hash``) final."""

    height: int
    header_hash: bytes
    proof: CommitCertificate


@dataclass(frozen=True)
class NeedSync:
    """Fetch verified blocks up to ``target`` (hash ``header_hash``), preferably from ``peers``."""

    target: int
    header_hash: bytes
    peers: tuple[int, ...]


@dataclass(frozen=True)
class LeaderChanged:
    """The engine moved to ``view`` with ``leader`` proposing (for logs and status)."""

    view: int
    leader: int


@dataclass(frozen=True)
class AppendToLog:
    """Append ``payload`` to the external ordered log, at most once per ``key``.

    Only engines that order through an outside service (a replicated log such
    as NATS JetStream) emit it. The replica shell's log adapter publishes it
    (the service deduplicates by ``key``) and hands every entry the log orders
    back through ``NodeCore.on_log``, i.e. :meth:`LogConsumer.on_log`.
    """

    key: str
    payload: bytes


EngineEffect = (
    PersistState
    | PersistStates
    | SendFrame
    | BroadcastFrame
    | ExecuteBlock
    | Finalized
    | NeedSync
    | LeaderChanged
    | AppendToLog
)


class ChainReader(Protocol):
    """What an engine may read of the replica's chain when it starts (never writes)."""

    @property
    def height(self) -> int: ...

    def get_header(self, height: int) -> BlockHeader | None: ...

    def get_certificate(self, height: int) -> CommitCertificate | None: ...

    def get_state(self, key: bytes) -> bytes | None:
        """The committed state value under the full ``key`` (schedules an engine keeps on chain)."""
        ...


class ConsensusEngine(Protocol):
    """A replica's consensus protocol state; pure: no clock, network or disk."""

    @property
    def view(self) -> int:
        """The engine's current view, term or round (0 if it has none)."""
        ...

    @property
    def leader(self) -> int:
        """The replica expected to propose next (-1 if none)."""
        ...

    def on_request(self, request: ClientRequest, now_ms: int) -> list[EngineEffect]:
        """A client request arrived at this replica."""
        ...

    def on_frame(self, sender: int, frame: bytes, now_ms: int) -> list[EngineEffect]:
        """An engine frame arrived from replica ``sender`` (authenticated by the transport)."""
        ...

    def on_tick(self, now_ms: int) -> list[EngineEffect]:
        """Time passed: timers, batching, retransmissions."""
        ...

    def on_executed(self, height: int, header_hash: bytes) -> list[EngineEffect]:
        """The node executed :class:`ExecuteBlock` ``height`` into a block with this hash."""
        ...

    def on_synced(self, height: int, header_hash: bytes, timestamp_ms: int) -> list[EngineEffect]:
        """State transfer ended with the chain at ``height`` (perhaps short of the target)."""
        ...

    def get_status(self) -> dict[str, Any]:
        """Counters for the status API (JSON-ready)."""
        ...


class TakesRequestBatches(Protocol):
    """What an engine may add: the requests of one client call in one call.

    Optional (engines written before it keep working): the node core hands a
    call's accepted requests to ``on_requests`` when the engine has it, and to
    ``on_request`` one by one otherwise. It must do what ``on_request`` on each,
    in order, would do, and is free to batch the work (PBFT looks at its queue
    once, DPoS forwards them in one frame).
    """

    def on_requests(self, requests: Sequence[ClientRequest], now_ms: int) -> list[EngineEffect]: ...


@runtime_checkable
class LogConsumer(Protocol):
    """An engine that consumes an external ordered log (besides the engine interface)."""

    @property
    def log_position(self) -> int:
        """The last log sequence number this replica consumed (the adapter resumes after it)."""
        ...

    def on_log(self, seq: int, payload: bytes, now_ms: int) -> list[EngineEffect]:
        """Entry ``seq`` of the log (in order; the adapter may repeat entries up to it)."""
        ...


@dataclass(frozen=True)
class EngineContext:
    """What an engine gets when a replica starts: who it is, the chain, what it persisted."""

    replica_id: int
    key: Ed25519PrivateKey
    genesis: GenesisConfig
    params: ConsensusParams
    chain: ChainReader
    read_persisted: Callable[[str], bytes | None]
    rng: Rng


ENTRY_POINT_GROUP = "gridledger.engines"
EngineFactory = Callable[[EngineContext], ConsensusEngine]
_engines: dict[str, EngineFactory] = {}


def register_engine(name: str, factory: EngineFactory) -> None:
    """Make engine ``name`` available to every node of this process."""
    _engines[name] = factory


def _load_entry_points() -> None:
    """Engines installed packages name under the entry-point group ``gridledger.engines``."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _engines:
            continue
        try:
            _engines[ep.name] = ep.load()
        except Exception as exc:  # a broken install is a configuration error
            raise ConfigError(f"engine {ep.name!r} ({ep.value}) does not load: {exc}") from exc


def create_engine(context: EngineContext) -> ConsensusEngine:
    """The engine the genesis names, started from ``context``."""
    if context.genesis.engine not in _engines:
        _load_entry_points()
    factory = _engines.get(context.genesis.engine)
    if factory is None:
        raise ConfigError(
            f"unknown consensus engine {context.genesis.engine!r} "
            f"(known: {', '.join(sorted(_engines))})"
        )
    return factory(context)


def get_engine_names() -> tuple[str, ...]:
    """Every engine known to this process (registered or installed)."""
    _load_entry_points()
    return tuple(sorted(_engines))
