"""Signatures: Ed25519 for pseudonyms, transactions and replicas; RSA-PSS for long-term keys.

Both come from ``cryptography`` (OpenSSL). Every signature covers a domain tag
(a :class:`~gridledger.crypto.hashing.HashTag`) prepended to the message, so a
signature made for one protocol step can never be replayed as another.

Ed25519 (RFC 8032) gives ~128-bit security with 32-byte keys and 64-byte
signatures. RSA-PSS (RFC 8017) uses SHA-384, MGF1-SHA-384 and a 48-byte salt,
matching the hash of the RFC 9474 blind signatures, with moduli of at least
2048 bits (3072 for 128-bit security).
"""

from __future__ import annotations

from dataclasses import dataclass

import nacl.bindings as _sodium
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from nacl.exceptions import BadSignatureError as _SodiumBadSignature
from nacl.exceptions import TypeError as _SodiumTypeError
from nacl.exceptions import ValueError as _SodiumValueError

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
        """Raise :class:`InvalidSignature` unless ``signature`` signs ``tag || message``.

        Verification uses libsodium (PyNaCl), twice as fast as OpenSSL's here
        (~56 µs against ~117 µs), which matters because every replica checks
        every transaction. libsodium is also the stricter verifier: it refuses
        non-canonical ``S``, small-order keys and small-order ``R``, so every
        replica, all running this same code, agrees on which signatures count.
        """
        if len(signature) != ED25519_SIGNATURE_SIZE:
            raise InvalidSignature("an Ed25519 signature is 64 bytes")
        try:
            _sodium.crypto_sign_open(signature + tagged_message(tag, message), self.raw)
        except (_SodiumBadSignature, _SodiumValueError, _SodiumTypeError):
            raise InvalidSignature(f"Ed25519 signature does not verify ({tag.name})") from None

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
