"""The lean hot path computes exactly what the slow path did.

A transaction is decoded once per replica (:func:`decode_transaction`), keeps its
wire bytes and the bytes its signature covers; blocks store pre-encoded
transactions and receipts; the sparse Merkle tree updates only what changed.
Each shortcut is checked here against the plain definition, including on
inputs an attacker would send.
"""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.errors import EncodingError
from gridledger.crypto.hashing import hash_bytes
from gridledger.ledger.block import BLOCK_HEADER_TAG, BlockHeader
from gridledger.ledger.execution import Receipt
from gridledger.ledger.smt import SparseMerkleTree
from gridledger.ledger.storage_sqlite import compute_cbor_array
from gridledger.ledger.tx import (
    TX_HASH_TAG,
    Transaction,
    decode_transaction,
    is_valid_transaction_signature,
)

from .helpers import key, kv_tx

SIGNER = key("hot-path")


def _outcome(data: bytes) -> tuple[str, object]:
    try:
        return "ok", decode_as(Transaction, data)
    except EncodingError:
        return "refused", None


@settings(max_examples=60, deadline=None)
@given(
    st.text(min_size=1, max_size=12),
    st.text(min_size=1, max_size=64),
    st.binary(max_size=40),
    st.integers(min_value=0, max_value=2**64 - 1),
)
def test_decode_transaction_equals_decode_as(
    chain_id: str, kind: str, payload: bytes, nonce: int
) -> None:
    tx = Transaction.create(chain_id, kind, payload, SIGNER, nonce)
    data = encode(tx)
    fast = decode_transaction(data)
    assert fast == decode_as(Transaction, data)
    assert fast.encoded == data
    assert fast.tx_hash == hash_bytes(TX_HASH_TAG, encode(fast))
    assert fast.signing_bytes == encode(fast.body)
    assert is_valid_transaction_signature(fast)


tx_st = st.builds(
    lambda chain, kind, payload, nonce: Transaction.create(chain, kind, payload, SIGNER, nonce),
    st.text(min_size=1, max_size=30),
    st.text(min_size=1, max_size=64),
    st.binary(max_size=300),
    st.one_of(st.integers(0, 30), st.integers(min_value=0, max_value=2**64 - 1)),
)


