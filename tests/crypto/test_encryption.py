"""HPKE hybrid encryption: round trips of any size, and typed failure on tampering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.crypto.encryption import (
    OVERHEAD,
    EncryptionPrivateKey,
    EncryptionPublicKey,
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
