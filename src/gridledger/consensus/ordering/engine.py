"""A crash-fault-tolerant ordering service behind the engine seam (Fabric's orderer, seed 004).

The order comes from outside: a replicated log (NATS JetStream, a stream with
3 or 5 replicas on Raft) that every replica appends to and consumes in full.
The engine itself stays pure: it asks for appends (:class:`AppendToLog`) and
receives the ordered entries (:meth:`JetStreamEngine.on_log`); the replica
shell's adapter (:mod:`gridledger.consensus.ordering.nats_log`) talks to NATS.

* **Entries.** A client request becomes a ``tx`` entry whose dedup key is the
  hash of its payload, so the same transaction submitted to several replicas
  (or resubmitted) is stored once by the service; the ledger drops any copy
  that slips through beyond the dedup window.
* **Cuts, decided in the stream.** Block ``h`` holds the ``tx`` entries after
  block ``h - 1``'s end up to either the ``max_block_requests``-th of them or
  the first ``cut`` entry naming ``h``, whichever comes first. Any replica
  holding entries for ``cut_delay_ms`` asks for ``cut h`` with dedup key
  ``cut/h``, so all replicas asking at once store one marker; a marker naming a
  height already closed (by size) is ignored. Everything depends only on the
  stream's content, so every replica builds identical blocks. The timestamp is
  the largest entry timestamp of the block (and never below the parent's).
* **Finality.** After executing a block each replica signs the header hash and
  broadcasts the signature; a majority of the replicas (⌊n/2⌋+1) on one header
  is the proof. The model is crash faults: the service orders, replicas run
  the same code on the same order; a majority signature shows a light client
  that the header is what those replicas computed.
* **Restarts.** The engine persists (height, last consumed sequence) after each
  block; the adapter resumes after :attr:`JetStreamEngine.log_position`, and a
  block cut again from entries already executed is answered by the node from
  its store.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from gridledger.consensus.engine import (
    AppendToLog,
    BroadcastFrame,
    EngineContext,
    EngineEffect,
    ExecuteBlock,
    Finalized,
    PersistState,
    SendFrame,
    register_engine,
)
from gridledger.consensus.messages import ClientRequest
from gridledger.consensus.ordering.config import ENGINE_NAME, get_config
from gridledger.consensus.ordering.messages import (
    CUT,
    TX,
    LogEntry,
    LogPosition,
    OrderingConfirmation,
)
from gridledger.crypto.encoding import (
    decode,
    decode_as,
    encode,
    from_value,
    get_type_tag,
    wire_name,
)
from gridledger.crypto.errors import EncodingError
from gridledger.errors import ConfigError
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import (
    BlockVote,
    CertificateError,
    CommitCertificate,
    VoteSignature,
    is_valid_vote,
    sign_vote,
    verify_certificate,
)
from gridledger.ledger.finality import (
    FinalityRule,
    QuorumCertificateRule,
    register_finality_rule,
)
from gridledger.ledger.quorum import compute_majority

POSITION_KEY = "jetstream/position"
KEEP_HEIGHTS = 256
RESEND_MS = 1_000


class JetStreamEngine:
    """One replica's view of the ordered log: cuts blocks, signs what it executed."""

    def __init__(self, context: EngineContext) -> None:
        genesis = context.genesis
        self.ctx = context
        self.me = context.replica_id
        self.config = get_config(genesis)
        self.chain_id = genesis.chain_id
        self.validators = {v.replica_id: v for v in genesis.validators}
        self.threshold = compute_majority(len(genesis.validators))
        position = _read_position(context.read_persisted(POSITION_KEY))
        height = context.chain.height
        # A block executed after the last persisted position is cut again and answered
        # from the store; never resume past what the chain holds.
        self.cut_height = min(position.height, height)
        self.position = position.seq if position.height <= height else 0
        if self.position == 0:
            self.cut_height = 0
        header = context.chain.get_header(height)
        self.last_timestamp = genesis.timestamp_ms if header is None else header.timestamp_ms
        self.pending: list[ClientRequest] = []
        self.pending_ts = 0
        self.pending_since: int | None = None
        self.cut_asked: dict[int, int] = {}
        self.cut_seq: dict[int, int] = {}
        self.executed: dict[int, bytes] = {}
        self.votes: dict[tuple[int, bytes], dict[int, bytes]] = {}
        self.proofs: dict[int, CommitCertificate] = {}
        self.finalized: set[int] = set()
        self.mine: dict[int, OrderingConfirmation] = {}
        self.next_resend_ms = 0
        self.now_ms = 0
        self.rejected: Counter[str] = Counter()
        self.blocks_cut = 0

    # -- reads ------------------------------------------------------------------------

    @property
    def view(self) -> int:
        return 0

    @property
    def leader(self) -> int:
        return -1  # the log service orders; no replica leads

    @property
    def log_position(self) -> int:
        return self.position

    @property
    def max_request_bytes(self) -> int:
        return 1024 * 1024 - 1024  # a NATS message is at most 1 MiB by default

    def get_status(self) -> dict[str, Any]:
        return {
            "engine": ENGINE_NAME,
            "log_position": self.position,
            "cut_height": self.cut_height,
            "pending_entries": len(self.pending),
            "blocks_cut": self.blocks_cut,
            "rejected": dict(self.rejected),
        }

    # -- events -----------------------------------------------------------------------

    def on_request(self, request: ClientRequest, now_ms: int) -> list[EngineEffect]:
        self.now_ms = max(self.now_ms, now_ms)
        key = "tx/" + hashlib.sha256(request.payload).hexdigest()
        entry = LogEntry(TX, 0, now_ms, encode(request))
        return [AppendToLog(key, encode(entry))]

    def on_log(self, seq: int, payload: bytes, now_ms: int) -> list[EngineEffect]:
        self.now_ms = max(self.now_ms, now_ms)
        if seq <= self.position:
            return []  # the adapter repeats entries after a reconnect
        self.position = seq
        try:
            entry = decode_as(LogEntry, payload)
            request = decode_as(ClientRequest, entry.body) if entry.kind == TX else None
        except EncodingError:
            self.rejected["malformed-entry"] += 1
            return []
        if request is not None:
            if self.pending_since is None:
                self.pending_since = now_ms
            self.pending.append(request)
            self.pending_ts = max(self.pending_ts, entry.timestamp_ms)
            if len(self.pending) >= self.config.max_block_requests:
                return self._cut(seq)
            return []
        if entry.kind == CUT and entry.height == self.cut_height + 1 and self.pending:
            self.pending_ts = max(self.pending_ts, entry.timestamp_ms)
            return self._cut(seq)
        if entry.kind != CUT:
            self.rejected["unknown-entry"] += 1
        return []  # a stale or empty cut: the block was closed by size already

    def on_tick(self, now_ms: int) -> list[EngineEffect]:
        self.now_ms = max(self.now_ms, now_ms)
        out: list[EngineEffect] = []
        since = self.pending_since
        if since is not None and now_ms - since >= self.config.cut_delay_ms:
            height = self.cut_height + 1
            asked = self.cut_asked.get(height)
            if asked is None or now_ms - asked >= RESEND_MS:
                self.cut_asked[height] = now_ms
                entry = LogEntry(CUT, height, now_ms, b"")
                out.append(AppendToLog(f"cut/{height}", encode(entry)))
        if now_ms >= self.next_resend_ms:
            self.next_resend_ms = now_ms + RESEND_MS
            for height, conf in sorted(self.mine.items()):
                if height not in self.finalized:
                    out.append(BroadcastFrame(encode(conf)))
        return out

    def on_frame(self, sender: int, frame: bytes, now_ms: int) -> list[EngineEffect]:
        self.now_ms = max(self.now_ms, now_ms)
        try:
            value = decode(frame)
            if get_type_tag(value) == wire_name(CommitCertificate):
                return self._on_proof(from_value(CommitCertificate, value))
            conf = from_value(OrderingConfirmation, value)
        except EncodingError:
            self.rejected["malformed"] += 1
            return []
        if conf.replica_id != sender:
            self.rejected["not-the-sender"] += 1
            return []
        return self._add_vote(conf)

    def on_executed(self, height: int, header_hash: bytes) -> list[EngineEffect]:
        self.executed[height] = header_hash
        vote = BlockVote(self.chain_id, height, header_hash)
        conf = OrderingConfirmation(height, header_hash, self.me, sign_vote(self.ctx.key, vote))
        self.mine[height] = conf
        out: list[EngineEffect] = [BroadcastFrame(encode(conf))]
        seq = self.cut_seq.pop(height, None)
        if seq is not None:
            out.append(PersistState(POSITION_KEY, encode(LogPosition(height, seq))))
        out.extend(self._add_vote(conf))
        self._forget(height)
        return out

    def on_synced(self, height: int, header_hash: bytes, timestamp_ms: int) -> list[EngineEffect]:
        # The log is the source of order: a replica that fell behind replays it from its
        # position; blocks it imported meanwhile are answered from its store.
        self.last_timestamp = max(self.last_timestamp, timestamp_ms)
        return []

    # -- internals --------------------------------------------------------------------

    def _cut(self, seq: int) -> list[EngineEffect]:
        self.cut_height += 1
        self.blocks_cut += 1
        timestamp = max(self.pending_ts, self.last_timestamp)
        self.last_timestamp = timestamp
        block = ExecuteBlock(self.cut_height, tuple(self.pending), timestamp, proposer=0)
        self.cut_seq[self.cut_height] = seq
        self.pending = []
        self.pending_ts = 0
        self.pending_since = None
        return [block]

    def _add_vote(self, conf: OrderingConfirmation) -> list[EngineEffect]:
        validator = self.validators.get(conf.replica_id)
        if validator is None:
            self.rejected["unknown-replica"] += 1
            return []
        if conf.height in self.finalized:
            proof = self.proofs.get(conf.height)
            if proof is None or conf.replica_id == self.me:
                return []
            return [SendFrame(conf.replica_id, encode(proof))]  # it missed the others' votes
        if conf.height <= self.cut_height - KEEP_HEIGHTS:
            return []
        vote = BlockVote(self.chain_id, conf.height, conf.header_hash)
        if not is_valid_vote(validator, vote, conf.signature):
            self.rejected["bad-signature"] += 1
            return []
        votes = self.votes.setdefault((conf.height, conf.header_hash), {})
        votes[conf.replica_id] = conf.signature
        if len(votes) >= self.threshold and conf.height not in self.proofs:
            sigs = tuple(VoteSignature(r, s) for r, s in sorted(votes.items()))
            self.proofs[conf.height] = CommitCertificate(
                self.chain_id, conf.height, conf.header_hash, sigs
            )
        return self._finalize(conf.height)

    def _on_proof(self, proof: CommitCertificate) -> list[EngineEffect]:
        """A peer's proof for a height whose votes this replica missed (it was down)."""
        if proof.height in self.finalized or proof.height in self.proofs:
            return []
        try:
            verify_certificate(
                proof,
                tuple(self.validators.values()),
                chain_id=self.chain_id,
                threshold=self.threshold,
            )
        except CertificateError:
            self.rejected["bad-proof"] += 1
            return []
        self.proofs[proof.height] = proof
        return self._finalize(proof.height)

    def _finalize(self, height: int) -> list[EngineEffect]:
        proof, mine = self.proofs.get(height), self.executed.get(height)
        if proof is None or mine is None or height in self.finalized:
            return []
        if proof.header_hash != mine:
            self.rejected["proof-for-another-header"] += 1  # a divergence: never under crash faults
            return []
        self.finalized.add(height)
        self.mine.pop(height, None)
        return [Finalized(height, mine, proof)]

    def _forget(self, height: int) -> None:
        low = height - KEEP_HEIGHTS
        if low <= 0 or low % 64:
            return
        self.executed = {h: v for h, v in self.executed.items() if h > low}
        self.proofs = {h: v for h, v in self.proofs.items() if h > low}
        self.finalized = {h for h in self.finalized if h > low}
        self.votes = {k: v for k, v in self.votes.items() if k[0] > low}
        self.mine = {h: v for h, v in self.mine.items() if h > low}
        self.cut_asked = {h: v for h, v in self.cut_asked.items() if h > low}


def _read_position(raw: bytes | None) -> LogPosition:
    if raw is None:
        return LogPosition(0, 0)
    try:
        return decode_as(LogPosition, raw)
    except EncodingError as exc:
        raise ConfigError(f"the persisted {POSITION_KEY!r} is corrupt: {exc.reason}") from None


def build_ordering_rule(genesis: GenesisConfig) -> FinalityRule:
    """A majority of the replicas signed the header (crash faults: ⌊n/2⌋+1)."""
    n = len(genesis.validators)
    return QuorumCertificateRule(genesis.chain_id, genesis.validators, compute_majority(n))


register_engine(ENGINE_NAME, JetStreamEngine)
register_finality_rule(ENGINE_NAME, build_ordering_rule)
