"""What the pure PBFT handlers ask their driver (node or simulator) to do.

Every handler in :mod:`gridledger.consensus.pbft` returns a list of these
frozen values, in the order they must be carried out. The driver owns the
network, the application and the disk; the core owns none of them.

One effect is about the disk: :class:`PersistVotes`. When a handler call makes
the replica vote (send a new PRE-PREPARE, PREPARE or COMMIT, start a view
change, enter a view), the list starts with one ``PersistVotes`` carrying every
new :class:`VoteRecord`; the driver must make them durable before it carries out
any later effect of the list, above all the sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.consensus.messages import ClientRequest, Reply, SignedEnvelope
from gridledger.crypto.encoding import wire_type
from gridledger.ledger.certificate import CommitCertificate

PHASE_PRE_PREPARE = "pre-prepare"
PHASE_PREPARE = "prepare"
PHASE_COMMIT = "commit"
PHASE_VIEW_CHANGE = "view-change"
PHASE_NEW_VIEW = "new-view"
PHASE_PREPARED = "prepared"
SLOT_PHASES = (PHASE_PRE_PREPARE, PHASE_PREPARE, PHASE_COMMIT)
VIEW_PHASES = (PHASE_VIEW_CHANGE, PHASE_NEW_VIEW)
PROOF_PHASES = (PHASE_PREPARED,)


@wire_type("consensus.vote-record/1")
@dataclass(frozen=True)
class VoteRecord:
    """One of this replica's own votes, as kept on stable storage.

    Slot phases (``pre-prepare``, ``prepare``, ``commit``): this replica sent that
    message for ``(view, seq)`` with ``digest``; it must never send one for another
    digest at that ``(view, seq)``. View phases (``seq`` 0, empty ``digest``):
    ``view-change``, it asked to move to ``view`` (and so left every lower view);
    ``new-view``, it entered ``view``.

    Proof phase ``prepared``: the slot ``seq`` prepared at this replica in ``view``;
    ``digest`` holds the canonical encoding of the
    :class:`~gridledger.consensus.messages.PreparedProof` (not a hash), so that a
    restarted replica can put it in its next VIEW-CHANGE (without it, it would look
    like a replica that forgot what it prepared: a fault). Kept across views, one
    per seq (the highest view), until the seq is stable.
    """

    view: int
    seq: int
    phase: str
    digest: bytes

    def __post_init__(self) -> None:
        if (
            self.phase not in SLOT_PHASES
            and self.phase not in VIEW_PHASES
            and self.phase not in PROOF_PHASES
        ):
            raise ValueError(f"unknown vote phase {self.phase!r}")
        if self.view < 0 or self.seq < 0:
            raise ValueError("view and seq must not be negative")


@dataclass(frozen=True)
class PersistVotes:
    """Make ``votes`` durable BEFORE carrying out any later effect of the same list.

    Always the first effect of a list, and at most one per handler call. The
    records to keep on disk are the previous ones plus ``votes``, minus those of
    views below ``view`` and slot votes at or below ``low_watermark`` (stable, so
    never voted on again): :func:`gridledger.consensus.pbft.compute_live_votes`.
    Pass what is on disk back to ``new_replica_state(..., votes=...)`` on restart.
    """

    votes: tuple[VoteRecord, ...]
    low_watermark: int
    view: int


@dataclass(frozen=True)
class Send:
    """Send ``envelope`` to replica ``to``."""

    to: int
    envelope: SignedEnvelope


@dataclass(frozen=True)
class Broadcast:
    """Send ``envelope`` to every other replica."""

    envelope: SignedEnvelope


@dataclass(frozen=True)
class Execute:
    """Apply the committed batch at ``seq``; emitted strictly in seq order, once per seq.

    ``requests`` may be empty (a null request filling a gap after a view change):
    the application still produces block ``seq`` (empty), so that heights and
    sequence numbers coincide. ``timestamp_ms`` is agreed and strictly increasing.

    ``view`` and ``proposer`` are informational: after a view change, two honest
    replicas may commit the same batch at the same seq in different views, so keep
    them OUT of anything hashed (the block header must depend only on ``seq``,
    ``timestamp_ms`` and ``requests``).
    """

    seq: int
    view: int
    requests: tuple[ClientRequest, ...]
    timestamp_ms: int
    proposer: int


@dataclass(frozen=True)
class Certified:
    """2f+1 replicas (this one included) signed the block at ``seq`` with ``state_digest``.

    Emitted once per seq, only after this replica reported the same digest through
    ``on_executed`` (a mismatch is counted in ``ReplicaState.divergences`` instead).
    """

    seq: int
    state_digest: bytes
    certificate: CommitCertificate


@dataclass(frozen=True)
class ReplyToClient:
    """Deliver ``reply`` to ``client``.

    The core does not sign replies: the edge that actually sends one to a
    client seals it with the replica's authenticator
    (``state.auth.seal(effect.reply)``). A replica that answers its clients by
    other means (the node's API returns receipts) then spends nothing on it;
    signing every reply of a batch cost ~12% of a replica's CPU at 1,000 tx/s.
    """

    client: bytes
    reply: Reply


@dataclass(frozen=True)
class NeedStateTransfer:
    """This replica is behind: fetch the blocks up to ``target_seq`` from ``peers``.

    The block at ``target_seq`` has header hash ``state_digest`` and a commit
    certificate from ``peers``. Verify what you fetch, apply it, then call
    ``on_state_transferred`` with the height actually reached. Until then the
    replica emits no :class:`Execute`.
    """

    target_seq: int
    state_digest: bytes
    peers: tuple[int, ...]


@dataclass(frozen=True)
class ViewChanged:
    """This replica entered ``view`` (normal operation resumed); for logs."""

    view: int
    primary: int


Effect = (
    Send
    | Broadcast
    | Execute
    | Certified
    | ReplyToClient
    | NeedStateTransfer
    | ViewChanged
    | PersistVotes
)
