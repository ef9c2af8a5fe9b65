"""Signatures: Ed25519 for pseudonyms, transactions and replicas; RSA-PSS for long-term keys.

Keys and signing come from ``cryptography`` (OpenSSL); Ed25519 verification,
the one operation every replica runs for every transaction, from the
ed25519-zebra crate (Zcash Foundation, Rust, bound by
``py-ed25519-zebra-bindings``) behind strict pre-checks: see
:func:`verify_ed25519`. Every signature covers a domain tag
(a :class:`~gridledger.crypto.hashing.HashTag`) prepended to the message, so a
signature made for one protocol step can never be replayed as another.

Ed25519 (RFC 8032) gives ~128-bit security with 32-byte keys and 64-byte
signatures. RSA-PSS (RFC 8017) uses SHA-384, MGF1-SHA-384 and a 48-byte salt,
matching the hash of the RFC 9474 blind signatures, with moduli of at least
2048 bits (3072 for 128-bit security).
"""

from __future__ import annotations

from dataclasses import dataclass

import ed25519_zebra as _zebra
import nacl.bindings as _sodium
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from gridledger.crypto.errors import InvalidSignature, KeyFormatError
from gridledger.crypto.hashing import HashTag, tagged_message
from gridledger.crypto.rng import SYSTEM_RNG, Rng

ED25519_PUBLIC_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class Ed25519PublicKey:
    """A raw 32-byte Ed25519 public key."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != ED25519_PUBLIC_KEY_SIZE:
            raise KeyFormatError("an Ed25519 public key is 32 bytes")

    def check_point(self) -> None:
        """Raise :class:`KeyFormatError` unless the key is a canonical prime-order point.

        The same libsodium check as :func:`is_valid_ed25519_public_key`: a
        small-order key could never produce a signature :meth:`verify` accepts.
        """
        if not is_valid_ed25519_public_key(self.raw):
            raise KeyFormatError("not a valid Ed25519 public key")

    def verify(self, tag: HashTag, message: bytes, signature: bytes) -> None:
        """Raise :class:`InvalidSignature` unless ``signature`` signs ``tag || message``
        under the rule of :func:`verify_ed25519`."""
        if not verify_ed25519(self.raw, tagged_message(tag, message), signature):
            raise InvalidSignature(f"Ed25519 signature does not verify ({tag.name})")

    def is_valid(self, tag: HashTag, message: bytes, signature: bytes) -> bool:
        try:
            self.verify(tag, message, signature)
        except (InvalidSignature, KeyFormatError):
            return False
        return True


def is_valid_ed25519_public_key(raw: bytes) -> bool:
    """True if ``raw`` is a canonical encoding of a point of prime order (no torsion).

    libsodium's check refuses small-order points and non-canonical encodings,
    which are exactly the keys under which forged or ambiguous signatures exist.
    """
    if len(raw) != ED25519_PUBLIC_KEY_SIZE:
        return False
    return bool(_sodium.crypto_core_ed25519_is_valid_point(raw))


_FIELD_P = 2**255 - 19  # edwards25519's base field


def _small_order_encodings() -> frozenset[bytes]:
    """Every 32-byte string that decodes to a point of order 1, 2, 4 or 8.

    The eight torsion points are the multiples of one point of order 8; their
    y-coordinates are 1, p - 1, 0 and two others. Each y is listed with both
    sign bits, and y = 0 and y = 1 also in their non-canonical forms p and p + 1
    (the only y < 19, whose y + p still fits in 255 bits). This is libsodium's
    blocklist (``ge25519_has_small_order``), built here from the curve.
    """
    p = _FIELD_P
    order_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
    points, acc = [], bytes([1]) + bytes(31)  # the identity
    for _ in range(8):
        points.append(acc)
        acc = _sodium.crypto_core_ed25519_add(acc, order_8)
    ys = {int.from_bytes(pt, "little") & ((1 << 255) - 1) for pt in points}
    ys |= {y + p for y in ys if y + p < 1 << 255}
    return frozenset((y | sign).to_bytes(32, "little") for y in ys for sign in (0, 1 << 255))


_SMALL_ORDER = _small_order_encodings()


def _exact_bytes(value: object) -> bytes | None:
    """``value`` as bytes if it is bytes-like, else ``None``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return None


