from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from gridledger.ledger.block import (
    Block,
    GenesisConfig,
    compute_tx_root,
    genesis_block,
    validate_block_link,
)
from gridledger.ledger.certificate import CommitCertificate, Validator
from gridledger.ledger.chain import Ledger
from gridledger.ledger.errors import CertificateError, ChainError, StorageError
from gridledger.ledger.execution import Receipt, compute_nonce_key, compute_receipts_root
from gridledger.ledger.light import LightClient
from gridledger.ledger.merkle import verify_inclusion
from gridledger.ledger.state import WorldState
from gridledger.ledger.storage import MemoryBlockStore, SqliteBlockStore

from .helpers import CHAIN, GENESIS, VALIDATORS, certify, key, kv_tx, make_registry

ALICE, BOB = key("alice"), key("bob")


def _ledger() -> Ledger:
    return Ledger(MemoryBlockStore(), make_registry(), GENESIS)


def test_genesis() -> None:
    ledger = _ledger()
    g = genesis_block(GENESIS)
    assert ledger.head == g.header and ledger.height == 0
    assert g.header.prev_hash == GENESIS.config_hash
    assert ledger.state.get(b"roles/ca") == b"ca-key"
    other = GenesisConfig.create(CHAIN, VALIDATORS[:3], 1_000, {b"roles/ca": b"ca-key"})
    assert genesis_block(other).header.header_hash != g.header.header_hash
    with pytest.raises(ChainError, match="sorted"):
        GenesisConfig(CHAIN, VALIDATORS, 0, ((b"b", b""), (b"a", b"")))


def test_commit_attach_and_proofs() -> None:
    ledger = _ledger()
    txs = [kv_tx(ALICE, 1, b"a", b"1"), kv_tx(BOB, 1, b"b", b"2"), kv_tx(BOB, 1, b"c", b"3")]
    block, outcome = ledger.commit(txs, 5_000, 1, 0)
    assert ledger.head == block.header and ledger.state_root == block.header.state_root
    assert [r.ok for r in outcome.receipts] == [True, True]
    assert block.transactions == tuple(txs[:2])  # the nonce reuse is left out
    ledger.attach_certificate(1, certify(block.header))
    with pytest.raises(CertificateError):
        ledger.attach_certificate(1, certify(ledger.get_block(0).header))
    proof = ledger.get_tx_proof(1, txs[1].tx_hash)
    verify_inclusion(block.header.tx_root, txs[1].tx_hash, proof)
    with pytest.raises(ChainError):
        ledger.get_tx_proof(1, bytes(32))
    height, value, _ = ledger.get_state_proof(b"test/b")
    assert (height, value) == (1, b"2")


def test_propose_changes_nothing() -> None:
    ledger = _ledger()
    root = ledger.state.root
    block = ledger.propose([kv_tx(ALICE, 1, b"a", b"1")], 5_000, 0, 0)
    assert block.height == 1 and ledger.height == 0 and ledger.state.root == root
    ledger.apply(block)
    assert ledger.head == block.header


def test_state_transfer_reexecutes_and_checks_the_certificate() -> None:
    source = _ledger()
    for h in range(1, 4):
        block, _ = source.commit([kv_tx(ALICE, h, b"k", b"%d" % h)], 5_000 + h, 0, 0)
        source.attach_certificate(h, certify(block.header))
    target = _ledger()
    for block, cert in source.export_blocks(1, 10):
        assert cert is not None
        target.import_block(block, cert)
    assert target.head == source.head
    assert dict(target.state.items()) == dict(source.state.items())


def test_import_refuses_bad_blocks_and_certificates() -> None:
    source = _ledger()
    block, _ = source.commit([kv_tx(ALICE, 1, b"k", b"v")], 5_000, 0, 0)
    target = _ledger()
    root = target.state.root
    # a header that claims another state root, certified by a quorum: execution disagrees
    lying = dataclasses.replace(
        block, header=dataclasses.replace(block.header, state_root=bytes(32))
    )
    with pytest.raises(ChainError):
        target.import_block(lying, certify(lying.header))
    # transactions swapped for others
    swapped = dataclasses.replace(block, transactions=(kv_tx(BOB, 1, b"k", b"x"),))
    with pytest.raises(ChainError):
        target.import_block(swapped, certify(block.header))
    # certificate short of a quorum, or for another header
    with pytest.raises(CertificateError):
        target.import_block(block, certify(block.header, (0, 1)))
    with pytest.raises(CertificateError):
        target.import_block(block, certify(lying.header))
    assert target.height == 0 and target.state.root == root
    target.import_block(block, certify(block.header))
    assert target.head == block.header


def test_validate_block_link() -> None:
    ledger = _ledger()
    block = ledger.propose([], 5_000, 0, 0)
    g = ledger.head
    validate_block_link(g, block.header)
    for change in (
        {"height": 2},
        {"prev_hash": bytes(32)},
        {"chain_id": "x"},
        {"timestamp_ms": 1},
    ):
        with pytest.raises(ChainError):
            validate_block_link(g, dataclasses.replace(block.header, **change))


def test_timestamp_never_goes_back() -> None:
    ledger = _ledger()
    block, _ = ledger.commit([], 10, 0, 0)  # earlier than genesis: clamped
    assert block.header.timestamp_ms == GENESIS.timestamp_ms


