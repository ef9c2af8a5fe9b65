"""Commit certificates: what lets a light node trust a block header.

After executing block ``height`` each replica signs a :class:`BlockVote` naming
the chain, the height and the header hash. 2f+1 votes from distinct replicas of
the validator set form a :class:`CommitCertificate`; since at most f replicas
are faulty, at least f+1 honest replicas vouch for the header, and no other
header at that height can gather a quorum.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gridledger.crypto.encoding import encode, wire_type
from gridledger.crypto.errors import InvalidSignature, KeyFormatError
from gridledger.crypto.hashing import register_tag
from gridledger.crypto.signatures import Ed25519PrivateKey, Ed25519PublicKey
from gridledger.errors import LedgerError
from gridledger.ledger.quorum import compute_quorum

BLOCK_VOTE_TAG = register_tag("gridledger/ledger/block-vote/1")


class CertificateError(LedgerError):
    """A commit certificate is malformed, short of a quorum, or carries a bad signature."""


@wire_type("ledger.validator/1")
@dataclass(frozen=True)
class Validator:
    """A consortium replica: its index in the validator set and its Ed25519 key."""

    replica_id: int
    public_key: bytes


@wire_type("ledger.block-vote/1")
@dataclass(frozen=True)
class BlockVote:
    """What a replica signs once it has executed a block."""

    chain_id: str
    height: int
    header_hash: bytes


@wire_type("ledger.vote-signature/1")
@dataclass(frozen=True)
class VoteSignature:
    replica_id: int
    signature: bytes


@wire_type("ledger.commit-certificate/1")
@dataclass(frozen=True)
class CommitCertificate:
    """2f+1 replica signatures on one block header."""

    chain_id: str
    height: int
    header_hash: bytes
    signatures: tuple[VoteSignature, ...]


def quorum_size(n: int) -> int:
    """2f+1 for n = 3f+1 replicas (:func:`~gridledger.ledger.quorum.compute_quorum`)."""
    return compute_quorum(n)


def sign_vote(key: Ed25519PrivateKey, vote: BlockVote) -> bytes:
    return key.sign(BLOCK_VOTE_TAG, encode(vote))


def is_valid_vote(validator: Validator, vote: BlockVote, signature: bytes) -> bool:
    return is_valid_vote_signature(validator.public_key, encode(vote), signature)


SignatureCheck = Callable[[bytes, bytes, bytes], bool]
"""``(public key, encoded BlockVote, signature) -> valid``: how a certificate's votes
are checked (an engine may pass one that remembers what it verified)."""


def is_valid_vote_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """The :data:`SignatureCheck` of :func:`verify_certificate`: Ed25519 under the vote tag."""
    try:
        Ed25519PublicKey(public_key).verify(BLOCK_VOTE_TAG, message, signature)
    except (InvalidSignature, KeyFormatError):
        return False
    return True


def verify_certificate(
    cert: CommitCertificate,
    validators: tuple[Validator, ...],
    *,
    chain_id: str,
    threshold: int | None = None,
    is_valid_signature: SignatureCheck = is_valid_vote_signature,
) -> None:
    """Raise :class:`CertificateError` unless ``cert`` holds ``threshold`` valid votes.

    ``threshold`` defaults to the byzantine quorum of ``validators``; a
    finality rule of another engine passes its own (:mod:`gridledger.ledger.finality`).
    """
    if cert.chain_id != chain_id:
        raise CertificateError(f"certificate is for chain {cert.chain_id!r}, not {chain_id!r}")
    by_id = {v.replica_id: v for v in validators}
    message = encode(BlockVote(cert.chain_id, cert.height, cert.header_hash))
    seen: set[int] = set()
    for vs in cert.signatures:
        if vs.replica_id in seen:
            raise CertificateError(f"replica {vs.replica_id} signed twice")
        validator = by_id.get(vs.replica_id)
        if validator is None:
            raise CertificateError(f"replica {vs.replica_id} is not a validator")
        if not is_valid_signature(validator.public_key, message, vs.signature):
            raise CertificateError(f"bad signature from replica {vs.replica_id}")
        seen.add(vs.replica_id)
    need = quorum_size(len(validators)) if threshold is None else threshold
    if len(seen) < need:
        raise CertificateError(f"{len(seen)} signatures, {need} needed")
