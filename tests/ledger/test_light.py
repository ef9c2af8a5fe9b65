from __future__ import annotations

import dataclasses

import pytest

from gridledger.ledger.block import Block
from gridledger.ledger.certificate import VoteSignature
from gridledger.ledger.chain import Ledger
from gridledger.ledger.errors import CertificateError, ChainError, ProofError
from gridledger.ledger.light import LightClient
from gridledger.ledger.merkle import MerkleProof, inclusion_proof
from gridledger.ledger.storage import MemoryBlockStore

from .helpers import GENESIS, certify, key, kv_tx, make_registry

ALICE = key("alice")


@pytest.fixture(scope="module")
def chain() -> tuple[Ledger, list[Block]]:
    ledger = Ledger(MemoryBlockStore(), make_registry(), GENESIS)
    blocks = []
    for h in range(1, 4):
        txs = [kv_tx(ALICE, 10 * h + i, b"k%d" % i, b"%d" % h) for i in range(3)]
        blocks.append(ledger.commit(txs, 5_000 + h, h % 4, 0)[0])
    return ledger, blocks


def test_accepts_a_valid_chain(chain: tuple[Ledger, list[Block]]) -> None:
    ledger, blocks = chain
    light = LightClient(GENESIS)
    for b in blocks:
        light.add_header(b.header, certify(b.header, (3, 1, 0)))
    assert light.head == ledger.head
    tx = blocks[1].transactions[2]
    light.verify_tx_inclusion(2, tx.tx_hash, ledger.get_tx_proof(2, tx.tx_hash))
    height, value, proof = ledger.get_state_proof(b"test/k1")
    assert value == b"3"
    light.verify_state_value(height, b"test/k1", value, proof)


def test_rejects_a_forged_header(chain: tuple[Ledger, list[Block]]) -> None:
    _, blocks = chain
    light = LightClient(GENESIS)
    h1 = blocks[0].header
    forged = dataclasses.replace(h1, state_root=bytes(32))
    with pytest.raises(CertificateError):
        light.add_header(forged, certify(h1))  # genuine certificate, altered header
    with pytest.raises(ChainError):
        light.add_header(blocks[1].header, certify(blocks[1].header))  # skips height 1
    with pytest.raises(ChainError):
        bad_link = dataclasses.replace(h1, prev_hash=bytes(32))
        light.add_header(bad_link, certify(bad_link))
    with pytest.raises(ChainError):
        other = dataclasses.replace(h1, chain_id="other")
        light.add_header(other, certify(other))
    light.add_header(h1, certify(h1))
    assert light.head == h1


def test_rejects_bad_certificates(chain: tuple[Ledger, list[Block]]) -> None:
    _, blocks = chain
    light = LightClient(GENESIS)
    header = blocks[0].header
    good = certify(header)
    too_few = certify(header, (0, 1))
    duplicate = dataclasses.replace(good, signatures=(*too_few.signatures, too_few.signatures[0]))
    bad_sig = dataclasses.replace(
        good, signatures=(*too_few.signatures, VoteSignature(2, bytes(64)))
    )
    outsider_keys = [key(f"outsider-{i}") for i in range(5)]
    outsider = certify(header, (4, 0, 1), keys=outsider_keys)  # replica 4 is no validator
    impostor = certify(header, (0, 1, 2), keys=[key("x"), key("y"), key("z")])
    for cert in (too_few, duplicate, bad_sig, outsider, impostor):
        with pytest.raises(CertificateError):
            light.add_header(header, cert)
    assert light.head.height == 0


def test_rejects_bad_proofs(chain: tuple[Ledger, list[Block]]) -> None:
    ledger, blocks = chain
    light = LightClient(GENESIS)
    for b in blocks:
        light.add_header(b.header, certify(b.header))
    tx = blocks[0].transactions[0]
    proof = ledger.get_tx_proof(1, tx.tx_hash)
    with pytest.raises(ProofError):
        light.verify_tx_inclusion(2, tx.tx_hash, proof)  # wrong block
    with pytest.raises(ProofError):
        light.verify_tx_inclusion(1, bytes(32), proof)  # wrong transaction
    height, value, sproof = ledger.get_state_proof(b"test/k0")
    assert value is not None
    with pytest.raises(ProofError):
        light.verify_state_value(height, b"test/k0", b"999", sproof)  # wrong value
    with pytest.raises(ProofError):
        light.verify_state_value(height, b"test/k0", None, sproof)  # claimed absent
    with pytest.raises(ProofError):
        light.verify_state_value(1, b"test/k0", value, sproof)  # stale header
    with pytest.raises(ChainError):
        light.verify_state_value(9, b"test/k0", value, sproof)  # unknown height


def test_proof_size_must_match_the_header_tx_count() -> None:
    ledger = Ledger(MemoryBlockStore(), make_registry(), GENESIS)
    txs = [kv_tx(ALICE, i, b"k%d" % i, b"v") for i in range(1, 4)]
    block, _ = ledger.commit(txs, 2_000, 0, 0)
    light = LightClient(GENESIS)
    light.add_header(block.header, certify(block.header))
    hashes = [tx.tx_hash for tx in txs]
    good = inclusion_proof(hashes, 2)
    light.verify_tx_inclusion(1, hashes[2], good)
    # The same path also hashes up to the root as "index 1 of 2": refused now.
    lying = MerkleProof(1, 2, good.path)
    with pytest.raises(ProofError):
        light.verify_tx_inclusion(1, hashes[2], lying)
