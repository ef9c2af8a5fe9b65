"""Contract evidence: a default an evidence source wrote from its own state is enough to
trace on chain; nothing anyone else can write is.

A stub source contract (namespace ``source``, named in the identity genesis) writes
whatever :class:`ContractDefault` it is given, standing in for the market (whose own
end-to-end test is in ``tests/market/test_settlement.py``); the KV contract (namespace
``test``) plays the attacker's free-write namespace.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.errors import ConfigError
from gridledger.identity.ca import (
    compute_certificate_der,
    compute_certificate_hash,
    compute_member_key,
    get_attributes,
)
from gridledger.identity.client import IdentityChainView, create_contract_evidence_tx
from gridledger.identity.contracts import (
    KIND_CONTRACT_EVIDENCE,
    KIND_EVIDENCE,
    KIND_TRACE,
    Reader,
)
from gridledger.identity.errors import EvidenceRejected, TracingError
from gridledger.identity.genesis import (
    GENESIS_EVIDENCE_SOURCES_KEY,
    EvidenceSources,
    compute_evidence_sources,
    compute_evidence_sources_state,
    compute_identity_genesis_state,
    get_identity_config,
    read_identity_config,
)
from gridledger.identity.messages import (
    ContractDefault,
    ContractEvidence,
    SignedPseudonymCertificate,
    TraceRecord,
    TraceResult,
    compute_contract_default_key,
)
from gridledger.identity.plugin import PLUGIN
from gridledger.identity.registration import PseudonymCredential
from gridledger.identity.trace_center import (
    TraceRequestRead,
    compute_contract_evidence_id,
    compute_evidence_id,
    compute_trace,
    on_trace_request,
)
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.contracts import BlockContext, ContractRegistry, StateView
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvContract, KvSet
from gridledger.ledger.execution import Receipt, apply_block
from gridledger.ledger.state import WorldState, compute_state_key
from gridledger.ledger.tx import Transaction
from tests.ledger.helpers import VALIDATORS

from .conftest import NOW, World
from .helpers import Chain, issue_round, make_evidence

SOURCES = ("source",)
ROUND = 40
NOW_MS = NOW * 1000
DEADLINE_MS = NOW_MS - 60_000  # the obligation fell due a minute ago
FOUND_MS = NOW_MS - 30_000  # the source contract found the default 30 s later
SOURCE_KIND = "source.default"
_ids = itertools.count()


@dataclass(frozen=True)
class SourceStub:
    """An evidence source: writes the default it is given at ``default/<its id>``."""

    namespace: str = "source"
    kinds: frozenset[str] = frozenset({SOURCE_KIND})

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        default = decode_as(ContractDefault, tx.payload)
        view.put(compute_contract_default_key(default.evidence_id), tx.payload)
        return b""


class SourcedChain(Chain):
    """The identity test chain, built from a genesis naming ``source`` an evidence source,
    with the source stub and the KV contract beside it."""

    def __init__(self, world: World, sources: tuple[str, ...] = SOURCES) -> None:
        entries = compute_identity_genesis_state(
            world.roots, world.rm_blind.cert, world.tc_key, world.mm.cert, sources
        )
        self.state = WorldState(entries.items())
        genesis = GenesisConfig.create("test-chain", VALIDATORS, NOW_MS - 100_000, entries)
        (identity,) = PLUGIN.build_contracts(genesis)
        self.registry = ContractRegistry((KvContract(), identity, SourceStub()))
        self.height = 0
        self.nonce = 0
        self.anyone = Ed25519PrivateKey.generate(DeterministicRng("anyone"))

    def write_default(self, default: ContractDefault) -> None:
        assert self.submit(SOURCE_KIND, default, self.anyone).ok

    def point(self, namespace: str, evidence_id: bytes, now: int = NOW) -> Receipt:
        return self.submit(
            KIND_CONTRACT_EVIDENCE, ContractEvidence(namespace, evidence_id), self.anyone, now
        )

    def read(self, evidence_id: bytes) -> TraceRequestRead:
        """What a trustee reads (here from one replica's state)."""
        read = Reader(self.get).trace_request(
            evidence_id, lambda ns, key: self.state.get(compute_state_key(ns, key))
        )
        assert read.contract is not None
        return read


@dataclass
class Setup:
    chain: SourcedChain
    creds: list[PseudonymCredential]  # world.users[0..3], round ROUND
    later: list[PseudonymCredential]  # the same users, round ROUND + 1


@dataclass(frozen=True)
class Issued:
    creds: list[PseudonymCredential]
    later: list[PseudonymCredential]
    batch: tuple[SignedPseudonymCertificate, ...]
    batch2: tuple[SignedPseudonymCertificate, ...]


@pytest.fixture(scope="module")
def issued(world: World) -> Issued:
    rm = world.new_rm(k=4)
    creds, batch = issue_round(world, rm, range(4), ROUND, "contract-evidence")
    later, batch2 = issue_round(world, rm, range(4), ROUND + 1, "contract-evidence-next")
    return Issued(creds, later, batch, batch2)


@pytest.fixture
def setup(world: World, issued: Issued) -> Setup:
    creds, later, batch, batch2 = issued.creds, issued.later, issued.batch, issued.batch2
    chain = SourcedChain(world)
    assert chain.publish(world, ROUND, batch).ok
    assert chain.publish(world, ROUND + 1, batch2).ok
    return Setup(chain, creds, later)


def make_default(
    accused: bytes,
    *,
    round_: int = ROUND,
    evidence_id: bytes | None = None,
    deadline_ms: int = DEADLINE_MS,
    found_ms: int = FOUND_MS,
) -> ContractDefault:
    eid = evidence_id if evidence_id is not None else next(_ids).to_bytes(32, "big")
    return ContractDefault(eid, accused, round_, deadline_ms, "energy not delivered", 5, found_ms)


def pk(cred: PseudonymCredential) -> bytes:
    return cred.pseudonym.public_key.raw


def test_contract_default_is_traced_on_chain_blacklisted_and_revoked(
    world: World, setup: Setup
) -> None:
    chain, reneger, honest = setup.chain, setup.creds[0], setup.creds[1]
    default = make_default(pk(reneger))
    chain.write_default(default)
    receipt = chain.point("source", default.evidence_id)  # anyone may point at it
    assert receipt.ok, receipt.reason
    eid = compute_contract_evidence_id(ContractEvidence("source", default.evidence_id))
    assert receipt.data == eid
    record = Reader(chain.get).contract_evidence(eid)
    assert record is not None and record.default == default and record.accused == pk(reneger)
    # t of n trustees check the evidence on chain, then release shares of exactly that tag
    rng = DeterministicRng("contract-tc")
    read = chain.read(eid)
    shares = [on_trace_request(t, read, rng, evidence_sources=SOURCES) for t in world.trustees[:3]]
    assert read.accused is not None
    outcome = compute_trace(world.tc_key, read.accused.certificate, shares, eid, world.roots, NOW)
    member_cert = world.users[0].cert
    assert outcome.identity == compute_certificate_hash(member_cert)
    trace = TraceRecord(eid, outcome.entries, compute_certificate_der(member_cert))
    receipt = chain.submit(KIND_TRACE, trace, chain.anyone)
    assert receipt.ok, receipt.reason
    result = decode_as(TraceResult, receipt.data)
    assert result.accountable and result.pseudonym_key == pk(reneger)
    reader = Reader(chain.get)
    assert reader.trace(eid) == result
    assert reader.is_blacklisted(compute_member_key(get_attributes(member_cert)))
    assert reader.is_revoked(compute_certificate_hash(member_cert))
    assert reader.is_pseudonym_revoked(pk(reneger))
    assert not reader.is_pseudonym_revoked(pk(honest))
    # once traced: no second trace, no trustee share, no new evidence against the pseudonym
    assert not chain.submit(KIND_TRACE, trace, chain.anyone).ok
    with pytest.raises(TracingError, match="already traced"):
        on_trace_request(world.trustees[0], chain.read(eid), rng, evidence_sources=SOURCES)
    again = make_default(pk(reneger))
    chain.write_default(again)
    assert "revoked" in chain.point("source", again.evidence_id).reason


def test_replay_is_refused(setup: Setup) -> None:
    default = make_default(pk(setup.creds[2]))
    setup.chain.write_default(default)
    assert setup.chain.point("source", default.evidence_id).ok
    assert "already recorded" in setup.chain.point("source", default.evidence_id).reason


def test_a_default_written_in_the_kv_namespace_traces_nobody(world: World, setup: Setup) -> None:
    """The attacker writes a perfect default naming an honest pseudonym where it can."""
    chain, honest = setup.chain, setup.creds[1]
    forged = make_default(pk(honest))
    kv = KvSet(compute_contract_default_key(forged.evidence_id), encode(forged))
    assert chain.submit(KV_SET_KIND, kv, chain.anyone).ok
    receipt = chain.point("test", forged.evidence_id)
    assert not receipt.ok and "not an evidence source" in receipt.reason
    for ns in ("identity", "payments", "market", ""):
        assert "not an evidence source" in chain.point(ns, forged.evidence_id).reason
    # the forged id in the real source namespace: nothing there
    assert "no default record" in chain.point("source", forged.evidence_id).reason
    eid = compute_contract_evidence_id(ContractEvidence("test", forged.evidence_id))
    assert Reader(chain.get).contract_evidence(eid) is None
    # and no trustee releases a share for it, whatever a combiner claims was read
    contract_like = TraceRequestRead(None, None, None)
    with pytest.raises(TracingError, match="no such evidence"):
        on_trace_request(world.trustees[0], contract_like, DeterministicRng("x"))
    # nor can a trace record be posted against it
    trace = TraceRecord(eid, (), compute_certificate_der(world.users[1].cert))
    assert "no such evidence" in chain.submit(KIND_TRACE, trace, chain.anyone).reason


def test_evidence_against_a_pseudonym_not_certified_for_that_round_is_refused(
    setup: Setup,
) -> None:
    chain = setup.chain
    stranger = Ed25519PrivateKey.generate(DeterministicRng("stranger")).public_key.raw
    cases = {
        "no published certificate": make_default(stranger),
        "not certified for round": make_default(pk(setup.later[0]), round_=ROUND),
        "not certified for round 39": make_default(pk(setup.creds[0]), round_=ROUND - 1),
    }
    for reason, default in cases.items():
        chain.write_default(default)
        receipt = chain.point("source", default.evidence_id)
        assert not receipt.ok and reason in receipt.reason, receipt.reason


def test_timing_and_form_are_checked(setup: Setup) -> None:
    chain, who = setup.chain, pk(setup.creds[3])
    window_ms = 3600 * 1000
    cases = {
        "found before its deadline": make_default(who, found_ms=DEADLINE_MS),
        "from the future": make_default(who, found_ms=NOW_MS + 1),
        "dispute window has closed": make_default(
            who, found_ms=NOW_MS - window_ms - 1, deadline_ms=NOW_MS - window_ms - 2
        ),
    }
    for reason, default in cases.items():
        chain.write_default(default)
        receipt = chain.point("source", default.evidence_id)
        assert not receipt.ok and reason in receipt.reason, receipt.reason
    # stored under another id than the one it names
    inner = make_default(who)
    moved = b"\x77" * 32
    where = compute_state_key("source", compute_contract_default_key(moved))
    chain.state.apply_writes({where: encode(inner)})  # a buggy source, say
    assert "another evidence id" in chain.point("source", moved).reason
    chain.state.apply_writes({where: b"\x01"})
    assert "malformed default record" in chain.point("source", moved).reason
    for bad_id in (b"", b"\x00" * 65):
        assert "source evidence id" in chain.point("source", bad_id).reason
    junk = chain.submit(KIND_CONTRACT_EVIDENCE, b"\xff\x00", chain.anyone)
    assert not junk.ok and junk.reason
    # at the window's last millisecond it still counts
    edge = make_default(who, found_ms=NOW_MS - window_ms, deadline_ms=NOW_MS - window_ms - 1)
    chain.write_default(edge)
    assert chain.point("source", edge.evidence_id).ok


def test_trustee_rechecks_contract_evidence_on_chain(world: World, setup: Setup) -> None:
    chain = setup.chain
    default = make_default(pk(setup.creds[2]))
    chain.write_default(default)
    assert chain.point("source", default.evidence_id).ok
    eid = compute_contract_evidence_id(ContractEvidence("source", default.evidence_id))
    read = chain.read(eid)
    trustee, rng = world.trustees[0], DeterministicRng("trustee")
    share = on_trace_request(trustee, read, rng, evidence_sources=SOURCES)
    assert share.share.evidence_id == eid
    with pytest.raises(EvidenceRejected, match="not an evidence source"):
        on_trace_request(trustee, read, rng)  # the trustee's genesis names no source
    other = make_default(pk(setup.creds[3]), evidence_id=default.evidence_id)
    for source in (None, other):  # the source no longer shows it, or shows another record
        with pytest.raises(EvidenceRejected, match="differs from the recorded one"):
            on_trace_request(
                trustee, TraceRequestRead(None, read.accused, None, None, read.contract, source),
                rng, evidence_sources=SOURCES,
            )  # fmt: skip
    wrong_cert = Reader(chain.get).pseudonym_certificate(pk(setup.creds[3]))
    with pytest.raises(EvidenceRejected, match="no published certificate"):
        on_trace_request(
            trustee, TraceRequestRead(None, wrong_cert, None, None, read.contract, read.source),
            rng, evidence_sources=SOURCES,
        )  # fmt: skip


def test_obligation_evidence_still_traces_unchanged(world: World, setup: Setup) -> None:
    """The old kind is untouched, and its ids never collide with contract evidence."""
    chain = setup.chain
    evidence = make_evidence(setup.creds[1], setup.creds[2], ROUND, obligation_id=b"ob-77")
    assert chain.submit(KIND_EVIDENCE, evidence, setup.creds[2].pseudonym).ok
    eid = compute_evidence_id(evidence)
    reader = Reader(chain.get)
    assert reader.accused(eid) == pk(setup.creds[1]) and reader.contract_evidence(eid) is None


def test_client_builds_the_pointer_and_its_id(setup: Setup) -> None:
    default = make_default(pk(setup.creds[0]))
    setup.chain.write_default(default)
    tx, eid = create_contract_evidence_tx(
        "test-chain", "source", default.evidence_id, setup.chain.anyone, 999
    )
    setup.chain.height += 1
    ctx = BlockContext("test-chain", setup.chain.height, NOW_MS, 0)
    (receipt,) = apply_block(setup.chain.state, setup.chain.registry, [tx], ctx).receipts
    assert receipt.ok and receipt.data == eid


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    who=st.sampled_from(["r0", "r1", "next0", "stranger"]),
    round_=st.sampled_from([ROUND, ROUND + 1, ROUND + 2]),
    found_offset=st.integers(min_value=-2 * 3600 * 1000, max_value=10_000),
)
def test_property_only_a_certified_pseudonym_of_that_round_in_window_is_accepted(
    setup: Setup, who: str, round_: int, found_offset: int
) -> None:
    keys = {
        "r0": (pk(setup.creds[0]), ROUND),
        "r1": (pk(setup.creds[1]), ROUND),
        "next0": (pk(setup.later[0]), ROUND + 1),
        "stranger": (b"\x05" * 32, None),
    }
    accused, certified_round = keys[who]
    found = NOW_MS + found_offset
    default = make_default(accused, round_=round_, found_ms=found, deadline_ms=found - 1)
    setup.chain.write_default(default)
    receipt = setup.chain.point("source", default.evidence_id)
    expected = certified_round == round_ and NOW_MS - 3600 * 1000 <= found <= NOW_MS
    assert receipt.ok == expected, receipt.reason