def _is_canonical_point_encoding(encoded: bytes) -> bool:
    """True unless the y-coordinate (the low 255 bits) is p or more.

    Only 19 values of y are that large, so the first test nearly always decides.
    """
    if encoded[31] & 0x7F != 0x7F or encoded[1:31] != b"\xff" * 30:
        return True
    return encoded[0] < 0xED


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is an Ed25519 signature of ``message`` under ``public_key``.

    The rule (the same on every replica, which is what consensus needs):

    * ``S`` must be below the group order ``L`` (no malleated copy ``S + L``);
    * ``R`` and the key must be canonical encodings (y < p), and neither may be
      one of the 8 small-order points (under a small-order key, ``R`` = identity
      and ``S`` = 0 would "sign" every message);
    * then the cofactored equation ``[8][S]B = [8]R + [8][k]A``, as RFC 8032
      §5.1.7 allows and ZIP 215 fixes for consensus (ed25519-zebra; CometBFT
      uses the same rule).

    The pre-checks are libsodium's (``crypto_sign_verify_detached``); the only
    signatures libsodium refuses and this accepts are those whose ``R`` or key
    carries a torsion component, which only the key's owner can make (the
    equations differ only by a point of order at most 8, and ``k`` hashes the
    exact bytes of ``R``). Nobody else can forge, and nobody can malleate an
    honest signature. Why not libsodium: ed25519-zebra verifies in about 35 µs
    here against libsodium's 53 µs, and this check is a third of a replica's
    CPU under load (`docs/benchmarks.md`). Changing the rule is a protocol
    change: replicas on the old rule could refuse a block that the new accept,
    so a consortium upgrades all its replicas at once (the same release changed
    the replay rule and the store, which already requires it), and anyone who
    checks these signatures outside gridledger must apply this rule, not
    libsodium's (`docs/protocols/crypto.md`).
    """
    key, msg, sig = _exact_bytes(public_key), _exact_bytes(message), _exact_bytes(signature)
    if key is None or msg is None or sig is None:
        return False  # never coerce: bytes(3) would be three zero bytes
    if len(sig) != ED25519_SIGNATURE_SIZE or len(key) != ED25519_PUBLIC_KEY_SIZE:
        return False
    r = sig[:32]
    if r in _SMALL_ORDER or key in _SMALL_ORDER:
        return False
    if not (_is_canonical_point_encoding(r) and _is_canonical_point_encoding(key)):
        return False
    try:
        return bool(_zebra.ed_verify(sig, msg, key))
    except (TypeError, ValueError):
        return False


class Ed25519PrivateKey:
    """An Ed25519 signing key. Generate with :meth:`generate`, or from a 32-byte seed."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise KeyFormatError("an Ed25519 seed is 32 bytes")
        self._seed = seed
        self._key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = Ed25519PublicKey(
            self._key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )

    @classmethod
    def generate(cls, rng: Rng = SYSTEM_RNG) -> Ed25519PrivateKey:
        return cls(rng.random_bytes(32))

    def seed(self) -> bytes:
        """The 32-byte private seed (for key files; handle with care)."""
        return self._seed

    def sign(self, tag: HashTag, message: bytes) -> bytes:
        """Sign ``tag || message`` (Ed25519 is deterministic: no randomness needed)."""
        return self._key.sign(tagged_message(tag, message))


_PSS_HASH = hashes.SHA384
_PSS_SALT = 48


def _pss() -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(_PSS_HASH()), salt_length=_PSS_SALT)


@dataclass(frozen=True)
class RsaPublicKey:
    """An RSA public key (n, e) as big-endian integers."""

    n: int
    e: int

    def __post_init__(self) -> None:
        if self.n.bit_length() < MIN_RSA_BITS or self.n % 2 == 0:
            raise KeyFormatError(f"RSA keys need an odd modulus of at least {MIN_RSA_BITS} bits")
        if not 3 <= self.e < self.n or self.e % 2 == 0:
            raise KeyFormatError("the RSA public exponent must be odd and in [3, n)")

    @property
    def modulus_bytes(self) -> int:
        return (self.n.bit_length() + 7) // 8

    def to_crypto(self) -> rsa.RSAPublicKey:
        return rsa.RSAPublicNumbers(self.e, self.n).public_key()

    def to_der(self) -> bytes:
        return self.to_crypto().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def from_der(cls, der: bytes) -> RsaPublicKey:
        try:
            key = serialization.load_der_public_key(der)
        except ValueError:
            raise KeyFormatError("not a DER SubjectPublicKeyInfo") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise KeyFormatError("not an RSA public key")
        nums = key.public_numbers()
        return cls(nums.n, nums.e)

    def verify(self, tag: HashTag, message: bytes, signature: bytes) -> None:
        """Raise :class:`InvalidSignature` unless ``signature`` is RSA-PSS on ``tag||message``."""
        try:
            self.to_crypto().verify(signature, tagged_message(tag, message), _pss(), _PSS_HASH())
        except _CryptoInvalidSignature:
            raise InvalidSignature(f"RSA-PSS signature does not verify ({tag.name})") from None


class RsaPrivateKey:
    """An RSA private key for long-term identities (users, RM, MM, TC)."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        if key.key_size < MIN_RSA_BITS:
            raise KeyFormatError(f"RSA keys need at least {MIN_RSA_BITS} bits")
        self._key = key
        nums = key.private_numbers()
        self.public_key = RsaPublicKey(nums.public_numbers.n, nums.public_numbers.e)

    @classmethod
    def generate(cls, bits: int = 2048) -> RsaPrivateKey:
        """A fresh key from OpenSSL's generator (key generation is not seedable)."""
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @classmethod
    def from_pem(cls, pem: bytes) -> RsaPrivateKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise KeyFormatError("not an unencrypted PEM private key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise KeyFormatError("not an RSA private key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        """The raw numbers (p, q, d, ...): for blind signing and for sharing d."""
        return self._key.private_numbers()

    def to_crypto(self) -> rsa.RSAPrivateKey:
        return self._key

    def sign(self, tag: HashTag, message: bytes) -> bytes:
        """RSA-PSS (SHA-384) signature on ``tag || message``; randomised by OpenSSL."""
        return self._key.sign(tagged_message(tag, message), _pss(), _PSS_HASH())
