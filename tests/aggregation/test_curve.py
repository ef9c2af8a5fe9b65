"""BLS12-381 through the binding: RFC 9380 hash-to-curve vectors and input checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gridledger.aggregation.curve import (
    ORDER,
    P1,
    P2,
    G1Point,
    G2Point,
    Scalar,
    compute_hash_to_scalar,
    decode_g1,
    decode_g2,
    decode_scalar,
    encode_scalar,
    is_pairing_product_one,
)
from gridledger.aggregation.errors import InvalidEncoding
from gridledger.crypto.hashing import register_tag

VECTORS = json.loads((Path(__file__).parent / "data" / "rfc9380_bls12381_ro.json").read_text())
TEST_TAG = register_tag("gridledger/tests/aggregation/scalar/1")


def _message(spec: str) -> bytes:
    prefix, _, count = spec.partition("*")
    return (prefix[:5] + prefix[5] * int(count)).encode() if count else spec.encode()


def test_vector_file_is_complete() -> None:
    assert [v["msg"] for v in VECTORS["G1"]["vectors"]] == [
        "",
        "abc",
        "abcdef0123456789",
        "q128_q*128",
        "a512_a*512",
    ]
    assert len(VECTORS["G2"]["vectors"]) == 5


@pytest.mark.parametrize("index", range(5))
def test_hash_to_g1_matches_rfc9380_j91(index: int) -> None:
    suite = VECTORS["G1"]
    vector = suite["vectors"][index]
    point = G1Point.hash_to_curve(_message(vector["msg"]), suite["dst"].encode())
    assert point.to_xy_bytes_be().hex() == vector["x"] + vector["y"]


@pytest.mark.parametrize("index", range(5))
def test_hash_to_g2_matches_rfc9380_j101(index: int) -> None:
    suite = VECTORS["G2"]
    vector = suite["vectors"][index]
    point = G2Point.hash_to_curve(_message(vector["msg"]), suite["dst"].encode())
    expected = vector["x_c0"] + vector["x_c1"] + vector["y_c0"] + vector["y_c1"]
    assert point.to_xy_bytes_be().hex() == expected


def test_message_spec_expands_like_the_rfc() -> None:
    assert _message("q128_q*128") == b"q128_" + b"q" * 128
    assert len(_message("a512_a*512")) == 517


def test_decoders_refuse_bad_lengths_garbage_and_identity() -> None:
    with pytest.raises(InvalidEncoding):
        decode_g1(b"\x00" * 47)
    with pytest.raises(InvalidEncoding):
        decode_g1(b"\xff" * 48)
    with pytest.raises(InvalidEncoding):
        decode_g1(G1Point.identity().to_compressed_bytes())
    with pytest.raises(InvalidEncoding):
        decode_g2(G2Point.identity().to_compressed_bytes())
    with pytest.raises(InvalidEncoding):
        decode_g2(P1.to_compressed_bytes() * 2)
    assert decode_g1(P1.to_compressed_bytes()) == P1
    assert decode_g2(P2.to_compressed_bytes()) == P2


def test_decoder_refuses_points_on_the_curve_outside_the_subgroup() -> None:
    # Small x-coordinates give points of E(Fp) that are (all but surely) outside the
    # order-q subgroup: the unchecked decoder takes them, ours must refuse every one.
    on_curve = 0
    for x in range(1, 40):
        raw = bytearray(x.to_bytes(48, "big"))
        raw[0] |= 0x80
        try:
            point = G1Point.from_compressed_bytes_unchecked(bytes(raw))
        except ValueError:
            continue
        on_curve += 1
        assert not point.is_in_subgroup()
        with pytest.raises(InvalidEncoding):
            decode_g1(bytes(raw))
    assert on_curve >= 5


def test_hash_to_scalar_is_in_range_and_tag_separated() -> None:
    a = compute_hash_to_scalar(TEST_TAG, b"x")
    assert 0 < int(a) < ORDER
    assert a != compute_hash_to_scalar(TEST_TAG, b"y")


def test_hash_to_scalar_reduces_exactly_like_integer_arithmetic() -> None:
    for data in (b"", b"x", b"meter-1"):
        wide = b"".join(
            hashlib.sha256(TEST_TAG.prefix + bytes([i]) + data).digest() for i in (0, 1)
        )
        assert int(compute_hash_to_scalar(TEST_TAG, data)) == int.from_bytes(wide, "big") % ORDER


def test_scalars_round_trip_and_only_canonical_ones_decode() -> None:
    for value in (0, 1, 2**128 + 7, ORDER - 1):
        data = encode_scalar(Scalar(value))
        assert len(data) == 32 and data == value.to_bytes(32, "big")
        assert int(decode_scalar(data)) == value
    for bad in (ORDER.to_bytes(32, "big"), b"\xff" * 32, b"\x01" * 31, b"\x01" * 33, b""):
        with pytest.raises(InvalidEncoding):
            decode_scalar(bad)


def test_pairing_check_is_bilinear() -> None:
    a, b = Scalar(5), Scalar(7)
    assert is_pairing_product_one([P1 * a, -(P1 * (a * b))], [P2 * b, P2])
    assert not is_pairing_product_one([P1 * a, -(P1 * b)], [P2 * b, P2])
