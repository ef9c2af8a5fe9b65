from __future__ import annotations

import dataclasses

import pytest

from gridledger.crypto.encoding import decode_as, encode, to_value
from gridledger.crypto.errors import EncodingError
from gridledger.ledger.errors import TransactionError
from gridledger.ledger.tx import Transaction, verify_transaction_signature

from .helpers import CHAIN, key, kv_tx


def test_signed_transaction_verifies_and_round_trips() -> None:
    tx = kv_tx(key("alice"), 7, b"k", b"v")
    verify_transaction_signature(tx)
    again = decode_as(Transaction, encode(tx))
    assert again == tx
    assert again.tx_hash == tx.tx_hash
    assert len(tx.tx_hash) == 32


def test_payload_may_be_raw_bytes() -> None:
    tx = Transaction.create(CHAIN, "test.raw", b"\x01\x02", key("alice"), 0)
    assert tx.payload == b"\x01\x02"
    verify_transaction_signature(tx)


@pytest.mark.parametrize(
    "change",
    [
        {"chain_id": "other"},
        {"kind": "test.other"},
        {"payload": b"x"},
        {"nonce": 8},
        {"sender": key("mallory").public_key.raw},
        {"signature": bytes(64)},
    ],
)
def test_any_tampering_breaks_the_signature(change: dict[str, object]) -> None:
    tx = dataclasses.replace(kv_tx(key("alice"), 7, b"k", b"v"), **change)  # type: ignore[arg-type]
    with pytest.raises(TransactionError):
        verify_transaction_signature(tx)


def test_hash_covers_the_signature() -> None:
    a = kv_tx(key("alice"), 1, b"k", b"v")
    b = kv_tx(key("alice"), 2, b"k", b"v")
    assert a.tx_hash != b.tx_hash


def test_malformed_transactions_are_refused() -> None:
    with pytest.raises(TransactionError):
        kv_tx(key("alice"), -1, b"k", b"v")
    value = to_value(kv_tx(key("alice"), 1, b"k", b"v"))
    for field, bad in (("sender", b"short"), ("signature", b""), ("nonce", -5), ("kind", "")):
        with pytest.raises(EncodingError):
            decode_as(Transaction, encode(value | {field: bad}))
