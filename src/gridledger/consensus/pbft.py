"""PBFT (Castro & Liskov, OSDI'99 / TOCS'02) as a pure, event-driven core.

One mutable :class:`ReplicaState` per replica and a handful of ``on_*`` handlers
that take it, the event and ``now_ms``, mutate the state and return a list of
effects (:mod:`gridledger.consensus.effects`). No clock, network, disk or
randomness inside: the node and the simulator drive the same code. Ed25519 is
deterministic, so signing does not break that.

Normal case (view ``v``, primary ``validators[v mod n]``)::

    client --request--> all replicas
    primary --PRE-PREPARE(v, n, d, batch, ts)--> backups      (batching, pipelining)
    backup  --PREPARE(v, n, d)--> all                         prepared: pp + 2f prepares
    replica --COMMIT(v, n, d)--> all                          committed-local: 2f+1 commits
    replica: Execute(n) strictly in seq order; the application reports on_executed
    replica --CHECKPOINT(n, header hash, vote signature)--> all
             2f+1 matching checkpoints -> Certified(n, CommitCertificate)
             every K-th certified seq is stable: log GC, low watermark h := n

Messages are accepted only for the current view and inside the watermarks
``h < n <= h + L``. View change, checkpoints and state transfer are described
in ``docs/protocols/consensus.md``.

Liveness under a byzantine minority (Castro & Liskov §4.5.2): the view-change
timer for view v starts only once 2f+1 VIEW-CHANGEs for v are in, with
exponential back-off; f+1 VIEW-CHANGEs (or normal-case messages, or STATUS
heartbeats) of higher views make a replica join the smallest; the request timer
restarts whenever a request executes; a replica that hears fewer than 2f peers
does not accuse its primary (it is probably the one cut off, and it could never
come back from a higher view). Every replica heartbeats a STATUS; a peer below
our stable checkpoint gets its certificate, one still asking for our view gets
the NEW-VIEW (any replica relays it). A sender's first checkpoint is not final.

Own votes are durable by design: a handler call that makes this replica send a
new PRE-PREPARE, PREPARE or COMMIT (or start a view change, or enter a view)
returns a :class:`PersistVotes` as its FIRST effect, so the driver writes the
votes before it transmits them. A replica restarted with those records
(``new_replica_state(..., votes=...)``) resumes in the highest view it reached,
never votes for another digest at a ``(view, seq)`` it voted for, and as primary
never pre-prepares a seq it already used in that view. The prepared proofs go to
disk with the COMMIT votes (phase ``prepared``), so its next VIEW-CHANGE still
reports what it prepared before the crash.
"""

from __future__ import annotations

import functools
import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import ParamSpec

