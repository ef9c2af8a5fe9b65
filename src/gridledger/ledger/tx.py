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

from gridledger.crypto.encoding import DEFAULT_MAX_SIZE, encode, wire_name, wire_type
from gridledger.crypto.errors import EncodingError, InvalidSignature, KeyFormatError
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
        signing_bytes = encode(body)
        signature = signer.sign(TX_SIGNATURE_TAG, signing_bytes)
        try:
            tx = cls(chain_id, kind, raw, body.sender, nonce, signature)
        except ValueError as exc:
            raise TransactionError(str(exc)) from None
        tx.__dict__["signing_bytes"] = signing_bytes
        return tx

    @property
    def body(self) -> TransactionBody:
        """The unsigned body the signature covers."""
        return TransactionBody(self.chain_id, self.kind, self.payload, self.sender, self.nonce)

    @cached_property
    def encoded(self) -> bytes:
        """``encode(self)``, computed at most once (set from the wire bytes when decoded)."""
        return encode(self)

    @cached_property
    def signing_bytes(self) -> bytes:
        """``encode(self.body)``: what the signature covers, computed at most once."""
        return encode(self.body)

    @cached_property
    def tx_hash(self) -> bytes:
        """Tagged SHA-256 of the signed encoding; names the transaction everywhere."""
        return hash_bytes(TX_HASH_TAG, self.encoded)


_TX_NAME = wire_name(Transaction)
_BODY_NAME = wire_name(TransactionBody)


