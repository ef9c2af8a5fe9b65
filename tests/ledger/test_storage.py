"""One contract suite for every BlockStore, plus crash safety of the SQLite store."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from gridledger.ledger.block import (
    Block,
    build_block,
    genesis_block,
    genesis_state,
)
from gridledger.ledger.chain import Ledger
from gridledger.ledger.errors import StorageError
from gridledger.ledger.execution import Receipt
from gridledger.ledger.storage import BlockStore, MemoryBlockStore, SqliteBlockStore
from gridledger.ledger.storage_sqlite import TX_INDEX_MAX_BLOCKS

from .helpers import GENESIS, certify, key, kv_tx, make_registry

ALICE = key("alice")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlockStore]:
    s: BlockStore = (
        MemoryBlockStore() if request.param == "memory" else SqliteBlockStore(tmp_path / "s.db")
    )
    yield s
    s.close()


def _chain(n: int) -> list[tuple[Block, tuple[Receipt, ...], dict[bytes, bytes | None]]]:
    """Genesis plus n blocks of two transactions each, with their outcomes."""
    state = genesis_state(GENESIS)
    g = genesis_block(GENESIS)
    out: list[tuple[Block, tuple[Receipt, ...], dict[bytes, bytes | None]]] = [
        (g, (), dict(GENESIS.state))
    ]
    prev = g.header
    for h in range(1, n + 1):
        txs = [kv_tx(ALICE, 2 * h, b"k%d" % h, b"v"), kv_tx(ALICE, 2 * h + 1, b"k", b"%d" % h)]
        block, outcome = build_block(prev, state, make_registry(), txs, 2_000 + h, 0, 0)
        out.append((block, outcome.receipts, dict(outcome.write_set)))
        prev = block.header
    return out


def test_empty_store(store: BlockStore) -> None:
    assert store.head_height() is None
    assert store.get_block(0) is None and store.get_header(0) is None
    assert store.get_receipts(0) is None and store.get_certificate(0) is None
    assert store.get_state(b"x") is None and list(store.iter_state()) == []
    assert store.find_tx(bytes(32)) is None


def test_blocks_receipts_state_round_trip(store: BlockStore) -> None:
    chain = _chain(3)
    for block, receipts, writes in chain:
        store.put_block(block, receipts, None, writes)
    assert store.head_height() == 3
    for block, receipts, _ in chain:
        assert store.get_block(block.height) == block
        assert store.get_header(block.height) == block.header
        assert store.get_receipts(block.height) == receipts
    assert store.get_state(b"test/k") == b"3"
    assert store.get_state(b"roles/ca") == b"ca-key"
    state = dict(store.iter_state())
    assert list(state) == sorted(state)
    tx = chain[2][0].transactions[1]
    assert store.find_tx(tx.tx_hash) == (2, 1)


def test_deletes_apply(store: BlockStore) -> None:
    (g, r, w), (b1, r1, _) = _chain(1)
    store.put_block(g, r, None, w)
    store.put_block(b1, r1, None, {b"roles/ca": None, b"new": b"1"})
    assert store.get_state(b"roles/ca") is None
    assert dict(store.iter_state()) == {b"new": b"1"}


def test_heights_must_be_consecutive(store: BlockStore) -> None:
    chain = _chain(2)
    with pytest.raises(StorageError):
        store.put_block(chain[1][0], chain[1][1], None, {})
    store.put_block(*chain[0][:2], None, chain[0][2])
    with pytest.raises(StorageError):
        store.put_block(*chain[0][:2], None, chain[0][2])
    with pytest.raises(StorageError):
        store.put_block(chain[2][0], chain[2][1], None, {})
    with pytest.raises(StorageError):  # receipts must match transactions
        store.put_block(chain[1][0], (), None, {})
    assert store.head_height() == 0


def test_certificates(store: BlockStore) -> None:
    chain = _chain(1)
    cert0 = certify(chain[0][0].header)
    store.put_block(chain[0][0], (), cert0, chain[0][2])
    assert store.get_certificate(0) == cert0
    store.put_block(chain[1][0], chain[1][1], None, chain[1][2])
    assert store.get_certificate(1) is None
    cert1 = certify(chain[1][0].header, (1, 2, 3))
    store.put_certificate(1, cert1)
    assert store.get_certificate(1) == cert1
    with pytest.raises(StorageError):
        store.put_certificate(2, cert1)


def test_meta(store: BlockStore) -> None:
    assert store.get_meta("view") is None
    store.put_meta("view", b"\x01")
    store.put_meta("view", b"\x02")
    assert store.get_meta("view") == b"\x02"
    store.delete_meta("view")
    store.delete_meta("view")
    assert store.get_meta("view") is None


def test_update_meta_puts_and_deletes_together(store: BlockStore) -> None:
    store.put_meta("a", b"1")
    store.put_meta("b", b"2")
    store.update_meta([("c", b"3"), ("a", b"4")], ["b", "never-set"])
    assert [store.get_meta(k) for k in ("a", "b", "c")] == [b"4", None, b"3"]


def test_update_meta_is_all_or_nothing(tmp_path: Path) -> None:
    store = SqliteBlockStore(tmp_path / "meta.sqlite")
    try:
        store.put_meta("keep", b"1")
        with pytest.raises(StorageError):
            # The second put cannot be stored: nothing of the update may remain.
            store.update_meta([("new", b"2"), ("bad", object())], ["keep"])  # type: ignore[list-item]
        assert store.get_meta("keep") == b"1"
        assert store.get_meta("new") is None
    finally:
        store.close()


class _ExplodingWrites(Mapping[bytes, bytes | None]):
    """A write set that fails half-way through being written."""

    def __init__(self, good: int) -> None:
        self._good = good

    def __getitem__(self, k: bytes) -> bytes | None:
        return b"v"

    def __len__(self) -> int:
        return self._good + 1

    def __iter__(self) -> Iterator[bytes]:
        for i in range(self._good):
            yield b"half/%d" % i
        raise RuntimeError("crash while writing state")


def test_failure_inside_put_block_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteBlockStore(path)
    chain = _chain(1)
    store.put_block(chain[0][0], (), None, chain[0][2])
    with pytest.raises(RuntimeError):
        store.put_block(chain[1][0], chain[1][1], certify(chain[1][0].header), _ExplodingWrites(5))
    assert store.head_height() == 0
    store.close()
    reopened = SqliteBlockStore(path)
    assert reopened.head_height() == 0
    assert reopened.get_block(1) is None and reopened.get_certificate(1) is None
    assert reopened.find_tx(chain[1][0].transactions[0].tx_hash) is None
    assert dict(reopened.iter_state()) == dict(GENESIS.state)
    reopened.put_block(chain[1][0], chain[1][1], None, chain[1][2])  # and it still works
    assert reopened.head_height() == 1
    reopened.close()


_WRITER = """
import sys
sys.path.insert(0, {root!r})
from gridledger.ledger.chain import Ledger
from gridledger.ledger.storage import SqliteBlockStore
from tests.ledger.helpers import GENESIS, key, kv_tx, make_registry
ledger = Ledger(SqliteBlockStore(sys.argv[1]), make_registry(), GENESIS)
signer = key("writer")
for h in range(ledger.height + 1, ledger.height + 2001):
    txs = [kv_tx(signer, h * 100 + i, b"k%d" % (i % 7), b"%d" % h) for i in range(40)]
    ledger.commit(txs, 2_000 + h, 0, 0)
    print(h, flush=True)
