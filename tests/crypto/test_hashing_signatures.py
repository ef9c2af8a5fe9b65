"""Domain-separated hashing, Ed25519 and RSA-PSS signatures."""

from __future__ import annotations

import hashlib

import nacl.bindings as sodium
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.exceptions import CryptoError

from gridledger.crypto.encryption import EncryptionPublicKey, seal
from gridledger.crypto.errors import InvalidSignature, KeyFormatError
from gridledger.crypto.hashing import hash_bytes, hash_value, register_tag, tagged_message
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import (
    _SMALL_ORDER,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    RsaPrivateKey,
    RsaPublicKey,
    verify_ed25519,
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


# RFC 8032 §7.1 TEST 1 (empty message) and TEST 3 (two bytes): (public key, message, signature).
RFC8032_VERIFY = [
    (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize(("pk", "msg", "sig"), RFC8032_VERIFY)
def test_rfc8032_vectors_verify_and_refuse_any_flipped_bit(pk: str, msg: str, sig: str) -> None:
    public, message, signature = bytes.fromhex(pk), bytes.fromhex(msg), bytes.fromhex(sig)
    assert verify_ed25519(public, message, signature)
    for i in range(0, 64 * 8, 7):  # a bit of R or S, all through the signature
        flipped = bytearray(signature)
        flipped[i // 8] ^= 1 << (i % 8)
        assert not verify_ed25519(public, message, bytes(flipped))
    assert not verify_ed25519(public, message + b"\x00", signature)


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


# -- the verification rule against libsodium's, and against crafted inputs ----------------

L_ORDER = 2**252 + 27742317777372353535851937790883648493
FIELD = 2**255 - 19
ORDER_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")


@settings(max_examples=150, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    message=st.binary(max_size=200),
    flip=st.one_of(st.none(), st.integers(0, 64 * 8 - 1)),
    other_message=st.booleans(),
)
def test_the_rule_agrees_with_libsodium_on_signatures_made_the_usual_way(
    seed: bytes, message: bytes, flip: int | None, other_message: bool
) -> None:
    """Honest signatures, with a bit flipped or under another message: both verifiers
    decide alike (they differ only on torsion components a signer puts in on purpose)."""
    key = Ed25519PrivateKey(seed)
    signature = bytearray(key._key.sign(message))
    if flip is not None:
        signature[flip // 8] ^= 1 << (flip % 8)
    checked = message + b"x" if other_message else message
    ours = verify_ed25519(key.public_key.raw, checked, bytes(signature))
    assert ours == _libsodium_accepts(key.public_key.raw, checked, bytes(signature))
    assert ours == (flip is None and not other_message)


def test_every_small_order_key_and_r_is_refused_in_every_encoding() -> None:
    """Under a small-order key A, [8][k]A = 0, so (R = identity, S = 0) passes the
    cofactored equation for every message: the pre-checks must catch every spelling."""
    torsion = _torsion()
    spellings = set()
    for point in torsion:
        y = int.from_bytes(point, "little") & ((1 << 255) - 1)
        for value in {y, y + FIELD} - {v for v in (y + FIELD,) if v >= 1 << 255}:
            for sign in (0, 1 << 255):
                spellings.add((value | sign).to_bytes(32, "little"))
    assert len(spellings) == 14  # 5 distinct y, 2 of them also non-canonical, 2 signs
    identity_sig = bytes([1]) + bytes(31) + bytes(32)
    honest = Ed25519PrivateKey.generate(DeterministicRng(5))
    good = honest._key.sign(b"m")
    for spelling in spellings:
        assert not verify_ed25519(spelling, b"anything", identity_sig)
        assert not verify_ed25519(spelling, b"anything", spelling + bytes(32))
        # a small-order R under an honest key
        assert not verify_ed25519(honest.public_key.raw, b"m", spelling + good[32:])
    assert verify_ed25519(honest.public_key.raw, b"m", good)


def test_non_canonical_encodings_of_r_and_of_the_key_are_refused() -> None:
    key = Ed25519PrivateKey.generate(DeterministicRng(6))
    sig = key._key.sign(b"m")
    for y in range(FIELD, 1 << 255):  # the 19 non-canonical y, both signs
        for sign in (0, 1 << 255):
            spelled = (y | sign).to_bytes(32, "little")
            assert not verify_ed25519(key.public_key.raw, b"m", spelled + sig[32:])
            assert not verify_ed25519(spelled, b"m", sig)


def test_wrong_lengths_and_types_are_refused_not_raised() -> None:
    key = Ed25519PrivateKey.generate(DeterministicRng(7))
    sig = key._key.sign(b"m")
    assert not verify_ed25519(key.public_key.raw, b"m", sig + b"\x00")
    assert not verify_ed25519(key.public_key.raw[:31], b"m", sig)
    assert verify_ed25519(bytearray(key.public_key.raw), bytearray(b"m"), bytearray(sig))


IDENTITY = bytes([1]) + bytes(31)
SEED = bytes(range(32))
MESSAGE = b"gridledger review message"

# libsodium's ge25519_has_small_order blocklist (compared with the sign bit ignored).
LIBSODIUM_BLOCKLIST_Y = (
    0,
    1,
    2707385501144840649318225287225658788936804267575313519463743609750303402022,
    55188659117513257062467267217118295137698188065244968500265048394206261417927,
    FIELD - 1,
    FIELD,
    FIELD + 1,
)


def _libsodium_accepts(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        sodium.crypto_sign_open(signature + message, public)
    except (CryptoError, ValueError, TypeError):
        return False
    return True


def _torsion() -> list[bytes]:  # the 8 points of order dividing 8
    points, acc = [], IDENTITY
    for _ in range(8):
        points.append(acc)
        acc = sodium.crypto_core_ed25519_add(acc, ORDER_8)
    return points


def _secret_scalar(seed: bytes) -> int:
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little")


def _sign_raw(r_bytes: bytes, r: int, public: bytes, a: int, message: bytes) -> bytes:
    k = int.from_bytes(hashlib.sha512(r_bytes + public + message).digest(), "little") % L_ORDER
    return r_bytes + ((r + k * a) % L_ORDER).to_bytes(32, "little")


def test_small_order_set_is_exactly_libsodiums_blocklist() -> None:
    expected = {
        (y | sign).to_bytes(32, "little") for y in LIBSODIUM_BLOCKLIST_Y for sign in (0, 1 << 255)
    }
    assert set(_SMALL_ORDER) == expected


def test_non_canonical_s_is_refused_in_every_form() -> None:
    key = Ed25519PrivateKey(SEED)
    public = key.public_key.raw
    signature = key._key.sign(MESSAGE)
    assert verify_ed25519(public, MESSAGE, signature)
    s = int.from_bytes(signature[32:], "little")
    variants = [s + k * L_ORDER for k in range(1, 16) if s + k * L_ORDER < 1 << 256]
    variants += [s | bits for bits in (1 << 253, 1 << 254, 1 << 255, 7 << 253)]
    variants += [L_ORDER, (1 << 256) - 1]
    assert len(variants) >= 10
    for value in variants:
        forged = signature[:32] + value.to_bytes(32, "little")
        assert not verify_ed25519(public, MESSAGE, forged), hex(value)
        assert not _libsodium_accepts(public, MESSAGE, forged)


def test_a_third_party_cannot_move_an_honest_signature_by_torsion() -> None:
    key = Ed25519PrivateKey(SEED)
    public = key.public_key.raw
    signature = key._key.sign(MESSAGE)
    for t in _torsion()[1:]:
        moved_r = sodium.crypto_core_ed25519_add(signature[:32], t) + signature[32:]
        assert not verify_ed25519(public, MESSAGE, moved_r)
        moved_key = sodium.crypto_core_ed25519_add(public, t)
        assert not verify_ed25519(moved_key, MESSAGE, signature)


def test_differs_from_libsodium_only_on_signer_made_torsion() -> None:
    """All (A, R, S) with A honest or A + T, R honest, R + T or small-order (every
    encoding), S canonical or S + L, each signed with the secret where the equation can
    hold: the rule accepts a superset of libsodium, and the extra ones all carry torsion."""
    a = _secret_scalar(SEED)
    public = Ed25519PrivateKey(SEED).public_key.raw
    torsion = _torsion()
    r = 0xDEADBEEF1234567
    r_point = sodium.crypto_scalarmult_ed25519_base_noclamp(r.to_bytes(32, "little"))
    keys = [(public, False)] + [
        (sodium.crypto_core_ed25519_add(public, t), True) for t in torsion[1:]
    ]
    nonces = [(r_point, r, False)]
    nonces += [(sodium.crypto_core_ed25519_add(r_point, t), r, True) for t in torsion[1:]]
    nonces += [(encoding, 0, True) for encoding in sorted(_SMALL_ORDER)]
    extra = 0
    for key_bytes, key_twisted in keys:
        for r_bytes, nonce, r_twisted in nonces:
            signature = _sign_raw(r_bytes, nonce, key_bytes, a, MESSAGE)
            s = int.from_bytes(signature[32:], "little")
            for s_value in (s, s + L_ORDER):
                candidate = r_bytes + s_value.to_bytes(32, "little")
                ours = verify_ed25519(key_bytes, MESSAGE, candidate)
                theirs = _libsodium_accepts(key_bytes, MESSAGE, candidate)
                assert ours or not theirs  # libsodium's accepted set is a subset
                if ours:
                    assert s_value < L_ORDER and r_bytes not in _SMALL_ORDER
                if ours and not theirs:
                    assert key_twisted or r_twisted
                    extra += 1
    assert extra > 40  # the documented difference is real, and exercised here


def test_a_non_bytes_message_is_not_coerced() -> None:
    """bytes(3) is three zero bytes: an int must not stand for a message, nor raise."""
    key = Ed25519PrivateKey(SEED)
    public = key.public_key.raw
    assert not verify_ed25519(public, 0, key._key.sign(b""))  # type: ignore[arg-type]
    assert not verify_ed25519(public, 3, key._key.sign(bytes(3)))  # type: ignore[arg-type]
    assert not verify_ed25519(public, True, key._key.sign(b"\x00"))  # type: ignore[arg-type]
    for bad in (None, "m", -1, [300]):
        assert not verify_ed25519(public, bad, key._key.sign(b"m"))  # type: ignore[arg-type]
        assert not verify_ed25519(bad, b"m", key._key.sign(b"m"))  # type: ignore[arg-type]
        assert not verify_ed25519(public, b"m", bad)  # type: ignore[arg-type]
