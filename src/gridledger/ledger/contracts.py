"""Contracts: the deterministic code that turns transactions into state changes.

A contract owns one namespace of the state (``b"<namespace>/..."``) and handles
one or more transaction kinds. ``process`` reads and writes through a
:class:`StateView` confined to its namespace (it may read, never write, other
namespaces), gets the block's :class:`BlockContext` instead of a clock, and
either returns receipt data (canonical bytes, ``b""`` for none) or raises
:class:`~gridledger.ledger.errors.ContractRejection`; then its writes are
discarded. Contracts must be pure functions of (state, transaction, context):
no clock, randomness, disk or network, no iteration over unordered sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
