"""Hybrid public-key encryption of records of any size: HPKE (RFC 9180).

Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, base mode, from
``cryptography``'s HPKE implementation (OpenSSL underneath). A record is sealed
to the receiver's X25519 public key under a *context* (RFC 9180's ``info``):
the protocol step, the parties, the round. The context enters the key schedule,
so a ciphertext opened under any other context, with any other key, or with a
single flipped bit fails with :class:`DecryptionError` and never returns
garbage. Callers put their associated data in the context; it is authenticated
but not encrypted.

The wire form is ``enc (32 bytes) || AES-GCM ciphertext || tag (16 bytes)``.
HPKE draws its ephemeral key from OpenSSL's CSPRNG: there is no seeded twin,
so tests check properties (round trip, tamper detection), not fixed bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from gridledger.crypto.errors import DecryptionError, KeyFormatError
from gridledger.crypto.rng import SYSTEM_RNG, Rng

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
ENC_SIZE = 32
TAG_SIZE = 16
OVERHEAD = ENC_SIZE + TAG_SIZE


@dataclass(frozen=True)
class EncryptionPublicKey:
    """A receiver's raw 32-byte X25519 public key."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise KeyFormatError("an X25519 public key is 32 bytes")

    def _key(self) -> x25519.X25519PublicKey:
        return x25519.X25519PublicKey.from_public_bytes(self.raw)


class EncryptionPrivateKey:
    """A receiver's X25519 private key."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise KeyFormatError("an X25519 private key is 32 bytes")
        self._raw = raw
        self._key = x25519.X25519PrivateKey.from_private_bytes(raw)
        self.public_key = EncryptionPublicKey(
            self._key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )

    @classmethod
    def generate(cls, rng: Rng = SYSTEM_RNG) -> EncryptionPrivateKey:
        return cls(rng.random_bytes(32))

    def raw(self) -> bytes:
        return self._raw


# Any fixed scalar serves: X25519 clears the cofactor, so the shared secret is all
# zeros exactly when the peer's point has small order (RFC 7748 §6.1).
_PROBE_KEY = x25519.X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def is_valid_encryption_public_key(raw: bytes) -> bool:
    """Whether ``raw`` is a 32-byte X25519 key that one can :func:`seal` to.

    A contract that stores a key for others to pay or write to later checks this
    first: a low-order key would make every later :func:`seal` fail, and whoever
    then could not pay would be blamed for it.
    """
    if len(raw) != 32:
        return False
    try:
        _PROBE_KEY.exchange(x25519.X25519PublicKey.from_public_bytes(raw))
    except ValueError:
        return False
    return True


def seal(receiver: EncryptionPublicKey, plaintext: bytes, context: bytes) -> bytes:
    """Encrypt ``plaintext`` to ``receiver``, bound to ``context`` (authenticated, not secret).

    A low-order receiver key (all-zero shared secret, RFC 7748 §6.1) is refused
    with :class:`KeyFormatError`.
    """
    try:
        return _SUITE.encrypt(plaintext, receiver._key(), info=context)
    except ValueError:
        raise KeyFormatError("the receiver's X25519 key is of low order") from None


def open_sealed(receiver: EncryptionPrivateKey, ciphertext: bytes, context: bytes) -> bytes:
    """Decrypt a :func:`seal` ciphertext; any tampering raises :class:`DecryptionError`."""
    if len(ciphertext) < OVERHEAD:
        raise DecryptionError()
    try:
        return _SUITE.decrypt(ciphertext, receiver._key, info=context)
    except (InvalidTag, ValueError):
        raise DecryptionError() from None