@settings(max_examples=400, deadline=None)
@given(tx_st, st.data())
def test_decode_transaction_refuses_what_decode_as_refuses(
    tx: Transaction, data: st.DataObject
) -> None:
    """Mutated wire bytes (changed, inserted, deleted): both decoders agree, result included."""
    raw = bytearray(encode(tx))
    for _ in range(data.draw(st.integers(0, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["set", "insert", "delete"]))
        if op == "set":
            raw[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            raw.insert(i, data.draw(st.integers(0, 255)))
        elif len(raw) > 1:
            del raw[i]
    blob = bytes(raw)
    expected = _outcome(blob)
    try:
        fast = decode_transaction(blob)
    except EncodingError:
        assert expected == ("refused", None)
        return
    assert expected == ("ok", fast)
    assert fast.encoded == blob == encode(fast)
    assert fast.signing_bytes == encode(fast.body)


def _tx_value() -> dict[str, object]:
    value = cbor2.loads(encode(kv_tx(SIGNER, 1, b"k", b"v")))
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize(
    "change",
    [
        {"_t": "ledger.tx-body/1"},
        {"nonce": True},
        {"nonce": -1},
        {"nonce": "1"},
        {"kind": b"test.kv-set"},
        {"chain_id": None},
        {"sender": b"\x01" * 31},
        {"signature": b"\x00" * 63},
        {"extra": 1},
        {"kind": ""},
    ],
)
def test_decode_transaction_refuses_crafted_maps(change: dict[str, object]) -> None:
    value = _tx_value()
    value.update(change)
    blob = cbor2.dumps(value, canonical=True)
    with pytest.raises(EncodingError):
        decode_transaction(blob)
    with pytest.raises(EncodingError):
        decode_as(Transaction, blob)


def test_decode_transaction_refuses_non_canonical_and_missing_fields() -> None:
    value = _tx_value()
    with pytest.raises(EncodingError):
        decode_transaction(cbor2.dumps(dict(reversed(value.items()))))  # key order
    del value["signature"]
    with pytest.raises(EncodingError):
        decode_transaction(cbor2.dumps(value, canonical=True))
    with pytest.raises(EncodingError):
        decode_transaction(encode([1, 2]))


def test_a_tampered_payload_still_fails_the_signature() -> None:
    """Cached signing bytes come from the decoded map: a changed field changes them."""
    tx = kv_tx(SIGNER, 3, b"k", b"v")
    value = cbor2.loads(encode(tx))
    value["nonce"] = 4
    forged = decode_transaction(cbor2.dumps(value, canonical=True))
    assert not is_valid_transaction_signature(forged)
    assert forged.tx_hash != tx.tx_hash


@pytest.mark.parametrize("n", [0, 1, 23, 24, 255, 256, 1000, 65535, 65536])
def test_cbor_array_of_encoded_items_equals_encode(n: int) -> None:
    items = [Receipt(bytes([i % 256]) * 32, i % 2 == 0, "r" * (i % 3), b"") for i in range(n)]
    assert compute_cbor_array([r.encoded for r in items]) == encode(tuple(items))


def test_cached_encodings_match_definitions() -> None:
    receipt = Receipt(b"\x01" * 32, False, "bad signature", b"")
    assert receipt.encoded == encode(receipt)
    header = BlockHeader("c", 1, b"\x00" * 32, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, 5, 0, 0, 1)
    assert header.header_hash == hash_bytes(BLOCK_HEADER_TAG, encode(header))


ops_st = st.lists(
    st.lists(
        st.tuples(st.binary(min_size=1, max_size=3), st.one_of(st.none(), st.binary(max_size=3))),
        max_size=12,
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=80, deadline=None)
@given(ops_st)
def test_incremental_root_equals_a_fresh_tree_after_every_block(
    blocks: list[list[tuple[bytes, bytes | None]]],
) -> None:
    """Sets and deletes in several blocks, a root after each: always a fresh tree's root."""
    tree = SparseMerkleTree()
    model: dict[bytes, bytes] = {}
    for writes in blocks:
        for k, v in writes:
            tree.set(k, v)
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v
        fresh = SparseMerkleTree()
        fresh.update(model.items())
        assert tree.root() == fresh.root()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=40), st.booleans(), st.text(max_size=40), st.binary(max_size=300))
def test_receipt_encoding_shortcut_equals_encode(
    tx_hash: bytes, ok: bool, reason: str, data: bytes
) -> None:
    receipt = Receipt(tx_hash, ok, reason, data)
    assert receipt.encoded == encode(receipt)
    assert decode_as(Receipt, receipt.encoded) == receipt


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=80), st.binary(min_size=32, max_size=32))
def test_inlined_hashes_equal_tagged_hashes(data: bytes, other: bytes) -> None:
    from gridledger.ledger import merkle, smt

    assert merkle.compute_leaf_hash(data) == hash_bytes(merkle.MERKLE_TAG, b"\x00" + data)
    assert merkle.compute_node_hash(other, other) == hash_bytes(
        merkle.MERKLE_TAG, b"\x01" + other + other
    )
    assert smt.compute_key_hash(data) == hash_bytes(smt.SMT_KEY_TAG, data)
    assert smt.compute_value_hash(data) == hash_bytes(smt.SMT_VALUE_TAG, data)
    assert smt.compute_leaf_hash(other, other) == hash_bytes(smt.SMT_LEAF_TAG, other + other)
    assert smt.compute_node_hash(other, other) == hash_bytes(smt.SMT_NODE_TAG, other + other)


@pytest.mark.parametrize("payload_len", [0, 23, 24, 255, 256, 65_535, 65_536])
@pytest.mark.parametrize("nonce", [0, 23, 24, 255, 256, 2**16, 2**32, 2**64 - 1])
@pytest.mark.parametrize(("kind", "chain"), [("k", "c"), ("k" * 23, "c" * 23), ("k" * 24, "")])
def test_decode_transaction_at_the_edges_of_every_length_form(
    payload_len: int, nonce: int, kind: str, chain: str
) -> None:
    """Each CBOR length and integer form the reader inlines, on both sides of its
    boundary, decodes exactly as ``decode_as``; a byte short or over is refused."""
    tx = Transaction.create(chain, kind, b"\x07" * payload_len, SIGNER, nonce)
    data = encode(tx)
    fast = decode_transaction(data)
    assert fast == decode_as(Transaction, data)
    assert fast.signing_bytes == encode(fast.body) and fast.tx_hash == tx.tx_hash
    for broken in (data[:-1], data + b"\x00", data[:40]):
        with pytest.raises(EncodingError):
            decode_transaction(broken)
