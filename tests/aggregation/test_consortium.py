"""The aggregation plugin on a simulated 4-replica PBFT consortium (real node cores)."""

from __future__ import annotations

import dataclasses
import itertools

from gridledger.aggregation.contract import (
    BATCH_KIND,
    REGISTER_KIND,
    BatchReceipt,
    Registration,
    ReportBatch,
)
from gridledger.aggregation.plugin import PLUGIN, compute_genesis_entry
from gridledger.crypto.encoding import decode_as, encode
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.contracts_builtin import KvContract
from gridledger.ledger.state import compute_state_key
from gridledger.ledger.tx import Transaction
from gridledger.node.simnet import SIM_CHAIN, SimNetwork
from tests.aggregation.helpers import PERIOD_MS, ed_key, make_world

PERIOD = 50


def build_registry(genesis: GenesisConfig) -> ContractRegistry:
    return ContractRegistry((KvContract(), *PLUGIN.build_contracts(genesis)))


def test_four_replicas_agree_on_the_recorded_batch() -> None:
    world = make_world(4, seed=21)
    cc, node = ed_key("cc-operator"), ed_key("accounting-node")
    sim = SimNetwork(
        4,
        seed=5,
        genesis_state=dict([compute_genesis_entry(world.genesis_config(cc))]),
        registry_factory=build_registry,
        epoch_ms=PERIOD * PERIOD_MS + 10_000,
    )
    nonces = itertools.count()
    for identity in [*world.receivers, *world.meters]:
        payload = encode(Registration(world.record(identity)))
        tx = Transaction.create(SIM_CHAIN, REGISTER_KIND, payload, cc, next(nonces))
        sim.submit_transaction(tx, at_ms=sim.now_ms + 1)
    assert sim.run_until_done(20_000)
    reports = [world.report(f"meter-{i}", PERIOD) for i in range(4)]
    reports[2] = dataclasses.replace(reports[2], timestamp_ms=reports[2].timestamp_ms + 5)
    batch = Transaction.create(SIM_CHAIN, BATCH_KIND, encode(ReportBatch(tuple(reports))), node, 0)
    sim.submit_transaction(batch, at_ms=sim.now_ms + 1)
    assert sim.run_until_done(40_000)
    heads = {r.core.ledger.head for r in sim.replicas}
    assert len(heads) == 1
    ledger = sim.replicas[3].core.ledger
    receipts = [
        receipt
        for h in range(1, ledger.height + 1)
        for receipt in ledger.get_receipts(h)
        if receipt.tx_hash == batch.tx_hash
    ]
    assert len(receipts) == 1 and receipts[0].ok
    outcome = decode_as(BatchReceipt, receipts[0].data)
    assert outcome.accepted == (0, 1, 3)
    assert [(r.meter_id, r.reason) for r in outcome.refused] == [
        ("meter-2", "signature does not verify")
    ]
    for replica in sim.replicas:
        state = replica.core.ledger.state
        key = compute_state_key("aggregation", f"inbox/go-1/{PERIOD:012x}/meter-3".encode())
        assert state.get(key) is not None
