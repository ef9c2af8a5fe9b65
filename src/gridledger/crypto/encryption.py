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


def _low_order_u() -> frozenset[int]:
    """The u-coordinates (mod p, as X25519 reads them) of every point of small order.

    X25519 multiplies by a multiple of 8, so its output is all zeros exactly for
    the points of order dividing 8 on the curve and 4 on its twist (RFC 7748 §6.1):
    u = 0 (order 2), 1 (order 4), p - 1 (order 4, twist) and the two u of the
    order-8 points, mapped from edwards25519's order-8 point y by u = (1 + y) /
    (1 - y). The same list as libsodium's ``has_small_order``; a test holds it to
    a real X25519 exchange.
    """
    p = 2**255 - 19
    y8 = int.from_bytes(
        bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"), "little"
    ) & ((1 << 255) - 1)
    u8 = (1 + y8) * pow(1 - y8, p - 2, p) % p
    return frozenset({0, 1, p - 1, u8, pow(u8, p - 2, p)})


_LOW_ORDER_U = _low_order_u()
_FIELD_P = 2**255 - 19


def is_valid_encryption_public_key(raw: bytes) -> bool:
    """Whether ``raw`` is a 32-byte X25519 key that one can :func:`seal` to.

    A contract that stores a key for others to pay or write to later checks this
    first: a low-order key would make every later :func:`seal` fail, and whoever
    then could not pay would be blamed for it. X25519 ignores the top bit and
    reads u modulo p (RFC 7748 §5), so the key is reduced the same way and
    compared with the five small-order u (a table lookup instead of the
    exchange this used to run: 35 µs for every sell order and piece offer, on
    every replica).
    """
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != 32:
        return False
    u = (int.from_bytes(raw, "little") & ((1 << 255) - 1)) % _FIELD_P
    return u not in _LOW_ORDER_U


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
