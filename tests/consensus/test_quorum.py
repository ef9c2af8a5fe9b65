"""The one BFT rule (issue 7): f, the quorum and the weak certificate, computed once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridledger.consensus.errors import ConfigInvalid
from gridledger.consensus.quorum import (
    compute_f,
    compute_prepared_quorum,
    compute_quorum,
    compute_weak,
)
from gridledger.ledger.certificate import quorum_size

from .helpers import make_cluster


def test_the_usual_sizes() -> None:
    table = [(n, compute_f(n), compute_quorum(n), compute_weak(n)) for n in (1, 4, 5, 7, 10)]
    assert table == [(1, 0, 1, 1), (4, 1, 3, 2), (5, 1, 4, 2), (7, 2, 5, 3), (10, 3, 7, 4)]


def test_no_replicas_is_a_config_error() -> None:
    with pytest.raises(ConfigInvalid):
        compute_f(0)


@given(st.integers(min_value=1, max_value=10_000))
def test_two_quorums_share_an_honest_replica(n: int) -> None:
    f, q = compute_f(n), compute_quorum(n)
    assert 3 * f + 1 <= n  # f is the largest tolerated
    assert 2 * q - n >= f + 1  # any two quorums intersect in f+1: one is honest
    assert q <= n - f  # a quorum is reachable with f replicas silent
    assert compute_weak(n) == f + 1  # f+1 always include an honest replica
    assert compute_prepared_quorum(n) + 1 == q  # pre-prepare + prepares = a quorum
    assert quorum_size(n) == q  # commit certificates count the same


def test_pbft_config_asks_the_rule() -> None:
    for n in (4, 7):
        config, _, _ = make_cluster(n)
        assert (config.f, config.quorum, config.weak) == (
            compute_f(n),
            compute_quorum(n),
            compute_weak(n),
        )
        assert config.get_proof_context().f == compute_f(n)
