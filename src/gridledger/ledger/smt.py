"""The authenticated state: a compact sparse Merkle tree over ``H(key)``.

Conceptually a binary tree of depth 256 whose leaf positions are the bits of
``kh = H_key(key)``, most significant first. As in Diem's Jellyfish tree, a
subtree holding a single entry is represented by that entry's leaf hash, and an
empty subtree by :data:`EMPTY` (32 zero bytes), so::

    hash(subtree) = EMPTY                               no entry
                  = H_leaf(kh || H_value(value))        exactly one entry
                  = H_node(hash(left) || hash(right))   two or more entries

Leaves and nodes use different tags, so a node can never pass for a leaf and a
proof cannot end at the wrong depth. With ``N`` entries a path is about
``log2 N`` nodes long (not 256), which is what makes an update cost tens of
microseconds. Interior hashes are cached by position; :meth:`SparseMerkleTree.root`
recomputes only the nodes above keys changed since the previous root (one
bisection and one hash per level), reusing the cache everywhere else.

A :class:`StateProof` lists the sibling hashes from the root down to where the
key's path ends: at its own leaf (inclusion), at an empty subtree, or at one
other entry whose key hash shares the path (non-inclusion).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

from sortedcontainers import SortedList

from gridledger.crypto.encoding import wire_type
from gridledger.crypto.hashing import DIGEST_SIZE, register_tag
from gridledger.ledger.errors import ProofError

SMT_KEY_TAG = register_tag("gridledger/ledger/smt-key/1")
SMT_VALUE_TAG = register_tag("gridledger/ledger/smt-value/1")
SMT_LEAF_TAG = register_tag("gridledger/ledger/smt-leaf/1")
SMT_NODE_TAG = register_tag("gridledger/ledger/smt-node/1")
EMPTY = bytes(DIGEST_SIZE)
DEPTH = 256
# A changed subtree with at most this many keys per changed key is bisected as a
# plain list: copying it costs less than the sorted container's bisections below.
_SLICE_KEYS_PER_CHANGE = 128


@wire_type("ledger.state-proof/1")
@dataclass(frozen=True)
class StateProof:
    """Siblings from the root down; ``other_*`` name the entry met instead of the key (if any)."""

    siblings: tuple[bytes, ...]
    other_key_hash: bytes
    other_value_hash: bytes


_sha256 = hashlib.sha256
_KEY_PREFIX = SMT_KEY_TAG.prefix
_VALUE_PREFIX = SMT_VALUE_TAG.prefix
_LEAF_PREFIX = SMT_LEAF_TAG.prefix
_NODE_PREFIX = SMT_NODE_TAG.prefix


# The four hashes below equal ``hash_bytes(tag, data)``, computed with one call into
# hashlib each: the tree runs them several times per transaction on every replica.


def compute_key_hash(key: bytes) -> bytes:
    return _sha256(_KEY_PREFIX + key).digest()


def compute_value_hash(value: bytes) -> bytes:
    return _sha256(_VALUE_PREFIX + value).digest()


def compute_leaf_hash(key_hash: bytes, value_hash: bytes) -> bytes:
    return _sha256(_LEAF_PREFIX + key_hash + value_hash).digest()


def compute_node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(_NODE_PREFIX + left + right).digest()


def _bit(key_hash: bytes, depth: int) -> int:
    """Bit ``depth`` of ``key_hash``, most significant first."""
    return (key_hash[depth >> 3] >> (7 - (depth & 7))) & 1


class SparseMerkleTree:
    """Key hashes → leaf hashes, with cached interior nodes; the root is recomputed lazily."""

    def __init__(self) -> None:
        self._keys = SortedList()  # key hashes as 256-bit integers
        self._leaves: dict[int, bytes] = {}  # key hash (int) -> leaf hash
        self._value_hashes: dict[int, bytes] = {}  # key hash (int) -> value hash (for proofs)
        self._nodes: dict[int, bytes] = {}  # (1 << depth) | prefix -> interior hash
        self._dirty: set[int] = set()  # key hashes changed since the last root()

    def __len__(self) -> int:
        return len(self._leaves)

    def set(self, key: bytes, value: bytes | None) -> None:
        """Insert, replace (``value`` bytes) or remove (``None``) the entry for ``key``."""
        kh = int.from_bytes(compute_key_hash(key))
        self._dirty.add(kh)
        if value is None:
            if self._leaves.pop(kh, None) is not None:
                del self._value_hashes[kh]
                self._keys.remove(kh)
            return
        if kh not in self._leaves:
            self._keys.add(kh)
        value_hash = compute_value_hash(value)
        self._value_hashes[kh] = value_hash
        self._leaves[kh] = compute_leaf_hash(kh.to_bytes(32), value_hash)

    def update(self, entries: Iterable[tuple[bytes, bytes | None]]) -> None:
        for key, value in entries:
            self.set(key, value)

    def root(self) -> bytes:
        """The root hash (:data:`EMPTY` for no entries).

        Visits only the nodes above keys changed since the previous root, and
        their siblings (cached): about one bisection and one hash per level and
        changed key, never the whole tree.
        """
        dirty = sorted(self._dirty)
        root = self._subtree(0, 0, 0, len(self._keys), dirty, 0, len(dirty))
        self._dirty.clear()
        return root

    def prove(self, key: bytes) -> StateProof:
        """A proof of ``key``'s value, or of its absence, against :meth:`root`."""
        self.root()
        kh_bytes = compute_key_hash(key)
        kh = int.from_bytes(kh_bytes)
        siblings: list[bytes] = []
        depth, prefix, lo, hi = 0, 0, 0, len(self._keys)
        while hi - lo > 1:
            mid = self._split(depth, prefix)
            if _bit(kh_bytes, depth):
                siblings.append(self._subtree(depth + 1, prefix << 1, lo, mid, [], 0, 0))
                prefix, lo = (prefix << 1) | 1, mid
            else:
                siblings.append(self._subtree(depth + 1, (prefix << 1) | 1, mid, hi, [], 0, 0))
                prefix, hi = prefix << 1, mid
            depth += 1
        if hi - lo == 1 and self._keys[lo] != kh:
            other = self._keys[lo]
            # The proof carries the other leaf's preimage, so that it cannot be a node hash.
            return StateProof(tuple(siblings), other.to_bytes(32), self._value_hashes[other])
        return StateProof(tuple(siblings), b"", b"")

    # -- internals ---------------------------------------------------------

    def _split(self, depth: int, prefix: int) -> int:
        """Index of the first key hash in the right child of node (depth, prefix)."""
        return int(self._keys.bisect_left(((prefix << 1) | 1) << (DEPTH - depth - 1)))

    def _subtree(
        self,
        depth: int,
        prefix: int,
        lo: int,
        hi: int,
        dirty: list[int],
        dlo: int,
        dhi: int,
        keys: list[int] | None = None,
    ) -> bytes:
        """Hash of node (depth, prefix) whose key hashes are ``keys[lo:hi]`` (``_keys[lo:hi]``).

        ``dirty[dlo:dhi]`` are the key hashes under this node changed since the
        last root (deleted ones included): none means the cached hash is valid.
        Once a changed subtree holds few keys per changed key, they are copied
        into a plain list (one slice), so the levels below bisect in C instead of
        in the sorted container: in a large state most levels of a changed path
        are there.
        """
        position = (1 << depth) | prefix
        if hi - lo <= 1:
            if dlo < dhi:
                self._nodes.pop(position, None)  # drop a node that lost its entries
            if hi == lo:
                return EMPTY
            return self._leaves[(self._keys if keys is None else keys)[lo]]
        if dlo == dhi:
            cached = self._nodes.get(position)
            if cached is not None:
                return cached
        boundary = ((prefix << 1) | 1) << (DEPTH - depth - 1)
        if keys is None and hi - lo <= _SLICE_KEYS_PER_CHANGE * (dhi - dlo):
            keys = self._keys[lo:hi]
            lo, hi = 0, hi - lo
        if keys is None:
            mid = int(self._keys.bisect_left(boundary))
        else:
            mid = bisect_left(keys, boundary, lo, hi)
        dmid = bisect_left(dirty, boundary, dlo, dhi)
        left = self._subtree(depth + 1, prefix << 1, lo, mid, dirty, dlo, dmid, keys)
        right = self._subtree(depth + 1, (prefix << 1) | 1, mid, hi, dirty, dmid, dhi, keys)
        node = _sha256(_NODE_PREFIX + left + right).digest()
        self._nodes[position] = node
        return node


