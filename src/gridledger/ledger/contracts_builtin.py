"""A tiny key-value contract for tests and benchmarks (kind ``"test.kv-set"``).

``KvSet(key, value)`` stores ``value`` under ``b"test/" + key``; an empty key or
one longer than 64 bytes is rejected, and so is a value over 1 KiB.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.errors import EncodingError
from gridledger.ledger.contracts import BlockContext, StateView
from gridledger.ledger.errors import ContractRejection
from gridledger.ledger.tx import Transaction

KV_SET_KIND = "test.kv-set"
MAX_KV_KEY = 64
MAX_KV_VALUE = 1024


@wire_type("ledger.test-kv-set/1")
@dataclass(frozen=True)
class KvSet:
    """Payload of ``test.kv-set``."""

    key: bytes
    value: bytes


@wire_type("ledger.test-kv-receipt/1")
@dataclass(frozen=True)
class KvReceipt:
    """Receipt data: the value the key held before (``None``: it was unset)."""

    previous: bytes | None


@dataclass(frozen=True)
class KvContract:
    """Namespace ``test``: set a key to a value."""

    namespace: str = "test"
    kinds: frozenset[str] = frozenset({KV_SET_KIND})

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        try:
            op = decode_as(KvSet, tx.payload)
        except EncodingError as exc:
            raise ContractRejection(f"malformed payload: {exc.reason}") from None
        if not op.key:
            raise ContractRejection("empty key")
        if len(op.key) > MAX_KV_KEY or len(op.value) > MAX_KV_VALUE:
            raise ContractRejection("key or value too long")
        previous = view.get(op.key)
        view.put(op.key, op.value)
        return encode(KvReceipt(previous))
