"""What the pure PBFT handlers ask their driver (node or simulator) to do.

Every handler in :mod:`gridledger.consensus.pbft` returns a list of these
frozen values, in the order they must be carried out. The driver owns the
network, the application and the disk; the core owns none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.consensus.messages import ClientRequest, Reply, SignedEnvelope
from gridledger.ledger.certificate import CommitCertificate


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


Effect = Send | Broadcast | Execute | Certified | ReplyToClient | NeedStateTransfer | ViewChanged
