from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.crypto.encoding import decode_as
from gridledger.ledger.block import build_block, genesis_block, genesis_state
from gridledger.ledger.contracts import BlockContext, ContractRegistry, StateView
from gridledger.ledger.contracts_builtin import KvContract, KvReceipt
from gridledger.ledger.errors import ContractRejection, RegistryError, UnknownTransactionKind
from gridledger.ledger.execution import (
    DUPLICATE_IN_BATCH,
    NONCE_TOO_OLD,
    NONCE_WINDOW,
    REPLAYED_NONCE,
    Dropped,
    apply_block,
    compute_nonce_key,
    find_nonce_problem,
    get_nonce_problem,
    revert_block,
    spend_nonce,
)
from gridledger.ledger.state import WorldState
from gridledger.ledger.tx import Transaction

from .helpers import CHAIN, GENESIS, key, kv_tx, make_registry

CTX = BlockContext(CHAIN, 1, 2_000, 0)
ALICE, BOB = key("alice"), key("bob")


@dataclass(frozen=True)
class WriteThenFail:
    """Writes, then rejects when the payload says so: its writes must vanish."""

    namespace: str = "wtf"
    kinds: frozenset[str] = frozenset({"test.write-then-fail"})

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        view.put(b"touched", b"1")
        if tx.payload == b"fail":
            raise ContractRejection("asked to fail")
        if tx.payload == b"crash":
            raise KeyError("bug")
        return b""


def _registry() -> ContractRegistry:
    return ContractRegistry((KvContract(), WriteThenFail()))


def test_accepted_tx_writes_state_and_receipt() -> None:
    state = WorldState()
    out = apply_block(state, _registry(), [kv_tx(ALICE, 1, b"k", b"v")], CTX)
    (receipt,) = out.receipts
    assert receipt.ok and receipt.reason == ""
    assert decode_as(KvReceipt, receipt.data) == KvReceipt(None)
    assert state.get(b"test/k") == b"v"
    assert out.state_root == state.root
    assert out.write_set[b"test/k"] == b"v"


@pytest.mark.parametrize(
    ("payload", "reason"), [(b"fail", "asked to fail"), (b"crash", "contract failed: KeyError")]
)
def test_rejected_tx_is_recorded_and_changes_no_contract_state(payload: bytes, reason: str) -> None:
    state = WorldState()
    tx = Transaction.create(CHAIN, "test.write-then-fail", payload, ALICE, 1)
    out = apply_block(state, _registry(), [tx], CTX)
    (receipt,) = out.receipts
    assert (receipt.ok, receipt.reason, receipt.tx_hash) == (False, reason, tx.tx_hash)
    assert state.get(b"wtf/touched") is None
    # Only the spent nonce is written (so that the signed tx cannot be replayed later).
    assert list(out.write_set) == [compute_nonce_key(ALICE.public_key.raw)]


def test_empty_key_is_rejected_by_the_kv_contract() -> None:
    state = WorldState()
    out = apply_block(state, make_registry(), [kv_tx(ALICE, 1, b"", b"v")], CTX)
    assert out.receipts[0].reason == "empty key"


def test_checks_before_the_contract_change_nothing() -> None:
    state = WorldState()
    good = kv_tx(ALICE, 1, b"k", b"v")
    forged = Transaction(CHAIN, good.kind, good.payload, BOB.public_key.raw, 1, good.signature)
    other_chain = kv_tx(ALICE, 2, b"k", b"v", chain="other")
    out = apply_block(state, make_registry(), [forged, other_chain], CTX)
    assert out.transactions == () and out.receipts == ()  # no receipt: no nonce spent
    assert out.dropped == (
        Dropped(forged.tx_hash, "bad signature"),
        Dropped(other_chain.tx_hash, "transaction is for chain 'other'"),
    )
    assert out.write_set == {}
    assert len(state) == 0


def test_unknown_kind_is_rejected() -> None:
    state = WorldState()
    tx = Transaction.create(CHAIN, "nobody.handles", b"", ALICE, 1)
    (receipt,) = apply_block(state, make_registry(), [tx], CTX).receipts
    assert not receipt.ok and "nobody.handles" in receipt.reason


