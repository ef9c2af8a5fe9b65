"""Blocks, headers, genesis, and building a block from an ordered batch.

A :class:`BlockHeader` commits to its parent (``prev_hash``), to its
transactions (``tx_root``: Merkle root of the transaction hashes), to their
outcomes (``receipts_root``: Merkle root of the encoded receipts) and to the
state after them (``state_root``). Its hash, under the tag
``gridledger/ledger/block-header/1``, is what replicas sign in a
:class:`~gridledger.ledger.certificate.CommitCertificate`.

The genesis block (height 0) has no transactions; its ``prev_hash`` is the
tagged hash of the :class:`GenesisConfig`, so the genesis header commits to the
validator set and the initial state, and two chains with different
configurations never share a genesis hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

from gridledger.crypto.encoding import encode, wire_type
from gridledger.crypto.hashing import DIGEST_SIZE, hash_bytes, register_tag
from gridledger.crypto.signatures import is_valid_ed25519_public_key
from gridledger.ledger.certificate import Validator
from gridledger.ledger.contracts import BlockContext, ContractRegistry
from gridledger.ledger.errors import ChainError
from gridledger.ledger.execution import (
    BlockOutcome,
    apply_block,
    compute_receipts_root,
)
from gridledger.ledger.merkle import merkle_root
from gridledger.ledger.state import WorldState
from gridledger.ledger.tx import Transaction

BLOCK_HEADER_TAG = register_tag("gridledger/ledger/block-header/1")
GENESIS_TAG = register_tag("gridledger/ledger/genesis/1")
MAX_BLOCK_TXS = 100_000


@wire_type("ledger.block-header/1")
@dataclass(frozen=True)
class BlockHeader:
    """Everything a light node needs to check proofs against one block."""

    chain_id: str
    height: int
    prev_hash: bytes
    tx_root: bytes
    receipts_root: bytes
    state_root: bytes
    timestamp_ms: int
    proposer: int
    view: int
    tx_count: int

    @cached_property
    def header_hash(self) -> bytes:
        """Tagged hash of the encoded header; what commit certificates sign (computed once)."""
        return hash_bytes(BLOCK_HEADER_TAG, encode(self))


@wire_type("ledger.block/1")
@dataclass(frozen=True)
class Block:
    """A header and the ordered transactions it commits to."""

    header: BlockHeader
    transactions: tuple[Transaction, ...]

    @property
    def height(self) -> int:
        return self.header.height


@wire_type("ledger.genesis/1")
@dataclass(frozen=True)
class GenesisConfig:
    """The chain id, the validator set, the initial state (full keys, sorted, unique), the engine.

    ``engine`` names the consensus engine, and with it the finality rule that
    block import and light clients apply (:mod:`gridledger.ledger.finality`).
    """

    chain_id: str
    validators: tuple[Validator, ...]
    timestamp_ms: int
    state: tuple[tuple[bytes, bytes], ...] = ()
    engine: str = "pbft"

    def __post_init__(self) -> None:
        if not self.chain_id:
            raise ChainError("chain_id must not be empty")
        if not self.validators:
            raise ChainError("a chain needs at least one validator")
        if not self.engine or not self.engine.isprintable() or len(self.engine) > 32:
            raise ChainError("the consensus engine name must be short and printable")
        ids = [v.replica_id for v in self.validators]
        if len(set(ids)) != len(ids):
            raise ChainError("validator replica ids must be distinct")
        # One key under several ids would let its holder alone form a quorum.
        pubkeys = [v.public_key for v in self.validators]
        if len(set(pubkeys)) != len(pubkeys):
            raise ChainError("validator public keys must be distinct")
        for v in self.validators:
            if not is_valid_ed25519_public_key(v.public_key):
                raise ChainError(f"validator {v.replica_id}: not a valid Ed25519 public key")
        keys = [k for k, _ in self.state]
        if any(a >= b for a, b in pairwise(keys)):
            raise ChainError("genesis state keys must be sorted and unique")

    @classmethod
    def create(
        cls,
        chain_id: str,
        validators: Sequence[Validator],
        timestamp_ms: int,
        state: Mapping[bytes, bytes] | None = None,
        engine: str = "pbft",
    ) -> GenesisConfig:
        """Build a config, sorting ``state`` (full keys, e.g. ``b"identity/roles/ca"``)."""
        entries = tuple(sorted((state or {}).items()))
        return cls(chain_id, tuple(validators), timestamp_ms, entries, engine)

    @property
    def config_hash(self) -> bytes:
        return hash_bytes(GENESIS_TAG, encode(self))


def compute_tx_root(txs: Sequence[Transaction]) -> bytes:
    return merkle_root([tx.tx_hash for tx in txs])


def genesis_state(config: GenesisConfig) -> WorldState:
    """The world state at height 0."""
    return WorldState(config.state)


def genesis_block(config: GenesisConfig) -> Block:
    """Block 0: no transactions, ``prev_hash`` = hash of the config, state = its entries."""
    header = BlockHeader(
        chain_id=config.chain_id,
        height=0,
        prev_hash=config.config_hash,
        tx_root=merkle_root([]),
        receipts_root=merkle_root([]),
        state_root=genesis_state(config).root,
        timestamp_ms=config.timestamp_ms,
        proposer=0,
        view=0,
        tx_count=0,
    )
    return Block(header, ())


def build_block(
    prev_header: BlockHeader,
    state: WorldState,
    registry: ContractRegistry,
    txs: Sequence[Transaction],
    timestamp_ms: int,
    proposer: int,
    view: int,
) -> tuple[Block, BlockOutcome]:
    """Apply ``txs`` to ``state`` (mutating it) and build the block that records them.

    ``timestamp_ms`` comes from the consensus proposal; it is raised to the
    parent's timestamp if it is earlier, so a committed batch always yields a
    valid block.
    """
    if len(txs) > MAX_BLOCK_TXS:
        raise ChainError(f"a block holds at most {MAX_BLOCK_TXS} transactions")
    timestamp_ms = max(timestamp_ms, prev_header.timestamp_ms)
    height = prev_header.height + 1
    ctx = BlockContext(prev_header.chain_id, height, timestamp_ms, proposer)
    outcome = apply_block(state, registry, txs, ctx)
    txs = outcome.transactions  # without those left out (replays, copies)
    header = BlockHeader(
        chain_id=prev_header.chain_id,
        height=height,
        prev_hash=prev_header.header_hash,
        tx_root=compute_tx_root(txs),
        receipts_root=compute_receipts_root(outcome.receipts),
        state_root=outcome.state_root,
        timestamp_ms=timestamp_ms,
        proposer=proposer,
        view=view,
        tx_count=len(txs),
    )
    return Block(header, tuple(txs)), outcome


def validate_block_link(prev_header: BlockHeader, header: BlockHeader) -> None:
    """Raise :class:`ChainError` unless ``header`` can directly follow ``prev_header``."""
    if header.chain_id != prev_header.chain_id:
        raise ChainError(f"header is for chain {header.chain_id!r}")
    if header.height != prev_header.height + 1:
        raise ChainError(f"height {header.height} does not follow {prev_header.height}")
    if header.prev_hash != prev_header.header_hash:
        raise ChainError(f"header {header.height} does not link to its parent")
    if header.timestamp_ms < prev_header.timestamp_ms:
        raise ChainError(f"header {header.height} goes back in time")
    for name in ("tx_root", "receipts_root", "state_root"):
        if len(getattr(header, name)) != DIGEST_SIZE:
            raise ChainError(f"header {header.height}: {name} is not a digest")


def validate_block_body(block: Block) -> None:
    """Raise :class:`ChainError` unless the header's ``tx_root`` matches the transactions."""
    if len(block.transactions) != block.header.tx_count:
        raise ChainError(f"block {block.height}: tx_count does not match the transactions")
    if compute_tx_root(block.transactions) != block.header.tx_root:
        raise ChainError(f"block {block.height}: transactions do not match tx_root")
