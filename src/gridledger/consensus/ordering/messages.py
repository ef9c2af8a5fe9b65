"""What the ordering service carries: log entries, replicas' header signatures, positions."""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.crypto.encoding import wire_type

TX = "tx"
CUT = "cut"


@wire_type("ordering.log-entry/1")
@dataclass(frozen=True)
class LogEntry:
    """One entry of the ordered log: a client request (``tx``) or a block cut marker (``cut``).

    ``height`` names the block a ``cut`` closes (0 for ``tx``); ``timestamp_ms`` is
    the appending replica's clock, agreed on by being in the log.
    """

    kind: str
    height: int
    timestamp_ms: int
    body: bytes


@wire_type("ordering.confirmation/1")
@dataclass(frozen=True)
class OrderingConfirmation:
    """Replica ``replica_id`` executed ``height`` into ``header_hash`` (a block-vote signature)."""

    height: int
    header_hash: bytes
    replica_id: int
    signature: bytes


@wire_type("ordering.position/1")
@dataclass(frozen=True)
class LogPosition:
    """Block ``height`` ended at log sequence ``seq`` (persisted: where to resume)."""

    height: int
    seq: int
