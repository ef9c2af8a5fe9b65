"""Regression tests for defects found in review (each failed before its fix)."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from gridledger.crypto.encryption import EncryptionPublicKey, seal
from gridledger.crypto.errors import KeyFormatError
from gridledger.crypto.signatures import RsaPublicKey
from gridledger.ledger.block import Block, GenesisConfig, compute_tx_root
from gridledger.ledger.certificate import CommitCertificate, Validator
from gridledger.ledger.chain import Ledger
from gridledger.ledger.errors import CertificateError, ChainError, ProofError, StorageError
from gridledger.ledger.execution import Receipt, compute_receipts_root
from gridledger.ledger.light import LightClient
from gridledger.ledger.merkle import MerkleProof, inclusion_proof
from gridledger.ledger.storage import MemoryBlockStore, SqliteBlockStore

from .helpers import CHAIN, GENESIS, VALIDATORS, certify, key, kv_tx, make_registry

ALICE = key("alice")


def _ledger() -> Ledger:
    return Ledger(MemoryBlockStore(), make_registry(), GENESIS)


def test_a_transaction_hash_has_one_receipt_on_the_whole_chain() -> None:
    ledger = _ledger()
    tx = kv_tx(ALICE, 1, b"k", b"v")
    block, outcome = ledger.commit([tx, tx], 2_000, 0, 0)
    assert block.transactions == (tx,)
    assert [(r.ok, r.reason) for r in outcome.receipts] == [(True, "")]
    block2, outcome2 = ledger.commit([tx], 3_000, 0, 0)  # replayed in a later block
    assert block2.transactions == () and outcome2.receipts == ()
    # A *different* transaction reusing the nonce still executes and is refused.
    other = kv_tx(ALICE, 1, b"k", b"other")
    _, outcome3 = ledger.commit([other], 4_000, 0, 0)
    assert [(r.ok, r.reason) for r in outcome3.receipts] == [(False, "replayed nonce")]


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


def test_proof_size_must_match_the_header_tx_count() -> None:
    ledger = _ledger()
    txs = [kv_tx(ALICE, i, b"k%d" % i, b"v") for i in range(1, 4)]
    block, _ = ledger.commit(txs, 2_000, 0, 0)
    light = LightClient(GENESIS)
    light.add_header(block.header, certify(block.header))
    hashes = [tx.tx_hash for tx in txs]
    good = inclusion_proof(hashes, 2)
    light.verify_tx_inclusion(1, hashes[2], good)
    # The same path also hashes up to the root as "index 1 of 2": refused now.
    lying = MerkleProof(1, 2, good.path)
    with pytest.raises(ProofError):
        light.verify_tx_inclusion(1, hashes[2], lying)


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


def test_bad_public_keys_are_typed_errors() -> None:
    with pytest.raises(KeyFormatError):
        seal(EncryptionPublicKey(bytes(32)), b"m", b"c")
    with pytest.raises(KeyFormatError):
        RsaPublicKey(n=(1 << 2047) + 1, e=(1 << 2047) + 3)
