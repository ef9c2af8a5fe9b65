"""HPKE hybrid encryption: round trips of any size, and typed failure on tampering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.crypto.encryption import (
    OVERHEAD,
    EncryptionPrivateKey,
    EncryptionPublicKey,
    is_valid_encryption_public_key,
    open_sealed,
    seal,
)
from gridledger.crypto.errors import DecryptionError, KeyFormatError
from gridledger.crypto.rng import DeterministicRng

KEY = EncryptionPrivateKey.generate(DeterministicRng("receiver"))


@given(st.binary(max_size=4096), st.binary(max_size=64))
@settings(max_examples=50)
def test_round_trip(plaintext: bytes, context: bytes) -> None:
    ct = seal(KEY.public_key, plaintext, context)
    assert len(ct) == len(plaintext) + OVERHEAD
    assert open_sealed(KEY, ct, context) == plaintext


def test_large_record_round_trip() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    assert open_sealed(KEY, seal(KEY.public_key, data, b"c"), b"c") == data


def test_encryption_is_randomised() -> None:
    assert seal(KEY.public_key, b"m", b"c") != seal(KEY.public_key, b"m", b"c")


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=7))
@settings(max_examples=60)
def test_any_flipped_bit_fails_with_typed_error(pos: int, bit: int) -> None:
    ct = bytearray(seal(KEY.public_key, b"x" * 100, b"ctx"))
    ct[pos % len(ct)] ^= 1 << bit
    with pytest.raises(DecryptionError):
        open_sealed(KEY, bytes(ct), b"ctx")


def test_wrong_context_key_or_truncation_fails() -> None:
    ct = seal(KEY.public_key, b"secret", b"round-1")
    with pytest.raises(DecryptionError):
        open_sealed(KEY, ct, b"round-2")
    with pytest.raises(DecryptionError):
        open_sealed(EncryptionPrivateKey.generate(DeterministicRng(9)), ct, b"round-1")
    for cut in (0, 10, OVERHEAD - 1, len(ct) - 1):
        with pytest.raises(DecryptionError):
            open_sealed(KEY, ct[:cut], b"round-1")


def test_key_formats() -> None:
    with pytest.raises(KeyFormatError):
        EncryptionPublicKey(b"x" * 31)
    with pytest.raises(KeyFormatError):
        EncryptionPrivateKey(b"x")


# -- which keys one can seal to: the small-order table against a real X25519 exchange ------

_P = 2**255 - 19


def _exchange_says_valid(raw: bytes) -> bool:
    """The reference: an X25519 exchange with a fixed key; all-zero output means low order."""
    from cryptography.hazmat.primitives.asymmetric import x25519

    probe = x25519.X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    try:
        probe.exchange(x25519.X25519PublicKey.from_public_bytes(raw))
    except ValueError:
        return False
    return True


def _low_order_spellings() -> list[bytes]:
    """Every 32-byte key whose point has small order, in every spelling X25519 reads:
    u and u + p where that fits in 255 bits, each with the top bit clear and set."""
    from gridledger.crypto.encryption import _LOW_ORDER_U

    out = []
    for u in _LOW_ORDER_U:
        for value in (u, u + _P):
            if value < 1 << 255:
                for top in (0, 1 << 255):
                    out.append((value | top).to_bytes(32, "little"))
    return out


def test_every_small_order_key_is_refused_as_the_exchange_refuses_it() -> None:
    spellings = _low_order_spellings()
    assert len(spellings) == 14  # 5 u, of which 0 and 1 also as p and p + 1; two top bits
    for raw in spellings:
        assert not _exchange_says_valid(raw)
        assert not is_valid_encryption_public_key(raw)
        with pytest.raises(KeyFormatError):
            seal(EncryptionPublicKey(raw), b"m", b"c")


def test_the_table_agrees_with_the_exchange_near_every_edge() -> None:
    """Every u below 64, every non-canonical u (p .. 2^255 - 1), and their neighbours
    around each small-order u, with both top bits: same verdict as the exchange."""
    from gridledger.crypto.encryption import _LOW_ORDER_U

    values = set(range(64)) | set(range(_P, 1 << 255))
    for u in _LOW_ORDER_U:
        values |= {(u + d) % _P for d in (-2, -1, 1, 2)}
    for value in values:
        for top in (0, 1 << 255):
            raw = (value | top).to_bytes(32, "little")
            assert is_valid_encryption_public_key(raw) == _exchange_says_valid(raw), value


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_the_table_agrees_with_the_exchange_on_any_key(raw: bytes) -> None:
    assert is_valid_encryption_public_key(raw) == _exchange_says_valid(raw)


def test_keys_of_the_wrong_shape_are_refused() -> None:
    assert not is_valid_encryption_public_key(bytes(31))
    assert not is_valid_encryption_public_key(bytes(33))
    assert not is_valid_encryption_public_key("x" * 32)  # type: ignore[arg-type]