def _cbor_text(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 24
    return bytes([0x60 | len(raw)]) + raw


# The canonical encoding of a transaction is a map of seven entries whose keys
# sort (shortest first, then bytewise) as below; the signature comes last, so
# the signed body is the same bytes with the head, the type name and the
# signature entry replaced.
_KEY_T, _KEY_SIG = _cbor_text("_t"), _cbor_text("signature")
_TX_HEAD = b"\xa7" + _KEY_T + _cbor_text(_TX_NAME)
_BODY_HEAD = b"\xa6" + _KEY_T + _cbor_text(_BODY_NAME)
_MAJOR_UINT, _MAJOR_BYTES, _MAJOR_TEXT = 0, 2, 3
_MIN_FOR_SIZE = {24: (1, 24), 25: (2, 256), 26: (4, 1 << 16), 27: (8, 1 << 32)}


def _read_head(data: bytes, i: int, major: int) -> tuple[int, int]:
    """The argument of the CBOR head at ``i`` (major type ``major``), in shortest form only."""
    if i >= len(data) or data[i] >> 5 != major:
        raise EncodingError(f"{_TX_NAME}: unexpected CBOR item at byte {i}")
    info = data[i] & 31
    if info < 24:
        return info, i + 1
    size_min = _MIN_FOR_SIZE.get(info)
    if size_min is None:
        raise EncodingError(f"{_TX_NAME}: indefinite or reserved length at byte {i}")
    size, minimum = size_min
    end = i + 1 + size
    if end > len(data):
        raise EncodingError(f"{_TX_NAME}: truncated")
    value = int.from_bytes(data[i + 1 : end], "big")
    if value < minimum:
        raise EncodingError(f"{_TX_NAME}: not the canonical encoding of its value")
    return value, end


def _read_string(data: bytes, i: int, major: int) -> tuple[bytes, int]:
    length, start = _read_head(data, i, major)
    end = start + length
    if end > len(data):
        raise EncodingError(f"{_TX_NAME}: truncated")
    return data[start:end], end


def _read_key(data: bytes, i: int, key: bytes) -> int:
    if data[i : i + len(key)] != key:
        raise EncodingError(f"{_TX_NAME}: expected exactly its fields, in canonical order")
    return i + len(key)


def _read_text(data: bytes, i: int) -> tuple[str, int]:
    raw, end = _read_string(data, i, _MAJOR_TEXT)
    try:
        return raw.decode("utf-8"), end
    except UnicodeDecodeError:
        raise EncodingError(f"{_TX_NAME}: text is not UTF-8") from None


_KEY_KIND, _KEY_NONCE, _KEY_SENDER = _cbor_text("kind"), _cbor_text("nonce"), _cbor_text("sender")
_KEY_PAYLOAD, _KEY_CHAIN = _cbor_text("payload"), _cbor_text("chain_id")


def decode_transaction(
    data: bytes | bytearray | memoryview, *, max_size: int = DEFAULT_MAX_SIZE
) -> Transaction:
    """``decode_as(Transaction, data)``, reading the bytes once and hashing nothing twice.

    The hot path of every replica. A transaction has one canonical encoding
    (deterministic CBOR, :mod:`gridledger.crypto.encoding`): a map of exactly
    its seven fields in canonical key order, every length and integer in its
    shortest form, text in UTF-8, nothing after it. This reader accepts exactly
    those bytes, with the field types and checks of ``decode_as`` (the property
    tests hold it to ``decode_as`` on mutated inputs), and refuses anything else
    with :class:`EncodingError` without running a general CBOR decoder: no tag,
    float or nested item is ever looked at. The transaction keeps ``data`` as
    its encoding (its hash needs no re-encoding) and the bytes its signature
    covers, which are ``data`` with the head and the signature entry replaced.
    """
    if type(data) is not bytes:
        if not isinstance(data, (bytearray, memoryview)):
            raise EncodingError("input must be bytes")
        data = bytes(data)
    if len(data) > max_size:
        raise EncodingError(f"input of {len(data)} bytes exceeds the limit of {max_size}")
    tx = _decode_common(data)
    if tx is not None:
        return tx
    if not data.startswith(_TX_HEAD):
        raise EncodingError(f"expected a {_TX_NAME}")
    i = _read_key(data, len(_TX_HEAD), _KEY_KIND)
    kind, i = _read_text(data, i)
    i = _read_key(data, i, _KEY_NONCE)
    nonce, i = _read_head(data, i, _MAJOR_UINT)
    i = _read_key(data, i, _KEY_SENDER)
    sender, i = _read_string(data, i, _MAJOR_BYTES)
    i = _read_key(data, i, _KEY_PAYLOAD)
    payload, i = _read_string(data, i, _MAJOR_BYTES)
    i = _read_key(data, i, _KEY_CHAIN)
    chain_id, i = _read_text(data, i)
    body_end = i
    i = _read_key(data, i, _KEY_SIG)
    signature, i = _read_string(data, i, _MAJOR_BYTES)
    if i != len(data):
        raise EncodingError(f"{_TX_NAME}: trailing bytes")
    try:
        tx = Transaction(chain_id, kind, payload, sender, nonce, signature)
    except ValueError as exc:
        raise EncodingError(f"{_TX_NAME}: ValueError: {str(exc)[:200]}") from None
    cache = tx.__dict__
    cache["encoded"] = data
    cache["signing_bytes"] = _BODY_HEAD + data[len(_TX_HEAD) : body_end]
    return tx


_COMMON_HEAD = _TX_HEAD + _KEY_KIND
_SENDER_ENTRY = _KEY_SENDER + b"\x58\x20"  # 32 bytes
_SIGNATURE_ENTRY = _KEY_SIG + b"\x58\x40"  # 64 bytes
_UINT_FORMS = {0x18: (1, 24), 0x19: (2, 256), 0x1A: (4, 1 << 16), 0x1B: (8, 1 << 32)}


def _decode_common(data: bytes) -> Transaction | None:
    """:func:`decode_transaction` for the usual shape, read inline; ``None`` otherwise.

    The usual shape: kind and chain id shorter than 24 bytes, a payload shorter
    than 64 KiB. This reads the same bytes as the general reader below, with its
    steps inlined (a function call per field cost about a third of the decode),
    and accepts only what that reader accepts: whatever is not exactly the
    usual canonical shape (another form, a truncation, bad UTF-8, a value the
    constructor refuses) returns ``None``, and the general reader then accepts
    it or says precisely why not.
    """
    try:
        if not data.startswith(_COMMON_HEAD):
            return None
        i = len(_COMMON_HEAD)
        h = data[i]
        if not 0x61 <= h <= 0x77:  # text of 1..23 bytes
            return None
        j = i + 1 + (h & 31)
        kind_raw = data[i + 1 : j]
        if data[j : j + 6] != _KEY_NONCE:
            return None
        i = j + 6
        h = data[i]
        if h < 24:
            nonce, i = h, i + 1
        else:
            form = _UINT_FORMS.get(h)
            if form is None:
                return None
            size, minimum = form
            nonce = int.from_bytes(data[i + 1 : i + 1 + size], "big")
            if nonce < minimum or i + 1 + size > len(data):
                return None
            i += 1 + size
        if data[i : i + 9] != _SENDER_ENTRY:
            return None
        sender = data[i + 9 : i + 41]
        i += 41
        if data[i : i + 8] != _KEY_PAYLOAD:
            return None
        i += 8
        h = data[i]
        if 0x40 <= h <= 0x57:
            length, i = h & 31, i + 1
        elif h == 0x58:
            length = data[i + 1]
            if length < 24:
                return None
            i += 2
        elif h == 0x59:
            length = int.from_bytes(data[i + 1 : i + 3], "big")
            if length < 256:
                return None
            i += 3
        else:
            return None
        payload = data[i : i + length]
        i += length
        if data[i : i + 9] != _KEY_CHAIN:
            return None
        i += 9
        h = data[i]
        if not 0x60 <= h <= 0x77:
            return None
        body_end = i + 1 + (h & 31)
        chain_raw = data[i + 1 : body_end]
        if data[body_end : body_end + 12] != _SIGNATURE_ENTRY:
            return None
        if len(data) != body_end + 12 + 64:
            return None
        signature = data[body_end + 12 :]
        tx = Transaction(
            chain_raw.decode("utf-8"), kind_raw.decode("utf-8"), payload, sender, nonce, signature
        )
    except (IndexError, UnicodeDecodeError, ValueError):
        return None
    cache = tx.__dict__
    cache["encoded"] = data
    cache["signing_bytes"] = _BODY_HEAD + data[len(_TX_HEAD) : body_end]
    return tx


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
        Ed25519PublicKey(tx.sender).verify(TX_SIGNATURE_TAG, tx.signing_bytes, tx.signature)
    except (InvalidSignature, KeyFormatError):
        raise TransactionError("transaction signature does not verify") from None