def test_a_replayed_nonce_is_left_out_within_and_across_blocks() -> None:
    state = WorldState()
    tx = kv_tx(ALICE, 5, b"k", b"v")
    same_nonce_other_tx = kv_tx(ALICE, 5, b"k", b"w")
    out = apply_block(state, make_registry(), [tx, same_nonce_other_tx], CTX)
    assert out.transactions == (tx,) and [r.ok for r in out.receipts] == [True]
    assert out.dropped == (Dropped(same_nonce_other_tx.tx_hash, REPLAYED_NONCE),)
    bob = kv_tx(BOB, 5, b"k", b"b")
    out2 = apply_block(state, make_registry(), [tx, bob], CTX)
    assert out2.transactions == (bob,) and [r.reason for r in out2.receipts] == [""]
    assert out2.dropped == (Dropped(tx.tx_hash, REPLAYED_NONCE),)
    assert state.get(b"test/k") == b"b"
    assert get_nonce_problem(state, ALICE.public_key.raw, 5) == REPLAYED_NONCE
    assert get_nonce_problem(state, ALICE.public_key.raw, 4) == ""


def test_rejected_tx_cannot_be_replayed() -> None:
    state = WorldState()
    tx = Transaction.create(CHAIN, "test.write-then-fail", b"fail", ALICE, 1)
    apply_block(state, _registry(), [tx], CTX)
    out = apply_block(state, _registry(), [tx], CTX)
    assert out.receipts == () and out.dropped == (Dropped(tx.tx_hash, REPLAYED_NONCE),)


def test_nonces_may_come_out_of_order_within_the_window() -> None:
    state = WorldState()
    sender = ALICE.public_key.raw
    top = 2 * NONCE_WINDOW
    late = [
        kv_tx(ALICE, n, b"k%d" % n, b"v") for n in (top, top - 7, top - 3, top - NONCE_WINDOW + 1)
    ]
    out = apply_block(state, make_registry(), late, CTX)
    assert [r.ok for r in out.receipts] == [True] * 4 and out.dropped == ()
    too_old = kv_tx(ALICE, top - NONCE_WINDOW, b"old", b"v")
    jump = kv_tx(ALICE, top + NONCE_WINDOW, b"far", b"v")
    out2 = apply_block(state, make_registry(), [too_old, jump, late[1]], CTX)
    assert out2.transactions == (jump,)
    assert out2.dropped == (
        Dropped(too_old.tx_hash, NONCE_TOO_OLD),
        Dropped(late[1].tx_hash, NONCE_TOO_OLD),  # the window moved past it
    )
    assert get_nonce_problem(state, sender, top) == NONCE_TOO_OLD
    assert get_nonce_problem(state, sender, top + 1) == ""
    assert not get_nonce_problem(state, sender, top + NONCE_WINDOW + 1)


def test_a_forged_transaction_spends_no_nonce() -> None:
    """An attacker cannot burn a sender's nonce (and censor it) without its key."""
    state = WorldState()
    good = kv_tx(ALICE, 1, b"k", b"v")
    forged = Transaction(CHAIN, good.kind, b"x", good.sender, 1, good.signature)
    out = apply_block(state, make_registry(), [forged, good], CTX)
    assert out.transactions == (good,) and [r.ok for r in out.receipts] == [True]
    assert out.dropped == (Dropped(forged.tx_hash, "bad signature"),)


