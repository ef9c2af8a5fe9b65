"""A deterministic consortium in simulated time: real node cores over a simulated network.

Each of the n replicas is a :class:`~gridledger.node.core.NodeCore` (the same
object the replica process runs) with the real ledger, the real contracts and a
memory store that plays its disk, driven by one
:class:`~gridledger.consensus.simhub.SimHub` that drops, delays, duplicates,
reorders and partitions frames. Replicas crash and restart from what their
"disk" kept (``restart(..., lose_votes=True)`` wipes the vote log first), and
can misbehave: an equivocating primary, a replica that sends tampered or garbage
frames besides its own, a silent one. Clients are simulated too: each request
is a signed KV transaction sent to every replica, resent after
``client_retry_ms``, and complete once f+1 replicas sent the same signed reply.

Everything random comes from seeded :class:`~gridledger.crypto.rng.DeterministicRng`
streams and events are ordered by ``(time, insertion counter)``: the same seed
gives the same trace, blocks and state roots.

The byzantine behaviours, the reply collector and the ``on_effect`` hook are
PBFT's (the engine every consortium runs by default); the rest is engine-neutral.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from gridledger.consensus.client import ReplyCollector
from gridledger.consensus.effects import (
    PHASE_PREPARED,
    Effect,
    Execute,
    NeedStateTransfer,
    ReplyToClient,
    ViewChanged,
    VoteRecord,
)
from gridledger.consensus.engine import EngineContext, EngineEffect
from gridledger.consensus.messages import (
    Checkpoint,
    ClientRequest,
    Commit,
    Message,
    NewView,
    Prepare,
    PreparedProof,
    PrePrepare,
    SignedEnvelope,
    Status,
    ViewChange,
    compute_batch_digest,
    compute_request_digest,
    decode_envelope,
    decode_message,
)
from gridledger.consensus.params import ConsensusParams
from gridledger.consensus.pbft import PbftConfig, ReplicaState
from gridledger.consensus.pbft_engine import VOTES_KEY, PbftEngine, get_proof_key, read_vote_log
from gridledger.consensus.simhub import NetworkModel, Partition, SimHub, compute_targets
from gridledger.consensus.viewchange import compute_null_pre_prepare
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.errors import EncodingError
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import BlockVote, CommitCertificate, Validator, sign_vote
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvSet
from gridledger.ledger.plugins import build_registry
from gridledger.ledger.quorum import compute_f
from gridledger.ledger.storage import MemoryBlockStore
from gridledger.ledger.tx import Transaction
from gridledger.node.core import (
    ENGINE_CHANNEL,
    BlockCommitted,
    Logged,
    NodeCore,
    NodeEffect,
    NodeLimits,
    Transmit,
)

__all__ = [
    "BYZANTINE",
    "Behaviour",
    "Partition",
    "SimNetwork",
    "SimReplica",
    "make_config",
    "make_keys",
]

SIM_CHAIN = "sim-chain"


class Behaviour(Enum):
    """How a replica deviates from the protocol in the simulator."""

    HONEST = "honest"
    SILENT = "silent"  # receives, sends nothing
    # As primary, sends conflicting pre-prepares to two halves of the backups; a backup
    # that restarted gets the other half's (a primary exploiting a replica's amnesia).
    EQUIVOCATE = "equivocate"
    TAMPER = "tamper"  # flips bits, forges senders and sends garbage besides its messages
    # Byzantine behaviours below sign what they send with their own key (valid
    # envelopes with wrong content): see SimNetwork._misbehave.
    CONFLICT = "conflict"  # conflicting PREPAREs/COMMITs/CHECKPOINTs to the two halves
    WRONG_CHECKPOINT = "wrong-checkpoint"  # a checkpoint for a wrong digest before the real one
    REPLAY = "replay"  # besides its messages, replays frames it sent or saw earlier
    FORGE = "forge"  # forged VIEW-CHANGEs and NEW-VIEWs (bad proofs, wrong O sets, far views)
    WITHHOLD = "withhold"  # sends each message to a single random peer only
    FLOOD = "flood"  # many signed junk messages (votes at random seqs, statuses) per message


BYZANTINE = frozenset(
    {
        Behaviour.CONFLICT,
        Behaviour.WRONG_CHECKPOINT,
        Behaviour.REPLAY,
        Behaviour.FORGE,
        Behaviour.WITHHOLD,
        Behaviour.FLOOD,
    }
)


def _engine_frame(env: SignedEnvelope) -> bytes:
    return bytes([ENGINE_CHANNEL]) + encode(env)


def make_keys(n: int, seed: int) -> list[Ed25519PrivateKey]:
    """Deterministic validator keys for a simulated consortium."""
    rng = DeterministicRng(f"simnet-keys/{seed}/{n}")
    return [Ed25519PrivateKey(rng.random_bytes(32)) for _ in range(n)]


def make_config(keys: Sequence[Ed25519PrivateKey], **overrides: int) -> PbftConfig:
    """A :class:`PbftConfig` for the given keys, with simulator-friendly timeouts."""
    validators = tuple(Validator(i, k.public_key.raw) for i, k in enumerate(keys))
    params: dict[str, Any] = {  # all ints; Any because PbftConfig also has a bool field
        "batch_max": 16,
        "checkpoint_interval": 4,
        "watermark_window": 16,
        "view_change_timeout_ms": 800,
        "batch_timeout_ms": 5,
        "retransmit_interval_ms": 200,
        "timestamp_tolerance_ms": 10_000,
        "state_transfer_delay_ms": 300,
    }
    params.update(overrides)
    return PbftConfig(SIM_CHAIN, validators, **params)


class _ObservedPbft(PbftEngine):
    """PBFT with a hook that sees every raw PBFT effect before it is translated."""

    def __init__(
        self, context: EngineContext, config: PbftConfig, observe: Callable[[Effect], None]
    ) -> None:
        super().__init__(context, config)
        self._observe = observe

    def _translate(self, effects: list[Effect]) -> list[EngineEffect]:
        for effect in effects:
            self._observe(effect)
        return super()._translate(effects)


class LedgerView:
    """The blocks of one replica's ledger, as the simulator's checks read them."""

    def __init__(self, core: NodeCore, batches: dict[int, bytes]) -> None:
        self._core = core
        self.batches = batches
        """height → PBFT batch digest of what this replica executed there (not transferred)."""

    @property
    def head(self) -> int:
        return self._core.ledger.height

    def _headers(self) -> dict[int, Any]:
        store = self._core.store
        return {h: store.get_header(h) for h in range(1, self.head + 1)}

    @property
    def digests(self) -> dict[int, bytes]:
        """height → header hash."""
        return {h: hd.header_hash for h, hd in self._headers().items() if hd is not None}

    @property
    def state_roots(self) -> dict[int, bytes]:
        return {h: hd.state_root for h, hd in self._headers().items() if hd is not None}


@dataclass
class SimReplica:
    """One replica's slot in the simulator: its node core, its disk, its fault model."""

    replica_id: int
    key: Ed25519PrivateKey
    store: MemoryBlockStore
    core: NodeCore
    behaviour: Behaviour = Behaviour.HONEST
    alive: bool = True
    restarts: int = 0
    batches: dict[int, bytes] = field(default_factory=dict)

    @property
    def state(self) -> ReplicaState:
        """The PBFT protocol state (the simulator runs PBFT)."""
        engine = self.core.engine
        assert isinstance(engine, PbftEngine)
        return engine.state

    @property
    def app(self) -> LedgerView:
        return LedgerView(self.core, self.batches)

    @property
    def votes(self) -> tuple[VoteRecord, ...]:
        """The vote log on this replica's disk."""
        return read_vote_log(self.store.get_meta).votes


