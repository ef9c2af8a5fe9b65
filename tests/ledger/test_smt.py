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


def _reference_root(entries: dict[bytes, bytes]) -> bytes:
    """The module docstring's definition, computed directly (no cache, no positions)."""
    from gridledger.ledger.smt import compute_leaf_hash, compute_node_hash, compute_value_hash

    leaves = sorted(
        (compute_key_hash(k), compute_leaf_hash(compute_key_hash(k), compute_value_hash(v)))
        for k, v in entries.items()
    )

    def subtree(depth: int, items: list[tuple[bytes, bytes]]) -> bytes:
        if not items:
            return EMPTY
        if len(items) == 1:
            return items[0][1]
        bit = [(kh[depth >> 3] >> (7 - (depth & 7))) & 1 for kh, _ in items]
        left = [it for it, b in zip(items, bit, strict=True) if b == 0]
        right = [it for it, b in zip(items, bit, strict=True) if b == 1]
        return compute_node_hash(subtree(depth + 1, left), subtree(depth + 1, right))

    return subtree(0, leaves)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(st.integers(0, 300), st.one_of(st.none(), st.binary(max_size=3))),
            min_size=1,
            max_size=12,
        ),
        min_size=1,
        max_size=25,
    )
)
def test_incremental_roots_match_the_definition_through_inserts_and_deletes(
    batches: list[list[tuple[int, bytes | None]]],
) -> None:
    """Small batches on a tree of a few hundred entries take the incremental path: entries
    come, change and go (their neighbours' positions move), and after every batch the root
    is the definition's and every proof checks against it."""
    tree = SparseMerkleTree()
    live = {b"base-%d" % i: b"v" for i in range(120)}
    tree.update(live.items())
    assert tree.root() == _reference_root(live)
    for batch in batches:
        for n, value in batch:
            key = b"k%d" % n
            tree.set(key, value)
            if value is None:
                live.pop(key, None)
            else:
                live[key] = value
        root = tree.root()
        assert root == _reference_root(live)
        for n, _ in batch[:3]:
            key = b"k%d" % n
            verify_state_proof(root, key, live.get(key), tree.prove(key))


def test_a_tree_emptied_and_refilled_by_small_steps() -> None:
    tree = SparseMerkleTree()
    live = {b"x%d" % i: b"%d" % i for i in range(40)}
    tree.update(live.items())
    tree.root()
    for i in range(40):  # one at a time: always the incremental path
        tree.set(b"x%d" % i, None)
        del live[b"x%d" % i]
        assert tree.root() == _reference_root(live)
    assert tree.root() == EMPTY
    tree.set(b"again", b"1")
    assert tree.root() == _reference_root({b"again": b"1"})