def test_an_exact_copy_in_the_batch_gets_no_second_receipt() -> None:
    state = WorldState()
    tx = kv_tx(ALICE, 1, b"k", b"v")
    forged = Transaction(CHAIN, "test.kv-set", b"x", BOB.public_key.raw, 1, bytes(64))
    out = apply_block(state, make_registry(), [tx, forged, tx, forged], CTX)
    assert out.transactions == (tx,) and [r.ok for r in out.receipts] == [True]
    assert [d.reason for d in out.dropped] == [
        "bad signature",
        DUPLICATE_IN_BATCH,
        DUPLICATE_IN_BATCH,  # not checked again
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.booleans()), max_size=12))
def test_a_transaction_hash_never_gets_two_receipts(
    picks: list[tuple[int, int, bool]],
) -> None:
    """Whatever a proposer puts into its batches (copies, forgeries, reused nonces),
    every receipt on the chain is for a different transaction hash."""
    signers = [ALICE, BOB]
    pool = []
    for who in range(2):
        for nonce in range(3):
            tx = kv_tx(signers[who], nonce, b"k", b"%d" % nonce)
            pool.append(tx)
            pool.append(Transaction(CHAIN, tx.kind, b"forged", tx.sender, nonce, tx.signature))
    state = WorldState()
    seen: set[bytes] = set()
    batches: list[list[Transaction]] = [[], [], [], []]
    for batch, index, twice in picks:
        batches[batch].append(pool[index])
        if twice:
            batches[batch].append(pool[index])
    for batch in batches:
        out = apply_block(state, make_registry(), batch, CTX)
        hashes = [r.tx_hash for r in out.receipts]
        assert hashes == [tx.tx_hash for tx in out.transactions]
        assert not seen & set(hashes) and len(set(hashes)) == len(hashes)
        seen.update(hashes)
        assert all(r.reason != "bad signature" for r in out.receipts)


def _model_window(used: set[int], nonce: int) -> str:
    """The window's rule stated directly: the used set and its highest element."""
    if not used:
        return ""
    highest = max(used)
    if nonce > highest:
        return ""
    if highest - nonce >= NONCE_WINDOW:
        return NONCE_TOO_OLD
    return REPLAYED_NONCE if nonce in used else ""


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 3 * NONCE_WINDOW),
            st.integers(2**64 - 2 * NONCE_WINDOW, 2**64 - 1),
        ),
        max_size=60,
    )
)
def test_the_nonce_window_matches_its_definition(nonces: list[int]) -> None:
    record: bytes | None = None
    used: set[int] = set()
    for nonce in nonces:
        expected = _model_window(used, nonce)
        assert find_nonce_problem(record, nonce) == expected
        if not expected:
            record = spend_nonce(record, nonce)
            used.add(nonce)
    assert record is None or len(record) <= 8 + NONCE_WINDOW // 8


def test_revert_block_restores_state() -> None:
    state = WorldState([(b"test/k", b"old")])
    before = state.root
    out = apply_block(state, make_registry(), [kv_tx(ALICE, 1, b"k", b"new")], CTX)
    revert_block(state, out)
    assert state.root == before and state.get(b"test/k") == b"old"


def test_registry_refuses_duplicates_and_reserved_names() -> None:
    reg = make_registry()
    with pytest.raises(RegistryError):
        reg.register(KvContract())
    with pytest.raises(RegistryError):
        reg.register(KvContract(namespace="other"))  # same kind
    with pytest.raises(RegistryError):
        reg.register(WriteThenFail(namespace="sys"))
    with pytest.raises(UnknownTransactionKind):
        reg.get("nope")


# -- determinism ------------------------------------------------------------

SIGNERS = [key(f"user-{i}") for i in range(3)]
op_st = st.tuples(
    st.integers(0, 2),  # signer
    st.integers(0, 4),  # nonce (small: replays happen)
    st.binary(max_size=2),  # key (empty: rejected)
    st.binary(max_size=3),
)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(op_st, max_size=6), min_size=1, max_size=4))
def test_two_replicas_reach_the_same_root(
    blocks: list[list[tuple[int, int, bytes, bytes]]],
) -> None:
    txs = [[kv_tx(SIGNERS[s], n, k, v) for s, n, k, v in ops] for ops in blocks]
    replicas = [genesis_state(GENESIS), genesis_state(GENESIS)]
    headers = []
    for state in replicas:
        prev = genesis_block(GENESIS).header
        chain = []
        for i, batch in enumerate(txs):
            block, _ = build_block(prev, state, make_registry(), batch, 2_000 + i, i % 4, 0)
            chain.append(block.header)
            prev = block.header
        headers.append(chain)
    assert headers[0] == headers[1]
    assert list(replicas[0].items()) == list(replicas[1].items())
    # The root depends only on the final entries, not on the history.
    assert WorldState(replicas[0].items()).root == replicas[0].root
