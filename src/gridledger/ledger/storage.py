"""Block stores: where a replica keeps blocks, receipts, certificates, state and its log.

:class:`BlockStore` is the interface; :class:`MemoryBlockStore` (here) and
:class:`~gridledger.ledger.storage_sqlite.SqliteBlockStore` implement it, and
one contract test suite runs against both. ``put_block`` is atomic: the block,
its receipts, its certificate (if known), its state writes and the new head
height are stored together or not at all, so a crash never leaves state that
belongs to no block. Blocks are stored at consecutive heights from 0.

The ``meta`` area is a small key → bytes map for the consensus layer's durable
log (view number, prepared certificates, ...); each ``put_meta`` is durable on
return.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from gridledger.ledger.block import Block, BlockHeader
from gridledger.ledger.certificate import CommitCertificate
from gridledger.ledger.errors import StorageError
from gridledger.ledger.execution import Receipt

__all__ = ["BlockStore", "MemoryBlockStore", "SqliteBlockStore"]


class BlockStore(Protocol):
    """Durable storage of one replica's chain, state and consensus log."""

    def put_block(
        self,
        block: Block,
        receipts: Sequence[Receipt],
        certificate: CommitCertificate | None,
        state_writes: Mapping[bytes, bytes | None],
    ) -> None:
        """Atomically store the next block, its receipts, certificate and state writes."""
        ...

    def get_block(self, height: int) -> Block | None:
        """The block at ``height``, or ``None``."""
        ...

    def get_header(self, height: int) -> BlockHeader | None:
        """The header at ``height``, or ``None``."""
        ...

    def get_receipts(self, height: int) -> tuple[Receipt, ...] | None:
        """The receipts of the block at ``height``, or ``None``."""
        ...

    def get_certificate(self, height: int) -> CommitCertificate | None:
        """The commit certificate of the block at ``height``, or ``None``."""
        ...

    def put_certificate(self, height: int, certificate: CommitCertificate) -> None:
        """Attach (or replace) the commit certificate of a stored block."""
        ...

    def head_height(self) -> int | None:
        """Height of the last stored block, or ``None`` if the store is empty."""
        ...

    def find_tx(self, tx_hash: bytes) -> tuple[int, int] | None:
        """(height, index) of a stored transaction, or ``None``."""
        ...

    def get_state(self, key: bytes) -> bytes | None:
        """The state value of ``key`` as of the head block, or ``None``."""
        ...

    def iter_state(self) -> Iterator[tuple[bytes, bytes]]:
        """All state entries as of the head block, sorted by key."""
        ...

    def put_meta(self, key: str, value: bytes) -> None:
        """Durably set a consensus-log entry."""
        ...

    def get_meta(self, key: str) -> bytes | None:
        """A consensus-log entry, or ``None``."""
        ...

    def delete_meta(self, key: str) -> None:
        """Remove a consensus-log entry (no error if absent)."""
        ...

    def update_meta(self, puts: Sequence[tuple[str, bytes]], deletes: Sequence[str] = ()) -> None:
        """Durably set ``puts`` and remove ``deletes``, all or nothing, in one write."""
        ...

    def close(self) -> None:
        """Release files and connections; the store is unusable afterwards."""
        ...


class MemoryBlockStore:
    """A :class:`BlockStore` in process memory, for tests and the simulator."""

    def __init__(self) -> None:
        self._blocks: list[Block] = []
        self._receipts: list[tuple[Receipt, ...]] = []
        self._certificates: dict[int, CommitCertificate] = {}
        self._tx_index: dict[bytes, tuple[int, int]] = {}
        self._state: dict[bytes, bytes] = {}
        self._meta: dict[str, bytes] = {}

    def put_block(
        self,
        block: Block,
        receipts: Sequence[Receipt],
        certificate: CommitCertificate | None,
        state_writes: Mapping[bytes, bytes | None],
    ) -> None:
        expected = len(self._blocks)
        if block.height != expected:
            raise StorageError(f"block {block.height} cannot be stored: next height is {expected}")
        if len(receipts) != len(block.transactions):
            raise StorageError("one receipt per transaction is required")
        writes = dict(state_writes)  # copy first: nothing below can fail half-way
        self._blocks.append(block)
        self._receipts.append(tuple(receipts))
        if certificate is not None:
            self._certificates[block.height] = certificate
        for i, tx in enumerate(block.transactions):
            self._tx_index.setdefault(tx.tx_hash, (block.height, i))
        for key, value in writes.items():
            if value is None:
                self._state.pop(key, None)
            else:
                self._state[key] = value

    def get_block(self, height: int) -> Block | None:
        return self._blocks[height] if 0 <= height < len(self._blocks) else None

    def get_header(self, height: int) -> BlockHeader | None:
        block = self.get_block(height)
        return None if block is None else block.header

    def get_receipts(self, height: int) -> tuple[Receipt, ...] | None:
        return self._receipts[height] if 0 <= height < len(self._receipts) else None

    def get_certificate(self, height: int) -> CommitCertificate | None:
        return self._certificates.get(height)

    def put_certificate(self, height: int, certificate: CommitCertificate) -> None:
        if not 0 <= height < len(self._blocks):
            raise StorageError(f"no block at height {height}")
        self._certificates[height] = certificate

    def head_height(self) -> int | None:
        return len(self._blocks) - 1 if self._blocks else None

    def find_tx(self, tx_hash: bytes) -> tuple[int, int] | None:
        return self._tx_index.get(tx_hash)

    def get_state(self, key: bytes) -> bytes | None:
        return self._state.get(key)

    def iter_state(self) -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(self._state):
            yield key, self._state[key]

    def put_meta(self, key: str, value: bytes) -> None:
        self._meta[key] = value

    def get_meta(self, key: str) -> bytes | None:
        return self._meta.get(key)

    def delete_meta(self, key: str) -> None:
        self._meta.pop(key, None)

    def update_meta(self, puts: Sequence[tuple[str, bytes]], deletes: Sequence[str] = ()) -> None:
        for key in deletes:
            self._meta.pop(key, None)
        for key, value in puts:
            self._meta[key] = value

    def close(self) -> None:
        pass


# Re-exported so that both stores come from one place; storage_sqlite imports nothing from here.
from gridledger.ledger.storage_sqlite import SqliteBlockStore  # noqa: E402
