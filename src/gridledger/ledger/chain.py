"""The :class:`Ledger`: world state, contracts and block store behind one object.

This is what the node layer drives:

* ``commit(txs, timestamp_ms, proposer, view)`` executes a batch that consensus
  has ordered, builds the block and stores it with its receipts and state
  writes in one atomic write; ``attach_certificate`` adds the 2f+1 block votes
  once they are collected.
* ``export_blocks`` / ``import_block`` do state transfer: the receiving replica
  checks the certificate, re-executes the block and refuses it unless the
  resulting header is exactly the certified one.
* ``get_tx_proof`` / ``get_receipt_proof`` / ``get_state_proof`` serve light
  clients (:mod:`gridledger.ledger.light`).

On opening a store that already holds blocks, the state is reloaded from the
store and its root is checked against the head header.
"""

from __future__ import annotations

from collections.abc import Sequence

from gridledger.crypto.encoding import encode
from gridledger.ledger.block import (
    Block,
    BlockHeader,
    GenesisConfig,
    build_block,
    genesis_block,
    genesis_state,
    validate_block_body,
    validate_block_link,
)
from gridledger.ledger.certificate import CommitCertificate
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.errors import ChainError, StorageError
from gridledger.ledger.execution import BlockOutcome, Receipt, is_per_nonce_key, revert_block
from gridledger.ledger.finality import FinalityRule, get_finality_rule
from gridledger.ledger.merkle import MerkleProof, inclusion_proof
from gridledger.ledger.smt import StateProof
from gridledger.ledger.state import WorldState
from gridledger.ledger.storage import BlockStore
from gridledger.ledger.tx import Transaction


def check_certificate_for(
    header: BlockHeader, certificate: CommitCertificate, genesis: GenesisConfig
) -> None:
    """Raise :class:`CertificateError` unless ``certificate`` finalises exactly ``header``.

    Applies the finality rule of the engine the genesis names.
    """
    get_finality_rule(genesis).check(header, certificate)