"""


def _run_writer_and_kill(path: Path, blocks: int) -> int:
    """Start the writer on ``path``, SIGKILL it once it has reported ``blocks`` blocks."""
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER.format(root=root), str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    seen: list[int] = []
    while len(seen) < blocks and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    assert len(seen) == blocks, "writer did not get going"
    return seen[-1]


def test_sigkill_while_writing_leaves_only_whole_blocks(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    for _ in range(3):  # kill, restart on the same file (which reloads state), kill again
        last_reported = _run_writer_and_kill(path, 8)
    # Reopening checks the rebuilt state root against the head header.
    store = SqliteBlockStore(path)
    ledger = Ledger(store, make_registry(), GENESIS)
    head = ledger.height
    assert head >= last_reported
    # Every stored block re-executes to the same header on a fresh replica.
    fresh = Ledger(MemoryBlockStore(), make_registry(), GENESIS)
    for block, _ in ledger.export_blocks(1, head):
        fresh.apply(block)
        assert store.get_receipts(block.height) == fresh.get_receipts(block.height)
    assert fresh.head == ledger.head
    assert dict(store.iter_state()) == dict(fresh.state.items())
    # The transaction index of blocks not yet written in a batch is rebuilt on opening.
    for block, _ in ledger.export_blocks(1, head):
        for i, tx in enumerate(block.transactions):
            assert store.find_tx(tx.tx_hash) == (block.height, i)
    store.close()


@pytest.mark.parametrize("batch", [1, 3, 5, 1000])
def test_the_transaction_index_is_written_in_batches_and_survives_a_crash(
    tmp_path: Path, batch: int
) -> None:
    path = tmp_path / "index.db"
    chain = _chain(6)
    store = SqliteBlockStore(path, tx_index_batch=batch)
    for block, receipts, writes in chain:
        store.put_block(block, receipts, None, writes)
    expected = {
        tx.tx_hash: (block.height, i)
        for block, _, _ in chain
        for i, tx in enumerate(block.transactions)
    }
    assert all(store.find_tx(h) == at for h, at in expected.items())
    # A crash: the file is reopened while the first store never closed (nothing flushed).
    crashed = SqliteBlockStore(path, tx_index_batch=batch)
    assert all(crashed.find_tx(h) == at for h, at in expected.items())
    assert crashed.find_tx(bytes(32)) is None
    crashed.close()
    on_disk = sqlite3.connect(path).execute("SELECT COUNT(*) FROM txs").fetchone()[0]
    assert on_disk == len(expected)  # a clean close writes what was pending
    store.close()
    reopened = SqliteBlockStore(path, tx_index_batch=batch)
    assert all(reopened.find_tx(h) == at for h, at in expected.items())
    reopened.close()


def test_opening_rereads_a_bounded_number_of_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Empty blocks after a batch (an idle chain) are re-read neither after a clean
    close nor, beyond TX_INDEX_MAX_BLOCKS, after a crash."""
    path = tmp_path / "idle.db"
    chain = _chain(1)
    store = SqliteBlockStore(path, tx_index_batch=1)
    for block, receipts, writes in chain:
        store.put_block(block, receipts, None, writes)
    prev = chain[-1][0].header
    for h in range(2, 2 + TX_INDEX_MAX_BLOCKS + 10):
        empty = Block(dataclasses.replace(prev, height=h, prev_hash=prev.header_hash), ())
        store.put_block(empty, (), None, {})
        prev = empty.header
    reads: list[int] = []
    real = SqliteBlockStore.get_block

    def counting(self: SqliteBlockStore, height: int) -> Block | None:
        reads.append(height)
        return real(self, height)

    monkeypatch.setattr(SqliteBlockStore, "get_block", counting)
    crashed = SqliteBlockStore(path)  # the first store never closed
    assert len(reads) <= TX_INDEX_MAX_BLOCKS
    crashed.close()
    store.close()
    reads.clear()
    SqliteBlockStore(path).close()
    assert reads == []