def test_restart_from_sqlite_rebuilds_state(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = Ledger(SqliteBlockStore(path), make_registry(), GENESIS)
    for h in range(1, 4):
        ledger.commit([kv_tx(ALICE, h, b"k%d" % h, b"v")], 5_000 + h, 0, 0)
    head, root = ledger.head, ledger.state.root
    ledger.store.close()
    again = Ledger(SqliteBlockStore(path), make_registry(), GENESIS)
    assert again.head == head and again.state.root == root
    again.commit([kv_tx(ALICE, 9, b"z", b"v")], 9_000, 0, 0)
    again.store.close()
    other_genesis = dataclasses.replace(GENESIS, timestamp_ms=1)
    with pytest.raises(ChainError):
        Ledger(SqliteBlockStore(path), make_registry(), other_genesis)


def test_tampered_stored_state_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = Ledger(SqliteBlockStore(path), make_registry(), GENESIS)
    ledger.commit([kv_tx(ALICE, 1, b"k", b"v")], 5_000, 0, 0)
    ledger.store.close()

    db = sqlite3.connect(path)
    db.execute("UPDATE state SET value = ? WHERE key = ?", (b"evil", b"test/k"))
    db.commit()
    db.close()
    with pytest.raises(StorageError):
        Ledger(SqliteBlockStore(path), make_registry(), GENESIS)


def test_light_client_follows_a_ledger() -> None:
    ledger = _ledger()
    light = LightClient(GENESIS)
    txs = [kv_tx(ALICE, 1, b"a", b"1"), kv_tx(ALICE, 2, b"", b"bad")]
    block, _ = ledger.commit(txs, 5_000, 0, 0)
    light.add_header(block.header, certify(block.header))
    light.verify_tx_inclusion(1, txs[0].tx_hash, ledger.get_tx_proof(1, txs[0].tx_hash))
    receipt, rproof = ledger.get_receipt_proof(1, txs[1].tx_hash)
    light.verify_receipt(1, receipt, rproof)
    assert not receipt.ok and receipt.reason == "empty key"
    height, value, proof = ledger.get_state_proof(b"test/a")
    light.verify_state_value(height, b"test/a", value, proof)
    _, absent, proof2 = ledger.get_state_proof(b"test/nothing")
    assert absent is None
    light.verify_state_value(height, b"test/nothing", None, proof2)


def test_a_transaction_hash_has_one_receipt_on_the_whole_chain() -> None:
    ledger = _ledger()
    tx = kv_tx(ALICE, 1, b"k", b"v")
    block, outcome = ledger.commit([tx, tx], 2_000, 0, 0)
    assert block.transactions == (tx,)
    assert [(r.ok, r.reason) for r in outcome.receipts] == [(True, "")]
    block2, outcome2 = ledger.commit([tx], 3_000, 0, 0)  # replayed in a later block
    assert block2.transactions == () and outcome2.receipts == ()
    # A *different* transaction reusing the nonce is left out too: one receipt per nonce.
    other = kv_tx(ALICE, 1, b"k", b"other")
    block3, outcome3 = ledger.commit([other], 4_000, 0, 0)
    assert block3.transactions == () and outcome3.receipts == ()
    assert [d.reason for d in outcome3.dropped] == ["replayed nonce"]


def test_a_block_carrying_a_replayed_copy_is_refused_on_re_execution() -> None:
    src, dst = _ledger(), _ledger()
    tx = kv_tx(ALICE, 1, b"k", b"v")
    src.commit([tx], 2_000, 0, 0)
    dst.apply(src.get_block(1))
    # What a primary that still executed the copy would propose at height 2.
    empty = src.propose([], 3_000, 0, 0).header
    replay = Receipt(tx.tx_hash, False, "replayed nonce", b"")
    forged = dataclasses.replace(
        empty,
        tx_root=compute_tx_root([tx]),
        receipts_root=compute_receipts_root([replay]),
        tx_count=1,
    )
    with pytest.raises(ChainError, match="different header"):
        dst.apply(Block(forged, (tx,)))
    assert dst.height == 1


def test_apply_refuses_a_certificate_that_does_not_certify_the_block() -> None:
    src, dst = _ledger(), _ledger()
    block, _ = src.commit([kv_tx(ALICE, 1, b"k", b"v")], 2_000, 0, 0)
    bogus = CommitCertificate(CHAIN, 1, b"\0" * 32, ())
    with pytest.raises(CertificateError):
        dst.apply(block, bogus)
    assert dst.height == 0  # nothing applied
    dst.apply(block, certify(block.header))
    assert dst.store.get_certificate(1) is not None


def test_genesis_refuses_one_key_under_several_ids_and_invalid_keys() -> None:
    k = VALIDATORS[0].public_key
    with pytest.raises(ChainError, match="distinct"):
        GenesisConfig.create(CHAIN, [Validator(i, k) for i in range(4)], 0)
    small_order = bytes([1]) + bytes(31)
    with pytest.raises(ChainError, match="not a valid Ed25519"):
        GenesisConfig.create(CHAIN, [*VALIDATORS[:3], Validator(3, small_order)], 0)


def test_a_chain_made_under_the_per_nonce_replay_rule_is_refused() -> None:
    """Its spent nonces are invisible to the windows: every old transaction could
    run again, so the store is refused rather than upgraded silently."""
    store = MemoryBlockStore()
    ledger = Ledger(store, make_registry(), GENESIS)
    ledger.commit([kv_tx(ALICE, 1, b"k", b"v")], 2_000, 0, 0)
    old_marker = compute_nonce_key(ALICE.public_key.raw) + (1).to_bytes(8, "big")
    head = ledger.head
    state = dict(ledger.state.items()) | {old_marker: b"h" * 32}
    forged_head = dataclasses.replace(head, state_root=WorldState(state.items()).root)
    legacy = MemoryBlockStore()
    for height in range(head.height):
        legacy.put_block(store.get_block(height), store.get_receipts(height), None, {})
    block = store.get_block(head.height)
    legacy.put_block(
        Block(forged_head, block.transactions), store.get_receipts(head.height), None, state
    )
    with pytest.raises(StorageError, match="earlier replay rule"):
        Ledger(legacy, make_registry(), GENESIS)