class Ledger:
    """One replica's chain: executes blocks, stores them, answers proofs."""

    def __init__(
        self, store: BlockStore, registry: ContractRegistry, genesis: GenesisConfig
    ) -> None:
        self.store = store
        self.registry = registry
        self.genesis = genesis
        self.finality: FinalityRule = get_finality_rule(genesis)
        expected_genesis = genesis_block(genesis)
        head = store.head_height()
        if head is None:
            self._state = genesis_state(genesis)
            store.put_block(expected_genesis, (), None, dict(genesis.state))
            self._head = expected_genesis.header
            return
        if store.get_header(0) != expected_genesis.header:
            raise ChainError("the store holds a chain with another genesis")
        stored_head = store.get_header(head)
        if stored_head is None:
            raise StorageError(f"head block {head} is missing")
        self._head = stored_head
        self._state = WorldState(store.iter_state())
        if self._state.root != self._head.state_root:
            raise StorageError("stored state does not match the head block's state root")
        if any(is_per_nonce_key(key) for key, _ in self._state.items()):
            # Executed under the per-(sender, nonce) replay rule: the nonce windows
            # would not see those spent nonces, and every old transaction could run again.
            raise StorageError(
                "the store holds a chain made under the earlier replay rule (one state "
                "entry per sender and nonce); these ledger rules need a new chain"
            )

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    @property
    def head(self) -> BlockHeader:
        """The header of the last executed and stored block."""
        return self._head

    @property
    def height(self) -> int:
        return self._head.height

    @property
    def state_root(self) -> bytes:
        return self._head.state_root

    @property
    def state(self) -> WorldState:
        """The committed world state (read it; do not write to it)."""
        return self._state

    def propose(
        self, txs: Sequence[Transaction], timestamp_ms: int, proposer: int, view: int
    ) -> Block:
        """The block ``txs`` would make on top of the head; nothing is changed or stored."""
        block, outcome = build_block(
            self._head, self._state, self.registry, txs, timestamp_ms, proposer, view
        )
        revert_block(self._state, outcome)
        return block

    def commit(
        self,
        txs: Sequence[Transaction],
        timestamp_ms: int,
        proposer: int,
        view: int,
        certificate: CommitCertificate | None = None,
    ) -> tuple[Block, BlockOutcome]:
        """Execute an ordered batch, store the resulting block, and make it the head."""
        block, outcome = build_block(
            self._head, self._state, self.registry, txs, timestamp_ms, proposer, view
        )
        self._store(block, outcome, certificate)
        return block, outcome

    def apply(self, block: Block, certificate: CommitCertificate | None = None) -> BlockOutcome:
        """Re-execute ``block`` on the head; store it if its header is what execution gives.

        A certificate given with the block is checked before anything changes
        (:class:`CertificateError` otherwise): a peer serving state transfer must
        not be able to plant certificates that light clients would then refuse.
        """
        header = block.header
        validate_block_link(self._head, header)
        validate_block_body(block)
        if certificate is not None:
            self.finality.check(header, certificate)
        rebuilt, outcome = build_block(
            self._head,
            self._state,
            self.registry,
            block.transactions,
            header.timestamp_ms,
            header.proposer,
            header.view,
        )
        if rebuilt.header != header:
            revert_block(self._state, outcome)
            raise ChainError(f"block {header.height}: re-execution gives a different header")
        self._store(block, outcome, certificate)
        return outcome

    def import_block(self, block: Block, certificate: CommitCertificate) -> BlockOutcome:
        """State transfer: check ``certificate`` certifies ``block``, then :meth:`apply` it."""
        self.finality.check(block.header, certificate)
        return self.apply(block, certificate)

    def attach_certificate(self, height: int, certificate: CommitCertificate) -> None:
        """Verify and store the commit certificate of a stored block."""
        header = self.store.get_header(height)
        if header is None:
            raise ChainError(f"no block at height {height}")
        self.finality.check(header, certificate)
        self.store.put_certificate(height, certificate)

    def export_blocks(
        self, from_height: int, to_height: int
    ) -> list[tuple[Block, CommitCertificate | None]]:
        """Blocks ``from_height..to_height`` (inclusive, clipped to the head) with certificates."""
        out: list[tuple[Block, CommitCertificate | None]] = []
        for height in range(max(from_height, 0), min(to_height, self.height) + 1):
            block = self.store.get_block(height)
            if block is None:
                raise StorageError(f"block {height} is missing")
            out.append((block, self.store.get_certificate(height)))
        return out

    def get_block(self, height: int) -> Block:
        block = self.store.get_block(height)
        if block is None:
            raise ChainError(f"no block at height {height}")
        return block

    def get_receipts(self, height: int) -> tuple[Receipt, ...]:
        receipts = self.store.get_receipts(height)
        if receipts is None:
            raise ChainError(f"no block at height {height}")
        return receipts

    def get_tx_proof(self, height: int, tx_hash: bytes) -> MerkleProof:
        """Proof that ``tx_hash`` is in the ``tx_root`` of block ``height``."""
        hashes = [tx.tx_hash for tx in self.get_block(height).transactions]
        if tx_hash not in hashes:
            raise ChainError(f"transaction not in block {height}")
        return inclusion_proof(hashes, hashes.index(tx_hash))

    def get_receipt_proof(self, height: int, tx_hash: bytes) -> tuple[Receipt, MerkleProof]:
        """The receipt of ``tx_hash`` in block ``height`` and its proof (``receipts_root``)."""
        receipts = self.get_receipts(height)
        for i, receipt in enumerate(receipts):
            if receipt.tx_hash == tx_hash:
                return receipt, inclusion_proof([encode(r) for r in receipts], i)
        raise ChainError(f"transaction not in block {height}")

    def get_state_proof(self, key: bytes) -> tuple[int, bytes | None, StateProof]:
        """(head height, value or None, proof against the head's state root)."""
        value, proof = self._state.prove(key)
        return self.height, value, proof

    def _store(
        self, block: Block, outcome: BlockOutcome, certificate: CommitCertificate | None
    ) -> None:
        try:
            self.store.put_block(block, outcome.receipts, certificate, outcome.write_set)
        except BaseException:
            revert_block(self._state, outcome)
            raise
        self._head = block.header