from gridledger.consensus.effects import (
    PHASE_COMMIT,
    PHASE_NEW_VIEW,
    PHASE_PRE_PREPARE,
    PHASE_PREPARE,
    PHASE_PREPARED,
    PHASE_VIEW_CHANGE,
    PROOF_PHASES,
    SLOT_PHASES,
    VIEW_PHASES,
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
from gridledger.consensus.errors import BadEnvelope, ConfigInvalid
from gridledger.consensus.messages import (
    MAX_ENVELOPE_BYTES,
    PRE_PREPARE_OVERHEAD_BYTES,
    PREPARE_BYTES,
    Authenticator,
    Checkpoint,
    CheckpointCertificate,
    ClientRequest,
    Commit,
    ForwardedRequests,
    Message,
    NewView,
    Prepare,
    PreparedProof,
    PrePrepare,
    Reply,
    SignedEnvelope,
    Status,
    ViewChange,
    compute_batch_digest,
    compute_reply_result,
    compute_request_digest,
    compute_request_size,
    decode_envelope,
    split_requests,
)
from gridledger.consensus.quorum import (
    compute_f,
    compute_prepared_quorum,
    compute_quorum,
    compute_weak,
)
from gridledger.consensus.types import ReplicaId, SeqNo, View
from gridledger.consensus.viewchange import (
    ProofContext,
    compute_new_view_pre_prepares,
    get_min_s,
    get_valid_proof_pre_prepare,
    is_valid_view_change,
)
from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.errors import EncodingError
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.certificate import (
    BlockVote,
    CertificateError,
    CommitCertificate,
    Validator,
    VoteSignature,
    is_valid_vote,
    sign_vote,
    verify_certificate,
)

__all__ = [
    "Broadcast",
    "Certified",
    "Effect",
    "Execute",
    "NeedStateTransfer",
    "PbftConfig",
    "PersistVotes",
    "ReplicaState",
    "ReplyToClient",
    "Send",
    "ViewChanged",
    "VoteRecord",
    "compute_live_votes",
    "decode_vote_log",
    "encode_vote_log",
    "new_replica_state",
    "on_client_request",
    "on_executed",
    "on_frame",
    "on_message",
    "on_state_transferred",
    "on_tick",
]

MAX_BACKOFF_EXPONENT = 6
MAX_CHECKPOINT_DIGESTS = 4  # distinct digests kept per sender and seq (a faulty sender's)
MAX_VERIFIED_CACHE = 4096  # entries
MAX_VERIFIED_CACHE_BYTES = 32 * 1024 * 1024  # frame bytes kept (a frame is cached whole)
SMALL_FRAME_BYTES = 2048  # cached even if its processing rejected it
MAX_AUTO_BATCH_BYTES = 1024 * 1024
MIN_BATCH_BYTES = 1024
HOLD_FACTOR = 10  # a held batch waits at most this many batch timeouts (_is_holding_batch)
# The worst-case NEW-VIEW must fit MAX_ENVELOPE_BYTES with this much room to spare.
NEW_VIEW_BUDGET_BYTES = MAX_ENVELOPE_BYTES * 7 // 8


def compute_new_view_bound(n: int, watermark_window: int, batch_max_bytes: int) -> int:
    """An upper bound on the bytes of a NEW-VIEW (and so of any VIEW-CHANGE).

    A NEW-VIEW carries 2f+1 VIEW-CHANGEs, each with up to ``watermark_window``
    prepared proofs (a pre-prepare with its batch and 2f prepares) and a checkpoint
    certificate, plus up to ``watermark_window`` pre-prepares of its own: about
    ``(2f+2) * watermark_window * batch_max_bytes``.
    """
    quorum = compute_quorum(n)
    prepares = compute_prepared_quorum(n)
    per_proof = batch_max_bytes + PRE_PREPARE_OVERHEAD_BYTES + prepares * PREPARE_BYTES
    per_view_change = 1024 + quorum * 160 + watermark_window * per_proof
    o_set = watermark_window * (batch_max_bytes + PRE_PREPARE_OVERHEAD_BYTES)
    return 4096 + quorum * per_view_change + o_set


def compute_auto_batch_bytes(n: int, watermark_window: int) -> int:
    """The largest batch byte cap (at most 1 MiB) whose NEW-VIEW fits the budget."""
    lo, hi = 0, MAX_AUTO_BATCH_BYTES
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if compute_new_view_bound(n, watermark_window, mid) <= NEW_VIEW_BUDGET_BYTES:
            lo = mid
        else:
            hi = mid - 1
    return lo


_P = ParamSpec("_P")


@dataclass(frozen=True)
class PbftConfig:
    """Consortium and protocol parameters; identical at every replica."""

    chain_id: str
    validators: tuple[Validator, ...]
    batch_max: int = 64
    # Bytes of a batch's requests (compute_request_size); 0 picks the largest value
    # (at most 1 MiB) for which a worst-case NEW-VIEW fits MAX_ENVELOPE_BYTES.
    batch_max_bytes: int = 0
    checkpoint_interval: int = 16
    watermark_window: int = 64
    view_change_timeout_ms: int = 4000
    batch_timeout_ms: int = 20
    retransmit_interval_ms: int = 1000
    timestamp_tolerance_ms: int = 30_000
    state_transfer_delay_ms: int = 2000
    max_pending_requests: int = 100_000
    # Batches the primary keeps proposed and not yet executed before it holds the
    # next one back (0: no limit, only the watermark window). See _maybe_propose.
    max_inflight_batches: int = 0
    # Reply to each request of an executed batch (Castro-Liskov's REPLY). A node that
    # answers its clients with receipts from its ledger turns them off: building a
    # reply per request and keeping it for resends was pure cost there.
    client_replies: bool = True

    def __post_init__(self) -> None:
        if not self.validators:
            raise ConfigInvalid("validators: at least one replica is needed")
        if [v.replica_id for v in self.validators] != list(range(len(self.validators))):
            raise ConfigInvalid("validators: replica ids must be 0..n-1 in order")
        if self.batch_max < 1 or self.checkpoint_interval < 1:
            raise ConfigInvalid("batch_max and checkpoint_interval must be positive")
        if self.watermark_window < self.checkpoint_interval:
            raise ConfigInvalid("watermark_window must be at least checkpoint_interval")
        if self.view_change_timeout_ms < 1 or self.retransmit_interval_ms < 1:
            raise ConfigInvalid("timeouts must be positive")
        if self.max_inflight_batches < 0:
            raise ConfigInvalid("max_inflight_batches must be 0 (no limit) or positive")
        n, window = len(self.validators), self.watermark_window
        if self.batch_max_bytes == 0:
            object.__setattr__(self, "batch_max_bytes", compute_auto_batch_bytes(n, window))
        if self.batch_max_bytes < MIN_BATCH_BYTES:
            raise ConfigInvalid(
                f"batch_max_bytes: at least {MIN_BATCH_BYTES} bytes are needed "
                f"(lower watermark_window={window} for n={n})"
            )
        bound = compute_new_view_bound(n, window, self.batch_max_bytes)
        if bound > NEW_VIEW_BUDGET_BYTES:
            raise ConfigInvalid(
                f"batch_max_bytes * watermark_window * (2f+2) is too large: a NEW-VIEW "
                f"could reach {bound} bytes, above {NEW_VIEW_BUDGET_BYTES} "
                f"(envelope limit {MAX_ENVELOPE_BYTES})"
            )

    @property
    def max_request_bytes(self) -> int:
        """The largest request (compute_request_size) that fits a batch."""
        return self.batch_max_bytes

    @property
    def n(self) -> int:
        return len(self.validators)

    @property
    def f(self) -> int:
        return compute_f(self.n)

    @property
    def quorum(self) -> int:
        """2f+1 (n - f in general): :func:`~gridledger.consensus.quorum.compute_quorum`."""
        return compute_quorum(self.n)

    @property
    def weak(self) -> int:
        """f+1: enough replicas to include an honest one."""
        return compute_weak(self.n)

    @property
    def prepared_quorum(self) -> int:
        """Matching prepares (from distinct backups) that prepare a slot: 2f."""
        return compute_prepared_quorum(self.n)

    @property
    def forward_delay_ms(self) -> int:
        """How long a backup holds an unproposed request before forwarding it.

        Half the request timer: past saturation a request waits about a second
        in the primary's queue (admission control's target), and forwarding it
        then only repeats what the primary already holds.
        """
        return max(1, self.view_change_timeout_ms // 2)

    def get_primary(self, view: int) -> ReplicaId:
        return ReplicaId(self.validators[view % self.n].replica_id)

    def get_proof_context(self) -> ProofContext:
        return ProofContext(self.chain_id, self.validators, self.watermark_window)


@dataclass
class Slot:
    """Everything a replica knows about one sequence number."""

    seq: int
    # Current view only (reset when a new view is installed).
    pre_prepare: PrePrepare | None = None
    pre_prepare_env: SignedEnvelope | None = None
    prepares: dict[int, SignedEnvelope] = field(default_factory=dict)
    prepare_digests: dict[int, bytes] = field(default_factory=dict)
    commits: dict[int, bytes] = field(default_factory=dict)
    prepared: bool = False
    my_prepare: SignedEnvelope | None = None
    my_commit: SignedEnvelope | None = None
    equivocation_reported: bool = False
    # Survive view changes.
    proof: PreparedProof | None = None
    proof_view: int = -1
    committed: PrePrepare | None = None
    committed_view: int = -1


@dataclass
class ReplicaState:
    """The whole mutable state of one replica; only the handlers below change it."""

    config: PbftConfig
    replica_id: int
    auth: Authenticator
    key: Ed25519PrivateKey
    view: int = 0
    in_view_change: bool = False
    # Checkpoints and execution.
    low_watermark: int = 0
    stable_digest: bytes = b""
    stable_certificate: CommitCertificate | None = None
    last_executed: int = 0  # highest seq handed to the application (Execute emitted)
    last_reported: int = 0  # highest seq the application reported through on_executed
    executed_timestamp_ms: int = 0
    log: dict[int, Slot] = field(default_factory=dict)
    executed_batches: dict[int, tuple[int, tuple[ClientRequest, ...]]] = field(default_factory=dict)
    my_digests: dict[int, bytes] = field(default_factory=dict)
    # seq -> (sender, digest) -> checkpoint: a sender may have sent more than one digest
    # (a faulty one), and its first need not be final (MAX_CHECKPOINT_DIGESTS each).
    checkpoints: dict[int, dict[tuple[int, bytes], Checkpoint]] = field(default_factory=dict)
    verified_votes: set[tuple[int, int, bytes]] = field(default_factory=set)
    far_checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    certified: dict[int, tuple[bytes, CommitCertificate]] = field(default_factory=dict)
    certified_emitted: set[int] = field(default_factory=set)
    best_certified: int = 0
    my_checkpoint: SignedEnvelope | None = None
    # Requests.
    pending: dict[bytes, ClientRequest] = field(default_factory=dict)
    unproposed: dict[bytes, int] = field(default_factory=dict)  # digest -> arrival time
    inflight: dict[bytes, int] = field(default_factory=dict)  # digest -> seq
    # Requests executed since (about) the last stable checkpoint: digest -> seq. The
    # only request dedup here; the ledger's (sender, nonce) rules do the rest.
    executed_requests: dict[bytes, int] = field(default_factory=dict)
    last_replies: dict[bytes, ReplyToClient] = field(default_factory=dict)  # by digest
    # Backups: requests to forward to the primary once they waited forward_delay.
    to_forward: deque[tuple[int, bytes]] = field(default_factory=deque)
    # Primary.
    next_seq: int = 1
    last_proposed_timestamp_ms: int = 0
    # View change.
    view_changes: dict[int, dict[int, tuple[SignedEnvelope, ViewChange]]] = field(
        default_factory=dict
    )
    my_view_change: SignedEnvelope | None = None
    new_view_env: SignedEnvelope | None = None
    higher_view_senders: dict[int, int] = field(default_factory=dict)
    backoff: int = 0
    request_deadline_ms: int | None = None
    request_timer_digest: bytes | None = None
    view_change_deadline_ms: int | None = None
    next_retransmit_ms: int | None = None
    now_ms: int = 0  # time of the latest timed event, for the two untimed handlers
    # Liveness (STATUS heartbeats): when each peer's latest fresh STATUS arrived, the
    # send time it carried (replays of older ones do not count), and when we last
    # answered it (at most once per retransmit interval).
    last_heard_ms: dict[int, int] = field(default_factory=dict)
    status_sent_ms: dict[int, int] = field(default_factory=dict)
    status_reply_ms: dict[int, int] = field(default_factory=dict)
    # State transfer.
    transferring: int | None = None
    behind_since_ms: int | None = None
    # Own votes (see PersistVotes): (view, seq, phase) -> record; seq 0 for view phases.
    my_votes: dict[tuple[int, int, str], VoteRecord] = field(default_factory=dict)
    new_votes: list[VoteRecord] = field(default_factory=list)  # not yet handed out
    # Envelopes already authenticated (retransmissions, duplicates): no second verification.
    verified_cache: dict[bytes, tuple[SignedEnvelope, Message, int]] = field(default_factory=dict)
    verified_cache_bytes: int = 0
    rejections: int = 0  # total of ``rejected``
    # Observability (tests read these).
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    equivocations: int = 0
    divergences: int = 0
    view_changes_started: int = 0

    @property
    def primary(self) -> ReplicaId:
        return self.config.get_primary(self.view)

    @property
    def is_primary(self) -> bool:
        return self.primary == self.replica_id and not self.in_view_change


def new_replica_state(
    config: PbftConfig,
    replica_id: int,
    key: Ed25519PrivateKey,
    *,
    stable_seq: int = 0,
    stable_digest: bytes = b"",
    stable_certificate: CommitCertificate | None = None,
    timestamp_ms: int = 0,
    votes: Iterable[VoteRecord] = (),
) -> ReplicaState:
    """A fresh replica, at genesis or restarted from its persisted stable checkpoint.

    A restarted replica resumes at ``stable_seq`` (a certified block it holds, with
    that block's timestamp) and catches up through the log or through state transfer.
    ``votes`` are the records of its :class:`PersistVotes` effects (what is on disk):
    it resumes in the highest view they name (in that view's view change if it had
    not entered it yet), refuses to vote for another digest at a ``(view, seq)`` it
    voted for, and as primary proposes only above the seqs it pre-prepared in that
    view. Without votes it resumes in view 0 and learns the current view from its
    peers (f+1 higher-view messages, or the NEW-VIEW sent in answer to its view change).
    """
    if stable_seq > 0 and (stable_certificate is None or stable_certificate.height != stable_seq):
        raise ConfigInvalid("a restart above genesis needs the certificate of stable_seq")
    auth = Authenticator(config.chain_id, config.validators, replica_id, key)
    state = ReplicaState(
        config=config,
        replica_id=replica_id,
        auth=auth,
        key=key,
        low_watermark=stable_seq,
        stable_digest=stable_digest,
        stable_certificate=stable_certificate,
        last_executed=stable_seq,
        last_reported=stable_seq,
        executed_timestamp_ms=timestamp_ms,
        best_certified=stable_seq,
        next_seq=stable_seq + 1,
        last_proposed_timestamp_ms=timestamp_ms,
        my_digests={stable_seq: stable_digest} if stable_seq else {},
    )
    _restore_votes(state, votes)
    return state


def _restore_votes(state: ReplicaState, votes: Iterable[VoteRecord]) -> None:
    votes = tuple(votes)
    _restore_proofs(state, [v for v in votes if v.phase in PROOF_PHASES])
    live = [
        v
        for v in votes
        if v.phase in VIEW_PHASES or (v.phase in SLOT_PHASES and v.seq > state.low_watermark)
    ]
    if not live:
        return
    view = max(v.view for v in live)
    for v in live:
        if v.view == view:
            state.my_votes[(v.view, v.seq, v.phase)] = v
    state.view = view
    # Votes in ``view`` other than a view change mean the replica had entered it. If it
    # had only asked for it, it resends a view change at its first tick (on_tick).
    state.in_view_change = all(v.phase == PHASE_VIEW_CHANGE for v in live if v.view == view)
    used = [v.seq for v in live if v.view == view and v.phase == PHASE_PRE_PREPARE]
    state.next_seq = max(state.next_seq, max(used, default=0) + 1)


def _restore_proofs(state: ReplicaState, records: Sequence[VoteRecord]) -> None:
    """Put the persisted prepared proofs back in the log, for the next VIEW-CHANGE.

    A record that does not decode or does not hold (wrong seq, view or signatures)
    is skipped: it cannot come from this replica's own PersistVotes, and a bad
    proof would make every VIEW-CHANGE of this replica invalid.
    """
    ctx = state.config.get_proof_context()
    for rec in sorted(records, key=lambda r: (r.seq, r.view)):
        if rec.seq <= state.low_watermark:
            continue
        try:
            proof = decode_as(PreparedProof, rec.digest)
        except EncodingError:
            continue
        pp = get_valid_proof_pre_prepare(ctx, state.auth, proof, rec.view + 1, state.low_watermark)
        if pp is None or pp.seq != rec.seq or pp.view != rec.view:
            continue
        slot = _get_slot(state, rec.seq)
        if rec.view > slot.proof_view:
            slot.proof = proof
            slot.proof_view = rec.view


@wire_type("consensus.vote-log/1")
@dataclass(frozen=True)
class VoteLog:
    """The persisted form of a replica's live votes (one blob, rewritten on each change)."""

    rows: tuple[tuple[int, int, str, bytes], ...]  # (view, seq, phase, digest)


def encode_vote_log(votes: Iterable[VoteRecord]) -> bytes:
    """Canonical bytes of a list of vote records (compact: one 4-item row per vote)."""
    return encode(VoteLog(tuple((v.view, v.seq, v.phase, v.digest) for v in votes)))


def decode_vote_log(data: bytes) -> tuple[VoteRecord, ...]:
    """Read back :func:`encode_vote_log`; raises ``EncodingError`` if malformed."""
    log = decode_as(VoteLog, data)
    try:
        return tuple(VoteRecord(*row) for row in log.rows)
    except ValueError as exc:
        raise EncodingError(f"vote log: {exc}") from None


def compute_live_votes(
    persisted: Iterable[VoteRecord], effect: PersistVotes
) -> tuple[VoteRecord, ...]:
    """What to keep on disk after ``effect``: the records plus the new votes, minus those
    of views below ``effect.view`` and slot votes at or below ``effect.low_watermark``.

    Prepared proofs (phase ``prepared``) are kept across views: per seq above
    ``effect.low_watermark``, the one of the highest view.

    Sorted and deduplicated, so equal vote sets give equal bytes.
    """
    keep: set[VoteRecord] = set()
    proofs: dict[int, VoteRecord] = {}
    for v in (*persisted, *effect.votes):
        if v.phase in PROOF_PHASES:
            best = proofs.get(v.seq)
            if v.seq > effect.low_watermark and (best is None or v.view > best.view):
                proofs[v.seq] = v
        elif v.view >= effect.view and (v.phase in VIEW_PHASES or v.seq > effect.low_watermark):
            keep.add(v)
    keep.update(proofs.values())
    return tuple(sorted(keep, key=lambda v: (v.view, v.seq, v.phase, v.digest)))


# ----------------------------------------------------------------------------------------
# Small helpers


def _reject(state: ReplicaState, reason: str) -> None:
    state.rejected[reason] = state.rejected.get(reason, 0) + 1
    state.rejections += 1


def _get_voted_digest(state: ReplicaState, view: int, seq: int) -> bytes | None:
    """The digest this replica already voted for at ``(view, seq)``, in any phase."""
    for phase in SLOT_PHASES:
        vote = state.my_votes.get((view, seq, phase))
        if vote is not None:
            return vote.digest
    return None


def _record_vote(state: ReplicaState, view: int, seq: int, phase: str, digest: bytes) -> bool:
    """Note an own vote before sending it; ``False`` (send nothing) if it would conflict."""
    if phase in SLOT_PHASES:
        voted = _get_voted_digest(state, view, seq)
        if voted is not None and voted != digest:
            _reject(state, "conflicting-vote")
            return False
    key = (view, seq, phase)
    if key not in state.my_votes:
        vote = VoteRecord(view, seq, phase, digest)
        state.my_votes[key] = vote
        state.new_votes.append(vote)
    return True


def _record_view(state: ReplicaState, phase: str) -> None:
    """Note that this replica asked for / entered ``state.view``; lower views are over."""
    for key in [k for k in state.my_votes if k[0] < state.view]:
        del state.my_votes[key]
    _record_vote(state, state.view, 0, phase, b"")


def _persisting_votes(handler: Callable[_P, list[Effect]]) -> Callable[_P, list[Effect]]:
    """Put one PersistVotes with the votes of this call in FRONT of the handler's effects."""

    @functools.wraps(handler)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> list[Effect]:
        out = handler(*args, **kwargs)
        state = args[0]
        assert isinstance(state, ReplicaState)
        if state.new_votes:
            votes = tuple(state.new_votes)
            state.new_votes.clear()
            out.insert(0, PersistVotes(votes, state.low_watermark, state.view))
        return out

    return wrapper


def _get_timeout(state: ReplicaState) -> int:
    return state.config.view_change_timeout_ms << min(state.backoff, MAX_BACKOFF_EXPONENT)


def _is_in_window(state: ReplicaState, seq: int) -> bool:
    return state.low_watermark < seq <= state.low_watermark + state.config.watermark_window


def _get_window_reason(state: ReplicaState, seq: int) -> str:
    return "below-watermark" if seq <= state.low_watermark else "above-watermark"


def _get_slot(state: ReplicaState, seq: int) -> Slot:
    slot = state.log.get(seq)
    if slot is None:
        slot = Slot(seq)
        state.log[seq] = slot
    return slot


def _broadcast(state: ReplicaState, msg: Message, out: list[Effect]) -> SignedEnvelope:
    env = state.auth.seal(msg)
    out.append(Broadcast(env))
    return env


def _start_request_timer(state: ReplicaState, now_ms: int) -> None:
    if state.request_deadline_ms is not None or state.in_view_change or not state.pending:
        return
    state.request_timer_digest = next(iter(state.pending))
    state.request_deadline_ms = now_ms + _get_timeout(state)


def _stop_request_timer(state: ReplicaState) -> None:
    state.request_deadline_ms = None
    state.request_timer_digest = None


# ----------------------------------------------------------------------------------------
# Requests and proposals


@_persisting_votes
def on_client_request(state: ReplicaState, req: ClientRequest, now_ms: int) -> list[Effect]:
    """A client request arrived from a client; dedupe and maybe propose.

    Requests are deduplicated by digest only (no per-client ordering: a request id
    proves nothing before the application checks the payload's signature). A backup
    forwards a request it still holds unproposed after ``forward_delay_ms`` to the
    primary (Castro & Liskov §4.4), well before its request timer expires.
    """
    out: list[Effect] = []
    state.now_ms = max(state.now_ms, now_ms)
    _process_request(state, req, now_ms, out, forwarded=False)
    return out


@_persisting_votes
def on_client_requests(
    state: ReplicaState, reqs: Sequence[ClientRequest], now_ms: int
) -> list[Effect]:
    """Several client requests at once: :func:`on_client_request` on each, in order,
    with one look at whether to propose (not one per request)."""
    out: list[Effect] = []
    state.now_ms = max(state.now_ms, now_ms)
    for req in reqs:
        _process_request(state, req, now_ms, out, forwarded=False, propose=False)
    _maybe_propose(state, now_ms, out)
    return out


def _process_request(
    state: ReplicaState,
    req: ClientRequest,
    now_ms: int,
    out: list[Effect],
    *,
    forwarded: bool,
    propose: bool = True,
) -> None:
    digest = compute_request_digest(req)
    if digest in state.pending or digest in state.executed_requests:
        state.duplicates += 1
        cached = state.last_replies.get(digest)
        if cached is not None and not forwarded:
            out.append(cached)
        return
    if compute_request_size(req) > state.config.max_request_bytes:
        _reject(state, "request-too-large")  # could never fit a batch: dropped
        return
    if len(state.pending) >= state.config.max_pending_requests:
        _reject(state, "overload")
        return
    state.pending[digest] = req
    if digest not in state.inflight:
        state.unproposed[digest] = now_ms
        if not forwarded and not state.is_primary:
            state.to_forward.append((now_ms, digest))
    _start_request_timer(state, now_ms)
    if propose:
        _maybe_propose(state, now_ms, out)


def _forward_requests(state: ReplicaState, now_ms: int, out: list[Effect]) -> None:
    """A backup sends the primary the requests it still has not seen pre-prepared,
    as few envelopes as a batch's limits allow (one signature each)."""
    cfg = state.config
    limit = now_ms - cfg.forward_delay_ms
    due: list[ClientRequest] = []
    while state.to_forward and state.to_forward[0][0] <= limit:
        _, digest = state.to_forward.popleft()
        req = state.pending.get(digest)
        if req is None or digest in state.inflight or state.is_primary or state.in_view_change:
            continue
        due.append(req)
    for run in split_requests(due, cfg.batch_max, cfg.batch_max_bytes):
        out.append(Send(state.primary, state.auth.seal(ForwardedRequests(run))))


def _maybe_propose(state: ReplicaState, now_ms: int, out: list[Effect]) -> None:
    """The primary assigns seqs to batches while the watermark window allows."""
    cfg = state.config
    if not state.is_primary or state.transferring is not None:
        return
    state.next_seq = max(state.next_seq, state.last_executed + 1)
    while state.unproposed and state.next_seq <= state.low_watermark + cfg.watermark_window:
        oldest = next(iter(state.unproposed.values()))
        if len(state.unproposed) < cfg.batch_max and (
            now_ms - oldest < cfg.batch_timeout_ms or _is_holding_batch(state, now_ms - oldest)
        ):
            return
        if _get_voted_digest(state, state.view, state.next_seq) is not None:
            state.next_seq += 1  # pre-prepared before a restart: never a second batch there
            continue
        digests: list[bytes] = []
        size = 0
        for d in state.unproposed:
            req_size = compute_request_size(state.pending[d])
            if digests and size + req_size > cfg.batch_max_bytes:
                break
            digests.append(d)
            size += req_size
            if len(digests) >= cfg.batch_max:
                break
        batch = tuple(state.pending[d] for d in digests)
        for d in digests:
            del state.unproposed[d]
        ts = max(now_ms, state.last_proposed_timestamp_ms + 1, state.executed_timestamp_ms + 1)
        seq = state.next_seq
        pp = PrePrepare(state.view, seq, compute_batch_digest(ts, batch), batch, ts)
        _record_vote(state, pp.view, seq, PHASE_PRE_PREPARE, pp.batch_digest)
        env = _broadcast(state, pp, out)
        state.next_seq += 1
        state.last_proposed_timestamp_ms = ts
        _accept_pre_prepare(state, env, pp, out, send_prepare=False)


def _is_holding_batch(state: ReplicaState, oldest_age_ms: int) -> bool:
    """Whether the primary holds a batch that is not full because enough are in flight.

    Under load, a batch cut every ``batch_timeout_ms`` makes blocks of whatever
    arrived meanwhile, and every block costs each replica the same fixed work
    (PBFT frames and votes, a signed block vote, fsyncs, a certificate). Holding
    the next batch until one in flight executes lets blocks grow with the load
    instead (group commit): at low load nothing is in flight and nothing waits.
    A batch is held at most ``HOLD_FACTOR`` batch timeouts (and never more than a
    quarter of the view-change timeout), so a slow instance cannot stall the
    requests behind it, and the backups' request timers never see the wait.
    """
    cfg = state.config
    limit = cfg.max_inflight_batches
    longest = min(HOLD_FACTOR * cfg.batch_timeout_ms, cfg.view_change_timeout_ms // 4)
    if limit == 0 or oldest_age_ms >= longest:
        return False
    return state.next_seq - 1 - state.last_executed >= limit


# ----------------------------------------------------------------------------------------
# Incoming messages


@_persisting_votes
def on_message(state: ReplicaState, env: SignedEnvelope, now_ms: int) -> list[Effect]:
    """An envelope from another replica: authenticate, check, and process it."""
    state.now_ms = max(state.now_ms, now_ms)
    sender = env.sender.to_bytes(8, "big") if 0 <= env.sender < 2**63 else b"?"
    key = hashlib.sha256(b"e" + sender + env.signature + env.body).digest()
    cached = state.verified_cache.get(key)
    if cached is not None:
        return _dispatch(state, cached[0], cached[1], now_ms)
    try:
        msg = state.auth.open(env)
    except BadEnvelope as exc:
        _reject(state, exc.reason)
        return []
    return _dispatch_new(state, key, env, msg, len(env.body) + len(env.signature) + 16, now_ms)


@_persisting_votes
def on_frame(state: ReplicaState, frame: bytes, now_ms: int) -> list[Effect]:
    """Raw bytes from the transport: decode the envelope, then :func:`on_message`.

    Frames already authenticated (retransmissions, duplicates) skip decoding and
    signature verification; they are still processed (idempotently).
    """
    state.now_ms = max(state.now_ms, now_ms)
    key = hashlib.sha256(b"f" + frame).digest()
    cached = state.verified_cache.get(key)
    if cached is not None:
        return _dispatch(state, cached[0], cached[1], now_ms)
    try:
        env = decode_envelope(frame)
    except EncodingError:
        _reject(state, "malformed")
        return []
    try:
        msg = state.auth.open(env)
    except BadEnvelope as exc:
        _reject(state, exc.reason)
        return []
    return _dispatch_new(state, key, env, msg, len(frame), now_ms)


def _dispatch_new(
    state: ReplicaState,
    key: bytes,
    env: SignedEnvelope,
    msg: Message,
    size: int,
    now_ms: int,
) -> list[Effect]:
    """Process a freshly authenticated envelope; cache it if it was accepted (or small).

    The cache is bounded in entries and bytes, and cleared at every stable checkpoint
    and view change: a flood of valid but useless envelopes cannot pin memory.
    """
    before = state.rejections
    out = _dispatch(state, env, msg, now_ms)
    accepted = state.rejections == before
    if (accepted or size <= SMALL_FRAME_BYTES) and size <= MAX_VERIFIED_CACHE_BYTES // 4:
        if (
            len(state.verified_cache) >= MAX_VERIFIED_CACHE
            or state.verified_cache_bytes + size > MAX_VERIFIED_CACHE_BYTES
        ):
            _clear_verified_cache(state)
        state.verified_cache[key] = (env, msg, size)
        state.verified_cache_bytes += size
    return out


def _clear_verified_cache(state: ReplicaState) -> None:
    state.verified_cache.clear()
    state.verified_cache_bytes = 0


def _dispatch(state: ReplicaState, env: SignedEnvelope, msg: Message, now_ms: int) -> list[Effect]:
    out: list[Effect] = []
    if env.sender == state.replica_id:
        _reject(state, "from-self")
        return out
    if isinstance(msg, (ClientRequest, ForwardedRequests)):
        # Only a backup's forward to the primary; clients do not use replica envelopes.
        if not state.is_primary:
            _reject(state, "forward-to-backup")
            return out
        reqs = msg.requests if isinstance(msg, ForwardedRequests) else (msg,)
        cfg = state.config
        if len(reqs) > cfg.batch_max or (
            sum(compute_request_size(r) for r in reqs) > cfg.batch_max_bytes
        ):
            # An honest backup sends at most a batch's worth per envelope: more would let
            # one signature fill the primary's pending pool.
            _reject(state, "forward-too-large")
            return out
        for req in reqs:
            _process_request(state, req, now_ms, out, forwarded=True, propose=False)
        _maybe_propose(state, now_ms, out)
        return out
    if isinstance(msg, (PrePrepare, Prepare, Commit)) and not _is_current_view(
        state, env.sender, msg.view, out, now_ms
    ):
        return out
    if isinstance(msg, PrePrepare):
        _process_pre_prepare(state, env, msg, now_ms, out)
    elif isinstance(msg, Prepare):
        _process_prepare(state, env, msg, now_ms, out)
    elif isinstance(msg, Commit):
        _process_commit(state, env.sender, msg, now_ms, out)
    elif isinstance(msg, Checkpoint):
        _process_checkpoint(state, env.sender, msg, now_ms, out)
    elif isinstance(msg, ViewChange):
        _process_view_change(state, env, msg, now_ms, out)
    elif isinstance(msg, NewView):
        _process_new_view(state, env, msg, now_ms, out)
    elif isinstance(msg, Status):
        _process_status(state, env.sender, msg, now_ms, out)
    elif isinstance(msg, CheckpointCertificate):
        _process_certificate(state, env.sender, msg, now_ms, out)
    else:
        _reject(state, "unexpected-type")
    return out


def _process_status(
    state: ReplicaState, sender: int, st: Status, now_ms: int, out: list[Effect]
) -> None:
    """A peer's heartbeat: note the contact, and hand the peer what it lacks.

    Only a STATUS newer than the sender's previous one counts (a replayed heartbeat
    proves nothing about the sender now). If the sender's stable checkpoint is below
    ours, it gets our stable certificate (it may never have received 2f+1 matching
    checkpoints itself); if it still asks for the view we are in, it gets the
    NEW-VIEW. A STATUS of a higher installed view counts like a normal-case
    message of that view towards the f+1 that make us join it.
    """
    if st.sent_ms <= state.status_sent_ms.get(sender, -1):
        state.duplicates += 1
        return
    state.status_sent_ms[sender] = st.sent_ms
    state.last_heard_ms[sender] = now_ms
    if not st.in_view_change and st.view > state.view:
        _note_higher_view(state, sender, st.view, now_ms, out)
    last = state.status_reply_ms.get(sender)
    if last is not None and now_ms - last < state.config.retransmit_interval_ms:
        return
    behind_view = st.view < state.view or (st.view == state.view and st.in_view_change)
    if behind_view:
        _relay_new_view(state, sender, st.view, now_ms, out)
    if st.stable_seq < state.low_watermark and state.stable_certificate is not None:
        out.append(Send(sender, state.auth.seal(CheckpointCertificate(state.stable_certificate))))
        state.status_reply_ms[sender] = now_ms


def is_in_contact(state: ReplicaState, now_ms: int) -> bool:
    """Whether this replica heard fresh heartbeats from at least 2f peers recently.

    At most f replicas are faulty, so an honest replica on a working network hears
    2f others; hearing fewer, it is more likely cut off than its primary faulty.
    """
    cfg = state.config
    window = max(cfg.view_change_timeout_ms, 3 * cfg.retransmit_interval_ms)
    heard = sum(1 for t in state.last_heard_ms.values() if now_ms - t <= window)
    return heard >= cfg.prepared_quorum


def _note_higher_view(
    state: ReplicaState, sender: int, view: int, now_ms: int, out: list[Effect]
) -> None:
    """``sender`` is in ``view`` > ours; f+1 such senders make us join the smallest view."""
    state.higher_view_senders[sender] = max(view, state.higher_view_senders.get(sender, 0))
    higher = sorted(v for v in state.higher_view_senders.values() if v > state.view)
    if len(higher) >= state.config.weak:
        _start_view_change(state, higher[0], now_ms, out)


def _is_current_view(
    state: ReplicaState, sender: int, view: int, out: list[Effect], now_ms: int
) -> bool:
    """Normal-case messages count only in the current view, outside a view change.

    f+1 distinct replicas speaking in higher views prove that at least one honest
    replica moved on: join them (the new primary answers with its NEW-VIEW).
    """
    if view < state.view:
        _reject(state, "old-view")
        return False
    if view > state.view or state.in_view_change:
        _reject(state, "future-view" if view > state.view else "in-view-change")
        if view > state.view:
            _note_higher_view(state, sender, view, now_ms, out)
        return False
    return True


def _is_acceptable_batch(state: ReplicaState, pp: PrePrepare, now_ms: int) -> str | None:
    """Why a backup refuses a pre-prepare's content, or ``None``."""
    cfg = state.config
    if not 1 <= len(pp.batch) <= cfg.batch_max:
        return "bad-batch-size"
    if sum(compute_request_size(r) for r in pp.batch) > cfg.batch_max_bytes:
        return "batch-too-large"
    if compute_batch_digest(pp.timestamp_ms, pp.batch) != pp.batch_digest:
        return "bad-digest"
    digests = [compute_request_digest(r) for r in pp.batch]
    if len(set(digests)) != len(digests):
        return "duplicate-request"
    for d in digests:
        if d in state.executed_requests or state.inflight.get(d, pp.seq) != pp.seq:
            return "replayed-request"
    if pp.timestamp_ms > now_ms + cfg.timestamp_tolerance_ms:
        return "timestamp-ahead"
    if pp.timestamp_ms < now_ms - cfg.timestamp_tolerance_ms:
        # A block's time drives deadlines (payments, gates, signed requests' windows):
        # a faulty primary must not stamp a fresh batch hours in the past. Batches a
        # new view re-proposes keep their old time and do not come through here.
        return "timestamp-behind"
    prev = state.log.get(pp.seq - 1)
    if prev is not None and prev.pre_prepare is not None and prev.pre_prepare.batch:
        previous_ts = prev.pre_prepare.timestamp_ms
    elif pp.seq - 1 == state.last_executed:
        previous_ts = state.executed_timestamp_ms
    else:
        previous_ts = -1
    if pp.timestamp_ms <= previous_ts:
        return "timestamp-not-increasing"
    return None


def _process_pre_prepare(
    state: ReplicaState, env: SignedEnvelope, pp: PrePrepare, now_ms: int, out: list[Effect]
) -> None:
    if env.sender != state.primary:
        _reject(state, "not-primary")
        return
    if not _is_in_window(state, pp.seq):
        _reject(state, _get_window_reason(state, pp.seq))
        return
    slot = _get_slot(state, pp.seq)
    if slot.pre_prepare is not None:
        if slot.pre_prepare.batch_digest == pp.batch_digest:
            state.duplicates += 1
        else:
            # Two pre-prepares signed by the primary for one (view, seq): proof of equivocation.
            _report_equivocation(state, slot, now_ms, out)
        return
    voted = _get_voted_digest(state, pp.view, pp.seq)
    if voted is not None and voted != pp.batch_digest:
        # We voted for another batch here before a restart (only after accepting the
        # primary's signed pre-prepare for it): the primary equivocated.
        _reject(state, "conflicting-vote")
        _report_equivocation(state, slot, now_ms, out)
        return
    reason = _is_acceptable_batch(state, pp, now_ms)
    if reason is not None:
        _reject(state, reason)
        return
    _accept_pre_prepare(state, env, pp, out, send_prepare=True)
    _try_execute(state, now_ms, out)


def _accept_pre_prepare(
    state: ReplicaState,
    env: SignedEnvelope,
    pp: PrePrepare,
    out: list[Effect],
    *,
    send_prepare: bool,
) -> None:
    if send_prepare and not _record_vote(state, pp.view, pp.seq, PHASE_PREPARE, pp.batch_digest):
        return
    slot = _get_slot(state, pp.seq)
    slot.pre_prepare = pp
    slot.pre_prepare_env = env
    if pp.seq > state.last_executed:
        for r in pp.batch:
            d = compute_request_digest(r)
            state.inflight[d] = pp.seq
            state.unproposed.pop(d, None)
    if send_prepare:
        slot.my_prepare = _broadcast(state, Prepare(pp.view, pp.seq, pp.batch_digest), out)
        slot.prepares[state.replica_id] = slot.my_prepare
        slot.prepare_digests[state.replica_id] = pp.batch_digest
    _check_prepared(state, slot, out)


def _process_prepare(
    state: ReplicaState, env: SignedEnvelope, p: Prepare, now_ms: int, out: list[Effect]
) -> None:
    if env.sender == state.primary:
        _reject(state, "prepare-from-primary")
        return
    if not _is_in_window(state, p.seq):
        _reject(state, _get_window_reason(state, p.seq))
        return
    slot = _get_slot(state, p.seq)
    known = slot.prepare_digests.get(env.sender)
    if known is not None:
        if known == p.batch_digest:
            state.duplicates += 1
        else:
            _reject(state, "conflicting-prepare")
        return
    slot.prepare_digests[env.sender] = p.batch_digest
    slot.prepares[env.sender] = env
    if slot.pre_prepare is not None:
        mine = slot.pre_prepare.batch_digest
        conflicting = sum(1 for d in slot.prepare_digests.values() if d != mine)
        if conflicting >= state.config.weak:
            # f+1 backups prepared another batch: an honest one got another pre-prepare.
            _report_equivocation(state, slot, now_ms, out)
            return
    _check_prepared(state, slot, out)
    _try_execute(state, now_ms, out)


def _report_equivocation(state: ReplicaState, slot: Slot, now_ms: int, out: list[Effect]) -> None:
    if not slot.equivocation_reported:
        slot.equivocation_reported = True
        state.equivocations += 1
        _start_view_change(state, state.view + 1, now_ms, out)


def _check_prepared(state: ReplicaState, slot: Slot, out: list[Effect]) -> None:
    pp = slot.pre_prepare
    if slot.prepared or pp is None or slot.pre_prepare_env is None:
        return
    matching = [
        e for s, e in sorted(slot.prepares.items()) if slot.prepare_digests[s] == pp.batch_digest
    ]
    if len(matching) < state.config.prepared_quorum:
        return
    if not _record_vote(state, pp.view, pp.seq, PHASE_COMMIT, pp.batch_digest):
        return
    slot.prepared = True
    slot.proof = PreparedProof(
        slot.pre_prepare_env, tuple(matching[: state.config.prepared_quorum])
    )
    slot.proof_view = pp.view
    # The proof goes to disk with the commit vote: a restarted replica reports it.
    state.new_votes.append(VoteRecord(pp.view, pp.seq, PHASE_PREPARED, encode(slot.proof)))
    slot.my_commit = _broadcast(state, Commit(pp.view, pp.seq, pp.batch_digest), out)
    slot.commits[state.replica_id] = pp.batch_digest
    _check_committed(state, slot, out)


def _process_commit(
    state: ReplicaState, sender: int, c: Commit, now_ms: int, out: list[Effect]
) -> None:
    if not _is_in_window(state, c.seq):
        _reject(state, _get_window_reason(state, c.seq))
        return
    slot = _get_slot(state, c.seq)
    known = slot.commits.get(sender)
    if known is not None:
        if known == c.batch_digest:
            state.duplicates += 1
        else:
            _reject(state, "conflicting-commit")
        return
    slot.commits[sender] = c.batch_digest
    _check_committed(state, slot, out)
    _try_execute(state, now_ms, out)


def _check_committed(state: ReplicaState, slot: Slot, out: list[Effect]) -> None:
    pp = slot.pre_prepare
    if not slot.prepared or pp is None or slot.committed_view == pp.view:
        return
    if sum(1 for d in slot.commits.values() if d == pp.batch_digest) < state.config.quorum:
        return
    if slot.committed is not None and slot.committed.batch_digest != pp.batch_digest:
        state.divergences += 1  # impossible with at most f faulty replicas
        return
    if slot.committed is None:
        slot.committed = pp
    slot.committed_view = pp.view


def _try_execute(state: ReplicaState, now_ms: int, out: list[Effect]) -> None:
    """Hand committed batches to the application strictly in seq order."""
    progressed = False
    while state.transferring is None:
        slot = state.log.get(state.last_executed + 1)
        if slot is None or slot.committed is None:
            break
        pp = slot.committed
        ts = max(pp.timestamp_ms, state.executed_timestamp_ms + 1)
        view = slot.committed_view
        out.append(Execute(pp.seq, view, pp.batch, ts, state.config.get_primary(view)))
        state.last_executed = pp.seq
        state.executed_timestamp_ms = ts
        state.executed_batches[pp.seq] = (view, pp.batch)
        for r in pp.batch:
            d = compute_request_digest(r)
            state.pending.pop(d, None)
            state.unproposed.pop(d, None)
            state.inflight.pop(d, None)
            state.executed_requests[d] = pp.seq
        if view == state.view:
            state.backoff = 0
        progressed = True
    if progressed:
        state.behind_since_ms = None
        # The primary makes progress: do not accuse it. Restart the request timer for
        # whatever is still pending (a full timeout from now).
        _stop_request_timer(state)
        _start_request_timer(state, now_ms)
        _maybe_propose(state, now_ms, out)


# ----------------------------------------------------------------------------------------
# Execution results, checkpoints and certificates


@_persisting_votes
def on_executed(state: ReplicaState, seq: int, state_digest: bytes) -> list[Effect]:
    """The application executed ``seq``; its block header hash is ``state_digest``.

    Signs a block vote, broadcasts the CHECKPOINT, replies to the clients of the
    batch, and emits :class:`Certified` once 2f+1 matching checkpoints are in.
    """
    out: list[Effect] = []
    if seq in state.my_digests or seq <= state.low_watermark or seq > state.last_executed:
        _reject(state, "unexpected-executed")
        return out
    cfg = state.config
    state.my_digests[seq] = state_digest
    state.last_reported = max(state.last_reported, seq)
    vote = sign_vote(state.key, BlockVote(cfg.chain_id, seq, state_digest))
    cp = Checkpoint(seq, state_digest, vote)
    state.my_checkpoint = _broadcast(state, cp, out)
    state.checkpoints.setdefault(seq, {})[(state.replica_id, state_digest)] = cp
    state.verified_votes.add((seq, state.replica_id, state_digest))
    view, batch = state.executed_batches.pop(seq, (state.view, ()))
    if cfg.client_replies:
        result = compute_reply_result(seq, state_digest)
        for r in batch:
            reply = Reply(view, compute_request_digest(r), state.replica_id, result)
            effect = ReplyToClient(r.client, reply)
            state.last_replies[reply.request_digest] = effect
            out.append(effect)
    if seq in state.certified:
        _on_certified(state, seq, out)
    else:
        _check_certificate(state, seq, state.checkpoints.get(seq, {}), out)
    return out


def _process_checkpoint(
    state: ReplicaState, sender: int, cp: Checkpoint, now_ms: int, out: list[Effect]
) -> None:
    cfg = state.config
    if cp.seq <= state.low_watermark or cp.seq in state.certified:
        state.duplicates += 1
        return
    if cp.seq > state.low_watermark + cfg.watermark_window:
        # Beyond our window: keep only each sender's latest stable-interval checkpoint.
        if cp.seq % cfg.checkpoint_interval != 0:
            _reject(state, "above-watermark")
            return
        prev = state.far_checkpoints.get(sender)
        if (
            prev is None
            or prev.seq < cp.seq
            or (prev.seq == cp.seq and prev.state_digest != cp.state_digest)
        ):
            # A later digest from the same sender replaces its earlier one at that seq
            # (its first one may have been wrong): the certificate check settles it.
            state.far_checkpoints[sender] = cp
            group = {
                (s, c.state_digest): c for s, c in state.far_checkpoints.items() if c.seq == cp.seq
            }
            _check_certificate(state, cp.seq, group, out)
    else:
        votes = state.checkpoints.setdefault(cp.seq, {})
        key = (sender, cp.state_digest)
        if key in votes:
            state.duplicates += 1
            return
        if sum(1 for s, _ in votes if s == sender) >= MAX_CHECKPOINT_DIGESTS:
            _reject(state, "checkpoint-flood")
            return
        votes[key] = cp
        _check_certificate(state, cp.seq, votes, out)
    _check_behind(state, now_ms, out)


def _check_certificate(
    state: ReplicaState,
    seq: int,
    votes: dict[tuple[int, bytes], Checkpoint],
    out: list[Effect],
) -> None:
    """Verify vote signatures lazily, only once a quorum claims one digest."""
    cfg = state.config
    by_digest: dict[bytes, list[int]] = {}
    for sender, digest in votes:
        by_digest.setdefault(digest, []).append(sender)
    for digest, senders in by_digest.items():
        if len(senders) < cfg.quorum:
            continue
        good: list[VoteSignature] = []
        vote = BlockVote(cfg.chain_id, seq, digest)
        for s in sorted(senders):
            cp = votes[(s, digest)]
            if (seq, s, digest) not in state.verified_votes:
                state.auth.verifications += 1
                if not is_valid_vote(cfg.validators[s], vote, cp.vote_signature):
                    _reject(state, "bad-vote")
                    del votes[(s, digest)]
                    continue
                state.verified_votes.add((seq, s, digest))
            good.append(VoteSignature(s, cp.vote_signature))
        if len(good) >= cfg.quorum:
            cert = CommitCertificate(cfg.chain_id, seq, digest, tuple(good))
            _adopt_certificate(state, cert, out)
            return


def _adopt_certificate(state: ReplicaState, cert: CommitCertificate, out: list[Effect]) -> None:
    """A (verified) certificate for the block at ``cert.height``: note it, act on it."""
    seq = cert.height
    state.certified[seq] = (cert.header_hash, cert)
    state.best_certified = max(state.best_certified, seq)
    _on_certified(state, seq, out)


def _process_certificate(
    state: ReplicaState, sender: int, msg: CheckpointCertificate, now_ms: int, out: list[Effect]
) -> None:
    """A relayed certificate (self-authenticating): adopt it if it is new and holds."""
    cfg = state.config
    cert = msg.certificate
    seq = cert.height
    if seq <= state.low_watermark or seq in state.certified:
        state.duplicates += 1
        return
    if seq % cfg.checkpoint_interval != 0:
        _reject(state, "not-stable-seq")  # only stable checkpoints are relayed
        return
    state.auth.verifications += len(cert.signatures)
    try:
        verify_certificate(cert, cfg.validators, chain_id=cfg.chain_id)
    except CertificateError:
        _reject(state, "bad-certificate")
        return
    _adopt_certificate(state, cert, out)
    _check_behind(state, now_ms, out)


def _on_certified(state: ReplicaState, seq: int, out: list[Effect]) -> None:
    digest, cert = state.certified[seq]
    mine = state.my_digests.get(seq)
    if mine is None or seq in state.certified_emitted:
        return
    if mine != digest:
        state.divergences += 1
        return
    state.certified_emitted.add(seq)
    out.append(Certified(seq, digest, cert))
    if seq % state.config.checkpoint_interval == 0:
        _advance_stable(state, seq, digest, cert)


def _advance_stable(
    state: ReplicaState, seq: int, digest: bytes, cert: CommitCertificate | None
) -> None:
    """A stable checkpoint: move the low watermark and discard the log up to it."""
    if seq <= state.low_watermark:
        return
    state.low_watermark = seq
    _clear_verified_cache(state)
    state.stable_digest = digest
    state.stable_certificate = cert
    window = state.config.watermark_window
    for table in (state.log, state.checkpoints, state.executed_batches):
        for s in [s for s in table if s <= seq]:
            del table[s]
    for s in [s for s in state.my_digests if s < seq]:
        del state.my_digests[s]
    for key in [k for k in state.my_votes if 0 < k[1] <= seq]:
        del state.my_votes[key]
    for s in [s for s in state.certified if s < seq]:
        del state.certified[s]
    state.certified_emitted = {s for s in state.certified_emitted if s >= seq}
    state.verified_votes = {k for k in state.verified_votes if k[0] > seq}
    state.far_checkpoints = {r: c for r, c in state.far_checkpoints.items() if c.seq > seq}
    for d in [d for d, s in state.executed_requests.items() if s <= seq - window]:
        del state.executed_requests[d]
    for d in [d for d in state.last_replies if d not in state.executed_requests]:
        del state.last_replies[d]


def _check_behind(state: ReplicaState, now_ms: int, out: list[Effect]) -> None:
    """Ask for state transfer when a certified block is out of the log's reach."""
    target = state.best_certified
    if state.transferring is not None or target <= state.last_executed:
        state.behind_since_ms = None
        return
    far = target > state.low_watermark + state.config.watermark_window
    if state.behind_since_ms is None:
        state.behind_since_ms = now_ms
    if far or now_ms - state.behind_since_ms >= state.config.state_transfer_delay_ms:
        entry = state.certified.get(target)
        if entry is None:
            return
        digest, cert = entry
        state.transferring = target
        peers = tuple(v.replica_id for v in cert.signatures if v.replica_id != state.replica_id)
        out.append(NeedStateTransfer(target, digest, peers))


@_persisting_votes
def on_state_transferred(
    state: ReplicaState, seq: int, state_digest: bytes, *, timestamp_ms: int | None = None
) -> list[Effect]:
    """The node fetched and verified blocks up to ``seq`` (header hash ``state_digest``).

    Pass the block's ``timestamp_ms`` when known: execution timestamps are clamped
    to stay strictly increasing, and the clamp needs the previous block's time.
    """
    out: list[Effect] = []
    state.transferring = None
    state.behind_since_ms = None
    if seq <= state.last_executed:
        return out
    state.last_executed = seq
    state.last_reported = seq
    state.my_digests[seq] = state_digest
    if timestamp_ms is not None:
        state.executed_timestamp_ms = timestamp_ms
    for s in [s for s in state.log if s <= seq]:
        del state.log[s]
    # Which pending requests the fetched blocks executed is unknown here: drop them all
    # (clients retransmit; the ledger rejects duplicate transactions deterministically).
    state.pending.clear()
    state.unproposed.clear()
    state.to_forward.clear()
    state.inflight = {d: s for d, s in state.inflight.items() if s > seq}
    _stop_request_timer(state)
    cert = state.certified.get(seq)
    if cert is not None and cert[0] == state_digest:
        _advance_stable(state, seq, state_digest, cert[1])
    state.next_seq = max(state.next_seq, seq + 1)
    _try_execute(state, state.now_ms, out)
    return out


# ----------------------------------------------------------------------------------------
# Timers


@_persisting_votes
def on_tick(state: ReplicaState, now_ms: int) -> list[Effect]:
    """Time passed: batch timeout, request and view-change timers, retransmission."""
    out: list[Effect] = []
    state.now_ms = max(state.now_ms, now_ms)
    if state.in_view_change and state.my_view_change is None:
        # Restarted during a view change (its votes say so): ask for that view again.
        _send_view_change(state, now_ms, out)
    elif state.in_view_change:
        if state.view_change_deadline_ms is not None and now_ms >= state.view_change_deadline_ms:
            _start_view_change(state, state.view + 1, now_ms, out)
    elif state.request_deadline_ms is not None and now_ms >= state.request_deadline_ms:
        if state.best_certified > state.last_executed:
            # A quorum certified blocks we lack: the primary makes progress and we are
            # behind. Catch up (state transfer) instead of starting a lone view change.
            state.request_deadline_ms = now_ms + _get_timeout(state)
        elif not is_in_contact(state, now_ms):
            # We hear fewer than 2f peers: we are more likely cut off than the primary
            # faulty. A view change now would leave us alone in a higher view after the
            # network heals (and we could not come back): wait, and judge again later.
            state.request_deadline_ms = now_ms + _get_timeout(state)
        else:
            _start_view_change(state, state.view + 1, now_ms, out)
    _try_execute(state, now_ms, out)
    _maybe_propose(state, now_ms, out)
    _forward_requests(state, now_ms, out)
    if state.next_retransmit_ms is None:
        state.next_retransmit_ms = now_ms + state.config.retransmit_interval_ms
    elif now_ms >= state.next_retransmit_ms:
        state.next_retransmit_ms = now_ms + state.config.retransmit_interval_ms
        _retransmit(state, now_ms, out)
    _check_behind(state, now_ms, out)
    return out


def _is_status_needed(state: ReplicaState) -> bool:
    """Whether to heartbeat now: only while something is outstanding.

    While it waits for a request (its peers then wait too, or it is the one cut
    off), changes view, or knows it is behind. An idle consortium sends no
    heartbeats at all (a simulated hour of idling costs nothing).
    """
    return (
        state.request_deadline_ms is not None
        or state.in_view_change
        or state.transferring is not None
        or state.best_certified > state.last_executed
        or bool(state.far_checkpoints)
        or any(seq > state.last_executed for seq in state.checkpoints)
    )


def _retransmit(state: ReplicaState, now_ms: int, out: list[Effect]) -> None:
    """Resend our own messages that peers may have lost (PBFT assumes fair-loss links),
    after a STATUS heartbeat that lets peers hand us what we lack."""
    if _is_status_needed(state):
        status = Status(
            state.view, state.in_view_change, state.low_watermark, state.last_executed, now_ms
        )
        _broadcast(state, status, out)
    if state.in_view_change:
        if state.my_view_change is not None:
            out.append(Broadcast(state.my_view_change))
        return
    for seq in sorted(state.log):
        slot = state.log[seq]
        if seq <= state.best_certified or slot.pre_prepare is None:
            continue
        for env in (
            slot.pre_prepare_env if state.is_primary else None,
            slot.my_prepare,
            slot.my_commit,
        ):
            if env is not None:
                out.append(Broadcast(env))
    if state.my_checkpoint is not None:
        out.append(Broadcast(state.my_checkpoint))


# ----------------------------------------------------------------------------------------
# View change


def _start_view_change(state: ReplicaState, new_view: int, now_ms: int, out: list[Effect]) -> None:
    """Stop accepting normal-case messages and ask to move to ``new_view``."""
    if new_view <= state.view:
        return
    state.view = new_view
    state.in_view_change = True
    state.view_changes_started += 1
    _clear_verified_cache(state)
    _stop_request_timer(state)
    # The view-change timer starts only once 2f+1 replicas ask for this view
    # (_maybe_start_view_change_timer): a replica alone in a view change waits there
    # instead of climbing views that nobody else will join. Exponential back-off:
    # each view change without an execution in between waits twice as long for its
    # NEW-VIEW (reset in _try_execute).
    state.view_change_deadline_ms = None
    state.backoff += 1
    _record_view(state, PHASE_VIEW_CHANGE)
    _send_view_change(state, now_ms, out)


def _send_view_change(state: ReplicaState, now_ms: int, out: list[Effect]) -> None:
    """Broadcast VIEW-CHANGE(state.view) with the prepared proofs of the log."""
    proofs = tuple(
        s.proof for q, s in sorted(state.log.items()) if q > state.low_watermark and s.proof
    )
    vc = ViewChange(state.view, state.low_watermark, state.stable_certificate, proofs)
    state.my_view_change = _broadcast(state, vc, out)
    state.view_changes.setdefault(state.view, {})[state.replica_id] = (state.my_view_change, vc)
    _maybe_start_view_change_timer(state, now_ms)
    _maybe_send_new_view(state, now_ms, out)


def _maybe_start_view_change_timer(state: ReplicaState, now_ms: int) -> None:
    """Castro & Liskov §4.5.2: start the timer for view v once 2f+1 VIEW-CHANGEs for v are in.

    Its length doubles with each view change that brought no execution
    (``T << (backoff - 1)``, capped at ``2**MAX_BACKOFF_EXPONENT``).
    """
    if not state.in_view_change or state.view_change_deadline_ms is not None:
        return
    if len(state.view_changes.get(state.view, {})) < state.config.quorum:
        return
    exponent = min(max(state.backoff - 1, 0), MAX_BACKOFF_EXPONENT)
    state.view_change_deadline_ms = now_ms + (state.config.view_change_timeout_ms << exponent)


def _process_view_change(
    state: ReplicaState, env: SignedEnvelope, vc: ViewChange, now_ms: int, out: list[Effect]
) -> None:
    if vc.new_view < state.view or (vc.new_view == state.view and not state.in_view_change):
        # A replica that missed the NEW-VIEW of a view we are in: hand it over again.
        _relay_new_view(state, env.sender, vc.new_view, now_ms, out)
        _reject(state, "old-view")
        return
    known = state.view_changes.get(vc.new_view, {}).get(env.sender)
    if known is not None and known[0].body == env.body:
        state.duplicates += 1
        return
    if not is_valid_view_change(state.config.get_proof_context(), state.auth, vc):
        _reject(state, "bad-view-change")
        return
    # Keep only each sender's latest view change: bounded memory whatever it sends.
    for v, senders in list(state.view_changes.items()):
        if v != vc.new_view and env.sender in senders:
            if v > vc.new_view:
                _reject(state, "old-view")
                return
            del senders[env.sender]
    state.view_changes.setdefault(vc.new_view, {})[env.sender] = (env, vc)
    # f+1 replicas want a higher view: join the smallest such view (Castro & Liskov §4.5.2).
    latest: dict[int, int] = {}
    for v, senders in state.view_changes.items():
        if v > state.view:
            for s in senders:
                if s != state.replica_id:
                    latest[s] = max(latest.get(s, 0), v)
    if len(latest) >= state.config.weak:
        _start_view_change(state, min(latest.values()), now_ms, out)
    _maybe_start_view_change_timer(state, now_ms)
    _maybe_send_new_view(state, now_ms, out)


def _relay_new_view(
    state: ReplicaState, to: int, view: int, now_ms: int, out: list[Effect]
) -> None:
    """Send ``to`` the NEW-VIEW we accepted if it is still in (or asking for) ``view``,
    this view or a lower one.

    A NEW-VIEW is signed by its primary and carries its own proof, so any replica
    can relay it: a lagging replica does not depend on the primary alone (a faulty
    primary could withhold it from some replicas), and one left in a lower view
    installs ours directly (a valid NEW-VIEW proves 2f+1 replicas moved). At most
    once per retransmit interval and peer (a NEW-VIEW can be large).
    """
    if view > state.view or state.in_view_change or state.new_view_env is None:
        return
    last = state.status_reply_ms.get(to)
    if last is not None and now_ms - last < state.config.retransmit_interval_ms:
        return
    out.append(Send(to, state.new_view_env))
    state.status_reply_ms[to] = now_ms


def _maybe_send_new_view(state: ReplicaState, now_ms: int, out: list[Effect]) -> None:
    cfg = state.config
    if not state.in_view_change or cfg.get_primary(state.view) != state.replica_id:
        return
    entries = state.view_changes.get(state.view, {})
    if len(entries) < cfg.quorum or state.replica_id not in entries:
        return
    chosen = [state.replica_id, *sorted(s for s in entries if s != state.replica_id)]
    chosen = chosen[: cfg.quorum]
    vcs = [entries[s][1] for s in chosen]
    o_set = compute_new_view_pre_prepares(state.view, vcs)
    if _conflicts_with_votes(state, o_set):
        return  # we pre-prepared other batches in this view before a restart: never again
    for pp in o_set:
        _record_vote(state, pp.view, pp.seq, PHASE_PRE_PREPARE, pp.batch_digest)
    pp_envs = tuple(state.auth.seal(pp) for pp in o_set)
    nv = NewView(state.view, tuple(entries[s][0] for s in chosen), pp_envs)
    env = _broadcast(state, nv, out)
    _install_new_view(state, env, vcs, list(zip(pp_envs, o_set, strict=True)), now_ms, out)


def _process_new_view(
    state: ReplicaState, env: SignedEnvelope, nv: NewView, now_ms: int, out: list[Effect]
) -> None:
    cfg = state.config
    if nv.view < state.view or (nv.view == state.view and not state.in_view_change):
        _reject(state, "old-view")
        return
    if env.sender != cfg.get_primary(nv.view):
        _reject(state, "not-primary")
        return
    vcs = _get_valid_view_changes(state, nv)
    if vcs is None:
        _reject(state, "bad-new-view")
        return
    expected = compute_new_view_pre_prepares(nv.view, vcs)
    pairs: list[tuple[SignedEnvelope, PrePrepare]] = []
    if len(expected) != len(nv.pre_prepares):
        _reject(state, "bad-new-view")
        return
    for pp_env, pp in zip(nv.pre_prepares, expected, strict=True):
        if pp_env.sender != env.sender:
            _reject(state, "bad-new-view")
            return
        try:
            got = state.auth.open(pp_env)
        except BadEnvelope:
            _reject(state, "bad-new-view")
            return
        if got != pp:
            _reject(state, "bad-new-view")
            return
        pairs.append((pp_env, pp))
    if _conflicts_with_votes(state, expected):
        # Its primary signed other batches in this view before (we voted for them).
        state.equivocations += 1
        _start_view_change(state, nv.view + 1, now_ms, out)
        return
    state.view = nv.view
    _install_new_view(state, env, vcs, pairs, now_ms, out)


def _conflicts_with_votes(state: ReplicaState, pre_prepares: Sequence[PrePrepare]) -> bool:
    for pp in pre_prepares:
        voted = _get_voted_digest(state, pp.view, pp.seq)
        if voted is not None and voted != pp.batch_digest:
            _reject(state, "conflicting-vote")
            return True
    return False


def _get_valid_view_changes(state: ReplicaState, nv: NewView) -> list[ViewChange] | None:
    """The 2f+1 view changes of a NEW-VIEW, each from a distinct replica and valid."""
    cfg = state.config
    ctx = cfg.get_proof_context()
    known = state.view_changes.get(nv.view, {})
    senders: set[int] = set()
    vcs: list[ViewChange] = []
    for vc_env in nv.view_changes:
        if vc_env.sender in senders:
            return None
        cached = known.get(vc_env.sender)
        if cached is not None and cached[0].body == vc_env.body:
            vc = cached[1]
        else:
            try:
                msg = state.auth.open(vc_env)
            except BadEnvelope:
                return None
            if not isinstance(msg, ViewChange) or not is_valid_view_change(ctx, state.auth, msg):
                return None
            vc = msg
        if vc.new_view != nv.view:
            return None
        senders.add(vc_env.sender)
        vcs.append(vc)
    return vcs if len(senders) >= cfg.quorum else None


def _install_new_view(
    state: ReplicaState,
    nv_env: SignedEnvelope,
    vcs: Sequence[ViewChange],
    pairs: Sequence[tuple[SignedEnvelope, PrePrepare]],
    now_ms: int,
    out: list[Effect],
) -> None:
    """Enter the new view: adopt min-s, reset per-view slot state, prepare the O set."""
    _record_view(state, PHASE_NEW_VIEW)
    _clear_verified_cache(state)
    state.in_view_change = False
    state.view_change_deadline_ms = None
    state.new_view_env = nv_env
    state.my_view_change = None
    state.higher_view_senders = {
        s: v for s, v in state.higher_view_senders.items() if v > state.view
    }
    for v in [v for v in state.view_changes if v <= state.view]:
        del state.view_changes[v]
    min_s, min_cert = get_min_s(vcs)
    if min_s > state.low_watermark and min_cert is not None:
        digest = min_cert.header_hash
        state.certified.setdefault(min_s, (digest, min_cert))
        state.best_certified = max(state.best_certified, min_s)
        if state.my_digests.get(min_s) == digest:
            _advance_stable(state, min_s, digest, min_cert)
        elif min_s > state.last_executed:
            state.behind_since_ms = None
            state.transferring = min_s
            peers = tuple(
                v.replica_id for v in min_cert.signatures if v.replica_id != state.replica_id
            )
            out.append(NeedStateTransfer(min_s, digest, peers))
    for slot in state.log.values():
        slot.pre_prepare = None
        slot.pre_prepare_env = None
        slot.prepares = {}
        slot.prepare_digests = {}
        slot.commits = {}
        slot.prepared = False
        slot.my_prepare = None
        slot.my_commit = None
        slot.equivocation_reported = False
    state.inflight = {}
    is_primary = state.is_primary
    max_s = max(min_s, state.low_watermark)
    for env, pp in pairs:
        max_s = max(max_s, pp.seq)
        state.last_proposed_timestamp_ms = max(state.last_proposed_timestamp_ms, pp.timestamp_ms)
        if pp.seq <= state.low_watermark:
            continue
        _accept_pre_prepare(state, env, pp, out, send_prepare=not is_primary)
    for seq in [s for s, slot in state.log.items() if s > max_s and slot.committed is None]:
        del state.log[seq]
    state.next_seq = max(max_s, state.last_executed) + 1
    state.unproposed = {
        d: now_ms for d in state.pending if d not in state.inflight and d not in state.unproposed
    } | {d: t for d, t in state.unproposed.items() if d not in state.inflight}
    # Backups forward to the new primary what it has not pre-prepared yet.
    state.to_forward = deque((now_ms, d) for d in state.unproposed) if not is_primary else deque()
    out.append(ViewChanged(state.view, state.primary))
    _stop_request_timer(state)
    _start_request_timer(state, now_ms)
    _try_execute(state, now_ms, out)
    _maybe_propose(state, now_ms, out)


def get_stable_checkpoint(
    state: ReplicaState,
) -> tuple[SeqNo, bytes, CommitCertificate | None]:
    """What to persist for a restart: the stable seq, its header hash and certificate."""
    return SeqNo(state.low_watermark), state.stable_digest, state.stable_certificate


def get_committed_seqs(state: ReplicaState) -> list[SeqNo]:
    """Sequence numbers committed locally and not yet garbage collected (for tests)."""
    return sorted(SeqNo(s) for s, slot in state.log.items() if slot.committed is not None)


def get_view(state: ReplicaState) -> tuple[View, bool]:
    """The replica's view and whether it is still changing to it (not yet installed)."""
    return View(state.view), state.in_view_change
