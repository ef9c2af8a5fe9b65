"""The aggregation contract on a ledger: registration, batches, replay, feedback, equipment."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridledger.aggregation.contract import (
    BATCH_KIND,
    EQUIPMENT_KIND,
    FEEDBACK_KIND,
    REGISTER_KIND,
    REVOKE_KIND,
    BatchReceipt,
    FeedbackRecord,
    Registration,
    ReportBatch,
    Revocation,
    get_inbox,
)
from gridledger.aggregation.curve import ORDER, G1Point, Scalar, compute_msm_g1
from gridledger.aggregation.decrypt import decrypt_entry
from gridledger.aggregation.equipment import ALARM, REPAIR, EquipmentEvent, EquipmentRecord
from gridledger.aggregation.feedback import (
    FeedbackInput,
    FeedbackPolicy,
    compute_billing_state,
    compute_consumption_class,
)
from gridledger.aggregation.plugin import PLUGIN, compute_genesis_entry, get_genesis_config
from gridledger.aggregation.signcrypt import Report
from gridledger.aggregation.theft import TheftDetector, check_decrypted_consistency
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.errors import ConfigError
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.chain import Ledger
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.contracts_builtin import KvContract
from gridledger.ledger.execution import Receipt
from gridledger.ledger.plugins import build_registry, register_plugin, unregister_plugin
from gridledger.ledger.state import compute_state_key
from gridledger.ledger.storage import MemoryBlockStore
from gridledger.ledger.tx import Transaction
from tests.aggregation.helpers import PERIOD_MS, World, ed_key, make_world, sample_reading
from tests.ledger.helpers import CHAIN, VALIDATORS

CC_KEY = ed_key("cc-operator")
ANYONE = ed_key("accounting-node")
PERIOD = 100
POLICY = FeedbackPolicy(500, 1_000, 5_000, 50_000)


class Chain:
    """A one-replica ledger running the aggregation plugin, with a nonce per sender."""

    def __init__(self, world: World) -> None:
        self.world = world
        entry = compute_genesis_entry(world.genesis_config(CC_KEY))
        self.genesis = GenesisConfig.create(CHAIN, VALIDATORS, 1_000, dict([entry]))
        registry = ContractRegistry((KvContract(), *PLUGIN.build_contracts(self.genesis)))
        self.ledger = Ledger(MemoryBlockStore(), registry, self.genesis)
        self.nonces = itertools.count()
        self.now = PERIOD * PERIOD_MS + 60_000

    def submit(self, kind: str, payload: object, signer: Ed25519PrivateKey) -> Receipt:
        tx = Transaction.create(CHAIN, kind, encode(payload), signer, next(self.nonces))
        self.now += 1_000
        _, outcome = self.ledger.commit([tx], self.now, 0, 0)
        return outcome.receipts[0]

    def batch(self, reports: list[Report]) -> BatchReceipt:
        receipt = self.submit(BATCH_KIND, ReportBatch(tuple(reports)), ANYONE)
        assert receipt.ok, receipt.reason
        return decode_as(BatchReceipt, receipt.data)

    def state(self, key: bytes) -> bytes | None:
        return self.ledger.state.get(compute_state_key("aggregation", key))

    def inbox(self, receiver_id: str) -> list[bytes]:
        prefix = compute_state_key("aggregation", f"inbox/{receiver_id}/".encode())
        return [v for k, v in self.ledger.state.items() if k.startswith(prefix)]


@pytest.fixture(scope="module")
def world() -> World:
    return make_world(8, seed=13)


@pytest.fixture
def chain(world: World) -> Chain:
    chain = Chain(world)
    for identity in [*world.receivers, *world.meters]:
        receipt = chain.submit(REGISTER_KIND, Registration(world.record(identity)), CC_KEY)
        assert receipt.ok, receipt.reason
    return chain


def test_plugin_reads_its_genesis_section_and_ignores_chains_without_it(world: World) -> None:
    plain = GenesisConfig.create(CHAIN, VALIDATORS, 1_000)
    assert PLUGIN.build_contracts(plain) == ()
    key, value = compute_genesis_entry(world.genesis_config(CC_KEY))
    good = GenesisConfig.create(CHAIN, VALIDATORS, 1_000, {key: value})
    assert get_genesis_config(good) == world.genesis_config(CC_KEY)
    for corrupt in (
        value[:-1],
        encode(dataclasses.replace(world.genesis_config(CC_KEY), period_ms=0)),
        encode(dataclasses.replace(world.genesis_config(CC_KEY), y_pub2=b"\x00" * 96)),
        encode(dataclasses.replace(world.genesis_config(CC_KEY), cc_tx_key=b"short")),
    ):
        with pytest.raises(ConfigError):
            PLUGIN.build_contracts(GenesisConfig.create(CHAIN, VALIDATORS, 1_000, {key: corrupt}))


def test_only_the_cc_registers_and_an_id_registers_once(world: World) -> None:
    chain = Chain(world)
    record = world.record("meter-0")
    assert not chain.submit(REGISTER_KIND, Registration(record), ANYONE).ok
    assert chain.submit(REGISTER_KIND, Registration(record), CC_KEY).ok
    again = chain.submit(REGISTER_KIND, Registration(record), CC_KEY)
    assert not again.ok and "already registered" in again.reason
    bad_point = dataclasses.replace(world.record("meter-1"), y=b"\x01" * 48)
    assert not chain.submit(REGISTER_KIND, Registration(bad_point), CC_KEY).ok
    no_tx_key = dataclasses.replace(world.record("go-1"), tx_key=b"")
    assert not chain.submit(REGISTER_KIND, Registration(no_tx_key), CC_KEY).ok


def test_a_batch_is_recorded_per_receiver_and_each_receiver_decrypts(chain: Chain) -> None:
    world = chain.world
    reports = [world.report(f"meter-{i}", PERIOD) for i in range(5)]
    receipt = chain.batch(reports)
    assert receipt.accepted == (0, 1, 2, 3, 4) and receipt.refused == ()
    for rid, keys in world.receivers.items():
        entries = get_inbox([(b"", v) for v in chain.inbox(rid)])
        assert sorted(e.meter_id for e in entries) == [f"meter-{i}" for i in range(5)]
        values = decrypt_entry(keys, world.schema, entries[0])
        assert values == {d: sample_reading(PERIOD)[d] for d in world.schema.get_dimensions(rid)}
    count = chain.state(b"count/go-1/" + f"{PERIOD:012x}".encode())
    assert count is not None and int.from_bytes(count, "big") == 5


def test_bad_reports_are_named_and_refused_without_blocking_the_batch(chain: Chain) -> None:
    world = chain.world
    good = [world.report(f"meter-{i}", PERIOD) for i in range(6)]
    tampered = dataclasses.replace(good[1], timestamp_ms=good[1].timestamp_ms + 1)
    forged_s = dataclasses.replace(good[4], s_scalar=good[3].s_scalar)
    wrong_period = world.report("meter-5", PERIOD - 3)
    unknown = dataclasses.replace(good[2], meter_id="meter-99")
    batch = [good[0], tampered, unknown, good[3], forged_s, wrong_period]
    receipt = chain.batch(batch)
    assert receipt.accepted == (0, 3)
    reasons = {r.position: (r.meter_id, r.reason) for r in receipt.refused}
    assert reasons[1] == ("meter-1", "signature does not verify")
    assert reasons[2] == ("meter-99", "meter is not registered")
    assert reasons[4] == ("meter-4", "signature does not verify")
    assert reasons[5][0] == "meter-5" and reasons[5][1].startswith("wrong period")


def test_replays_are_refused_in_a_later_block_and_within_a_batch(chain: Chain) -> None:
    world = chain.world
    first = world.report("meter-0", PERIOD)
    second_same_period = world.report("meter-0", PERIOD)
    assert chain.batch([first]).accepted == (0,)
    later = chain.batch([first, second_same_period, world.report("meter-1", PERIOD)])
    assert later.accepted == (2,)
    assert all("replay" in r.reason for r in later.refused)
    within = chain.batch([world.report("meter-2", PERIOD)] * 2)
    assert within.accepted == (0,) and "replay" in within.refused[0].reason


def test_a_grace_period_is_accepted_but_a_future_one_is_not(chain: Chain) -> None:
    world = chain.world
    receipt = chain.batch(
        [world.report("meter-6", PERIOD - 1), world.report("meter-7", PERIOD + 1)]
    )
    assert receipt.accepted == (0,)
    assert receipt.refused[0].reason.startswith("wrong period")


def test_revoked_meters_and_receivers_stop_counting(chain: Chain) -> None:
    world = chain.world
    assert not chain.submit(REVOKE_KIND, Revocation("meter-3"), ANYONE).ok
    assert chain.submit(REVOKE_KIND, Revocation("meter-3"), CC_KEY).ok
    assert not chain.submit(REVOKE_KIND, Revocation("meter-3"), CC_KEY).ok
    receipt = chain.batch([world.report("meter-3", PERIOD)])
    assert receipt.refused[0].reason == "meter is revoked"
    assert chain.submit(REVOKE_KIND, Revocation("es-1"), CC_KEY).ok
    refused = chain.submit(BATCH_KIND, ReportBatch((world.report("meter-4", PERIOD),)), ANYONE)
    assert not refused.ok and "es-1" in refused.reason


def test_malformed_batches_are_refused_whole(chain: Chain) -> None:
    assert not chain.submit(BATCH_KIND, ReportBatch(()), ANYONE).ok
    garbage = Transaction.create(CHAIN, BATCH_KIND, b"\xff\x00", ANYONE, 999)
    _, outcome = chain.ledger.commit([garbage], chain.now + 1, 0, 0)
    assert not outcome.receipts[0].ok
    too_many = [chain.world.report("meter-0", PERIOD)] * 65
    assert not chain.submit(BATCH_KIND, ReportBatch(tuple(too_many)), ANYONE).ok


def test_feedback_from_the_grid_operator_only_once_per_meter_and_period(chain: Chain) -> None:
    go_key = chain.world.tx_keys["go-1"]
    feedback = FeedbackInput("meter-0", PERIOD, "over_threshold", "serious_arrears", 21_000)
    assert not chain.submit(FEEDBACK_KIND, feedback, chain.world.tx_keys["es-1"]).ok
    receipt = chain.submit(FEEDBACK_KIND, feedback, go_key)
    assert receipt.ok, receipt.reason
    notices = decode_as(FeedbackRecord, receipt.data).notices
    assert [n.action for n in notices] == ["power-saving-mode", "forced-trip"]
    assert not chain.submit(FEEDBACK_KIND, feedback, go_key).ok
    unknown = dataclasses.replace(feedback, meter_id="meter-99")
    assert not chain.submit(FEEDBACK_KIND, unknown, go_key).ok


def test_equipment_events_follow_the_state_machine_on_chain(chain: Chain) -> None:
    es_key = chain.world.tx_keys["es-1"]
    first = EquipmentEvent("trafo-1", 1, ALARM, "feeder 2", "overheat", chain.now)
    receipt = chain.submit(EQUIPMENT_KIND, first, es_key)
    assert receipt.ok, receipt.reason
    assert decode_as(EquipmentRecord, receipt.data).state == ALARM
    assert not chain.submit(EQUIPMENT_KIND, first, es_key).ok  # replayed event number
    skip = EquipmentEvent("trafo-1", 2, REPAIR, "feeder 2", "overheat", chain.now)
    refused = chain.submit(EQUIPMENT_KIND, skip, es_key)
    assert not refused.ok and "alarm -> repair is not allowed" in refused.reason
    go_key = chain.world.tx_keys["go-1"]
    assert not chain.submit(
        EQUIPMENT_KIND, dataclasses.replace(skip, new_state="normal"), go_key
    ).ok


def test_receivers_act_on_what_they_read_from_the_chain(chain: Chain) -> None:
    """Meter → chain → GO decrypts, classifies, posts Algorithm 1's notices; CC flags theft."""
    world = chain.world
    heavy = dict(sample_reading(PERIOD), energy_wh=900, prepaid_balance_millicent=50)
    tampered = dict(sample_reading(PERIOD), active_power_w=300)  # V·I ≈ 1010 VA, P+Q ≈ 316 VA
    receipt = chain.batch(
        [world.report("meter-0", PERIOD, heavy), world.report("meter-1", PERIOD, tampered)]
    )
    assert receipt.accepted == (0, 1)
    go, cc = world.receivers["go-1"], world.receivers["cc-1"]
    go_entries = {e.meter_id: e for e in get_inbox([(b"", v) for v in chain.inbox("go-1")])}
    values = decrypt_entry(go, world.schema, go_entries["meter-0"])
    klass = compute_consumption_class(values["energy_wh"], POLICY, is_tampered=False)
    billing = compute_billing_state(values["prepaid_balance_millicent"], 0, POLICY)
    posted = chain.submit(
        FEEDBACK_KIND,
        FeedbackInput("meter-0", PERIOD, klass, billing, 20_000),
        world.tx_keys["go-1"],
    )
    notices = decode_as(FeedbackRecord, posted.data).notices
    assert [n.action for n in notices] == ["power-saving-mode", "notify-insufficient-prepayment"]
    detector = TheftDetector(threshold_va=359, day_share_ppm=0)
    cc_entries = {e.meter_id: e for e in get_inbox([(b"", v) for v in chain.inbox("cc-1")])}
    assert check_decrypted_consistency(
        decrypt_entry(cc, world.schema, cc_entries["meter-0"]), detector
    )
    assert not check_decrypted_consistency(
        decrypt_entry(cc, world.schema, cc_entries["meter-1"]), detector
    )


