"""The state transition: apply a block's transactions, in order, to the world state.

For each transaction, :func:`process_transaction` checks in this order:

1. the chain id matches the block's;
2. the sender's signature verifies;
3. the pair (sender, nonce) has not been used (key ``sys/nonce/<sender><nonce>``);
4. a contract handles the kind;
5. the contract accepts it.

A failure at 1-3 is recorded as a rejected :class:`Receipt` and changes nothing.
From step 4 on, the (sender, nonce) pair is spent even if the transaction is
rejected, because the sender did sign it: otherwise anyone could replay a
refused transaction later, when it would succeed. The contract's own writes
live in a per-transaction :class:`~gridledger.ledger.state.Overlay` and are
discarded on rejection. The nonce key holds the transaction hash, so it also
proves to a light client that a transaction was executed.

Every replica applying the same transactions to the same state gets the same
receipts, write set and state root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from gridledger.crypto.encoding import encode, wire_type
from gridledger.errors import GridledgerError
from gridledger.ledger.contracts import BlockContext, ContractRegistry, StateView
from gridledger.ledger.merkle import merkle_root
from gridledger.ledger.state import SYSTEM_NAMESPACE, Overlay, WorldState, WriteSet
from gridledger.ledger.state import compute_state_key as _state_key
from gridledger.ledger.tx import Transaction, is_valid_transaction_signature


@wire_type("ledger.receipt/1")
@dataclass(frozen=True)
class Receipt:
    """The outcome of one transaction: accepted with contract data, or rejected with a reason."""

    tx_hash: bytes
    ok: bool
    reason: str
    data: bytes

    @cached_property
    def encoded(self) -> bytes:
        """``encode(self)``, computed once: the receipts root and the store both need it."""
        return encode(self)


@dataclass(frozen=True)
class BlockOutcome:
    """What applying a block produced; ``undo`` restores the state it was applied to."""

    receipts: tuple[Receipt, ...]
    state_root: bytes
    write_set: WriteSet
    undo: WriteSet = field(default_factory=dict, compare=False, repr=False)


def compute_nonce_key(sender: bytes, nonce: int) -> bytes:
    """The state key marking (sender, nonce) as used."""
    return _state_key(SYSTEM_NAMESPACE, b"nonce/" + sender + nonce.to_bytes(8, "big"))


def compute_receipts_root(receipts: Sequence[Receipt]) -> bytes:
    return merkle_root([r.encoded for r in receipts])


def _rejected(tx: Transaction, reason: str) -> Receipt:
    return Receipt(tx.tx_hash, False, reason, b"")


def process_transaction(
    block: Overlay, registry: ContractRegistry, tx: Transaction, ctx: BlockContext
) -> Receipt:
    """Apply one transaction to the block overlay; return its receipt."""
    if tx.chain_id != ctx.chain_id:
        return _rejected(tx, f"transaction is for chain {tx.chain_id!r}")
    if not is_valid_transaction_signature(tx):
        return _rejected(tx, "bad signature")
    nonce_key = compute_nonce_key(tx.sender, tx.nonce)
    if block.get(nonce_key) is not None:
        return _rejected(tx, "replayed nonce")
    block.put(nonce_key, tx.tx_hash)
    try:
        contract = registry.get(tx.kind)
        overlay = Overlay(block)
        data = contract.process(StateView(overlay, contract.namespace), tx, ctx)
    except (MemoryError, RecursionError):
        raise  # resource exhaustion is not deterministic: stop rather than diverge
    except GridledgerError as exc:
        return _rejected(tx, exc.reason)
    except Exception as exc:  # a contract bug must not let one client halt every replica
        return _rejected(tx, f"contract failed: {type(exc).__name__}")
    if not isinstance(data, bytes):  # guards contracts that ignore the annotation
        return _rejected(tx, "contract returned non-bytes data")  # type: ignore[unreachable]
    overlay.commit_to(block)
    return Receipt(tx.tx_hash, True, "", data)


def process_end_block(block: Overlay, registry: ContractRegistry, ctx: BlockContext) -> None:
    """Run every contract's end-of-block hook, in registration order.

    A hook that fails loses its own writes and nothing else, exactly as a
    rejected transaction does: one contract's bug must not halt the chain, and
    every replica discards the same writes.
    """
    for namespace, hook in registry.get_end_block_hooks():
        overlay = Overlay(block)
        try:
            hook.end_block(StateView(overlay, namespace), ctx)
        except (MemoryError, RecursionError):
            raise
        except Exception:  # deterministic on every replica: the writes are dropped
            continue
        overlay.commit_to(block)


def apply_block(
    state: WorldState,
    registry: ContractRegistry,
    txs: Sequence[Transaction],
    ctx: BlockContext,
) -> BlockOutcome:
    """Apply ``txs`` in order to ``state`` (mutating it), then the end-of-block hooks."""
    block = Overlay(state)
    receipts = tuple(process_transaction(block, registry, tx, ctx) for tx in txs)
    process_end_block(block, registry, ctx)
    undo = state.apply_writes(block.writes)
    return BlockOutcome(receipts, state.root, block.writes, undo)


def revert_block(state: WorldState, outcome: BlockOutcome) -> None:
    """Undo :func:`apply_block` (only valid if nothing was applied since)."""
    state.apply_writes(outcome.undo)