# -- genesis ---------------------------------------------------------------------------


def _genesis(state: dict[bytes, bytes]) -> GenesisConfig:
    return GenesisConfig.create("test-chain", VALIDATORS, NOW_MS - 100_000, state)


def test_genesis_without_sources_is_unchanged_and_names_none(world: World) -> None:
    old = compute_identity_genesis_state(
        world.roots, world.rm_blind.cert, world.tc_key, world.mm.cert
    )
    assert GENESIS_EVIDENCE_SOURCES_KEY not in old and len(old) == 4
    config = get_identity_config(_genesis(old))
    assert config is not None and config.evidence_sources == ()
    new = compute_identity_genesis_state(
        world.roots, world.rm_blind.cert, world.tc_key, world.mm.cert, ("market", "source")
    )
    assert {k: v for k, v in new.items() if k != GENESIS_EVIDENCE_SOURCES_KEY} == old
    config = get_identity_config(_genesis(new))
    assert config is not None and config.evidence_sources == ("market", "source")
    read = read_identity_config(lambda key: new.get(b"identity/" + key))
    assert read is not None and read.evidence_sources == ("market", "source")
    assert {**old, **compute_evidence_sources_state(("market", "source"))} == new
    assert compute_evidence_sources_state(()) == {}


@pytest.mark.parametrize(
    "raw",
    [
        b"\x01",
        encode(EvidenceSources(())),
        encode(EvidenceSources(("market", "market"))),
        encode(EvidenceSources(("identity",))),
        encode(EvidenceSources(("test",))),  # the KV namespace: anyone writes there
        encode(EvidenceSources(("a/b",))),
        encode(EvidenceSources(("",))),
        encode(EvidenceSources(tuple(f"ns{i}" for i in range(17)))),
    ],
)
def test_corrupt_evidence_sources_are_a_config_error(world: World, raw: bytes) -> None:
    with pytest.raises(ConfigError):
        compute_evidence_sources(raw)
    state = compute_identity_genesis_state(
        world.roots, world.rm_blind.cert, world.tc_key, world.mm.cert
    )
    state[GENESIS_EVIDENCE_SOURCES_KEY] = raw
    with pytest.raises(ConfigError):
        get_identity_config(_genesis(state))


