"""Signed transactions.

A transaction names its chain, a ``kind`` (which selects the contract, e.g.
``"test.kv-set"``), the contract's payload as canonical bytes, the sender's
Ed25519 public key (a pseudonym or an identity key) and a sender-chosen
``nonce``. The sender signs the canonical encoding of the unsigned body
(:class:`TransactionBody`) under the tag ``gridledger/ledger/tx-signature/1``;
the transaction hash is the tagged hash of the whole signed encoding.

Each (sender, nonce) pair is accepted at most once per chain: the state machine
keeps the used pairs in state (see :mod:`gridledger.ledger.execution`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from gridledger.crypto.encoding import encode, wire_type
from gridledger.crypto.errors import InvalidSignature, KeyFormatError
from gridledger.crypto.hashing import hash_bytes, register_tag
from gridledger.crypto.signatures import (
    ED25519_PUBLIC_KEY_SIZE,
    ED25519_SIGNATURE_SIZE,
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from gridledger.ledger.errors import TransactionError

TX_SIGNATURE_TAG = register_tag("gridledger/ledger/tx-signature/1")
TX_HASH_TAG = register_tag("gridledger/ledger/tx/1")
MAX_NONCE = 2**64 - 1
MAX_KIND_LENGTH = 64


@wire_type("ledger.tx-body/1")
@dataclass(frozen=True)
class TransactionBody:
    """The part of a transaction that the sender signs."""

    chain_id: str
    kind: str
    payload: bytes
    sender: bytes
    nonce: int


@wire_type("ledger.tx/1")
@dataclass(frozen=True)
class Transaction:
    """A signed request to a contract; ``payload`` is the contract's canonical encoding."""

    chain_id: str
    kind: str
    payload: bytes
    sender: bytes
    nonce: int
    signature: bytes

    def __post_init__(self) -> None:
        # ValueError, so that decode_as reports a malformed transaction as EncodingError.
        if not self.kind or len(self.kind) > MAX_KIND_LENGTH:
            raise ValueError(f"kind must be 1..{MAX_KIND_LENGTH} characters")
        if len(self.sender) != ED25519_PUBLIC_KEY_SIZE:
            raise ValueError("sender must be a 32-byte Ed25519 public key")
        if not 0 <= self.nonce <= MAX_NONCE:
            raise ValueError("nonce must be in [0, 2**64)")
        if len(self.signature) != ED25519_SIGNATURE_SIZE:
            raise ValueError("signature must be 64 bytes")

    @classmethod
    def create(
        cls,
        chain_id: str,
        kind: str,
        payload: Any,
        signer: Ed25519PrivateKey,
        nonce: int,
    ) -> Transaction:
        """Sign a transaction; ``payload`` is bytes or any encodable value (encoded here)."""
        if not 0 <= nonce <= MAX_NONCE:
            raise TransactionError("nonce must be in [0, 2**64)")
        raw = payload if isinstance(payload, bytes) else encode(payload)
        body = TransactionBody(chain_id, kind, raw, signer.public_key.raw, nonce)
        signature = signer.sign(TX_SIGNATURE_TAG, encode(body))
        try:
            return cls(chain_id, kind, raw, body.sender, nonce, signature)
        except ValueError as exc:
            raise TransactionError(str(exc)) from None

    @property
    def body(self) -> TransactionBody:
        """The unsigned body the signature covers."""
        return TransactionBody(self.chain_id, self.kind, self.payload, self.sender, self.nonce)

    @cached_property
    def tx_hash(self) -> bytes:
        """Tagged SHA-256 of the signed encoding; names the transaction everywhere."""
        return hash_bytes(TX_HASH_TAG, encode(self))


def is_valid_transaction_signature(tx: Transaction) -> bool:
    """True if the sender's signature covers the transaction body."""
    try:
        verify_transaction_signature(tx)
    except TransactionError:
        return False
    return True


def verify_transaction_signature(tx: Transaction) -> None:
    """Raise :class:`TransactionError` unless ``tx.sender`` signed ``tx.body``."""
    try:
        Ed25519PublicKey(tx.sender).verify(TX_SIGNATURE_TAG, encode(tx.body), tx.signature)
    except (InvalidSignature, KeyFormatError):
        raise TransactionError("transaction signature does not verify") from None
