from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.ledger.errors import ProofError
from gridledger.ledger.smt import EMPTY, SparseMerkleTree, compute_key_hash, verify_state_proof
from gridledger.ledger.state import WorldState

entries_st = st.dictionaries(st.binary(min_size=1, max_size=6), st.binary(max_size=6), max_size=30)


def test_empty_tree() -> None:
    tree = SparseMerkleTree()
    assert tree.root() == EMPTY
    verify_state_proof(EMPTY, b"k", None, tree.prove(b"k"))


@settings(max_examples=50, deadline=None)
@given(entries_st, st.randoms(use_true_random=False))
def test_root_is_independent_of_insertion_order_and_history(
    entries: dict[bytes, bytes], rnd: object
) -> None:
    a = SparseMerkleTree()
    a.update(entries.items())
    items = list(entries.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    b = SparseMerkleTree()
    b.set(b"transient", b"x")
    b.root()  # cache nodes, then invalidate them
    b.update(items)
    b.set(b"transient", entries.get(b"transient"))
    assert a.root() == b.root()


@settings(max_examples=50, deadline=None)
@given(entries_st, st.binary(min_size=1, max_size=6))
def test_inclusion_and_non_inclusion_proofs(entries: dict[bytes, bytes], probe: bytes) -> None:
    tree = SparseMerkleTree()
    tree.update(entries.items())
    root = tree.root()
    for k, v in entries.items():
        proof = tree.prove(k)
        verify_state_proof(root, k, v, proof)
        with pytest.raises(ProofError):
            verify_state_proof(root, k, v + b"!", proof)
        with pytest.raises(ProofError):
            verify_state_proof(root, k, None, proof)
    absent = probe if probe not in entries else probe + b"\xff" * 7
    proof = tree.prove(absent)
    verify_state_proof(root, absent, None, proof)
    with pytest.raises(ProofError):
        verify_state_proof(root, absent, b"", proof)


def test_forged_proofs_fail() -> None:
    tree = SparseMerkleTree()
    tree.update((bytes([i]), bytes([i])) for i in range(1, 50))
    root = tree.root()
    proof = tree.prove(b"\x05")
    # flip a sibling
    sib = list(proof.siblings)
    sib[0] = bytes(32)
    with pytest.raises(ProofError):
        verify_state_proof(root, b"\x05", b"\x05", dataclasses.replace(proof, siblings=tuple(sib)))
    # wrong key with a valid proof
    with pytest.raises(ProofError):
        verify_state_proof(root, b"\x06", b"\x05", proof)
    # claim absence by pretending the path ends at an empty subtree one level early
    with pytest.raises(ProofError):
        verify_state_proof(
            root, b"\x05", None, dataclasses.replace(proof, siblings=tuple(sib[:-1]))
        )
    # claim absence by naming an entry off the key's path
    other = compute_key_hash(b"\x07")
    forged = dataclasses.replace(proof, other_key_hash=other, other_value_hash=bytes(32))
    with pytest.raises(ProofError):
        verify_state_proof(root, b"\x05", None, forged)


def test_world_state_undo_restores_root() -> None:
    state = WorldState([(b"a", b"1"), (b"b", b"2")])
    before = state.root
    undo = state.apply_writes({b"a": b"9", b"c": b"3", b"b": None})
    assert state.root != before
    state.apply_writes(undo)
    assert state.root == before
    assert list(state.items()) == [(b"a", b"1"), (b"b", b"2")]
