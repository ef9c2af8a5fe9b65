"""The SQLite :class:`~gridledger.ledger.storage.BlockStore`.

One database file, WAL journal, one transaction per block: ``put_block`` writes
the block, its receipts, its transaction index, its certificate and its state
writes between ``BEGIN IMMEDIATE`` and ``COMMIT``. SQLite's journal makes that
all-or-nothing across a crash of the process or of the machine.

``synchronous=FULL`` is the default: every commit (one per block, and one per
``put_meta``) is fsynced before it returns. With ``NORMAL`` a WAL database stays
consistent after a power failure but may lose its last commits; that is harmless
for blocks (state transfer refetches them) but not for the consensus log, which
must never forget a vote the replica already sent, or it could vote twice after
a restart. One fsync per block is cheap next to executing a 1,000-transaction
block, so durability wins. Pass ``synchronous="NORMAL"`` for throwaway runs.

State is stored as plain entries; the sparse Merkle tree is rebuilt from them
when a :class:`~gridledger.ledger.chain.Ledger` opens the store.

The transaction index (hash → height, position) is written in batches of
``tx_index_batch`` transactions, not with every block: its keys are random, so
each insert dirties its own page of a large B-tree, and writing 300 of them per
block cost about 10 µs per transaction at 100,000 indexed transactions, against
about 3 µs in batches of 4,096. Until its batch is written, a block's index
lives in memory, and the meta key ``store/txs-indexed-to`` names the last block
whose index is on disk; opening the store indexes the blocks after it again
from their stored transactions, so a crash loses nothing.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

from gridledger.crypto.encoding import decode, decode_as, encode, from_value
from gridledger.ledger.block import Block, BlockHeader
from gridledger.ledger.certificate import CommitCertificate
from gridledger.ledger.errors import StorageError
from gridledger.ledger.execution import Receipt
from gridledger.ledger.hash_filter import HashFilter
from gridledger.ledger.tx import Transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, header BLOB NOT NULL, txs BLOB NOT NULL, receipts BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS certificates (height INTEGER PRIMARY KEY, cert BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    tx_hash BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
"""
_MAX_BLOB = 256 * 1024 * 1024
_INDEXED_TO = "store/txs-indexed-to"  # meta: the transaction index is on disk up to here
TX_INDEX_BATCH = 4096
TX_INDEX_MAX_BLOCKS = 256  # also write it this often, so that opening re-reads few blocks