def test_sources_without_the_identity_section_are_a_config_error(world: World) -> None:
    state = {GENESIS_EVIDENCE_SOURCES_KEY: encode(EvidenceSources(("market",)))}
    with pytest.raises(ConfigError, match="incomplete"):
        get_identity_config(_genesis(state))
    with pytest.raises(ConfigError):
        compute_identity_genesis_state(
            world.roots, world.rm_blind.cert, world.tc_key, world.mm.cert, ("test",)
        )


class AgreedState:
    """An f+1-agreed ``state`` read, answered from one in-memory chain."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    async def call_agreed(self, method: str, params: dict[str, Any], timeout: float = 5.0) -> Any:
        assert method == "state"
        value = self.chain.state.get(bytes.fromhex(params["key"]))
        return {"value": None if value is None else value.hex()}


def test_client_reads_what_a_trustee_needs(world: World, setup: Setup) -> None:
    chain = setup.chain
    default = make_default(pk(setup.creds[1]))
    chain.write_default(default)
    assert chain.point("source", default.evidence_id).ok
    eid = compute_contract_evidence_id(ContractEvidence("source", default.evidence_id))
    ob = make_evidence(setup.creds[2], setup.creds[3], ROUND, obligation_id=b"ob-client")
    assert chain.submit(KIND_EVIDENCE, ob, setup.creds[3].pseudonym).ok
    view = IdentityChainView(AgreedState(chain))

    async def scenario() -> None:
        assert await view.get_evidence_sources() == SOURCES
        read = await view.get_trace_request(eid)
        assert read == chain.read(eid) and read.source == default
        share = on_trace_request(
            world.trustees[1], read, DeterministicRng("c"), evidence_sources=SOURCES
        )
        assert share.share.evidence_id == eid
        ob_read = await view.get_trace_request(compute_evidence_id(ob))
        assert ob_read.record is not None and ob_read.contract is None
        assert ob_read.accuser is not None and ob_read.accused is not None
        nothing = await view.get_trace_request(b"\x00" * 32)
        assert (nothing.record, nothing.contract, nothing.accused) == (None, None, None)
        src = await view.get_contract_default("source", default.evidence_id)
        assert src == default
        assert await view.get_contract_default("test", default.evidence_id) is None

    asyncio.run(asyncio.wait_for(scenario(), 30))
