"""Shared helpers for ledger tests: keys, a 4-replica genesis, transactions, certificates."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.block import BlockHeader, GenesisConfig
from gridledger.ledger.certificate import (
    BlockVote,
    CommitCertificate,
    Validator,
    VoteSignature,
    sign_vote,
)
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvContract, KvSet
from gridledger.ledger.tx import Transaction

CHAIN = "test-chain"


def key(label: str) -> Ed25519PrivateKey:
    """A deterministic key named by ``label``."""
    return Ed25519PrivateKey(hashlib.sha256(label.encode()).digest())


REPLICA_KEYS = tuple(key(f"replica-{i}") for i in range(4))
VALIDATORS = tuple(Validator(i, k.public_key.raw) for i, k in enumerate(REPLICA_KEYS))
GENESIS = GenesisConfig.create(CHAIN, VALIDATORS, 1_000, {b"roles/ca": b"ca-key"})


def kv_tx(
    signer: Ed25519PrivateKey, nonce: int, k: bytes, v: bytes, chain: str = CHAIN
) -> Transaction:
    return Transaction.create(chain, KV_SET_KIND, KvSet(k, v), signer, nonce)


def make_registry() -> ContractRegistry:
    return ContractRegistry((KvContract(),))


def certify(
    header: BlockHeader,
    signers: Iterable[int] = (0, 1, 2),
    keys: Sequence[Ed25519PrivateKey] = REPLICA_KEYS,
) -> CommitCertificate:
    vote = BlockVote(header.chain_id, header.height, header.header_hash)
    sigs = tuple(VoteSignature(i, sign_vote(keys[i], vote)) for i in signers)
    return CommitCertificate(header.chain_id, header.height, header.header_hash, sigs)