def test_a_repeated_transaction_hash_keeps_its_first_position(tmp_path: Path) -> None:
    """The ledger never stores a hash twice, but the index does not rely on it: a
    hash stays found where it first was, in memory and on disk alike."""
    chain = _chain(4)
    copy = chain[1][0].transactions[1]
    store = SqliteBlockStore(tmp_path / "dup.db", tx_index_batch=5)
    for block, receipts, writes in chain:
        if block.height >= 2:  # every later block carries the copy again
            block = dataclasses.replace(block, transactions=(*block.transactions, copy))
            receipts = (*receipts, chain[1][1][1])
        store.put_block(block, receipts, None, writes)
        if block.height >= 1:
            assert store.find_tx(copy.tx_hash) == (1, 1)
    store.close()
    reopened = SqliteBlockStore(tmp_path / "dup.db", tx_index_batch=5)
    assert reopened.find_tx(copy.tx_hash) == (1, 1)
    reopened.close()


def test_a_full_disk_is_a_typed_storage_error_and_loses_nothing(tmp_path: Path) -> None:
    store = SqliteBlockStore(tmp_path / "chain.sqlite")
    ledger = Ledger(store, make_registry(), GENESIS)
    ledger.commit([kv_tx(ALICE, 1, b"k", b"v")], 2_000, 0, 0)
    db: sqlite3.Connection = store._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count={pages + 2}")
    big = [kv_tx(ALICE, i, b"key%d" % i, b"x" * 4000) for i in range(2, 60)]
    with pytest.raises(StorageError):
        ledger.commit(big, 3_000, 0, 0)
    assert store.head_height() == 1
