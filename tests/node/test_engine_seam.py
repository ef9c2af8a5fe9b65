"""The consensus seam: a toy second engine runs behind the same node core, ledger,
store and light client, with a finality rule of its own.

The engine here is a single sequencer (replica 0 orders everything and signs
what it executed). It is not fault tolerant and exists only to show that an
engine plugs in through :mod:`gridledger.consensus.engine` and
:mod:`gridledger.ledger.finality` without any change to the node.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import pytest

from gridledger.consensus.engine import (
    BroadcastFrame,
    EngineContext,
    EngineEffect,
    ExecuteBlock,
    Finalized,
    SendFrame,
    register_engine,
)
from gridledger.consensus.messages import ClientRequest
from gridledger.consensus.params import ConsensusParams
from gridledger.consensus.simhub import NetworkModel, SimHub, compute_targets
from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.errors import EncodingError
from gridledger.crypto.rng import DeterministicRng
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import (
    BlockVote,
    CertificateError,
    CommitCertificate,
    Validator,
    VoteSignature,
    sign_vote,
)
from gridledger.ledger.finality import (
    QuorumCertificateRule,
    build_bft_rule,
    register_finality_rule,
)
from gridledger.ledger.light import LightClient
from gridledger.ledger.plugins import build_registry
from gridledger.ledger.storage import MemoryBlockStore
from gridledger.node.core import BlockCommitted, NodeCore, Transmit
from tests.node.helpers import make_kv_txs

ENGINE = "test-sequencer"
CHAIN = "test-chain"


@wire_type("test.sequenced-batch/1")
@dataclass(frozen=True)
class SequencedBatch:
    height: int
    timestamp_ms: int
    requests: tuple[ClientRequest, ...]


@wire_type("test.sequencer-proof/1")
@dataclass(frozen=True)
class SequencerProof:
    certificate: CommitCertificate


class SequencerEngine:
    """Replica 0 cuts a batch every tick and signs each block it executed.

    Written against the engine interface without the optional ``on_requests``
    (``TakesRequestBatches``): the core hands it a call's requests one by one.
    """

    def __init__(self, context: EngineContext) -> None:
        self.ctx = context
        self.me = context.replica_id
        self.pending: list[ClientRequest] = []
        self.next_height = context.chain.height + 1
        self.waiting: dict[int, SequencedBatch] = {}
        self.proofs: dict[int, CommitCertificate] = {}
        self.executed: dict[int, bytes] = {}

    @property
    def view(self) -> int:
        return 0

    @property
    def leader(self) -> int:
        return 0

    def get_status(self) -> dict[str, Any]:
        return {"engine": ENGINE, "pending": len(self.pending)}

    def on_request(self, request: ClientRequest, now_ms: int) -> list[EngineEffect]:
        if self.me != 0:
            return [SendFrame(0, encode(request))]
        self.pending.append(request)
        return []

    def on_tick(self, now_ms: int) -> list[EngineEffect]:
        if self.me != 0 or not self.pending:
            return []
        batch = SequencedBatch(self.next_height, now_ms, tuple(self.pending))
        self.pending = []
        self.next_height += 1
        return [BroadcastFrame(encode(batch)), *self._execute_ready(batch)]

    def _execute_ready(self, batch: SequencedBatch) -> list[EngineEffect]:
        self.waiting[batch.height] = batch
        out: list[EngineEffect] = []
        height = max(self.executed, default=self.ctx.chain.height) + 1
        while height in self.waiting:
            b = self.waiting.pop(height)
            out.append(ExecuteBlock(b.height, b.requests, b.timestamp_ms))
            height += 1
        return out

    def on_frame(self, sender: int, frame: bytes, now_ms: int) -> list[EngineEffect]:
        if sender != 0:
            if self.me == 0:
                with contextlib.suppress(EncodingError):
                    self.pending.append(decode_as(ClientRequest, frame))
            return []
        try:
            batch = decode_as(SequencedBatch, frame)
        except EncodingError:
            proof = decode_as(SequencerProof, frame).certificate
            self.proofs[proof.height] = proof
            return self._finalize(proof.height)
        return self._execute_ready(batch)

    def on_executed(self, height: int, header_hash: bytes) -> list[EngineEffect]:
        self.executed[height] = header_hash
        if self.me != 0:
            return self._finalize(height)
        vote = BlockVote(self.ctx.genesis.chain_id, height, header_hash)
        sig = VoteSignature(0, sign_vote(self.ctx.key, vote))
        cert = CommitCertificate(vote.chain_id, height, header_hash, (sig,))
        return [BroadcastFrame(encode(SequencerProof(cert))), Finalized(height, header_hash, cert)]

    def _finalize(self, height: int) -> list[EngineEffect]:
        proof, mine = self.proofs.get(height), self.executed.get(height)
        if proof is None or mine is None or proof.header_hash != mine:
            return []
        return [Finalized(height, mine, proof)]

    def on_synced(self, height: int, header_hash: bytes, timestamp_ms: int) -> list[EngineEffect]:
        return []


register_engine(ENGINE, SequencerEngine)
register_finality_rule(
    ENGINE, lambda g: QuorumCertificateRule(g.chain_id, g.validators[:1], threshold=1)
)


def _run_consortium(n: int = 4) -> tuple[list[NodeCore], GenesisConfig]:
    from tests.ledger.helpers import REPLICA_KEYS

    keys = REPLICA_KEYS[:n]
    validators = tuple(Validator(i, k.public_key.raw) for i, k in enumerate(keys))
    genesis = GenesisConfig.create(CHAIN, validators, 0, engine=ENGINE)
    hub = SimHub(NetworkModel(delay_ms=(1, 5)), DeterministicRng("seam"))
    cores = [
        NodeCore(
            replica_id=i,
            key=k,
            genesis=genesis,
            store=MemoryBlockStore(),
            registry=build_registry(genesis),
            params=ConsensusParams(),
            rng=DeterministicRng(f"seam/{i}"),
        )
        for i, k in enumerate(keys)
    ]
    ids = list(range(n))

    def carry_out(sender: int, effects: list[Any]) -> None:
        for e in effects:
            if isinstance(e, Transmit):
                for to in compute_targets(sender, ids, e.to):
                    hub.transmit(sender, to, e.frame)

    def dispatch(kind: str, target: int, payload: object) -> None:
        core = cores[target]
        if kind == "tick":
            carry_out(target, core.on_tick(hub.now_ms))
            hub.schedule(hub.now_ms + 10, "tick", target, None)
        elif kind == "deliver":
            assert isinstance(payload, tuple)
            carry_out(target, core.on_frame(payload[0], payload[1], hub.now_ms))
        elif kind == "submit":
            assert isinstance(payload, list)
            _, effects = core.submit(payload, hub.now_ms)
            carry_out(target, effects)

    for i in ids:
        hub.schedule(1 + i, "tick", i, None)
    txs = [encode(tx) for tx in make_kv_txs(30, chain_id=CHAIN)]
    for j in range(0, 30, 3):  # three per call: the core hands them over one by one
        hub.schedule(5 * j, "submit", j % n, txs[j : j + 3])  # sent to followers too
    hub.run_until(3_000, dispatch)
    return cores, genesis


def test_a_second_engine_runs_behind_the_same_core_ledger_and_light_client() -> None:
    cores, genesis = _run_consortium()
    heads = {c.ledger.head for c in cores}
    assert len(heads) == 1
    head = heads.pop()
    assert head.height >= 2
    committed = sum(
        len(c.ledger.get_block(h).transactions)
        for c in cores[:1]
        for h in range(1, head.height + 1)
    )
    assert committed == 30
    # Every block carries the sequencer's proof; a light client checks it by the engine's rule.
    light = LightClient(genesis)
    for h in range(1, head.height + 1):
        header = cores[2].store.get_header(h)
        cert = cores[2].store.get_certificate(h)
        assert header is not None and cert is not None
        light.add_header(header, cert)
    assert light.head == head
    # The same proof is not enough under PBFT's rule, and another signer is not enough here.
    cert1 = cores[0].store.get_certificate(1)
    header1 = cores[0].store.get_header(1)
    assert cert1 is not None and header1 is not None
    with pytest.raises(CertificateError):
        build_bft_rule(genesis).check(header1, cert1)


def test_status_names_the_engine() -> None:
    cores, _ = _run_consortium()
    status = cores[1].get_status()
    assert status["engine"] == ENGINE and status["consensus"]["engine"] == ENGINE
    assert status["height"] == cores[0].ledger.height
    assert isinstance(cores[0].get_status()["bad_frames"], dict)
    assert not any(isinstance(e, BlockCommitted) for e in cores[0].on_tick(10_000))