def test_undecodable_points_are_refused_by_name(chain: Chain) -> None:
    world = chain.world
    good = world.report("meter-2", PERIOD)
    bad_w = dataclasses.replace(world.report("meter-3", PERIOD), w_point=b"\x00" * 48)
    short_s = dataclasses.replace(world.report("meter-4", PERIOD), s_scalar=good.s_scalar[:-1])
    honest = world.report("meter-5", PERIOD)
    s_plus_q = (int.from_bytes(honest.s_scalar, "big") + ORDER).to_bytes(32, "big")
    malleated = dataclasses.replace(honest, s_scalar=s_plus_q)  # the same s mod q
    receipt = chain.batch([good, bad_w, short_s, malleated])
    assert receipt.accepted == (0,)
    assert [r.meter_id for r in receipt.refused] == ["meter-3", "meter-4", "meter-5"]
    reasons = [r.reason for r in receipt.refused]
    assert "G1" in reasons[0] and "scalar" in reasons[1] and "group order" in reasons[2]
    assert chain.batch([honest]).accepted == (0,)


def test_the_plugin_plugs_into_every_replicas_registry(world: World) -> None:
    entry = compute_genesis_entry(world.genesis_config(CC_KEY))
    genesis = GenesisConfig.create(CHAIN, VALIDATORS, 1_000, dict([entry]))
    register_plugin(PLUGIN)
    try:
        assert {REGISTER_KIND, BATCH_KIND, FEEDBACK_KIND} <= build_registry(genesis).kinds
        plain = GenesisConfig.create(CHAIN, VALIDATORS, 1_000)
        assert BATCH_KIND not in build_registry(plain).kinds
    finally:
        unregister_plugin(PLUGIN.name)


