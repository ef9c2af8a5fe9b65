"""The client API's JSON-lines framing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridledger.node.json_lines import decode_line, encode_line, encode_sorted

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@given(json_values)
def test_lines_round_trip_and_read_like_the_standard_library(value: object) -> None:
    line = encode_line(value)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert decode_line(line) == value == json.loads(line)


@given(st.dictionaries(st.text(max_size=8), st.integers(-5, 5), max_size=6))
def test_sorted_encoding_does_not_depend_on_key_order(value: dict[str, int]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert encode_sorted(reordered) == encode_sorted(value)


def test_what_orjson_cannot_encode_still_encodes() -> None:
    assert json.loads(encode_line({"big": 2**70})) == {"big": 2**70}
    assert json.loads(encode_line({1: "int key"})) == {"1": "int key"}
    assert json.loads(encode_sorted({"b": 2**70, "a": 1})) == {"a": 1, "b": 2**70}


@pytest.mark.parametrize("line", [b"{", b"[" * 2000 + b"]" * 2000, b"NaN", b'"\\ud800"', b""])
def test_malformed_lines_are_value_errors(line: bytes) -> None:
    with pytest.raises(ValueError):
        decode_line(line)


def test_values_too_deep_to_encode_are_value_errors() -> None:
    deep: list[object] = []
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(ValueError):
        encode_line(deep)
    with pytest.raises(ValueError):
        encode_sorted(deep)