def compute_root_from_state_proof(key: bytes, value: bytes | None, proof: StateProof) -> bytes:
    """The root that ``proof`` implies for ``key`` holding ``value`` (``None``: absent)."""
    if len(proof.siblings) > DEPTH or any(len(s) != DIGEST_SIZE for s in proof.siblings):
        raise ProofError("state proof path malformed")
    kh = compute_key_hash(key)
    depth = len(proof.siblings)
    if proof.other_key_hash or proof.other_value_hash:
        if value is not None:
            raise ProofError("an inclusion proof cannot end at another entry")
        other, other_vh = proof.other_key_hash, proof.other_value_hash
        if len(other) != DIGEST_SIZE or len(other_vh) != DIGEST_SIZE or other == kh:
            raise ProofError("state proof names a malformed other entry")
        if any(_bit(other, d) != _bit(kh, d) for d in range(depth)):
            raise ProofError("the other entry is not on the key's path")
        node = compute_leaf_hash(other, other_vh)
    elif value is None:
        node = EMPTY
    else:
        node = compute_leaf_hash(kh, compute_value_hash(value))
    for d in range(depth - 1, -1, -1):
        sibling = proof.siblings[d]
        node = compute_node_hash(sibling, node) if _bit(kh, d) else compute_node_hash(node, sibling)
    return node


def verify_state_proof(root: bytes, key: bytes, value: bytes | None, proof: StateProof) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows ``key`` = ``value`` (None: absent)."""
    if compute_root_from_state_proof(key, value, proof) != root:
        raise ProofError("state proof does not lead to the state root")
