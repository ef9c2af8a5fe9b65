"""Every decoder a peer or client reaches turns every malformed input into a typed error.

A bounded run of ``tools/fuzz_decoders.py`` (its 10^6-input twin is run by hand),
hypothesis over raw bytes and over wrong type tags, and the crash that started
it: a frame whose ``"_t"`` is a list or a map used to raise ``TypeError:
unhashable type`` inside the replica's dispatch and end its consensus loop.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tools.fuzz_decoders import GENERIC_TARGETS, Targets, make_targets, run_fuzz

from gridledger.consensus.messages import decode_message
from gridledger.crypto.encoding import (
    TYPE_KEY,
    decode,
    decode_as,
    encode,
    from_value,
    get_type_tag,
    to_value,
    wire_name,
)
from gridledger.crypto.errors import EncodingError
from gridledger.errors import GridledgerError
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.tx import Transaction
from tests.ledger.helpers import GENESIS

TARGETS: Targets = make_targets()
NAMES = sorted(TARGETS.wire_types)

# Every kind of value that is not text, as an attacker would put it in the type tag.
non_text_tags = st.one_of(
    st.lists(st.sampled_from(NAMES), max_size=3),
    st.dictionaries(st.sampled_from(["_t", "a"]), st.sampled_from(NAMES), max_size=2),
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.binary(max_size=40),
    st.sampled_from(NAMES).map(str.encode),
    st.none(),
    st.booleans(),
)


def _run_targets(data: bytes) -> None:
    """Every generic target returns or raises a GridledgerError, nothing else."""
    for name in GENERIC_TARGETS:
        with contextlib.suppress(GridledgerError):
            getattr(TARGETS, name)(data)


def test_bounded_fuzz_run_finds_only_typed_errors_and_flat_memory() -> None:
    start = time.monotonic()
    report = run_fuzz(3_000, seed=8, max_seconds=20.0)
    assert report.failures == [], report.failures[:3]
    assert report.inputs == 3_000
    assert report.errors["EncodingError"] > 0 and report.accepted > 0  # both paths exercised
    assert report.memory_growth < 1024 * 1024
    assert time.monotonic() - start < 30


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_reach_only_typed_errors(data: bytes) -> None:
    _run_targets(data)
    for cls in (Transaction, GenesisConfig):
        with contextlib.suppress(EncodingError):
            decode_as(cls, data)


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(NAMES), tag=non_text_tags, nested=st.booleans())
def test_a_type_tag_that_is_not_text_is_an_encoding_error(
    name: str, tag: Any, nested: bool
) -> None:
    value: dict[str, Any] = {TYPE_KEY: tag, "body": b"x"}
    if nested:
        value = {TYPE_KEY: name, "inner": [value]}
    frame = cbor2.dumps(value, canonical=True)
    with pytest.raises(EncodingError):
        decode(frame)
    with pytest.raises(EncodingError):
        decode_message(frame)
    with pytest.raises(EncodingError):
        decode_as(TARGETS.wire_types[name], frame)
    _run_targets(frame)
    with pytest.raises(EncodingError):
        encode(value)  # nor can such a value be produced by encode


@pytest.mark.parametrize("tag", [["consensus.prepare/1"], {"_t": "x"}, {}, [], 7, b"node.blocks/1"])
def test_the_dispatch_crash_frame_is_refused_by_every_decoder(tag: Any) -> None:
    """The issue's frame: decode() refuses it, so no caller ever sees a non-text tag."""
    frame = cbor2.dumps({TYPE_KEY: tag, "view": 0}, canonical=True)
    for decoder in (decode, decode_message):
        with pytest.raises(EncodingError, match="type tag"):
            decoder(frame)
    _run_targets(frame)


def test_get_type_tag_is_always_text_or_none() -> None:
    assert get_type_tag({TYPE_KEY: "a/1"}) == "a/1"
    for value in ({TYPE_KEY: ["a/1"]}, {TYPE_KEY: {}}, {TYPE_KEY: 1}, {}, [], b"a/1", None):
        assert get_type_tag(value) is None


@pytest.mark.parametrize(
    "hexdata",
    [
        "d82463616263",  # MIME message (tag 36): would run the email parser
        "d8237824" + "28612b292b24" * 6,  # a regular expression (tag 35): would compile it
        "c25a000f4240" + "ff" * 1_000_000,  # a megabyte bignum (tag 2)
        "d81c81d81d00",  # shared references (tags 28/29): a list containing itself
        "c074323032302d30312d30315430303a30303a30305a",  # a date string (tag 0)
        "d9d9f700",  # self-described CBOR
    ],
)
def test_cbor_tags_are_refused_before_their_content_is_decoded(hexdata: str) -> None:
    data = bytes.fromhex(hexdata)
    start = time.perf_counter()
    with pytest.raises(EncodingError, match="malformed CBOR"):
        decode(data)
    assert time.perf_counter() - start < 0.05


def test_a_post_init_check_of_any_error_type_becomes_an_encoding_error() -> None:
    """GenesisConfig raises ChainError (not ValueError) for an empty validator set."""
    value = to_value(GENESIS)
    value["validators"] = []
    with pytest.raises(EncodingError, match="validator"):
        from_value(GenesisConfig, value)
    with pytest.raises(EncodingError):
        decode_as(GenesisConfig, encode(value))


def test_error_messages_never_echo_a_large_attacker_value() -> None:
    huge = "x" * 1_000_000
    with pytest.raises(EncodingError) as info:
        decode_as(Transaction, encode({TYPE_KEY: huge}))
    assert len(info.value.reason) < 300
    with pytest.raises(EncodingError) as info:
        decode_as(Transaction, encode({TYPE_KEY: wire_name(Transaction), huge: 1}))
    assert len(info.value.reason) < 300
