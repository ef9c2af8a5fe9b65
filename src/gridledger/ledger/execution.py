"""The state transition: apply a block's transactions, in order, to the world state.

For each transaction, :func:`process_transaction` checks in this order:

1. the chain id matches the block's;
2. the sender's nonce is not used and not too old (its window, below);
3. the sender's signature verifies;
4. a contract handles the kind;
5. the contract accepts it.

A failure at 1-3 leaves the transaction out of the block altogether
(:class:`Dropped`): no receipt, no state change. From step 4 on, the nonce is
spent even if the transaction is rejected (a receipt with the reason), because
the sender did sign it: otherwise anyone could replay a refused transaction
later, when it would succeed. So every receipt spends its sender's nonce, and
since the hash fixes (sender, nonce), a transaction hash has at most one
receipt on the whole chain, whatever a proposer puts into its batches: a
signed transaction is public, and a second, verifiable receipt
``"replayed nonce"`` for it would let a lying replica show a light client a
proven "rejected" for a transaction that succeeded. The contract's own writes
live in a per-transaction :class:`~gridledger.ledger.state.Overlay` and are
discarded on rejection.

Replay protection keeps one record per sender (``sys/nonce/<sender>``): the
highest nonce used and a bitmap of which of the :data:`NONCE_WINDOW` nonces
below it were used, as IPsec's anti-replay window (RFC 4303 §3.4.3). A sender
may use its nonces in any order within the window; a nonce further below the
highest is refused as too old. One record per sender instead of one per
transaction keeps the state (and the Merkle tree over it) from growing with
every transaction.

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
from gridledger.ledger.state import SYSTEM_NAMESPACE, Overlay, StateReader, WorldState, WriteSet
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
class Dropped:
    """A transaction left out of its block, with why (``"replayed nonce"``, ...)."""

    tx_hash: bytes
    reason: str


@dataclass(frozen=True)
class BlockOutcome:
    """What applying a block produced; ``undo`` restores the state it was applied to.

    ``transactions`` are those that got a receipt (the block's), in order;
    ``dropped`` those left out.
    """

    transactions: tuple[Transaction, ...]
    receipts: tuple[Receipt, ...]
    state_root: bytes
    write_set: WriteSet
    dropped: tuple[Dropped, ...] = ()
    undo: WriteSet = field(default_factory=dict, compare=False, repr=False)


NONCE_WINDOW = 1024  # nonces below a sender's highest that may still be used, out of order
_WINDOW_MASK = (1 << NONCE_WINDOW) - 1
REPLAYED_NONCE = "replayed nonce"
NONCE_TOO_OLD = "nonce too old"
DUPLICATE_IN_BATCH = "duplicate in batch"
BAD_SIGNATURE = "bad signature"


def compute_nonce_key(sender: bytes) -> bytes:
    """The state key of ``sender``'s nonce window."""
    return _state_key(SYSTEM_NAMESPACE, b"nonce/" + sender)


_NONCE_PREFIX = compute_nonce_key(b"")


def is_per_nonce_key(key: bytes) -> bool:
    """Whether ``key`` is a replay marker of the earlier rule (``sys/nonce/<sender><nonce>``)."""
    return key.startswith(_NONCE_PREFIX) and len(key) == len(_NONCE_PREFIX) + 40


def find_nonce_problem(record: bytes | None, nonce: int) -> str:
    """Why ``nonce`` cannot be used against the window ``record`` (``""``: it can).

    ``record`` is ``highest (8 bytes BE) || bitmap (BE, minimal)``, bit ``i`` of
    the bitmap meaning nonce ``highest - i`` is used; ``None``: nothing used yet.
    """
    if record is None:
        return ""
    highest = int.from_bytes(record[:8], "big")
    if nonce > highest:
        return ""
    age = highest - nonce
    if age >= NONCE_WINDOW:
        return NONCE_TOO_OLD
    if (int.from_bytes(record[8:], "big") >> age) & 1:
        return REPLAYED_NONCE
    return ""


def spend_nonce(record: bytes | None, nonce: int) -> bytes:
    """``record`` with ``nonce`` marked used (check it with :func:`find_nonce_problem` first)."""
    if record is None:
        highest, used = nonce, 1
    else:
        highest = int.from_bytes(record[:8], "big")
        used = int.from_bytes(record[8:], "big")
        if nonce > highest:
            shift = nonce - highest
            used = 1 if shift >= NONCE_WINDOW else ((used << shift) | 1) & _WINDOW_MASK
            highest = nonce
        else:
            used |= 1 << (highest - nonce)
    return highest.to_bytes(8, "big") + used.to_bytes((used.bit_length() + 7) // 8, "big")


def get_nonce_problem(state: StateReader, sender: bytes, nonce: int) -> str:
    """Why ``(sender, nonce)`` can no longer be used in ``state`` (``""``: it can)."""
    return find_nonce_problem(state.get(compute_nonce_key(sender)), nonce)


def compute_receipts_root(receipts: Sequence[Receipt]) -> bytes:
    return merkle_root([r.encoded for r in receipts])


def _rejected(tx: Transaction, reason: str) -> Receipt:
    return Receipt(tx.tx_hash, False, reason, b"")


def process_transaction(
    block: Overlay, registry: ContractRegistry, tx: Transaction, ctx: BlockContext
) -> Receipt | Dropped:
    """Apply one transaction to the block overlay: its receipt, or why it is left out."""
    if tx.chain_id != ctx.chain_id:
        return Dropped(tx.tx_hash, f"transaction is for chain {tx.chain_id[:64]!r}")
    nonce_key = compute_nonce_key(tx.sender)
    record = block.get(nonce_key)
    problem = find_nonce_problem(record, tx.nonce)
    if problem:  # before the signature: only a valid signature ever spends a nonce
        return Dropped(tx.tx_hash, problem)
    if not is_valid_transaction_signature(tx):
        return Dropped(tx.tx_hash, BAD_SIGNATURE)
    block.put(nonce_key, spend_nonce(record, tx.nonce))
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
    """Apply ``txs`` in order to ``state`` (mutating it), then the end-of-block hooks.

    A transaction whose hash came earlier in ``txs`` is left out at once
    (:data:`DUPLICATE_IN_BATCH`): copies of a forged transaction would
    otherwise cost a signature check each.
    """
    block = Overlay(state)
    seen: set[bytes] = set()
    included: list[Transaction] = []
    receipts: list[Receipt] = []
    dropped: list[Dropped] = []
    for tx in txs:
        h = tx.tx_hash
        if h in seen:
            dropped.append(Dropped(h, DUPLICATE_IN_BATCH))
            continue
        seen.add(h)
        result = process_transaction(block, registry, tx, ctx)
        if isinstance(result, Dropped):
            dropped.append(result)
            continue
        included.append(tx)
        receipts.append(result)
    process_end_block(block, registry, ctx)
    undo = state.apply_writes(block.writes)
    return BlockOutcome(
        tuple(included), tuple(receipts), state.root, block.writes, tuple(dropped), undo
    )


def revert_block(state: WorldState, outcome: BlockOutcome) -> None:
    """Undo :func:`apply_block` (only valid if nothing was applied since)."""
    state.apply_writes(outcome.undo)