@dataclass
class SimStats:
    """What the network carried (engine frames between replicas; the rest counted apart)."""

    broadcasts: int = 0
    sends: int = 0
    messages: int = 0  # engine frames handed to the network by replicas
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    client_messages: int = 0
    node_messages: int = 0  # height gossip and block fetch
    by_type: dict[str, int] = field(default_factory=dict)


class SimNetwork:
    """A seeded discrete-event simulation of n node cores, their network and their clients."""

    def __init__(
        self,
        n: int = 4,
        *,
        seed: int = 0,
        drop_rate: float = 0.0,
        delay_ms: tuple[int, int] = (1, 10),
        duplicate_rate: float = 0.0,
        reorder: bool = True,
        partitions: Sequence[Partition] = (),
        behaviours: dict[int, Behaviour] | None = None,
        tick_ms: int = 10,
        client_retry_ms: int = 1000,
        transfer_delay_ms: int = 20,
        config_overrides: dict[str, int] | None = None,
        genesis_state: Mapping[bytes, bytes] | None = None,
        registry_factory: Callable[[GenesisConfig], ContractRegistry] | None = None,
        limits: NodeLimits | None = None,
        epoch_ms: int = 0,
    ) -> None:
        self.seed = seed
        self.epoch_ms = epoch_ms  # what the replicas' clocks read at simulated time 0
        self.rng = DeterministicRng(f"simnet/{seed}")
        self.hub = SimHub(
            NetworkModel(drop_rate, delay_ms, duplicate_rate, reorder, tuple(partitions)),
            self.rng,
        )
        self.partitions = self.hub.partitions
        self.tick_ms = tick_ms
        self.client_retry_ms = client_retry_ms
        self.transfer_delay_ms = transfer_delay_ms  # kept for callers; transfers use the network
        self.keys = make_keys(n, seed)
        self.config = make_config(self.keys, **(config_overrides or {}))
        self.genesis = GenesisConfig.create(
            SIM_CHAIN, self.config.validators, epoch_ms, genesis_state
        )
        self._registry_factory = registry_factory or build_registry
        self._limits = limits or NodeLimits(gossip_ms=500, lag_before_sync_ms=1_000)
        self.f = compute_f(n)
        self.stats = SimStats()
        self.trace: list[str] = []
        self.collector = ReplyCollector(self.config.chain_id, self.config.validators)
        self.requests: dict[bytes, ClientRequest] = {}
        self.submitted_ms: dict[bytes, int] = {}
        self.completed_ms: dict[bytes, int] = {}
        self.certificates: dict[int, CommitCertificate] = {}
        self.transfers = 0
        self.on_effect: Callable[[int, Effect], None] | None = None
        # Tests may drop chosen messages: called as (sender, to, message); False drops it.
        self.message_filter: Callable[[int, int, Message], bool] | None = None
        self.on_committed: Callable[[int, BlockCommitted], None] | None = None
        self._next_request = 0
        self._replay_log: list[bytes] = []
        self._flood_clock = 0
        self.expected: set[bytes] = set()  # digests of every request clients submitted
        behaviours = behaviours or {}
        self.replicas: list[SimReplica] = []
        for i, key in enumerate(self.keys):
            store = MemoryBlockStore()
            self.replicas.append(
                SimReplica(
                    i,
                    key,
                    store,
                    self._new_core(i, key, store),
                    behaviours.get(i, Behaviour.HONEST),
                )
            )
        for r in self.replicas:
            self.hub.schedule(self.rng.randbelow(tick_ms) + 1, "tick", r.replica_id, None)

    @property
    def now_ms(self) -> int:
        """Simulated time since the start of the run."""
        return self.hub.now_ms

    @property
    def clock_ms(self) -> int:
        """What the replicas' clocks read now (``epoch_ms`` + simulated time)."""
        return self.epoch_ms + self.hub.now_ms

    def _new_core(self, i: int, key: Ed25519PrivateKey, store: MemoryBlockStore) -> NodeCore:
        def observe(effect: Effect) -> None:
            self._observe(i, effect)

        return NodeCore(
            replica_id=i,
            key=key,
            genesis=self.genesis,
            store=store,
            registry=self._registry_factory(self.genesis),
            params=ConsensusParams(),
            rng=DeterministicRng(f"simnet/{self.seed}/core/{i}"),
            limits=self._limits,
            engine_factory=lambda context: _ObservedPbft(context, self.config, observe),
        )

    # -- clients ------------------------------------------------------------------------

    def make_transaction(self, k: int, payload_size: int = 64) -> Transaction:
        """Client ``k``'s request: a signed KV write of ``payload_size`` bytes."""
        client = Ed25519PrivateKey(hashlib.sha256(f"sim-client/{self.seed}/{k}".encode()).digest())
        value = hashlib.sha256(f"{self.seed}/{k}".encode()).digest()
        value = (value * (payload_size // 32 + 1))[:payload_size]
        return Transaction.create(SIM_CHAIN, KV_SET_KIND, KvSet(b"k%d" % k, value), client, 0)

    def submit(self, count: int = 1, at_ms: int | None = None, payload_size: int = 64) -> None:
        """Schedule ``count`` new client requests (each from its own client)."""
        for _ in range(count):
            tx = self.make_transaction(self._next_request, payload_size)
            self._next_request += 1
            self.submit_transaction(tx, at_ms)

    def submit_transaction(self, tx: Transaction, at_ms: int | None = None) -> bytes:
        """Schedule one signed transaction; returns its request digest."""
        return self.submit_request(ClientRequest(tx.sender, tx.nonce, encode(tx)), at_ms)

    def submit_request(
        self, req: ClientRequest, at_ms: int | None = None, *, only: int | None = None
    ) -> bytes:
        """Schedule a raw engine request from a client (to every replica, or ``only`` one).

        A payload that is a transaction goes through the replicas' client intake;
        anything else is handed to the engine as it is (a client or replica that
        does not follow the node's rules), and is ordered but left out of blocks.
        """
        at = self.now_ms if at_ms is None else at_ms
        digest = compute_request_digest(req)
        self.expected.add(digest)
        if only is None:
            self.hub.schedule(at, "request", -1, req)
        else:
            self.hub.schedule(at, "client", only, req)
        return digest

    @property
    def submitted_count(self) -> int:
        """How many distinct requests clients have submitted."""
        return len(self.expected)

    def _client_send(self, req: ClientRequest) -> None:
        digest = compute_request_digest(req)
        if digest in self.completed_ms:
            return
        self.requests[digest] = req
        self.submitted_ms.setdefault(digest, self.now_ms)
        for r in self.replicas:
            self.stats.client_messages += 1
            self.hub.schedule(self.now_ms + self.hub.get_delay(), "client", r.replica_id, req)
        self.hub.schedule(self.now_ms + self.client_retry_ms, "request", -1, req)

    # -- faults -------------------------------------------------------------------------

    def crash(self, replica: int, at_ms: int) -> None:
        self.hub.schedule(at_ms, "crash", replica, None)

    def restart(self, replica: int, at_ms: int, *, lose_votes: bool = False) -> None:
        """Restart ``replica`` at ``at_ms`` from what its disk kept.

        ``lose_votes=True`` wipes its vote log first (a disk that kept only blocks):
        it then restarts in view 0, free to vote again at slots it voted for.
        """
        self.hub.schedule(at_ms, "restart-lose-votes" if lose_votes else "restart", replica, None)

    def _do_restart(self, r: SimReplica, *, lose_votes: bool = False) -> None:
        if lose_votes:
            stored = read_vote_log(r.store.get_meta).votes
            proofs = [get_proof_key(v) for v in stored if v.phase == PHASE_PREPARED]
            r.store.update_meta((), [VOTES_KEY, *proofs])
        r.core = self._new_core(r.replica_id, r.key, r.store)
        r.alive = True
        r.restarts += 1
        self.trace.append(
            f"{self.now_ms} r{r.replica_id} restart at {r.state.low_watermark} "
            f"view {r.state.view} votes {len(r.votes)}"
        )

    # -- running ------------------------------------------------------------------------

    def run_until(self, until_ms: int, max_events: int = 2_000_000) -> None:
        """Process events in time order up to ``until_ms`` (or ``max_events`` of them)."""
        self.hub.run_until(until_ms, self._dispatch, max_events)

    def run_until_done(self, until_ms: int, *, min_completed: int | None = None) -> bool:
        """Run until every submitted request has f+1 matching replies (or ``until_ms``)."""
        step = 50
        while True:
            goal = len(self.expected) if min_completed is None else min_completed
            if len(self.completed_ms) >= goal:
                return True
            if self.now_ms >= until_ms:
                return False
            self.run_until(min(until_ms, self.now_ms + step))

    def _dispatch(self, kind: str, rid: int, payload: object) -> None:
        if kind == "request":
            assert isinstance(payload, ClientRequest)
            self._client_send(payload)
            return
        r = self.replicas[rid]
        if kind == "crash":
            r.alive = False
            self.trace.append(f"{self.now_ms} r{rid} crash")
        elif kind == "restart":
            self._do_restart(r)
        elif kind == "restart-lose-votes":
            self._do_restart(r, lose_votes=True)
        elif kind == "tick":
            self.hub.schedule(self.now_ms + self.tick_ms, "tick", rid, None)
            if r.alive:
                self._carry_out(r, r.core.on_tick(self.clock_ms))
        elif not r.alive:
            return
        elif kind == "deliver":
            assert isinstance(payload, tuple)
            sender, frame = payload
            self.stats.delivered += 1
            self._carry_out(r, r.core.on_frame(sender, frame, self.clock_ms))
        elif kind == "client":
            assert isinstance(payload, ClientRequest)
            self._carry_out(r, self._deliver_request(r, payload))

    def _deliver_request(self, r: SimReplica, req: ClientRequest) -> list[NodeEffect]:
        """A transaction goes through the core's intake; anything else straight to the engine."""
        try:
            tx = decode_as(Transaction, req.payload)
        except EncodingError:
            tx = None
        if tx is not None and (tx.sender, tx.nonce) == (req.client, req.request_id):
            _, effects = r.core.submit([req.payload], self.clock_ms)
            return effects
        return r.core.on_request(req, self.clock_ms)

    # -- effects ------------------------------------------------------------------------

    def _observe(self, rid: int, effect: Effect) -> None:
        """Raw PBFT effects of replica ``rid``, in the order its core carries them out."""
        if self.on_effect is not None:
            self.on_effect(rid, effect)
        r = self.replicas[rid]
        if isinstance(effect, Execute):
            batch = compute_batch_digest(effect.timestamp_ms, effect.requests)
            r.batches[effect.seq] = batch
            self.trace.append(
                f"{self.now_ms} r{rid} exec {effect.seq} {batch.hex()[:12]} "
                f"n={len(effect.requests)}"
            )
        elif isinstance(effect, ReplyToClient):
            self.stats.client_messages += 1
            if self.collector.process_reply(r.state.auth.seal(effect.reply)) is not None:
                self.completed_ms.setdefault(effect.reply.request_digest, self.now_ms)
        elif isinstance(effect, NeedStateTransfer):
            self.trace.append(f"{self.now_ms} r{rid} need-transfer {effect.target_seq}")
        elif isinstance(effect, ViewChanged):
            self.trace.append(f"{self.now_ms} r{rid} view {effect.view}")

    def _carry_out(self, r: SimReplica, effects: list[NodeEffect]) -> None:
        for effect in effects:
            if isinstance(effect, Transmit):
                self._send(r, effect)
            elif isinstance(effect, BlockCommitted):
                cert = r.store.get_certificate(effect.block.height)
                if cert is not None:
                    self.certificates.setdefault(effect.block.height, cert)
                if self.on_committed is not None:
                    self.on_committed(r.replica_id, effect)
            elif isinstance(effect, Logged) and "state transfer done" in effect.message:
                self.transfers += 1
                self.trace.append(f"{self.now_ms} r{r.replica_id} transferred {r.app.head}")
        # certificates arrive after execution; pick up the newest one
        height = r.core.ledger.height
        if height not in self.certificates:
            cert = r.store.get_certificate(height)
            if cert is not None:
                self.certificates[height] = cert

    def _send(self, r: SimReplica, effect: Transmit) -> None:
        ids = [p.replica_id for p in self.replicas]
        targets = compute_targets(r.replica_id, ids, effect.to)
        if r.behaviour is Behaviour.SILENT:
            return
        if not effect.frame or effect.frame[0] != ENGINE_CHANNEL:
            for to in targets:
                self.stats.node_messages += 1
                self.hub.transmit(r.replica_id, to, effect.frame)
            return
        if effect.to is None:
            self.stats.broadcasts += 1
        else:
            self.stats.sends += 1
        env = decode_envelope(effect.frame[1:])
        msg = decode_message(env.body)
        name = msg.__class__.__name__
        if self.message_filter is not None:
            keep = self.message_filter
            targets = [t for t in targets if keep(r.replica_id, t, msg)]
        self.stats.by_type[name] = self.stats.by_type.get(name, 0) + len(targets)
        if r.behaviour is Behaviour.EQUIVOCATE and name == "PrePrepare":
            self._equivocate(r, env, targets)
            return
        if r.behaviour in BYZANTINE and self._misbehave(r, env, msg, targets):
            return
        for to in targets:
            self._transmit(r.replica_id, to, effect.frame)
            if r.behaviour is Behaviour.TAMPER:
                self._tamper(r, env, to)

    def _transmit(self, sender: int, to: int, frame: bytes) -> None:
        before = (self.hub.stats.dropped, self.hub.stats.duplicated)
        self.hub.transmit(sender, to, frame)
        self.stats.messages += 1
        self.stats.dropped += self.hub.stats.dropped - before[0]
        self.stats.duplicated += self.hub.stats.duplicated - before[1]

    def _equivocate(self, r: SimReplica, env: SignedEnvelope, targets: list[int]) -> None:
        """Send the real pre-prepare to one half and a conflicting one to the other half;
        swap halves for a backup each time it restarted (it may have forgotten)."""
        pp = decode_message(env.body)
        assert isinstance(pp, PrePrepare)
        ts = pp.timestamp_ms + 1
        other = PrePrepare(pp.view, pp.seq, compute_batch_digest(ts, pp.batch), pp.batch, ts)
        real_frame = bytes([ENGINE_CHANNEL]) + encode(env)
        other_frame = bytes([ENGINE_CHANNEL]) + encode(r.state.auth.seal(other))
        half = len(targets) // 2
        for i, to in enumerate(targets):
            real = (i < half) != (self.replicas[to].restarts % 2 == 1)
            self._transmit(r.replica_id, to, real_frame if real else other_frame)

    def _misbehave(
        self, r: SimReplica, env: SignedEnvelope, msg: Message, targets: list[int]
    ) -> bool:
        """A byzantine replica's version of one send; ``True`` if it replaced the send."""
        seal = r.state.auth.seal
        b = r.behaviour
        if b is Behaviour.WITHHOLD:
            if targets:
                to = targets[self.rng.randbelow(len(targets))]
                self._transmit(r.replica_id, to, _engine_frame(env))
            return True
        if b is Behaviour.CONFLICT and isinstance(msg, (Prepare, Commit, Checkpoint)):
            other_digest = self.rng.random_bytes(32)
            if isinstance(msg, Checkpoint):
                vote = BlockVote(self.config.chain_id, msg.seq, other_digest)
                other: Message = Checkpoint(msg.seq, other_digest, sign_vote(r.key, vote))
            else:
                other = type(msg)(msg.view, msg.seq, other_digest)
            other_frame = _engine_frame(seal(other))
            for i, to in enumerate(targets):
                real = i < len(targets) // 2
                self._transmit(r.replica_id, to, _engine_frame(env) if real else other_frame)
            return True
        if b is Behaviour.WRONG_CHECKPOINT and isinstance(msg, Checkpoint):
            wrong = self.rng.random_bytes(32)
            vote = BlockVote(self.config.chain_id, msg.seq, wrong)
            wrong_frame = _engine_frame(seal(Checkpoint(msg.seq, wrong, sign_vote(r.key, vote))))
            for to in targets:
                self._transmit(r.replica_id, to, wrong_frame)
                if self.rng.randbelow(2):
                    self._transmit(r.replica_id, to, _engine_frame(env))
            return True
        frame = _engine_frame(env)
        for to in targets:
            self._transmit(r.replica_id, to, frame)
        extra: list[bytes] = []
        if b is Behaviour.REPLAY:
            self._replay_log.append(frame)
            for _ in range(2):
                extra.append(self._replay_log[self.rng.randbelow(len(self._replay_log))])
            if len(self._replay_log) > 512:
                del self._replay_log[: len(self._replay_log) - 512]
        elif b is Behaviour.FORGE:
            forged = self._forge(r, msg)
            extra.append(_engine_frame(seal(forged[self.rng.randbelow(len(forged))])))
        elif b is Behaviour.FLOOD:
            extra.extend(_engine_frame(seal(m)) for m in self._flood(r))
        for junk in extra:
            for to in targets:
                self._transmit(r.replica_id, to, junk)
        return True

    def _forge(self, r: SimReplica, msg: Message) -> list[Message]:
        """Forged view-change traffic: each is validly signed by ``r`` and wrong inside."""
        st = r.state
        view = st.view + 1 + self.rng.randbelow(3)
        junk = self.rng.random_bytes(32)
        fake_pp = st.auth.seal(PrePrepare(view - 1, st.low_watermark + 1, junk, (), 0))
        fake_proof = PreparedProof(fake_pp, (fake_pp,))
        fake_cert = CommitCertificate(self.config.chain_id, st.low_watermark + 4, junk, ())
        out: list[Message] = [
            ViewChange(view, st.low_watermark, st.stable_certificate, (fake_proof,)),
            ViewChange(view, st.low_watermark + 4, fake_cert, ()),
            # A well-formed VIEW-CHANGE for a far view: legal alone, harmless below f+1.
            ViewChange(st.view + 50, st.low_watermark, st.stable_certificate, ()),
            NewView(view, (), ()),
        ]
        if isinstance(msg, ViewChange):
            # A NEW-VIEW built on its own (real) view change only, with a made-up O set.
            env = st.auth.seal(msg)
            bogus = st.auth.seal(compute_null_pre_prepare(msg.new_view, st.last_executed + 1))
            out.append(NewView(msg.new_view, (env, env, env), (bogus,)))
        return out

    def _flood(self, r: SimReplica) -> list[Message]:
        """Signed junk: votes at random seqs of the window, checkpoints, statuses."""
        st = r.state
        out: list[Message] = []
        seq = st.low_watermark + 1 + self.rng.randbelow(self.config.watermark_window)
        digest = self.rng.random_bytes(32)
        kind = self.rng.randbelow(3)
        if kind == 0:
            out.append(Prepare(st.view, seq, digest))
        elif kind == 1:
            out.append(Commit(st.view, seq, digest))
        else:
            out.append(Checkpoint(seq, digest, self.rng.random_bytes(64)))
        self._flood_clock += 1
        out.append(Status(st.view, False, 0, 0, self.now_ms * 1000 + self._flood_clock))
        return out

    def _tamper(self, r: SimReplica, env: SignedEnvelope, to: int) -> None:
        """Extra junk next to each real message: a flipped bit, a forged sender, garbage."""
        choice = self.rng.randbelow(3)
        if choice == 0 and env.body:
            pos = self.rng.randbelow(len(env.body))
            body = bytearray(env.body)
            body[pos] ^= 1 << self.rng.randbelow(8)
            frame = bytes([ENGINE_CHANNEL]) + encode(
                SignedEnvelope(env.sender, bytes(body), env.signature)
            )
        elif choice == 1:
            forged = (env.sender + 1) % len(self.replicas)
            frame = bytes([ENGINE_CHANNEL]) + encode(
                SignedEnvelope(forged, env.body, env.signature)
            )
        else:
            frame = self.rng.random_bytes(1 + self.rng.randbelow(64))
        self._transmit(r.replica_id, to, frame)

    # -- checks -------------------------------------------------------------------------

    def get_honest(self) -> list[SimReplica]:
        return [r for r in self.replicas if r.behaviour is Behaviour.HONEST]

    def check_safety(self) -> list[str]:
        """No two honest replicas hold different blocks (or state roots) at one height."""
        problems: list[str] = []
        seen: dict[int, tuple[int, bytes]] = {}
        for r in self.get_honest():
            for height, digest in r.app.digests.items():
                first = seen.setdefault(height, (r.replica_id, digest))
                if first[1] != digest:
                    problems.append(f"height {height}: r{first[0]} and r{r.replica_id} differ")
            if r.state.divergences:
                problems.append(f"r{r.replica_id} counted {r.state.divergences} divergences")
        return problems

    def get_trace_digest(self) -> str:
        return hashlib.sha256("\n".join(self.trace).encode()).hexdigest()

    def get_verifications(self) -> int:
        return sum(r.state.auth.verifications for r in self.replicas)

    def get_min_executed(self, replicas: Sequence[int] | None = None) -> int:
        ids = replicas if replicas is not None else [r.replica_id for r in self.get_honest()]
        return min(self.replicas[i].app.head for i in ids)

    def get_state_roots(self) -> dict[int, dict[int, bytes]]:
        """replica → height → state root, for same-seed-same-state checks."""
        return {r.replica_id: r.app.state_roots for r in self.replicas}


def decode_engine_frame(frame: bytes) -> SignedEnvelope | None:
    """The PBFT envelope inside an engine frame, or ``None`` for anything else."""
    if not frame or frame[0] != ENGINE_CHANNEL:
        return None
    try:
        return decode_envelope(frame[1:])
    except EncodingError:
        return None
