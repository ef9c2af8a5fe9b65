"""Partial keys from the CC, checked by their holder; system parameters."""

from __future__ import annotations

import dataclasses

import pytest

from gridledger.aggregation.curve import P1, P2
from gridledger.aggregation.errors import InvalidEncoding, InvalidPartialKey
from gridledger.aggregation.keys import (
    KeyGenerationCenter,
    SystemParams,
    check_partial_key,
    compute_partial_public_key,
    create_participant_keys,
    decode_params,
)
from gridledger.crypto.rng import DeterministicRng


def test_partial_key_checks_and_full_key_matches() -> None:
    rng = DeterministicRng("keys")
    kgc = KeyGenerationCenter.create(rng)
    y1, _ = decode_params(kgc.params)
    partial = kgc.issue_partial_key("meter-7", rng)
    keys = create_participant_keys(y1, partial, rng)
    assert P1 * keys.h == compute_partial_public_key(y1, "meter-7", partial.alpha)
    assert keys.y == P1 * keys.secret


def test_a_wrong_partial_key_is_refused_by_its_holder() -> None:
    rng = DeterministicRng("keys-bad")
    kgc = KeyGenerationCenter.create(rng)
    other = KeyGenerationCenter.create(rng)
    y1, _ = decode_params(kgc.params)
    partial = kgc.issue_partial_key("meter-7", rng)
    h = int.from_bytes(partial.h, "big")
    with pytest.raises(InvalidPartialKey):
        check_partial_key(y1, dataclasses.replace(partial, h=((h + 1).to_bytes(32, "big"))))
    with pytest.raises(InvalidPartialKey):
        check_partial_key(y1, dataclasses.replace(partial, identity="meter-8"))
    with pytest.raises(InvalidPartialKey):
        check_partial_key(y1, other.issue_partial_key("meter-7", rng))
    with pytest.raises(InvalidPartialKey):
        check_partial_key(y1, dataclasses.replace(partial, h=b"\x00" * 32))


def test_params_must_share_one_master_key() -> None:
    rng = DeterministicRng("params")
    a = KeyGenerationCenter.create(rng).params
    b = KeyGenerationCenter.create(rng).params
    decode_params(a)
    with pytest.raises(InvalidEncoding):
        decode_params(SystemParams(a.y_pub1, b.y_pub2))
    with pytest.raises(InvalidEncoding):
        decode_params(SystemParams(a.y_pub1, P2.to_compressed_bytes()[:-1]))


def test_identities_with_separators_are_refused() -> None:
    rng = DeterministicRng("ids")
    kgc = KeyGenerationCenter.create(rng)
    for bad in ("", "a/b", "x" * 65, "tab\t"):
        with pytest.raises(InvalidEncoding):
            kgc.issue_partial_key(bad, rng)
