"""Contracts: the deterministic code that turns transactions into state changes.

A contract owns one namespace of the state (``b"<namespace>/..."``) and handles
one or more transaction kinds. ``process`` reads and writes through a
:class:`StateView` confined to its namespace (it may read, never write, other
namespaces), gets the block's :class:`BlockContext` instead of a clock, and
either returns receipt data (canonical bytes, ``b""`` for none) or raises
:class:`~gridledger.ledger.errors.ContractRejection`; then its writes are
discarded. Contracts must be pure functions of (state, transaction, context):
no clock, randomness, disk or network, no iteration over unordered sets.

A contract may also define ``end_block(view, ctx)`` (:class:`EndBlockHook`):
it runs once per block after every transaction, in registration order, so a
double auction can publish its market data and a fixed-piece market can expire
offers at block time without anyone sending a transaction. ``StateView.scan``
walks a key prefix in ascending order (an order book's price levels).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gridledger.ledger.errors import RegistryError, UnknownTransactionKind
from gridledger.ledger.state import SYSTEM_NAMESPACE, Overlay, compute_state_key
from gridledger.ledger.tx import Transaction


@dataclass(frozen=True)
class BlockContext:
    """What a contract may know about the block it runs in (never the wall clock)."""

    chain_id: str
    height: int
    timestamp_ms: int
    proposer: int


class StateView:
    """A contract's window on state: read-write in its namespace, read-only elsewhere."""

    def __init__(self, overlay: Overlay, namespace: str) -> None:
        self._overlay = overlay
        self.namespace = namespace

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` in this contract's namespace, or ``None``."""
        return self._overlay.get(compute_state_key(self.namespace, key))

    def put(self, key: bytes, value: bytes) -> None:
        """Set ``key`` in this contract's namespace (visible to later reads in the block)."""
        if not isinstance(value, bytes):
            raise TypeError("state values are bytes")
        self._overlay.put(compute_state_key(self.namespace, key), value)

    def delete(self, key: bytes) -> None:
        """Remove ``key`` from this contract's namespace."""
        self._overlay.delete(compute_state_key(self.namespace, key))

    def get_in(self, namespace: str, key: bytes) -> bytes | None:
        """Read ``key`` in another namespace (e.g. role keys written at genesis)."""
        return self._overlay.get(compute_state_key(namespace, key))

    def scan(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """(key, value) in this namespace whose key starts with ``prefix``, ascending by key.

        Keys come back without the namespace prefix; this block's own earlier
        writes are included. The iteration is a snapshot: writing while
        iterating does not change what it yields.
        """
        return self.scan_in(self.namespace, prefix)

    def scan_in(self, namespace: str, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Like :meth:`scan`, in another namespace (read-only)."""
        full = compute_state_key(namespace, b"")
        items = list(self._overlay.scan(full + prefix))
        return ((key[len(full) :], value) for key, value in items)


class Contract(Protocol):
    """Deterministic handler of some transaction kinds, owning one state namespace."""

    @property
    def namespace(self) -> str:
        """The state namespace this contract writes (no ``/``; ``sys`` is reserved)."""
        ...

    @property
    def kinds(self) -> frozenset[str]:
        """The transaction kinds this contract handles."""
        ...

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        """Apply ``tx``; return receipt data or raise ``ContractRejection``."""
        ...


@runtime_checkable
class EndBlockHook(Protocol):
    """A contract that also acts once per block, after the block's transactions."""

    def end_block(self, view: StateView, ctx: BlockContext) -> None:
        """Update this contract's state at the end of block ``ctx.height`` (no receipt)."""
        ...


def is_valid_namespace(namespace: str) -> bool:
    return (
        0 < len(namespace) <= 32
        and "/" not in namespace
        and namespace != SYSTEM_NAMESPACE
        and namespace.isprintable()
    )


class ContractRegistry:
    """Transaction kind → contract; duplicate kinds and namespaces are refused."""

    def __init__(self, contracts: tuple[Contract, ...] = ()) -> None:
        self._by_kind: dict[str, Contract] = {}
        self._namespaces: set[str] = set()
        self._contracts: list[Contract] = []
        for contract in contracts:
            self.register(contract)

    def register(self, contract: Contract) -> None:
        """Add ``contract``; raise :class:`RegistryError` on a clash or a bad namespace."""
        if not is_valid_namespace(contract.namespace):
            raise RegistryError(f"namespace {contract.namespace!r} is not allowed")
        if contract.namespace in self._namespaces:
            raise RegistryError(f"namespace {contract.namespace!r} already registered")
        clash = sorted(contract.kinds & self._by_kind.keys())
        if clash:
            raise RegistryError(f"kinds already registered: {clash}")
        if not contract.kinds:
            raise RegistryError("a contract must handle at least one kind")
        self._namespaces.add(contract.namespace)
        self._contracts.append(contract)
        for kind in contract.kinds:
            self._by_kind[kind] = contract

    def get(self, kind: str) -> Contract:
        """The contract for ``kind``; raise :class:`UnknownTransactionKind` if none."""
        contract = self._by_kind.get(kind)
        if contract is None:
            raise UnknownTransactionKind(kind)
        return contract

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._by_kind)

    @property
    def contracts(self) -> tuple[Contract, ...]:
        """Every registered contract, in registration order."""
        return tuple(self._contracts)

    @property
    def namespaces(self) -> frozenset[str]:
        return frozenset(self._namespaces)

    def get_end_block_hooks(self) -> tuple[tuple[str, EndBlockHook], ...]:
        """(namespace, contract) for the contracts with an end-of-block hook, in order."""
        return tuple((c.namespace, c) for c in self._contracts if isinstance(c, EndBlockHook))
