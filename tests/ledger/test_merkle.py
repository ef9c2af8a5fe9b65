from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.ledger.errors import ProofError
from gridledger.ledger.merkle import (
    EMPTY_ROOT,
    MerkleProof,
    compute_leaf_hash,
    compute_node_hash,
    inclusion_proof,
    merkle_root,
    verify_inclusion,
)

leaves_st = st.lists(st.binary(min_size=0, max_size=8), min_size=1, max_size=40)


def _rfc6962_root(leaves: list[bytes]) -> bytes:
    """The recursive definition of RFC 6962 §2.1, as a reference."""
    if len(leaves) == 1:
        return compute_leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return compute_node_hash(_rfc6962_root(leaves[:k]), _rfc6962_root(leaves[k:]))


def test_empty_and_single() -> None:
    assert merkle_root([]) == EMPTY_ROOT
    assert merkle_root([b"a"]) == compute_leaf_hash(b"a")
    assert merkle_root([b"a"]) != merkle_root([b"a", b"a"])


def test_odd_nodes_are_not_duplicated() -> None:
    assert merkle_root([b"a", b"b", b"c"]) != merkle_root([b"a", b"b", b"c", b"c"])


@settings(max_examples=60, deadline=None)
@given(leaves_st)
def test_root_matches_rfc6962_split(leaves: list[bytes]) -> None:
    assert merkle_root(leaves) == _rfc6962_root(leaves)


@settings(max_examples=60, deadline=None)
@given(leaves_st)
def test_every_index_verifies(leaves: list[bytes]) -> None:
    root = merkle_root(leaves)
    for i, leaf in enumerate(leaves):
        verify_inclusion(root, leaf, inclusion_proof(leaves, i))


@settings(max_examples=60, deadline=None)
@given(leaves_st, st.data())
def test_changed_leaf_path_or_index_fails(leaves: list[bytes], data: st.DataObject) -> None:
    root = merkle_root(leaves)
    i = data.draw(st.integers(0, len(leaves) - 1))
    proof = inclusion_proof(leaves, i)
    with pytest.raises(ProofError):
        verify_inclusion(root, leaves[i] + b"!", proof)
    if proof.path:
        j = data.draw(st.integers(0, len(proof.path) - 1))
        path = list(proof.path)
        path[j] = bytes(b ^ 1 for b in path[j])
        with pytest.raises(ProofError):
            verify_inclusion(root, leaves[i], dataclasses.replace(proof, path=tuple(path)))
        with pytest.raises(ProofError):
            verify_inclusion(root, leaves[i], dataclasses.replace(proof, path=proof.path[:-1]))
    with pytest.raises(ProofError):
        verify_inclusion(root, leaves[i], dataclasses.replace(proof, path=(*proof.path, root)))
    other = data.draw(st.integers(0, len(leaves)))
    if other != i and (other >= len(leaves) or leaves[other] != leaves[i]):
        with pytest.raises(ProofError):
            verify_inclusion(root, leaves[i], dataclasses.replace(proof, index=other))


def test_malformed_proofs() -> None:
    leaves = [b"a", b"b", b"c"]
    root = merkle_root(leaves)
    for proof in (MerkleProof(3, 3, ()), MerkleProof(-1, 3, ()), MerkleProof(0, 0, ())):
        with pytest.raises(ProofError):
            verify_inclusion(root, b"a", proof)
    with pytest.raises(ProofError):
        inclusion_proof(leaves, 3)