_POOL: dict[tuple[str, int, int], Report] = {}


def _pooled(world: World, meter: str, period: int, variant: int) -> Report:
    """Two genuine reports per (meter, period) plus a tampered one (variant 2)."""
    key = (meter, period, variant)
    if key not in _POOL:
        report = world.report(meter, period)
        if variant == 2:
            report = dataclasses.replace(report, timestamp_ms=report.timestamp_ms + 7)
        _POOL[key] = report
    return _POOL[key]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(PERIOD - 2, PERIOD), st.integers(0, 2)),
        min_size=1,
        max_size=10,
    ),
    st.integers(1, 4),
)
def test_at_most_one_report_per_meter_and_period_ever_lands(
    world: World, picks: list[tuple[int, int, int]], batches: int
) -> None:
    chain = Chain(world)
    for identity in [*world.receivers, "meter-0", "meter-1", "meter-2"]:
        assert chain.submit(REGISTER_KIND, Registration(world.record(identity)), CC_KEY).ok
    reports = [_pooled(world, f"meter-{m}", p, v) for m, p, v in picks]
    landed: dict[tuple[str, int], int] = {}
    size = -(-len(reports) // batches)
    for start in range(0, len(reports), size):
        chunk = reports[start : start + size]
        receipt = chain.batch(chunk)
        assert sorted([*receipt.accepted, *(r.position for r in receipt.refused)]) == list(
            range(len(chunk))
        )
        for position in receipt.accepted:
            report = chunk[position]
            assert report.timestamp_ms % 1_000 == 0  # never a tampered one
            slot = (report.meter_id, report.period)
            assert slot not in landed
            assert report.period >= PERIOD - 1  # grace is one period
            landed[slot] = position
    seen = [k for k, _ in chain.ledger.state.items() if b"aggregation/seen/" in k]
    assert len(seen) == len(landed)
    expected = {(f"meter-{m}", p) for m, p, v in picks if v < 2 and p >= PERIOD - 1}
    assert set(landed) == expected


def test_the_contract_checks_a_good_batch_with_one_g1_msm(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin path is the fast check: one weighted MSM of 2n points for a good batch."""
    calls: list[int] = []

    def counting_msm(points: Sequence[G1Point], scalars: Sequence[Scalar]) -> G1Point:
        calls.append(len(points))
        return compute_msm_g1(points, scalars)

    monkeypatch.setattr("gridledger.aggregation.verify.compute_msm_g1", counting_msm)
    reports = [chain.world.report(f"meter-{i}", PERIOD) for i in range(6)]
    assert chain.batch(reports).accepted == (0, 1, 2, 3, 4, 5)
    assert calls == [12]
    calls.clear()
    bad = dataclasses.replace(chain.world.report("meter-6", PERIOD), s_scalar=bytes(32))
    receipt = chain.batch([chain.world.report("meter-7", PERIOD), bad])
    assert receipt.accepted == (0,) and len(calls) == 1  # two halves of one: single checks
