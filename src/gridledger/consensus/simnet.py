"""A deterministic discrete-event simulator of a PBFT consortium.

Runs n :class:`~gridledger.consensus.pbft.ReplicaState` on one simulated clock,
each with a trivial in-memory application (a block's digest is a hash chain over
the executed batches), over a network that can drop, delay, duplicate, reorder
and partition frames. Replicas can crash and restart (from their persisted
stable checkpoint and vote log, then catching up through the log or state
transfer; ``restart(..., lose_votes=True)`` models a replica whose votes were not
on stable storage), and can misbehave: an equivocating primary, a replica that sends tampered or
garbage frames, a silent replica.

Everything random comes from one :class:`~gridledger.crypto.rng.DeterministicRng`
and events are ordered by ``(time, insertion counter)``: the same seed gives the
same trace, byte for byte.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from gridledger.consensus.client import ReplyCollector
from gridledger.consensus.effects import (
    Broadcast,
    Certified,
    Effect,
    Execute,
    NeedStateTransfer,
    PersistVotes,
    ReplyToClient,
    Send,
    ViewChanged,
    VoteRecord,
)
from gridledger.consensus.messages import (
    ClientRequest,
    Message,
    PrePrepare,
    SignedEnvelope,
    compute_batch_digest,
    compute_request_digest,
    decode_message,
)
from gridledger.consensus.pbft import (
    PbftConfig,
    ReplicaState,
    compute_live_votes,
    new_replica_state,
    on_client_request,
    on_executed,
    on_frame,
    on_state_transferred,
    on_tick,
)
from gridledger.crypto.encoding import encode
from gridledger.crypto.hashing import hash_value, register_tag
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.certificate import CommitCertificate, Validator

SIM_BLOCK_TAG = register_tag("gridledger/consensus/sim-block/1")
PPM = 1_000_000


class Behaviour(Enum):
    """How a replica deviates from the protocol in the simulator."""

    HONEST = "honest"
    SILENT = "silent"  # receives, sends nothing
    # As primary, sends conflicting pre-prepares to two halves of the backups; a backup
    # that restarted gets the other half's (a primary exploiting a replica's amnesia).
    EQUIVOCATE = "equivocate"
    TAMPER = "tamper"  # flips bits, forges senders and sends garbage besides its messages


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
class SimApp:
    """The in-memory application of one replica: a hash chain of executed batches."""

    digests: dict[int, bytes] = field(default_factory=dict)  # seq -> block digest
    batches: dict[int, bytes] = field(default_factory=dict)  # seq -> batch content digest
    timestamps: dict[int, int] = field(default_factory=dict)
    head: int = 0

    def get_digest(self, seq: int) -> bytes:
        return self.digests.get(seq, b"\x00" * 32)

    def process_execute(self, ex: Execute) -> bytes:
        batch = compute_batch_digest(ex.timestamp_ms, ex.requests)
        digest = hash_value(SIM_BLOCK_TAG, [self.get_digest(ex.seq - 1), ex.seq, batch])
        self.digests[ex.seq] = digest
        self.batches[ex.seq] = batch
        self.timestamps[ex.seq] = ex.timestamp_ms
        self.head = ex.seq
        return digest

    def truncate(self, seq: int) -> None:
        for table in (self.digests, self.batches, self.timestamps):
            for s in [s for s in table if s > seq]:
                del table[s]
        self.head = min(self.head, seq)


@dataclass
class SimReplica:
    """One replica's slot in the simulator: protocol state, app, fault model."""

    replica_id: int
    key: Ed25519PrivateKey
    state: ReplicaState
    app: SimApp
    behaviour: Behaviour = Behaviour.HONEST
    alive: bool = True
    persisted: tuple[int, bytes, CommitCertificate | None, int] = (0, b"", None, 0)
    votes: tuple[VoteRecord, ...] = ()  # the vote log on "disk" (PersistVotes)
    restarts: int = 0


@dataclass
class SimStats:
    """What the network carried (messages between replicas; clients counted apart)."""

    broadcasts: int = 0
    sends: int = 0
    messages: int = 0  # point-to-point frames handed to the network by replicas
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    client_messages: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


Event = tuple[int, int, str, int, object]  # (time, order, kind, replica, payload)


def make_keys(n: int, seed: int) -> list[Ed25519PrivateKey]:
    """Deterministic validator keys for a simulated consortium."""
    rng = DeterministicRng(f"simnet-keys/{seed}/{n}")
    return [Ed25519PrivateKey(rng.random_bytes(32)) for _ in range(n)]


