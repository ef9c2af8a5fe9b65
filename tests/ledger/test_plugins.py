"""Contract plugins, end-of-block hooks and finality rules: the ledger's seams."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.errors import ConfigError
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import CertificateError
from gridledger.ledger.chain import Ledger
from gridledger.ledger.contracts import BlockContext, StateView
from gridledger.ledger.errors import ContractRejection
from gridledger.ledger.finality import (
    QuorumCertificateRule,
    get_finality_rule,
    register_finality_rule,
)
from gridledger.ledger.light import LightClient
from gridledger.ledger.plugins import build_registry, register_plugin, unregister_plugin
from gridledger.ledger.storage import MemoryBlockStore
from gridledger.ledger.tx import Transaction
from tests.ledger.helpers import CHAIN, GENESIS, VALIDATORS, certify, key


@wire_type("test.counter-add/1")
@dataclass(frozen=True)
class CounterAdd:
    amount: int


class CounterContract:
    """Adds to a counter per transaction; its end-of-block hook snapshots it per height."""

    namespace = "counter"
    kinds = frozenset({"counter.add"})

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        add = decode_as(CounterAdd, tx.payload)
        if add.amount <= 0:
            raise ContractRejection("amount must be positive")
        total = int.from_bytes(view.get(b"total") or b"\0", "big") + add.amount
        view.put(b"total", total.to_bytes(8, "big"))
        return b""

    def end_block(self, view: StateView, ctx: BlockContext) -> None:
        view.put(b"at/" + ctx.height.to_bytes(8, "big"), view.get(b"total") or b"")


class BrokenHook:
    namespace = "broken"
    kinds = frozenset({"broken.noop"})

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        return b""

    def end_block(self, view: StateView, ctx: BlockContext) -> None:
        view.put(b"half-written", b"1")
        raise RuntimeError("bug")


@dataclass(frozen=True)
class CounterPlugin:
    name: str = "counter"

    def build_contracts(self, genesis: GenesisConfig) -> tuple[CounterContract, ...]:
        enabled = any(k.startswith(b"counter/genesis/") for k, _ in genesis.state)
        return (CounterContract(),) if enabled else ()


@pytest.fixture
def counter_plugin() -> Iterator[None]:
    register_plugin(CounterPlugin())
    yield
    unregister_plugin("counter")


def _tx(nonce: int, amount: int) -> Transaction:
    return Transaction.create(CHAIN, "counter.add", CounterAdd(amount), key("user"), nonce)


def test_plugin_contract_runs_only_where_the_genesis_enables_it(counter_plugin: None) -> None:
    assert "counter.add" not in build_registry(GENESIS).kinds
    genesis = GenesisConfig.create(CHAIN, VALIDATORS, 1_000, {b"counter/genesis/on": b"1"})
    registry = build_registry(genesis)
    assert "counter.add" in registry.kinds and "test.kv-set" in registry.kinds
    ledger = Ledger(MemoryBlockStore(), registry, genesis)
    _, outcome = ledger.commit([_tx(0, 5), _tx(1, -1), _tx(2, 7)], 2_000, 0, 0)
    assert [r.ok for r in outcome.receipts] == [True, False, True]
    assert ledger.state.get(b"counter/at/" + (1).to_bytes(8, "big")) == (12).to_bytes(8, "big")


def test_failing_end_block_hook_loses_only_its_own_writes() -> None:
    from gridledger.ledger.contracts import ContractRegistry

    registry = ContractRegistry((CounterContract(), BrokenHook()))
    ledger = Ledger(MemoryBlockStore(), registry, GENESIS)
    ledger.commit([_tx(0, 3)], 2_000, 0, 0)
    assert ledger.state.get(b"broken/half-written") is None
    assert ledger.state.get(b"counter/at/" + (1).to_bytes(8, "big")) == (3).to_bytes(8, "big")


def test_scan_in_contract_sees_its_namespace_only() -> None:
    from gridledger.ledger.state import Overlay, WorldState

    state = WorldState([(b"a/x/1", b"1"), (b"a/x/2", b"2"), (b"ab/x/3", b"3")])
    view = StateView(Overlay(state), "a")
    view.put(b"x/0", b"0")
    assert list(view.scan(b"x/")) == [(b"x/0", b"0"), (b"x/1", b"1"), (b"x/2", b"2")]
    assert list(view.scan_in("ab", b"")) == [(b"x/3", b"3")]


def test_unknown_engine_has_no_finality_rule() -> None:
    genesis = GenesisConfig.create(CHAIN, VALIDATORS, 1_000, engine="no-such-engine")
    with pytest.raises(ConfigError, match="no-such-engine"):
        get_finality_rule(genesis)


def test_a_registered_rule_governs_import_and_light_clients() -> None:
    """A rule accepting one validator's signature: 1 of 4 suffices there, not in PBFT."""
    register_finality_rule(
        "single-signer",
        lambda g: QuorumCertificateRule(g.chain_id, g.validators[:1], 1),
    )
    genesis = GenesisConfig.create(CHAIN, VALIDATORS, 1_000, engine="single-signer")
    source = Ledger(MemoryBlockStore(), build_registry(None), genesis)
    block, _ = source.commit([], 2_000, 0, 0)
    light = LightClient(genesis)
    with pytest.raises(CertificateError):
        light.add_header(block.header, certify(block.header, signers=(1, 2, 3)))
    light.add_header(block.header, certify(block.header, signers=(0,)))
    pbft_light = LightClient(GENESIS)
    pbft_block, _ = Ledger(MemoryBlockStore(), build_registry(None), GENESIS).commit(
        [], 2_000, 0, 0
    )
    with pytest.raises(CertificateError):
        pbft_light.add_header(pbft_block.header, certify(pbft_block.header, signers=(0,)))
    assert encode(genesis) != encode(GENESIS)
