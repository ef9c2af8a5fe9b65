"""The store's Bloom filter of transaction hashes: no false negatives, few false positives."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridledger.ledger.chain import Ledger
from gridledger.ledger.hash_filter import HashFilter
from gridledger.ledger.storage import SqliteBlockStore

from .helpers import GENESIS, key, kv_tx, make_registry


@given(st.lists(st.binary(min_size=0, max_size=40), max_size=200))
def test_every_added_digest_may_be_contained(digests: list[bytes]) -> None:
    """Whatever the input (short, repeated, adversarial), an added digest is never missed."""
    f = HashFilter(bits_log2=10)
    f.update(digests)
    assert all(f.may_contain(d) for d in digests)


@given(st.lists(st.binary(min_size=0, max_size=40), max_size=200))
def test_add_new_answers_as_may_contain_did_before(digests: list[bytes]) -> None:
    """``add_new`` is ``may_contain`` then ``add`` in one pass of probes."""
    one, two = HashFilter(bits_log2=8), HashFilter(bits_log2=8)
    for d in digests:
        before = two.may_contain(d)
        two.add(d)
        assert one.add_new(d) == before
    assert all(one.may_contain(d) for d in digests)


def test_false_positives_are_rare_for_hashes() -> None:
    f = HashFilter(bits_log2=20)
    f.update(hashlib.sha256(b"in %d" % i).digest() for i in range(10_000))
    hits = sum(f.may_contain(hashlib.sha256(b"out %d" % i).digest()) for i in range(20_000))
    assert hits < 20  # expected about 0.3 at 10,000 entries in 2**20 bits


def test_the_size_is_checked() -> None:
    with pytest.raises(ValueError):
        HashFilter(bits_log2=2)


def test_a_reopened_store_still_finds_its_transactions(tmp_path: Path) -> None:
    """The filter is rebuilt from disk: a restarted replica still answers resent ones."""
    path = tmp_path / "chain.sqlite"
    store = SqliteBlockStore(path)
    ledger = Ledger(store, make_registry(), GENESIS)
    txs = [kv_tx(key("alice"), i, b"k%d" % i, b"v") for i in range(1, 6)]
    ledger.commit(txs, 5_000, 0, 0)
    store.close()
    reopened = SqliteBlockStore(path)
    assert [reopened.find_tx(tx.tx_hash) for tx in txs] == [(1, i) for i in range(5)]
    assert reopened.find_tx(hashlib.sha256(b"never sent").digest()) is None
