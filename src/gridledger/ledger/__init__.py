"""The ledger layer: transactions, blocks, Merkle proofs, state, contracts, storage, light client.

See ``docs/protocols/ledger.md``. The names most callers need are re-exported here.
"""

from gridledger.ledger.block import (
    Block,
    BlockHeader,
    GenesisConfig,
    build_block,
    genesis_block,
    validate_block_link,
)
from gridledger.ledger.certificate import CommitCertificate, Validator, verify_certificate
from gridledger.ledger.chain import Ledger
from gridledger.ledger.contracts import BlockContext, Contract, ContractRegistry, StateView
from gridledger.ledger.execution import BlockOutcome, Receipt, apply_block
from gridledger.ledger.light import LightClient
from gridledger.ledger.merkle import MerkleProof, inclusion_proof, merkle_root, verify_inclusion
from gridledger.ledger.smt import StateProof, verify_state_proof
from gridledger.ledger.state import WorldState
from gridledger.ledger.storage import BlockStore, MemoryBlockStore, SqliteBlockStore
from gridledger.ledger.tx import Transaction, verify_transaction_signature

__all__ = [
    "Block",
    "BlockContext",
    "BlockHeader",
    "BlockOutcome",
    "BlockStore",
    "CommitCertificate",
    "Contract",
    "ContractRegistry",
    "GenesisConfig",
    "Ledger",
    "LightClient",
    "MemoryBlockStore",
    "MerkleProof",
    "Receipt",
    "SqliteBlockStore",
    "StateProof",
    "StateView",
    "Transaction",
    "Validator",
    "WorldState",
    "apply_block",
    "build_block",
    "genesis_block",
    "inclusion_proof",
    "merkle_root",
    "validate_block_link",
    "verify_certificate",
    "verify_inclusion",
    "verify_state_proof",
    "verify_transaction_signature",
]
