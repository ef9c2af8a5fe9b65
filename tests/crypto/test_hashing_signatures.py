"""Domain-separated hashing, Ed25519 and RSA-PSS signatures."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from gridledger.crypto.encryption import EncryptionPublicKey, seal
from gridledger.crypto.errors import InvalidSignature, KeyFormatError
from gridledger.crypto.hashing import hash_bytes, hash_value, register_tag, tagged_message
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    RsaPrivateKey,
    RsaPublicKey,
)

TAG_A = register_tag("gridledger/test/a/1")
TAG_B = register_tag("gridledger/test/b/1")


def test_tags_separate_domains() -> None:
    assert hash_bytes(TAG_A, b"m") != hash_bytes(TAG_B, b"m")
    expected = hashlib.sha256(bytes([len(TAG_A.name)]) + TAG_A.name.encode() + b"m").digest()
    assert hash_bytes(TAG_A, b"m") == expected


def test_tag_prefix_is_length_delimited() -> None:
    # "ab" + "c" must not collide with "a" + "bc".
    t1 = register_tag("gridledger/test/ab")
    t2 = register_tag("gridledger/test/a")
    assert hash_bytes(t1, b"c") != hash_bytes(t2, b"bc")


def test_duplicate_tag_registration_is_refused() -> None:
    with pytest.raises(ValueError):
        register_tag("gridledger/test/a/1")


def test_hash_value_uses_canonical_encoding() -> None:
    assert hash_value(TAG_A, {"x": 1, "y": 2}) == hash_value(TAG_A, {"y": 2, "x": 1})


# RFC 8032 §7.1, TEST 2 (one-byte message). Our signatures prepend a domain tag,
# so the raw vector is checked through the library the wrapper uses.
RFC8032_SK = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC8032_PK = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC8032_SIG = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)


def test_rfc8032_vector_through_our_key_type() -> None:
    key = Ed25519PrivateKey(RFC8032_SK)
    assert key.public_key.raw == RFC8032_PK
    assert key._key.sign(b"\x72") == RFC8032_SIG


def test_ed25519_round_trip_and_tamper() -> None:
    key = Ed25519PrivateKey.generate(DeterministicRng(1))
    sig = key.sign(TAG_A, b"order")
    key.public_key.verify(TAG_A, b"order", sig)
    with pytest.raises(InvalidSignature):
        key.public_key.verify(TAG_A, b"orden", sig)
    with pytest.raises(InvalidSignature):
        key.public_key.verify(TAG_B, b"order", sig)  # cross-protocol replay
    bad = bytes([sig[0] ^ 1]) + sig[1:]
    with pytest.raises(InvalidSignature):
        key.public_key.verify(TAG_A, b"order", bad)
    with pytest.raises(InvalidSignature):
        key.public_key.verify(TAG_A, b"order", sig[:-1])
    other = Ed25519PrivateKey.generate(DeterministicRng(2))
    assert not other.public_key.is_valid(TAG_A, b"order", sig)


def test_ed25519_key_formats() -> None:
    with pytest.raises(KeyFormatError):
        Ed25519PublicKey(b"short")
    with pytest.raises(KeyFormatError):
        Ed25519PrivateKey(b"short")


@pytest.fixture(scope="module")
def rsa_key() -> RsaPrivateKey:
    return RsaPrivateKey.generate(2048)


def test_rsa_pss_round_trip_tamper_and_interop(rsa_key: RsaPrivateKey) -> None:
    sig = rsa_key.sign(TAG_A, b"register")
    rsa_key.public_key.verify(TAG_A, b"register", sig)
    # A standard PSS verifier accepts it over tag || message.
    rsa_key.to_crypto().public_key().verify(
        sig,
        tagged_message(TAG_A, b"register"),
        padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
        hashes.SHA384(),
    )
    with pytest.raises(InvalidSignature):
        rsa_key.public_key.verify(TAG_B, b"register", sig)
    with pytest.raises(InvalidSignature):
        rsa_key.public_key.verify(TAG_A, b"register", sig[:-1] + bytes([sig[-1] ^ 1]))


def test_rsa_key_serialisation(rsa_key: RsaPrivateKey) -> None:
    again = RsaPrivateKey.from_pem(rsa_key.to_pem())
    assert again.public_key == rsa_key.public_key
    assert RsaPublicKey.from_der(rsa_key.public_key.to_der()) == rsa_key.public_key
    with pytest.raises(KeyFormatError):
        RsaPublicKey.from_der(b"garbage")
    with pytest.raises(KeyFormatError):
        RsaPrivateKey.from_pem(b"garbage")
    with pytest.raises(KeyFormatError):
        RsaPublicKey(n=2**1023 + 1, e=65537)


def test_small_order_public_key_is_refused() -> None:
    # The identity point (y = 1) has order 1: with R = identity and S = 0, a naive
    # verifier would accept this "signature" on every message.
    identity = bytes([1]) + bytes(31)
    forged = identity + bytes(32)
    assert not Ed25519PublicKey(identity).is_valid(TAG_A, b"anything", forged)


def test_non_canonical_s_is_refused() -> None:
    key = Ed25519PrivateKey.generate(DeterministicRng(3))
    sig = key.sign(TAG_A, b"m")
    order = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(sig[32:], "little") + order  # same scalar, non-canonical encoding
    malleated = sig[:32] + s.to_bytes(32, "little")
    assert not key.public_key.is_valid(TAG_A, b"m", malleated)


def test_bad_public_keys_are_typed_errors() -> None:
    with pytest.raises(KeyFormatError):
        seal(EncryptionPublicKey(bytes(32)), b"m", b"c")
    with pytest.raises(KeyFormatError):
        RsaPublicKey(n=(1 << 2047) + 1, e=(1 << 2047) + 3)
