"""DPoS wire messages: signed block proposals, header confirmations, evidence, catch-up.

A :class:`Proposal` is what the producer of a slot builds on the head of its
chosen fork: the ordered requests, the slot (its timestamp is the slot's
start), the parent proposal's id and the finality certificates it gathered for
earlier heights. Its id is the tagged hash of its encoding and the producer
signs the id under its own domain tag, so a proposal signature can never be
replayed as a block vote or a transaction.

Two validly signed proposals of one producer for one slot with different ids
are :class:`DoubleProduction` evidence: anybody holding the producer's public
key checks it with :func:`verify_double_production`, on or off chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from gridledger.consensus.dpos.errors import EvidenceInvalid
from gridledger.consensus.messages import ClientRequest
from gridledger.crypto.encoding import encode, wire_type
from gridledger.crypto.errors import InvalidSignature, KeyFormatError
from gridledger.crypto.hashing import hash_bytes, register_tag
from gridledger.crypto.signatures import Ed25519PrivateKey, Ed25519PublicKey
from gridledger.ledger.certificate import CommitCertificate, VoteSignature

PROPOSAL_ID_TAG = register_tag("gridledger/consensus/dpos/proposal/1")
PROPOSAL_SIG_TAG = register_tag("gridledger/consensus/dpos/proposal-signature/1")
MAX_CERTIFICATES = 16
MAX_FETCH = 64


SIGNATURE_SIZE = 64


@wire_type("dpos.compact-certificate/1")
@dataclass(frozen=True)
class CompactCertificate:
    """A commit certificate as a proposal carries it: signer ids and the signatures concatenated.

    The same content as :class:`CommitCertificate` (the chain id is the
    proposal's), in a form a hundred receivers decode cheaply.
    """

    height: int
    header_hash: bytes
    signers: tuple[int, ...]
    signatures: bytes

    def __post_init__(self) -> None:
        if len(self.signatures) != SIGNATURE_SIZE * len(self.signers):
            raise ValueError("one 64-byte signature per signer")

    @classmethod
    def from_certificate(cls, cert: CommitCertificate) -> CompactCertificate:
        return cls(
            cert.height,
            cert.header_hash,
            tuple(s.replica_id for s in cert.signatures),
            b"".join(s.signature for s in cert.signatures),
        )

    def to_certificate(self, chain_id: str) -> CommitCertificate:
        sigs = tuple(
            VoteSignature(r, self.signatures[i * SIGNATURE_SIZE : (i + 1) * SIGNATURE_SIZE])
            for i, r in enumerate(self.signers)
        )
        return CommitCertificate(chain_id, self.height, self.header_hash, sigs)


@wire_type("dpos.proposal/1")
@dataclass(frozen=True)
class Proposal:
    """A producer's block for ``slot`` on top of ``parent`` (not yet executed)."""

    chain_id: str
    height: int
    slot: int
    parent: bytes
    producer: int
    timestamp_ms: int
    requests: tuple[ClientRequest, ...]
    certificates: tuple[CompactCertificate, ...]

    @cached_property
    def proposal_id(self) -> bytes:
        return hash_bytes(PROPOSAL_ID_TAG, encode(self))


@wire_type("dpos.signed-proposal/1")
@dataclass(frozen=True)
class SignedProposal:
    proposal: Proposal
    signature: bytes


@wire_type("dpos.confirmation/1")
@dataclass(frozen=True)
class Confirmation:
    """Replica ``replica_id`` executed ``height`` into ``header_hash`` (a block-vote signature)."""

    height: int
    header_hash: bytes
    replica_id: int
    signature: bytes


@wire_type("dpos.forward/1")
@dataclass(frozen=True)
class Forward:
    """Client requests passed on to the producers of the next slots."""

    requests: tuple[ClientRequest, ...]


@wire_type("dpos.fetch/1")
@dataclass(frozen=True)
class FetchAncestors:
    """Ask for ``block_id`` and up to ``count`` of its ancestors."""

    block_id: bytes
    count: int


@wire_type("dpos.ancestors/1")
@dataclass(frozen=True)
class Ancestors:
    """Proposals answering :class:`FetchAncestors`, oldest first."""

    proposals: tuple[SignedProposal, ...]


@wire_type("dpos.double-production/1")
@dataclass(frozen=True)
class DoubleProduction:
    """Two different proposals one producer signed for one slot."""

    first: SignedProposal
    second: SignedProposal


def sign_proposal(key: Ed25519PrivateKey, proposal: Proposal) -> SignedProposal:
    return SignedProposal(proposal, key.sign(PROPOSAL_SIG_TAG, proposal.proposal_id))


def is_valid_proposal_signature(public_key: bytes, signed: SignedProposal) -> bool:
    """Whether ``signed`` carries the signature of ``public_key`` on its proposal id."""
    try:
        Ed25519PublicKey(public_key).verify(
            PROPOSAL_SIG_TAG, signed.proposal.proposal_id, signed.signature
        )
    except (InvalidSignature, KeyFormatError):
        return False
    return True


def verify_double_production(evidence: DoubleProduction, public_key: bytes) -> int:
    """The offending producer's id; raise :class:`EvidenceInvalid` unless the evidence holds."""
    a, b = evidence.first.proposal, evidence.second.proposal
    if a.producer != b.producer:
        raise EvidenceInvalid("the proposals are by different producers")
    if a.slot != b.slot:
        raise EvidenceInvalid("the proposals are for different slots")
    if a.chain_id != b.chain_id:
        raise EvidenceInvalid("the proposals are for different chains")
    if a.proposal_id == b.proposal_id:
        raise EvidenceInvalid("the proposals are the same")
    for signed in (evidence.first, evidence.second):
        if not is_valid_proposal_signature(public_key, signed):
            raise EvidenceInvalid("a proposal is not signed by the producer")
    return a.producer