def make_config(keys: Sequence[Ed25519PrivateKey], **overrides: int) -> PbftConfig:
    """A :class:`PbftConfig` for the given keys, with simulator-friendly timeouts."""
    validators = tuple(Validator(i, k.public_key.raw) for i, k in enumerate(keys))
    params: dict[str, int] = {
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
    return PbftConfig("sim-chain", validators, **params)


class SimNetwork:
    """A seeded discrete-event simulation of n replicas, their network and their clients."""

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
    ) -> None:
        self.seed = seed
        self.rng = DeterministicRng(f"simnet/{seed}")
        self.drop_ppm = int(drop_rate * PPM)
        self.duplicate_ppm = int(duplicate_rate * PPM)
        self.delay_ms = delay_ms
        self.reorder = reorder
        self.partitions = list(partitions)
        self.tick_ms = tick_ms
        self.client_retry_ms = client_retry_ms
        self.transfer_delay_ms = transfer_delay_ms
        self.keys = make_keys(n, seed)
        self.config = make_config(self.keys, **(config_overrides or {}))
        behaviours = behaviours or {}
        self.replicas = [
            SimReplica(
                i,
                k,
                new_replica_state(self.config, i, k),
                SimApp(),
                behaviours.get(i, Behaviour.HONEST),
            )
            for i, k in enumerate(self.keys)
        ]
        self.now_ms = 0
        self._queue: list[Event] = []
        self._order = 0
        self._link_clock: dict[tuple[int, int], int] = {}
        self.stats = SimStats()
        self.trace: list[str] = []
        self.collector = ReplyCollector(self.config.chain_id, self.config.validators)
        self.requests: dict[bytes, ClientRequest] = {}
        self.submitted_ms: dict[bytes, int] = {}
        self.completed_ms: dict[bytes, int] = {}
        self.certificates: dict[int, CommitCertificate] = {}
        self.transfers = 0
        self.executed_in_view: dict[int, int] = {}
        self.on_effect: Callable[[int, Effect], None] | None = None
        # Tests may drop chosen messages: called as (sender, to, message); False drops it.
        self.message_filter: Callable[[int, int, Message], bool] | None = None
        self._next_request = 0
        for r in self.replicas:
            self._schedule(self.rng.randbelow(tick_ms) + 1, "tick", r.replica_id, None)

    # -- scheduling ---------------------------------------------------------------------

    def _schedule(self, at_ms: int, kind: str, replica: int, payload: object) -> None:
        self._order += 1
        heapq.heappush(self._queue, (at_ms, self._order, kind, replica, payload))

    def _delay(self) -> int:
        lo, hi = self.delay_ms
        return lo + self.rng.randbelow(hi - lo + 1)

    def _is_cut(self, a: int, b: int) -> bool:
        return any(p.is_cut(a, b, self.now_ms) for p in self.partitions)

    def _transmit(self, sender: int, to: int, frame: bytes) -> None:
        """Put one frame on the link sender -> to, subject to every network fault."""
        self.stats.messages += 1
        if self._is_cut(sender, to) or self.rng.randbelow(PPM) < self.drop_ppm:
            self.stats.dropped += 1
            return
        copies = 2 if self.rng.randbelow(PPM) < self.duplicate_ppm else 1
        self.stats.duplicated += copies - 1
        for _ in range(copies):
            at = self.now_ms + self._delay()
            if not self.reorder:
                at = max(at, self._link_clock.get((sender, to), 0))
                self._link_clock[(sender, to)] = at
            self._schedule(at, "deliver", to, frame)

    # -- clients ------------------------------------------------------------------------

    def submit(self, count: int = 1, at_ms: int | None = None, payload_size: int = 64) -> None:
        """Schedule ``count`` new client requests (each from its own client)."""
        for _ in range(count):
            k = self._next_request
            self._next_request += 1
            client = f"client-{k}".encode()
            payload = hashlib.sha256(f"{self.seed}/{k}".encode()).digest()
            payload = (payload * (payload_size // 32 + 1))[:payload_size]
            req = ClientRequest(client, 0, payload)
            self._schedule(self.now_ms if at_ms is None else at_ms, "request", -1, req)

    def _client_send(self, req: ClientRequest) -> None:
        digest = compute_request_digest(req)
        if digest in self.completed_ms:
            return
        self.requests[digest] = req
        self.submitted_ms.setdefault(digest, self.now_ms)
        for r in self.replicas:
            self.stats.client_messages += 1
            self._schedule(self.now_ms + self._delay(), "client", r.replica_id, req)
        self._schedule(self.now_ms + self.client_retry_ms, "request", -1, req)

    # -- faults -------------------------------------------------------------------------

    def crash(self, replica: int, at_ms: int) -> None:
        self._schedule(at_ms, "crash", replica, None)

    def restart(self, replica: int, at_ms: int, *, lose_votes: bool = False) -> None:
        """Restart ``replica`` at ``at_ms`` from what it persisted.

        ``lose_votes=True`` wipes its vote log first (a disk that kept only blocks):
        it then restarts in view 0, free to vote again at slots it voted for.
        """
        self._schedule(at_ms, "restart-lose-votes" if lose_votes else "restart", replica, None)

    def _do_crash(self, r: SimReplica) -> None:
        r.alive = False
        self.trace.append(f"{self.now_ms} r{r.replica_id} crash")

    def _do_restart(self, r: SimReplica, *, lose_votes: bool = False) -> None:
        """Fresh protocol state from the persisted stable checkpoint and vote log; the app
        keeps its blocks up to that checkpoint (blocks above it were not certified and are
        re-done)."""
        seq, digest, cert, ts = r.persisted
        r.app.truncate(seq)
        if lose_votes:
            r.votes = ()
        r.state = new_replica_state(
            self.config,
            r.replica_id,
            r.key,
            stable_seq=seq,
            stable_digest=digest,
            stable_certificate=cert,
            timestamp_ms=ts,
            votes=r.votes,
        )
        r.alive = True
        r.restarts += 1
        self.trace.append(
            f"{self.now_ms} r{r.replica_id} restart at {seq} view {r.state.view}"
            f" votes {len(r.votes)}"
        )

    # -- running ------------------------------------------------------------------------

    def run_until(self, until_ms: int, max_events: int = 2_000_000) -> None:
        """Process events in time order up to ``until_ms`` (or ``max_events`` of them)."""
        for _ in range(max_events):
            if not self._queue or self._queue[0][0] > until_ms:
                break
            at, _, kind, rid, payload = heapq.heappop(self._queue)
            self.now_ms = at
            self._dispatch(kind, rid, payload)
        self.now_ms = max(self.now_ms, until_ms)

    def run_until_done(self, until_ms: int, *, min_completed: int | None = None) -> bool:
        """Run until every submitted request has f+1 matching replies (or ``until_ms``)."""
        step = 50
        while True:
            goal = self._next_request if min_completed is None else min_completed
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
            self._do_crash(r)
        elif kind == "restart":
            self._do_restart(r)
        elif kind == "restart-lose-votes":
            self._do_restart(r, lose_votes=True)
        elif not r.alive:
            if kind == "tick":
                self._schedule(self.now_ms + self.tick_ms, "tick", rid, None)
        elif kind == "tick":
            self._apply(r, on_tick(r.state, self.now_ms))
            self._schedule(self.now_ms + self.tick_ms, "tick", rid, None)
        elif kind == "deliver":
            assert isinstance(payload, bytes)
            self.stats.delivered += 1
            self._apply(r, on_frame(r.state, payload, self.now_ms))
        elif kind == "client":
            assert isinstance(payload, ClientRequest)
            self._apply(r, on_client_request(r.state, payload, self.now_ms))
        elif kind == "transfer":
            assert isinstance(payload, NeedStateTransfer)
            self._do_transfer(r, payload)

    # -- effects ------------------------------------------------------------------------

    def _apply(self, r: SimReplica, effects: list[Effect]) -> None:
        queue = list(effects)
        while queue:
            effect = queue.pop(0)
            if self.on_effect is not None:
                self.on_effect(r.replica_id, effect)
            if isinstance(effect, PersistVotes):
                r.votes = compute_live_votes(r.votes, effect)  # survives crashes, like a disk
            elif isinstance(effect, (Send, Broadcast)):
                self._send(r, effect)
            elif isinstance(effect, Execute):
                digest = r.app.process_execute(effect)
                self.trace.append(
                    f"{self.now_ms} r{r.replica_id} exec {effect.seq} "
                    f"{r.app.batches[effect.seq].hex()[:12]} n={len(effect.requests)}"
                )
                queue.extend(on_executed(r.state, effect.seq, digest))
            elif isinstance(effect, Certified):
                r.persisted = (
                    r.state.low_watermark,
                    r.state.stable_digest,
                    r.state.stable_certificate,
                    r.app.timestamps.get(r.state.low_watermark, 0),
                )
                self.certificates.setdefault(effect.seq, effect.certificate)
            elif isinstance(effect, ReplyToClient):
                self._on_reply(r, effect)
            elif isinstance(effect, NeedStateTransfer):
                self.trace.append(
                    f"{self.now_ms} r{r.replica_id} need-transfer {effect.target_seq}"
                )
                self._schedule(
                    self.now_ms + self.transfer_delay_ms, "transfer", r.replica_id, effect
                )
            elif isinstance(effect, ViewChanged):
                self.trace.append(f"{self.now_ms} r{r.replica_id} view {effect.view}")

    def _send(self, r: SimReplica, effect: Send | Broadcast) -> None:
        env = effect.envelope
        targets = (
            [effect.to]
            if isinstance(effect, Send)
            else [p.replica_id for p in self.replicas if p.replica_id != r.replica_id]
        )
        if isinstance(effect, Send):
            self.stats.sends += 1
        else:
            self.stats.broadcasts += 1
        msg = decode_message(env.body)
        name = msg.__class__.__name__
        if self.message_filter is not None:
            keep = self.message_filter
            targets = [t for t in targets if keep(r.replica_id, t, msg)]
        self.stats.by_type[name] = self.stats.by_type.get(name, 0) + len(targets)
        if r.behaviour is Behaviour.SILENT:
            return
        if r.behaviour is Behaviour.EQUIVOCATE and name == "PrePrepare":
            self._equivocate(r, env, targets)
            return
        frame = encode(env)
        for to in targets:
            self._transmit(r.replica_id, to, frame)
            if r.behaviour is Behaviour.TAMPER:
                self._tamper(r, env, to)

    def _equivocate(self, r: SimReplica, env: SignedEnvelope, targets: list[int]) -> None:
        """Send the real pre-prepare to one half and a conflicting one to the other half;
        swap halves for a backup each time it restarted (it may have forgotten)."""
        pp = decode_message(env.body)
        assert isinstance(pp, PrePrepare)
        ts = pp.timestamp_ms + 1
        other = PrePrepare(pp.view, pp.seq, compute_batch_digest(ts, pp.batch), pp.batch, ts)
        other_frame = encode(r.state.auth.seal(other))
        half = len(targets) // 2
        for i, to in enumerate(targets):
            real = (i < half) != (self.replicas[to].restarts % 2 == 1)
            self._transmit(r.replica_id, to, encode(env) if real else other_frame)

    def _tamper(self, r: SimReplica, env: SignedEnvelope, to: int) -> None:
        """Extra junk next to each real message: a flipped bit, a forged sender, garbage."""
        choice = self.rng.randbelow(3)
        if choice == 0 and env.body:
            pos = self.rng.randbelow(len(env.body))
            body = bytearray(env.body)
            body[pos] ^= 1 << self.rng.randbelow(8)
            frame = encode(SignedEnvelope(env.sender, bytes(body), env.signature))
        elif choice == 1:
            forged = (env.sender + 1) % len(self.replicas)
            frame = encode(SignedEnvelope(forged, env.body, env.signature))
        else:
            frame = self.rng.random_bytes(1 + self.rng.randbelow(64))
        self._transmit(r.replica_id, to, frame)

    def _on_reply(self, r: SimReplica, effect: ReplyToClient) -> None:
        self.stats.client_messages += 1
        digest = effect.reply.request_digest
        if self.collector.process_reply(r.state.auth.seal(effect.reply)) is not None:
            self.completed_ms.setdefault(digest, self.now_ms)

    def _do_transfer(self, r: SimReplica, need: NeedStateTransfer) -> None:
        """Fetch blocks from a peer that has the certified block ``need.target_seq``."""
        source = None
        for peer in need.peers:
            p = self.replicas[peer]
            if p.alive and p.app.digests.get(need.target_seq) == need.state_digest:
                source = p
                break
        if source is None:
            self._apply(r, on_state_transferred(r.state, r.state.last_executed, b""))
            return
        for s in range(1, need.target_seq + 1):
            if s in source.app.digests:
                r.app.digests[s] = source.app.digests[s]
                r.app.batches[s] = source.app.batches[s]
                r.app.timestamps[s] = source.app.timestamps[s]
        r.app.head = max(r.app.head, need.target_seq)
        self.transfers += 1
        self.trace.append(f"{self.now_ms} r{r.replica_id} transferred {need.target_seq}")
        ts = r.app.timestamps.get(need.target_seq, 0)
        self._apply(
            r,
            on_state_transferred(r.state, need.target_seq, need.state_digest, timestamp_ms=ts),
        )

    # -- checks -------------------------------------------------------------------------

    def get_honest(self) -> list[SimReplica]:
        return [r for r in self.replicas if r.behaviour is Behaviour.HONEST]

    def check_safety(self) -> list[str]:
        """No two honest replicas executed different batches (or blocks) at one seq."""
        problems: list[str] = []
        seen: dict[int, tuple[int, bytes, bytes]] = {}
        for r in self.get_honest():
            for seq, batch in r.app.batches.items():
                block = r.app.digests[seq]
                first = seen.setdefault(seq, (r.replica_id, batch, block))
                if first[1:] != (batch, block):
                    problems.append(f"seq {seq}: r{first[0]} and r{r.replica_id} differ")
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