class SqliteBlockStore:
    """A :class:`~gridledger.ledger.storage.BlockStore` in one SQLite file (WAL mode)."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        tx_index_batch: int = TX_INDEX_BATCH,
    ) -> None:
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open block store {path}: {exc}") from None
        self._lock = threading.Lock()
        self._tx_index_batch = max(1, tx_index_batch)
        self._unindexed: dict[bytes, tuple[int, int]] = {}  # not yet in the txs table
        # every stored transaction hash, so that find_tx answers "absent" from memory
        self._tx_filter = HashFilter()
        try:
            self._head = self._read_head()
            indexed_to = self._read_indexed_to()
            for (tx_hash,) in self._db.execute("SELECT tx_hash FROM txs"):
                self._tx_filter.add(_blob(tx_hash))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read block store {path}: {exc}") from None
        head = -1 if self._head is None else self._head
        for height in range(indexed_to + 1, head + 1):
            block = self.get_block(height)
            if block is None:
                raise StorageError(f"block store {path} lacks block {height}")
            self._remember_index(block)
        self._indexed_to = indexed_to

    def _read_indexed_to(self) -> int:
        """The last block whose index is on disk; a store without the key has all of it."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (_INDEXED_TO,)).fetchone()
        if row is not None:
            return int.from_bytes(_blob(row[0]), "big", signed=True)
        indexed_to = -1 if self._head is None else self._head
        self._db.execute(
            "INSERT INTO meta VALUES (?, ?)",
            (_INDEXED_TO, indexed_to.to_bytes(8, "big", signed=True)),
        )
        return indexed_to

    def _remember_index(self, block: Block) -> None:
        """Index ``block`` in memory: the first position of a hash wins, as on disk."""
        unindexed = self._unindexed
        for index, tx in enumerate(block.transactions):
            h = tx.tx_hash
            if h in unindexed or (self._tx_filter.add_new(h) and self._find_on_disk(h)):
                continue
            unindexed[h] = (block.height, index)

    def _find_on_disk(self, tx_hash: bytes) -> tuple[int, int] | None:
        """The indexed position of ``tx_hash``; a failed read counts as absent, since it
        runs after a block is committed (the batch write keeps the first position anyway)."""
        try:
            found = self._db.execute(
                "SELECT height, idx FROM txs WHERE tx_hash = ?", (tx_hash,)
            ).fetchone()
        except sqlite3.Error:
            return None
        return None if found is None else (_int(found[0]), _int(found[1]))

    def _read_head(self) -> int | None:
        row = self._db.execute("SELECT MAX(height) FROM blocks").fetchone()
        return None if row[0] is None else int(row[0])

    def put_block(
        self,
        block: Block,
        receipts: Sequence[Receipt],
        certificate: CommitCertificate | None,
        state_writes: Mapping[bytes, bytes | None],
    ) -> None:
        if len(receipts) != len(block.transactions):
            raise StorageError("one receipt per transaction is required")
        header = encode(block.header)
        txs = compute_cbor_array([tx.encoded for tx in block.transactions])
        encoded_receipts = compute_cbor_array([r.encoded for r in receipts])
        cert = None if certificate is None else encode(certificate)
        with self._lock:
            expected = 0 if self._head is None else self._head + 1
            if block.height != expected:
                raise StorageError(f"block {block.height} cannot be stored: next is {expected}")
            flush = (
                len(self._unindexed) + len(block.transactions) >= self._tx_index_batch
                or block.height - self._indexed_to >= TX_INDEX_MAX_BLOCKS
            )

            def body(db: sqlite3.Connection) -> None:
                self._write_block(db, block, header, txs, encoded_receipts, cert, state_writes)
                if flush:
                    self._write_index(db, block.height, block)

            self._in_transaction(body)
            self._head = block.height
            if flush:
                self._unindexed.clear()
                self._indexed_to = block.height
            else:
                self._remember_index(block)

    @staticmethod
    def _write_block(
        db: sqlite3.Connection,
        block: Block,
        header: bytes,
        txs: bytes,
        receipts: bytes,
        cert: bytes | None,
        state_writes: Mapping[bytes, bytes | None],
    ) -> None:
        height = block.height
        db.execute("INSERT INTO blocks VALUES (?, ?, ?, ?)", (height, header, txs, receipts))
        if cert is not None:
            db.execute("INSERT OR REPLACE INTO certificates VALUES (?, ?)", (height, cert))
        db.executemany(
            "INSERT OR REPLACE INTO state VALUES (?, ?)",
            ((k, v) for k, v in state_writes.items() if v is not None),
        )
        db.executemany(
            "DELETE FROM state WHERE key = ?",
            ((k,) for k, v in state_writes.items() if v is None),
        )

    def _write_index(self, db: sqlite3.Connection, upto: int, last: Block | None) -> None:
        """The index of every block up to ``upto`` onto disk (``last``: that block, not
        yet remembered), sorted so that neighbouring keys share their page visits."""
        rows = [(h, height, index) for h, (height, index) in self._unindexed.items()]
        if last is not None:
            rows.extend((tx.tx_hash, last.height, i) for i, tx in enumerate(last.transactions))
            self._tx_filter.update(tx.tx_hash for tx in last.transactions)
        rows.sort()  # the first position of a hash comes first, and INSERT OR IGNORE keeps it
        db.executemany("INSERT OR IGNORE INTO txs VALUES (?, ?, ?)", rows)
        db.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            (_INDEXED_TO, upto.to_bytes(8, "big", signed=True)),
        )

    def _in_transaction(self, body: Callable[[sqlite3.Connection], object]) -> None:
        """Run ``body(db)`` inside BEGIN IMMEDIATE ... COMMIT; roll back on any exception."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot begin a transaction: {exc}") from None
        try:
            body(self._db)
            self._db.execute("COMMIT")
        except BaseException as exc:
            # On SQLITE_FULL, I/O errors and the like SQLite has already rolled
            # back; a second ROLLBACK would raise and hide the real error.
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"write failed and was rolled back: {exc}") from None
            raise

    def _one(self, sql: str, args: tuple[object, ...]) -> tuple[object, ...] | None:
        with self._lock:
            try:
                row: tuple[object, ...] | None = self._db.execute(sql, args).fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"read failed: {exc}") from None
        return row

    def get_block(self, height: int) -> Block | None:
        row = self._one("SELECT header, txs FROM blocks WHERE height = ?", (height,))
        if row is None:
            return None
        header = decode_as(BlockHeader, _blob(row[0]))
        txs = tuple(from_value(Transaction, v) for v in decode(_blob(row[1]), max_size=_MAX_BLOB))
        return Block(header, txs)

    def get_header(self, height: int) -> BlockHeader | None:
        row = self._one("SELECT header FROM blocks WHERE height = ?", (height,))
        return None if row is None else decode_as(BlockHeader, _blob(row[0]))

    def get_receipts(self, height: int) -> tuple[Receipt, ...] | None:
        row = self._one("SELECT receipts FROM blocks WHERE height = ?", (height,))
        if row is None:
            return None
        return tuple(from_value(Receipt, v) for v in decode(_blob(row[0]), max_size=_MAX_BLOB))

    def get_certificate(self, height: int) -> CommitCertificate | None:
        row = self._one("SELECT cert FROM certificates WHERE height = ?", (height,))
        return None if row is None else decode_as(CommitCertificate, _blob(row[0]))

    def put_certificate(self, height: int, certificate: CommitCertificate) -> None:
        cert = encode(certificate)
        with self._lock:
            if self._head is None or not 0 <= height <= self._head:
                raise StorageError(f"no block at height {height}")
            self._in_transaction(
                lambda db: db.execute(
                    "INSERT OR REPLACE INTO certificates VALUES (?, ?)", (height, cert)
                )
            )

    def head_height(self) -> int | None:
        return self._head

    def find_tx(self, tx_hash: bytes) -> tuple[int, int] | None:
        found = self._unindexed.get(tx_hash)
        if found is not None or not self._tx_filter.may_contain(tx_hash):
            return found
        row = self._one("SELECT height, idx FROM txs WHERE tx_hash = ?", (tx_hash,))
        return None if row is None else (_int(row[0]), _int(row[1]))

    def get_state(self, key: bytes) -> bytes | None:
        row = self._one("SELECT value FROM state WHERE key = ?", (key,))
        return None if row is None else _blob(row[0])

    def iter_state(self) -> Iterator[tuple[bytes, bytes]]:
        with self._lock:
            try:
                rows = self._db.execute("SELECT key, value FROM state ORDER BY key").fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"read failed: {exc}") from None
        for key, value in rows:
            yield bytes(key), bytes(value)

    def put_meta(self, key: str, value: bytes) -> None:
        with self._lock:
            self._in_transaction(
                lambda db: db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
            )

    def get_meta(self, key: str) -> bytes | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else _blob(row[0])

    def delete_meta(self, key: str) -> None:
        with self._lock:
            self._in_transaction(lambda db: db.execute("DELETE FROM meta WHERE key = ?", (key,)))

    def update_meta(self, puts: Sequence[tuple[str, bytes]], deletes: Sequence[str] = ()) -> None:
        def body(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM meta WHERE key = ?", [(key,) for key in deletes])
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", puts)

        with self._lock:
            self._in_transaction(body)

    def close(self) -> None:
        """Write the pending transaction index (a clean stop needs no re-indexing), then close."""
        with self._lock:
            if self._head is not None and self._indexed_to < self._head:
                head = self._head
                with contextlib.suppress(StorageError):
                    self._in_transaction(lambda db: self._write_index(db, head, None))
                    self._unindexed.clear()
                    self._indexed_to = head
            self._db.close()


def compute_cbor_array(items: Sequence[bytes]) -> bytes:
    """The canonical CBOR array of already canonically encoded ``items``.

    Equal to ``encode(list_of_values)``: a definite-length array head in its
    shortest form, then the items' bytes. The transactions and receipts of a
    block are already encoded (decoded from the wire, or hashed into a root),
    so storing a block re-encodes nothing.
    """
    n = len(items)
    if n < 24:
        head = bytes([0x80 | n])
    elif n < 1 << 8:
        head = bytes([0x98, n])
    elif n < 1 << 16:
        head = b"\x99" + n.to_bytes(2, "big")
    elif n < 1 << 32:
        head = b"\x9a" + n.to_bytes(4, "big")
    else:
        head = b"\x9b" + n.to_bytes(8, "big")
    return head + b"".join(items)


def _blob(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise StorageError("stored value is not a blob")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise StorageError("stored value is not an integer")
    return value
