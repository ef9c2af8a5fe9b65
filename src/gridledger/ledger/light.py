"""Light clients: trust block headers through commit certificates, then check proofs.

A :class:`LightClient` starts from a
:class:`~gridledger.ledger.block.GenesisConfig` (which it must get out of band,
like any trust anchor): from it, it computes the genesis header and learns the
validator set. It then accepts each next header only with a proof of finality
under the rule of the genesis's engine (:mod:`gridledger.ledger.finality`); for
PBFT, a commit certificate: 2f+1 distinct validators' signatures on exactly
that header's hash. Since at most f validators are faulty, at least f+1 honest
ones executed the block and got that header. Against a trusted header it checks
that a transaction is in the block (``tx_root``), what its receipt was
(``receipts_root``), and what a state key held after the block
(``state_root``), without holding any block body or state.
"""

from __future__ import annotations

from gridledger.crypto.encoding import encode
from gridledger.ledger.block import BlockHeader, GenesisConfig, genesis_block, validate_block_link
from gridledger.ledger.certificate import CommitCertificate
from gridledger.ledger.errors import ChainError, ProofError
from gridledger.ledger.execution import Receipt
from gridledger.ledger.finality import FinalityRule, get_finality_rule
from gridledger.ledger.merkle import MerkleProof, verify_inclusion
from gridledger.ledger.smt import StateProof, verify_state_proof


class LightClient:
    """Certified headers only; verifies inclusion, receipt and state proofs against them."""

    def __init__(self, genesis: GenesisConfig, rule: FinalityRule | None = None) -> None:
        self.genesis = genesis
        self.rule = rule or get_finality_rule(genesis)
        self._headers: list[BlockHeader] = [genesis_block(genesis).header]

    @property
    def head(self) -> BlockHeader:
        return self._headers[-1]

    def add_header(self, header: BlockHeader, certificate: CommitCertificate) -> None:
        """Accept the next header; raise ``ChainError`` or ``CertificateError`` if it is not."""
        if header.chain_id != self.genesis.chain_id:
            raise ChainError(f"header is for chain {header.chain_id!r}")
        validate_block_link(self.head, header)
        self.rule.check(header, certificate)
        self._headers.append(header)

    def get_header(self, height: int) -> BlockHeader:
        """The trusted header at ``height``; raise :class:`ChainError` if not yet known."""
        if not 0 <= height < len(self._headers):
            raise ChainError(f"no trusted header at height {height}")
        return self._headers[height]

    def verify_tx_inclusion(self, height: int, tx_hash: bytes, proof: MerkleProof) -> None:
        """Raise ``ProofError`` unless ``tx_hash`` is in block ``height``.

        The proof's size must be the header's ``tx_count``: otherwise one path
        verifies under other (index, size) pairs and the position it claims
        would be unauthenticated.
        """
        header = self.get_header(height)
        _check_proof_size(proof, header.tx_count)
        verify_inclusion(header.tx_root, tx_hash, proof)

    def verify_receipt(self, height: int, receipt: Receipt, proof: MerkleProof) -> None:
        """Raise ``ProofError`` unless ``receipt`` is among block ``height``'s receipts."""
        header = self.get_header(height)
        _check_proof_size(proof, header.tx_count)
        verify_inclusion(header.receipts_root, encode(receipt), proof)

    def verify_state_value(
        self, height: int, key: bytes, value: bytes | None, proof: StateProof
    ) -> None:
        """Raise ``ProofError`` unless ``key`` held ``value`` (None: absent) after ``height``."""
        verify_state_proof(self.get_header(height).state_root, key, value, proof)


def _check_proof_size(proof: MerkleProof, tx_count: int) -> None:
    if proof.size != tx_count:
        raise ProofError(f"proof is for a tree of {proof.size} leaves, the block has {tx_count}")
