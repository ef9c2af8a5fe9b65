"""DPoS finality: 2/3+1 of the accounting nodes signed the executed header.

Irreversibility in DPoS is a statement about proposals (2/3+1 distinct
producers built on a block); what a light client needs is a statement about
the *executed* header (its state root). Every accounting node (producer or
standby: all genesis validators run a replica) executes a block once it is
irreversible and signs the resulting header hash as a
:class:`~gridledger.ledger.certificate.BlockVote`; 2/3+1 of those signatures
are the block's proof, a :class:`~gridledger.ledger.certificate.CommitCertificate`
like PBFT's, checked against the genesis validators only. A light client thus
needs nothing but the genesis, even though the producer set changes by election.

Verified signatures are remembered (a bounded set of digests of exactly the
verified bytes), so a proof that the engine already checked when it arrived in
a proposal is not verified again when the node attaches it: correctness is the
same, and a simulation of 101 replicas in one process verifies each signature
once instead of a hundred times.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from gridledger.consensus.dpos.config import ENGINE_NAME
from gridledger.crypto.errors import InvalidSignature, KeyFormatError
from gridledger.crypto.hashing import HashTag
from gridledger.crypto.signatures import Ed25519PublicKey
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import (
    BLOCK_VOTE_TAG,
    CommitCertificate,
    Validator,
    verify_certificate,
)
from gridledger.ledger.finality import (
    FinalityRule,
    QuorumCertificateRule,
    register_finality_rule,
)

CACHE_SIZE = 200_000
_verified: OrderedDict[bytes, None] = OrderedDict()


def is_valid_signature_cached(
    public_key: bytes, tag: HashTag, message: bytes, signature: bytes
) -> bool:
    """Ed25519 verification that remembers successes (failures are checked every time)."""
    digest = hashlib.sha256(  # every variable-length part framed: no two inputs share bytes
        b"%d:%d:" % (len(public_key), len(signature))
        + public_key
        + tag.prefix
        + signature
        + message
    ).digest()
    if digest in _verified:
        return True
    try:
        Ed25519PublicKey(public_key).verify(tag, message, signature)
    except (InvalidSignature, KeyFormatError):
        return False
    _remember(digest)
    return True


def _remember(digest: bytes) -> None:
    _verified[digest] = None
    if len(_verified) > CACHE_SIZE:
        _verified.popitem(last=False)


def compute_confirm_threshold(n: int) -> int:
    """2/3+1 of ``n`` accounting nodes: ⌊2n/3⌋ + 1."""
    return 2 * n // 3 + 1


def is_valid_vote_cached(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """The :data:`~gridledger.ledger.certificate.SignatureCheck` of DPoS certificates:
    a block vote's signature, verified once."""
    return is_valid_signature_cached(public_key, BLOCK_VOTE_TAG, message, signature)


def check_confirmations(
    cert: CommitCertificate, validators: tuple[Validator, ...], chain_id: str, threshold: int
) -> None:
    """Raise :class:`CertificateError` unless ``cert`` holds ``threshold`` distinct valid votes
    (:func:`~gridledger.ledger.certificate.verify_certificate`, signatures remembered)."""
    verify_certificate(
        cert,
        validators,
        chain_id=chain_id,
        threshold=threshold,
        is_valid_signature=is_valid_vote_cached,
    )


def build_dpos_rule(genesis: GenesisConfig) -> FinalityRule:
    """Final once 2/3+1 of the genesis accounting nodes signed the header hash."""
    n = len(genesis.validators)
    return QuorumCertificateRule(
        genesis.chain_id, genesis.validators, compute_confirm_threshold(n), is_valid_vote_cached
    )


register_finality_rule(ENGINE_NAME, build_dpos_rule)
