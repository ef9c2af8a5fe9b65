"""The ordering-service engine on the simulated network and a simulated log."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.consensus.engine import AppendToLog, EngineContext, ExecuteBlock
from gridledger.consensus.messages import ClientRequest
from gridledger.consensus.ordering.config import OrderingConfig
from gridledger.consensus.ordering.engine import JetStreamEngine
from gridledger.consensus.ordering.messages import CUT, TX, LogEntry, OrderingConfirmation
from gridledger.consensus.params import ConsensusParams
from gridledger.crypto.encoding import encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.ledger.certificate import CertificateError, CommitCertificate
from gridledger.ledger.finality import build_bft_rule, get_finality_rule
from gridledger.ledger.light import LightClient
from tests.consensus.ordering.helpers import CHAIN, make_cluster, make_genesis
from tests.node.helpers import make_kv_txs


class _Chain:
    height = 0

    def get_header(self, height: int) -> None:
        return None

    def get_certificate(self, height: int) -> None:
        return None

    def get_state(self, key: bytes) -> None:
        return None


def _engine(config: OrderingConfig) -> JetStreamEngine:
    genesis, keys = make_genesis(3, config)
    ctx = EngineContext(
        0, keys[0], genesis, ConsensusParams(), _Chain(), lambda _k: None, DeterministicRng("e")
    )
    return JetStreamEngine(ctx)


def _tx_entry(i: int, ts: int = 5) -> bytes:
    return encode(LogEntry(TX, 0, ts, encode(ClientRequest(b"c", i, b"payload-%d" % i))))


def _cuts(engine: JetStreamEngine, log: list[bytes]) -> list[tuple[int, int, int]]:
    """(height, number of requests, timestamp) of each block the log yields."""
    out = []
    for seq, entry in enumerate(log, start=1):
        for e in engine.on_log(seq, entry, 0):
            if isinstance(e, ExecuteBlock):
                out.append((e.height, len(e.requests), e.timestamp_ms))
    return out


def test_blocks_are_cut_by_size_or_by_the_first_marker_for_the_next_height() -> None:
    log = [_tx_entry(i) for i in range(5)]  # size cut at 3: block 1
    log.append(encode(LogEntry(CUT, 1, 9, b"")))  # stale: 1 was closed by size
    log.append(encode(LogEntry(CUT, 2, 7, b"")))  # closes block 2 (2 requests)
    log.append(encode(LogEntry(CUT, 2, 8, b"")))  # a late duplicate marker: ignored
    log += [_tx_entry(10, ts=3), b"garbage", encode(LogEntry(CUT, 3, 4, b""))]
    engine = _engine(OrderingConfig(max_block_requests=3))
    assert _cuts(engine, log) == [(1, 3, 5), (2, 2, 7), (3, 1, 7)]
    assert engine.rejected["malformed-entry"] == 1
    # Entries repeated after a reconnect are not consumed twice.
    assert engine.on_log(3, _tx_entry(3), 0) == [] and engine.log_position == len(log)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 99), st.integers(1, 6).map(lambda h: -h)), max_size=60))
def test_every_replica_cuts_the_same_blocks_from_the_same_stream(items: list[int]) -> None:
    log = [_tx_entry(i) if i >= 0 else encode(LogEntry(CUT, -i, 1, b"")) for i in items]
    a = _engine(OrderingConfig(max_block_requests=4))
    b = _engine(OrderingConfig(max_block_requests=4))
    blocks = _cuts(a, log)
    assert blocks == _cuts(b, log)
    assert [h for h, _, _ in blocks] == list(range(1, len(blocks) + 1))
    assert all(0 < n <= 4 for _, n, _ in blocks)


def test_a_request_is_appended_under_its_payload_hash_and_a_cut_under_its_height() -> None:
    engine = _engine(OrderingConfig(cut_delay_ms=20))
    req = ClientRequest(b"c", 1, b"tx-bytes")
    (a,) = engine.on_request(req, 0)
    (b,) = engine.on_request(ClientRequest(b"other", 9, b"tx-bytes"), 0)
    assert isinstance(a, AppendToLog) and isinstance(b, AppendToLog) and a.key == b.key
    engine.on_log(1, _tx_entry(1), 100)
    assert engine.on_tick(110) == []
    cut = [e for e in engine.on_tick(125) if isinstance(e, AppendToLog)]
    assert [c.key for c in cut] == ["cut/1"]
    assert [e for e in engine.on_tick(130) if isinstance(e, AppendToLog)] == []  # asked once


def test_duplicate_submissions_commit_once_and_replicas_converge_after_a_crash() -> None:
    cluster = make_cluster(4, seed="ord-dup")
    txs = make_kv_txs(200, chain_id=CHAIN)
    for j, tx in enumerate(txs):
        for k in range(3):  # the same transaction to three replicas
            cluster.submit((j + k) % 4, encode(tx), at_ms=10 + 4 * j + k)
    cluster.at(300, lambda: cluster.crash(2))
    cluster.at(1_200, lambda: cluster.restart(2))
    cluster.run_until(3_000)
    assert cluster.get_safety_violations() == []
    heights = cluster.get_heights()
    assert len(set(heights.values())) == 1
    assert len(cluster.log) < 200 + 200  # one entry per transaction (plus cut markers)
    chain = cluster.get_core(2).ledger
    committed = [
        tx.tx_hash for h in range(1, chain.height + 1) for tx in chain.get_block(h).transactions
    ]
    assert sorted(committed) == sorted(tx.tx_hash for tx in txs)
    # Every block carries a majority proof; a light client follows the chain.
    light = LightClient(cluster.genesis)
    for h in range(1, chain.height + 1):
        header, cert = chain.store.get_header(h), chain.store.get_certificate(h)
        assert header is not None and cert is not None
        light.add_header(header, cert)


def test_the_proof_is_a_majority_of_replicas_and_nothing_less() -> None:
    cluster = make_cluster(5, seed="ord-proof")
    for j, tx in enumerate(make_kv_txs(20, chain_id=CHAIN)):
        cluster.submit(j % 5, encode(tx), at_ms=10 + 5 * j)
    cluster.crash(4)
    cluster.crash(3)  # 3 of 5 still sign: a majority
    cluster.run_until(2_000)
    core = cluster.get_core(0)
    header, cert = core.store.get_header(1), core.store.get_certificate(1)
    assert header is not None and cert is not None and len(cert.signatures) >= 3
    rule = get_finality_rule(cluster.genesis)
    rule.check(header, cert)
    two = CommitCertificate(cert.chain_id, 1, cert.header_hash, cert.signatures[:2])
    with pytest.raises(CertificateError):
        rule.check(header, two)
    with pytest.raises(CertificateError):
        build_bft_rule(cluster.genesis).check(header, two)


def test_forged_or_misattributed_confirmations_are_refused() -> None:
    engine = _engine(OrderingConfig())
    fake = OrderingConfirmation(1, b"\x01" * 32, 1, b"\x00" * 64)
    assert engine.on_frame(1, encode(fake), 0) == []
    assert engine.rejected["bad-signature"] == 1
    assert engine.on_frame(2, encode(fake), 0) == []  # says 1, came from 2
    assert engine.rejected["not-the-sender"] == 1
    assert engine.on_frame(1, b"\x00junk", 0) == []
    assert engine.rejected["malformed"] == 1
