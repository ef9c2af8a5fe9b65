"""Canonical encoding: round trips, strictness, and typed errors on bad input."""

from __future__ import annotations

import random
from dataclasses import dataclass

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.crypto.encoding import (
    decode,
    decode_as,
    encode,
    from_value,
    to_value,
    wire_type,
)
from gridledger.crypto.errors import EncodingError


@wire_type("test.inner/1")
@dataclass(frozen=True)
class Inner:
    n: int
    tag: str


@wire_type("test.outer/1")
@dataclass(frozen=True)
class Outer:
    name: str
    blob: bytes
    items: tuple[Inner, ...]
    maybe: Inner | None
    flag: bool


@wire_type("test.other/1")
@dataclass(frozen=True)
class Other:
    n: int
    tag: str


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.binary(max_size=64)
    | st.text(max_size=32),
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(st.text(max_size=12).filter(lambda k: k != "_t"), children, max_size=6)
    ),
    max_leaves=30,
)


@given(values)
@settings(max_examples=300)
def test_decode_inverts_encode(value: object) -> None:
    assert decode(encode(value)) == value


@given(values)
def test_encoding_is_deterministic_regardless_of_insertion_order(value: object) -> None:
    if isinstance(value, dict):
        reordered = dict(reversed(list(value.items())))
        assert encode(reordered) == encode(value)


def _shuffled(value: object, rnd: random.Random) -> object:
    """``value`` with every map's items in a random order (lists keep theirs)."""
    if isinstance(value, dict):
        items = [(k, _shuffled(v, rnd)) for k, v in value.items()]
        rnd.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        return [_shuffled(v, rnd) for v in value]
    return value


@given(values, st.randoms(use_true_random=False))
@settings(max_examples=300)
def test_encode_writes_what_cbor2_canonical_mode_writes(value: object, rnd: random.Random) -> None:
    """Maps leave to_value sorted, so cbor2's plain mode gives the canonical bytes."""
    assert encode(_shuffled(value, rnd)) == cbor2.dumps(value, canonical=True)


def test_wire_types_encode_as_cbor2_canonical_mode() -> None:
    inner = Inner(-5, "é" * 3)
    outer = Outer("n", b"\x00", (inner, Inner(2**64 - 1, "")), None, True)
    for obj in (inner, outer):
        assert encode(obj) == cbor2.dumps(to_value(obj), canonical=True)
        assert list(to_value(obj)) == sorted(to_value(obj), key=lambda k: (len(k.encode()), k))


@given(values, st.randoms(use_true_random=False))
@settings(max_examples=300)
def test_decode_accepts_a_map_order_only_if_canonical(value: object, rnd: random.Random) -> None:
    """decode checks key order itself: it accepts exactly cbor2's canonical bytes."""
    data = cbor2.dumps(_shuffled(value, rnd))  # plain mode keeps the shuffled order
    if data == cbor2.dumps(value, canonical=True):
        assert decode(data) == value
    else:
        with pytest.raises(EncodingError):
            decode(data)


@given(st.binary(max_size=64))
@settings(max_examples=500)
def test_any_bytes_decode_canonically_or_raise_typed_error(data: bytes) -> None:
    try:
        value = decode(data)
    except EncodingError:
        return
    assert encode(value) == data
    assert cbor2.dumps(value, canonical=True) == data


@pytest.mark.parametrize(
    "hexdata, why",
    [
        ("1817", "non-shortest integer"),
        ("5800", "non-shortest length"),
        ("a2616201616100", "unsorted map keys"),
        ("a2616101616102", "duplicate map keys"),
        ("9f01ff", "indefinite-length array"),
        ("f97e00", "float"),
        ("c11a514b67b0", "tag (datetime)"),
        ("a10102", "integer map key"),
        ("0100", "trailing bytes"),
        ("5a0000ffff", "truncated byte string"),
        ("", "empty input"),
        ("f7", "undefined"),
    ],
)
def test_non_canonical_and_foreign_input_is_rejected(hexdata: str, why: str) -> None:
    with pytest.raises(EncodingError):
        decode(bytes.fromhex(hexdata))


def test_size_limit_is_enforced_before_parsing() -> None:
    data = encode(b"x" * 1000)
    assert decode(data, max_size=2000) == b"x" * 1000
    with pytest.raises(EncodingError, match="exceeds"):
        decode(data, max_size=100)


def test_huge_declared_length_does_not_allocate() -> None:
    with pytest.raises(EncodingError):
        decode(bytes.fromhex("5b7fffffffffffffff"))


def test_unencodable_values_raise_typed_errors() -> None:
    for bad in (1.5, 2**64, -(2**64) - 1, {1: 2}, object(), {"a": {1.0}}):
        with pytest.raises(EncodingError):
            encode(bad)


def test_nesting_depth_is_bounded() -> None:
    deep: list[object] = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(EncodingError):
        encode(deep)
    raw = b"\x81" * 100 + b"\x80"
    with pytest.raises(EncodingError):
        decode(raw)


def test_dataclass_round_trip_and_type_checks() -> None:
    obj = Outer("a", b"\x00\x01", (Inner(1, "x"), Inner(-2, "y")), None, True)
    assert decode_as(Outer, encode(obj)) == obj
    obj2 = Outer("b", b"", (), Inner(3, "z"), False)
    assert decode_as(Outer, encode(obj2)) == obj2


def test_a_message_of_one_type_never_decodes_as_another() -> None:
    data = encode(Inner(1, "x"))
    with pytest.raises(EncodingError, match=r"expected a test\.other/1"):
        decode_as(Other, data)


def test_wrong_field_types_and_extra_or_missing_fields_are_rejected() -> None:
    good = to_value(Inner(1, "x"))
    for mutated in (
        {**good, "n": "1"},
        {**good, "n": True},
        {**good, "tag": b"x"},
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "tag"},
    ):
        with pytest.raises(EncodingError):
            from_value(Inner, mutated)
    with pytest.raises(EncodingError):
        decode_as(Inner, cbor2.dumps([1, 2], canonical=True))


def test_unregistered_dataclass_is_refused() -> None:
    @dataclass(frozen=True)
    class Loose:
        a: int

    with pytest.raises(EncodingError, match="not a registered wire type"):
        encode(Loose(1))


def test_duplicate_wire_name_is_a_programming_error() -> None:
    with pytest.raises(TypeError):

        @wire_type("test.inner/1")
        @dataclass(frozen=True)
        class Clash:
            n: int


def test_a_field_named_like_the_type_tag_is_refused() -> None:
    @wire_type("test.tagged-field/1")
    @dataclass(frozen=True)
    class Tagged:
        _t: str

    with pytest.raises(EncodingError, match="field named"):
        encode(Tagged("x"))
