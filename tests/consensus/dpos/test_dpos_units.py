"""DPoS pieces on their own: elections, the contract's slot record, checks on proposals."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.consensus.dpos.config import (
    DposConfig,
    Schedule,
    compute_election,
    compute_full_key,
    compute_slot_time,
    get_config,
    make_genesis_section,
)
from gridledger.consensus.dpos.contract import EVIDENCE_KIND, VOTE_KIND, DposVote
from gridledger.consensus.dpos.engine import DposEngine
from gridledger.consensus.dpos.errors import EvidenceInvalid
from gridledger.consensus.dpos.messages import (
    DoubleProduction,
    Forward,
    Proposal,
    sign_proposal,
    verify_double_production,
)
from gridledger.consensus.engine import BroadcastFrame, EngineContext, PersistState, SendFrame
from gridledger.consensus.messages import ClientRequest
from gridledger.consensus.params import ConsensusParams
from gridledger.crypto.encoding import decode, decode_as, encode, from_value
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.errors import ConfigError
from gridledger.ledger.block import GenesisConfig, genesis_block
from gridledger.ledger.chain import Ledger
from gridledger.ledger.storage import MemoryBlockStore
from gridledger.ledger.tx import Transaction
from tests.consensus.dpos.helpers import CHAIN, INTERVAL_MS, make_genesis, make_registry


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(0, 8),
    st.dictionaries(st.integers(0, 19), st.integers(0, 5)),
    st.frozensets(st.integers(0, 19)),
)
def test_an_election_always_fills_every_slot_with_distinct_candidates(
    p: int, extra: int, votes: dict[int, int], excluded: frozenset[int]
) -> None:
    candidates = list(range(p + extra))
    s = compute_election(3, candidates, votes, excluded, p)
    assert len(s.producers) == p == len(set(s.producers))
    assert set(s.producers) | set(s.standby) == set(candidates)
    assert not set(s.producers) & set(s.standby)
    eligible = [c for c in candidates if c not in excluded]
    if len(eligible) >= p:  # the barred are only drafted back when they are needed
        assert not set(s.producers) & excluded
    # Nobody outside the chosen set has more votes than someone in it (among the eligible).
    chosen_eligible = [c for c in s.producers if c not in excluded]
    left_eligible = [c for c in s.standby if c not in excluded]
    if chosen_eligible and left_eligible:
        assert min(votes.get(c, 0) for c in chosen_eligible) >= max(
            votes.get(c, 0) for c in left_eligible
        )


def test_genesis_section_is_checked() -> None:
    genesis, _ = make_genesis(5, 4)
    assert get_config(genesis) == DposConfig(producers=4, block_interval_ms=INTERVAL_MS)
    too_many = GenesisConfig.create(
        CHAIN, genesis.validators, 0, make_genesis_section(DposConfig(producers=6)), "dpos"
    )
    with pytest.raises(ConfigError):
        get_config(too_many)
    corrupt = GenesisConfig.create(
        CHAIN, genesis.validators, 0, {compute_full_key(b"genesis/config"): b"\x01"}, "dpos"
    )
    with pytest.raises(ConfigError):
        get_config(corrupt)


def _ledger(candidates: int = 5, producers: int = 4) -> tuple[Ledger, GenesisConfig]:
    genesis, _ = make_genesis(candidates, producers)
    return Ledger(MemoryBlockStore(), make_registry(genesis), genesis), genesis


def _get(ledger: Ledger, key: bytes) -> bytes | None:
    return ledger.state.get(compute_full_key(key))


def test_the_contract_records_each_skipped_slot_against_its_owner_in_the_next_block() -> None:
    ledger, _ = _ledger()
    ledger.commit([], compute_slot_time(1, 0, INTERVAL_MS), proposer=1, view=0)
    ledger.commit([], compute_slot_time(3, 0, INTERVAL_MS), proposer=3, view=0)  # 2 missed
    assert _get(ledger, b"missed/" + (2).to_bytes(8, "big")) == (2).to_bytes(4, "big")
    assert _get(ledger, b"missed/" + (1).to_bytes(8, "big")) is None
    assert _get(ledger, b"misses/" + (2).to_bytes(4, "big")) == (1).to_bytes(8, "big")
    assert _get(ledger, b"schedule/" + (2).to_bytes(8, "big")) is None
    # Slot 5 is the first block of round 1 (slot 4, 0's, missed too): the election for
    # round 2 bars 0 and 2 (miss limit 0), drafts standby 4, and since one candidate is
    # still needed, 0 (first of the barred by rank) comes back; 2 waits.
    ledger.commit([], compute_slot_time(5, 0, INTERVAL_MS), proposer=1, view=0)
    raw = _get(ledger, b"schedule/" + (2).to_bytes(8, "big"))
    assert raw is not None
    schedule = decode_as(Schedule, raw)
    assert schedule.round == 2 and schedule.producers == (0, 1, 3, 4)
    assert schedule.standby == (2,)
    assert _get(ledger, b"misses/" + (2).to_bytes(4, "big")) is None  # a new count


def test_votes_are_checked_and_replace_earlier_ones() -> None:
    ledger, _ = _ledger()
    member = Ed25519PrivateKey(b"m" * 32)
    txs = [
        Transaction.create(CHAIN, VOTE_KIND, DposVote((4, 1)), member, 1),
        Transaction.create(CHAIN, VOTE_KIND, DposVote((9,)), member, 2),  # not a candidate
        Transaction.create(CHAIN, VOTE_KIND, DposVote((1, 1)), member, 3),  # twice
        Transaction.create(CHAIN, VOTE_KIND, DposVote((0, 1, 2, 3, 4)), member, 4),  # > P
        Transaction.create(CHAIN, VOTE_KIND, b"\x00", member, 5),  # malformed
        Transaction.create(CHAIN, VOTE_KIND, DposVote((2,)), member, 6),
    ]
    _, outcome = ledger.commit(txs, 100, proposer=0, view=0)
    assert [r.ok for r in outcome.receipts] == [True, False, False, False, False, True]
    assert all(r.reason for r in outcome.receipts if not r.ok)
    assert _get(ledger, b"votes/" + member.public_key.raw) == encode(DposVote((2,)))


def test_evidence_must_hold_to_bar_a_producer() -> None:
    ledger, genesis = _ledger()
    _, keys = make_genesis(5, 4)
    reporter = Ed25519PrivateKey(b"r" * 32)
    parent = genesis_block(genesis).header.header_hash
    a = Proposal(CHAIN, 1, 3, parent, 3, compute_slot_time(3, 0, INTERVAL_MS), (), ())
    b = Proposal(CHAIN, 2, 3, b"\x07" * 32, 3, a.timestamp_ms, (), ())
    good = DoubleProduction(sign_proposal(keys[3], a), sign_proposal(keys[3], b))
    forged = DoubleProduction(sign_proposal(keys[3], a), sign_proposal(keys[2], b))
    same = DoubleProduction(sign_proposal(keys[3], a), sign_proposal(keys[3], a))
    assert verify_double_production(good, keys[3].public_key.raw) == 3
    for bad in (forged, same):
        with pytest.raises(EvidenceInvalid):
            verify_double_production(bad, keys[3].public_key.raw)
    txs = [
        Transaction.create(CHAIN, EVIDENCE_KIND, forged, reporter, 1),
        Transaction.create(CHAIN, EVIDENCE_KIND, same, reporter, 2),
        Transaction.create(CHAIN, EVIDENCE_KIND, good, reporter, 3),
        Transaction.create(CHAIN, EVIDENCE_KIND, good, reporter, 4),  # again: no change
    ]
    _, outcome = ledger.commit(txs, 100, proposer=0, view=0)
    assert [r.ok for r in outcome.receipts] == [False, False, True, True]
    assert _get(ledger, b"offences/" + (3).to_bytes(4, "big")) == (3).to_bytes(8, "big")


class _Chain:
    def __init__(self, genesis: GenesisConfig) -> None:
        self.header = genesis_block(genesis).header

    height = 0

    def get_header(self, height: int) -> object:
        return self.header if height == 0 else None

    def get_certificate(self, height: int) -> None:
        return None

    def get_state(self, key: bytes) -> None:
        return None


def _engine(replica: int = 0) -> tuple[DposEngine, GenesisConfig, list[Ed25519PrivateKey]]:
    genesis, keys = make_genesis(5, 4)
    ctx = EngineContext(
        replica,
        keys[replica],
        genesis,
        ConsensusParams(),
        _Chain(genesis),  # type: ignore[arg-type]
        lambda _k: None,
        DeterministicRng("u"),
    )
    return DposEngine(ctx), genesis, keys


def test_a_producer_persists_its_slot_before_it_broadcasts_and_produces_once() -> None:
    engine, _, _ = _engine(replica=1)
    effects = engine.on_tick(compute_slot_time(1, 0, INTERVAL_MS) + 5)
    assert effects[0] == PersistState("dpos/produced-slot", (1).to_bytes(8, "big"))
    assert isinstance(effects[1], BroadcastFrame)
    assert engine.on_tick(compute_slot_time(1, 0, INTERVAL_MS) + 6) == []  # once per slot
    assert engine.produced == 1 and engine.head_height == 1
    # Too late in its next slot (5 = 1 mod 4): it lets the slot pass.
    assert engine.on_tick(compute_slot_time(5, 0, INTERVAL_MS) + INTERVAL_MS // 2 + 1) == []
    assert engine.produced == 1


def test_attacker_proposals_are_refused_with_a_reason() -> None:
    engine, genesis, keys = _engine(replica=0)
    parent = genesis_block(genesis).header.header_hash
    now = compute_slot_time(2, 0, INTERVAL_MS) + 10
    engine.on_tick(now)

    def offer(p: Proposal, key: Ed25519PrivateKey) -> None:
        engine.on_frame(p.producer, encode(sign_proposal(key, p)), now)

    ts = compute_slot_time(2, 0, INTERVAL_MS)
    offer(Proposal(CHAIN, 1, 2, parent, 3, ts, (), ()), keys[3])  # slot 2 is 2's
    offer(Proposal(CHAIN, 1, 2, parent, 2, ts + 1, (), ()), keys[2])  # not the slot start
    offer(Proposal(CHAIN, 1, 2, parent, 2, ts, (), ()), keys[1])  # signed by another key
    offer(Proposal("other", 1, 2, parent, 2, ts, (), ()), keys[2])
    offer(Proposal(CHAIN, 1, 9, parent, 1, compute_slot_time(9, 0, INTERVAL_MS), (), ()), keys[1])
    offer(Proposal(CHAIN, 5, 2, parent, 2, ts, (), ()), keys[2])  # height does not follow
    engine.on_frame(2, b"\xa1\x61_\x63bad", now)
    engine.on_frame(2, b"\xff", now)
    assert engine.rejected == {
        "not-slot-owner": 1,
        "bad-timestamp": 1,
        "bad-signature": 1,
        "wrong-chain": 1,
        "from-the-future": 1,
        "bad-link": 1,
        "unknown-type": 1,
        "malformed": 1,
    }
    assert engine.head is None
    offer(Proposal(CHAIN, 1, 2, parent, 2, ts, (), ()), keys[2])  # the real one
    assert engine.head_height == 1


def test_a_light_client_finds_the_rule_of_an_installed_engine_without_importing_it() -> None:
    code = (
        "import sys\n"
        "from gridledger.crypto.signatures import Ed25519PrivateKey\n"
        "from gridledger.ledger.block import GenesisConfig\n"
        "from gridledger.ledger.certificate import Validator\n"
        "from gridledger.ledger.light import LightClient\n"
        "v = Validator(0, Ed25519PrivateKey(b'x' * 32).public_key.raw)\n"
        "for e in ('dpos', 'jetstream'):\n"
        "    LightClient(GenesisConfig.create('c', [v], 0, engine=e))\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_requests_arriving_together_are_forwarded_together_and_once() -> None:
    engine, _, _ = _engine(replica=0)
    reqs = [ClientRequest(b"c", i, b"tx %d" % i) for i in range(30)]
    effects = engine.on_requests([*reqs, reqs[0]], 1_000)  # a duplicate in the call
    frames = [e for e in effects if isinstance(e, SendFrame)]
    targets = {e.to for e in frames}
    assert frames and len(frames) == len(targets) and 0 not in targets  # one frame each
    forward = from_value(Forward, decode(frames[0].frame))
    assert list(forward.requests) == reqs
    assert engine.on_requests(reqs[:5], 1_001) == []  # known: not forwarded again
    big = [ClientRequest(b"c", 100 + i, i.to_bytes(2, "big") * 30_000) for i in range(150)]
    chunks = [e for e in engine.on_requests(big, 1_002) if e.to == min(targets)]
    assert len(chunks) == 3 and all(len(e.frame) <= 4 * 1024 * 1024 + 4096 for e in chunks)


def test_a_call_of_more_requests_than_a_block_holds_is_forwarded_in_full() -> None:
    """A producer keeps at most ``max_block_requests`` of one frame: a submit of 2,000
    goes out in frames of at most that many, and the next producer keeps them all."""
    sender, _, _ = _engine(replica=0)
    limit = sender.config.max_block_requests
    reqs = [ClientRequest(b"c", i, b"tx %d" % i) for i in range(2 * limit)]
    frames = [e for e in sender.on_requests(reqs, 1_000) if isinstance(e, SendFrame)]
    to = frames[0].to
    mine = [e for e in frames if e.to == to]
    assert len(mine) == 2
    assert all(len(from_value(Forward, decode(e.frame)).requests) <= limit for e in mine)
    receiver, _, _ = _engine(replica=to)
    for e in mine:
        receiver.on_frame(0, e.frame, 1_001)
    assert all(r.payload in receiver.mempool for r in reqs)


def test_the_signature_cache_cannot_be_hit_by_shifting_bytes_between_signature_and_message() -> (
    None
):
    """A remembered success must not vouch for ``(sig || m[0], m[1:])``: the cache key
    frames the signature's length, so a 65-byte "signature" is checked, and refused."""
    from gridledger.consensus.dpos.finality import is_valid_signature_cached
    from gridledger.crypto.hashing import register_tag

    tag = register_tag("gridledger/test/dpos-cache/1")
    key = Ed25519PrivateKey.generate(DeterministicRng(41))
    message = b"vote for block 7"
    signature = key.sign(tag, message)
    assert is_valid_signature_cached(key.public_key.raw, tag, message, signature)
    shifted = signature + message[:1]
    assert not is_valid_signature_cached(key.public_key.raw, tag, message[1:], shifted)
