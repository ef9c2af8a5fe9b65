"""Replica-to-replica messages of the node runtime (not of PBFT): status gossip and block fetch.

They travel on the same transport as the consensus envelopes and are told
apart by their wire name. None is signed: a fetched block is trusted only
through the commit certificate of itself or of a later block it links to, and
a gossiped height only makes a replica *ask* for blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.crypto.encoding import wire_type
from gridledger.ledger.block import Block
from gridledger.ledger.certificate import CommitCertificate

MAX_FETCH_BLOCKS = 32
MAX_FETCH_BYTES = 8 * 1024 * 1024


@wire_type("node.sync-status/1")
@dataclass(frozen=True)
class SyncStatus:
    """Gossip: the sender's executed height, head hash and view."""

    height: int
    head_hash: bytes
    view: int


@wire_type("node.fetch-blocks/1")
@dataclass(frozen=True)
class FetchBlocks:
    """Ask a peer for blocks ``from_height..to_height`` (inclusive) with certificates."""

    request_id: int
    from_height: int
    to_height: int


@wire_type("node.blocks/1")
@dataclass(frozen=True)
class BlocksReply:
    """Blocks (consecutive, from ``FetchBlocks.from_height``) and their certificates if known."""

    request_id: int
    blocks: tuple[Block, ...]
    certificates: tuple[CommitCertificate | None, ...]
