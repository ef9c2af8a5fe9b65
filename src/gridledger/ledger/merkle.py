"""Binary Merkle trees over ordered lists (RFC 6962 / RFC 9162 §2.1).

Leaves hash as ``H(0x00 || x)`` and interior nodes as ``H(0x01 || left || right)``
under the tag ``gridledger/ledger/merkle/1``; the root of the empty list is
``H(b"")`` under the same tag, which neither form can produce. A list of ``n``
leaves splits at the largest power of two below ``n``; odd nodes are never
duplicated, so no two lists share a root (the CVE-2012-2459 pitfall).

Building level by level and promoting a lone last node unchanged gives exactly
the RFC 6962 split tree, which is what :func:`merkle_root` and
:func:`inclusion_proof` do; :func:`verify_inclusion` follows RFC 9162 §2.1.3.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from gridledger.crypto.encoding import wire_type
from gridledger.crypto.hashing import DIGEST_SIZE, hash_bytes, register_tag
from gridledger.ledger.errors import ProofError

MERKLE_TAG = register_tag("gridledger/ledger/merkle/1")
EMPTY_ROOT = hash_bytes(MERKLE_TAG, b"")
_MAX_PROOF_LENGTH = 64


@wire_type("ledger.merkle-proof/1")
@dataclass(frozen=True)
class MerkleProof:
    """The audit path of leaf ``index`` in a tree of ``size`` leaves, bottom-up."""

    index: int
    size: int
    path: tuple[bytes, ...]


_sha256 = hashlib.sha256
_LEAF_PREFIX = MERKLE_TAG.prefix + b"\x00"
_NODE_PREFIX = MERKLE_TAG.prefix + b"\x01"


def compute_leaf_hash(leaf: bytes) -> bytes:
    """``hash_bytes(MERKLE_TAG, 0x00 || leaf)``, in one call into hashlib (hot: per receipt)."""
    return _sha256(_LEAF_PREFIX + leaf).digest()


def compute_node_hash(left: bytes, right: bytes) -> bytes:
    """``hash_bytes(MERKLE_TAG, 0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _next_level(level: list[bytes]) -> list[bytes]:
    paired = [compute_node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])
    return paired


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root of the list ``leaves`` (raw leaf data, hashed here)."""
    if not leaves:
        return EMPTY_ROOT
    level = [compute_leaf_hash(x) for x in leaves]
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> MerkleProof:
    """The audit path proving ``leaves[index]`` is in ``merkle_root(leaves)``."""
    if not 0 <= index < len(leaves):
        raise ProofError(f"index {index} outside a tree of {len(leaves)} leaves")
    level = [compute_leaf_hash(x) for x in leaves]
    path: list[bytes] = []
    i = index
    while len(level) > 1:
        sibling = i ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = _next_level(level)
        i //= 2
    return MerkleProof(index, len(leaves), tuple(path))


def compute_root_from_proof(leaf: bytes, proof: MerkleProof) -> bytes:
    """The root that ``proof`` implies for ``leaf``; raises :class:`ProofError` if malformed."""
    if not 0 <= proof.index < proof.size or len(proof.path) > _MAX_PROOF_LENGTH:
        raise ProofError("inclusion proof index or length out of range")
    node = compute_leaf_hash(leaf)
    i, last = proof.index, proof.size - 1
    steps = iter(proof.path)
    while last > 0:
        if i % 2 == 1 or i < last:
            sibling = next(steps, None)
            if sibling is None or len(sibling) != DIGEST_SIZE:
                raise ProofError("inclusion proof too short or malformed")
            node = compute_node_hash(sibling, node) if i % 2 else compute_node_hash(node, sibling)
        i //= 2
        last //= 2
    if next(steps, None) is not None:
        raise ProofError("inclusion proof too long")
    return node


def verify_inclusion(root: bytes, leaf: bytes, proof: MerkleProof) -> None:
    """Raise ``ProofError`` unless ``proof`` puts ``leaf`` at ``proof.index`` under ``root``."""
    if compute_root_from_proof(leaf, proof) != root:
        raise ProofError("inclusion proof does not lead to the root")
