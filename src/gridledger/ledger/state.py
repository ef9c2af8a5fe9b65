"""The world state: a flat map of byte keys to byte values, authenticated by a root.

Keys are namespaced by contract: ``b"<namespace>/" + key``; the namespace
``sys`` is reserved for the state machine itself (used nonces). The whole map
lives in memory beside its :class:`~gridledger.ledger.smt.SparseMerkleTree`;
on restart it is reloaded from the block store's state table and the tree is
rebuilt from the entries (SMT nodes are not persisted: a rebuild costs about
10 µs per entry).

Execution never writes to :class:`WorldState` directly: it reads through
:class:`Overlay` layers (one per block, one per transaction) and the block's
final write set is applied with :meth:`WorldState.apply_writes`, which returns
the previous values so that a speculative block can be undone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from sortedcontainers import SortedSet

from gridledger.ledger.smt import SparseMerkleTree, StateProof

WriteSet = dict[bytes, bytes | None]
"""Key → new value, ``None`` meaning deleted; insertion-ordered."""

SYSTEM_NAMESPACE = "sys"


def compute_state_key(namespace: str, key: bytes) -> bytes:
    """The full state key of ``key`` inside ``namespace``."""
    return namespace.encode() + b"/" + key


def compute_prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (``None``: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class StateReader(Protocol):
    """Read access to state as seen at some point of execution."""

    def get(self, key: bytes) -> bytes | None:
        """The value under the full key ``key``, or ``None``."""
        ...

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every (full key, value) whose key starts with ``prefix``, in ascending key order."""
        ...


class WorldState:
    """Committed state: values plus their sparse Merkle tree."""

    def __init__(self, entries: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self._values: dict[bytes, bytes] = {}
        self._keys: SortedSet = SortedSet()  # ordered index for prefix scans (order books)
        self._tree = SparseMerkleTree()
        for key, value in entries:
            self._values[key] = value
            self._keys.add(key)
            self._tree.set(key, value)

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: bytes) -> bytes | None:
        return self._values.get(key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """All entries, sorted by key (for snapshots and tests)."""
        for key in self._keys:
            yield key, self._values[key]

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Entries whose key starts with ``prefix``, ascending (O(log n) to the first one)."""
        end = compute_prefix_end(prefix)
        keys = list(self._keys.irange(prefix, end, inclusive=(True, False)))
        for key in keys:
            yield key, self._values[key]

    def scan_page(
        self, prefix: bytes, after: bytes | None, limit: int
    ) -> list[tuple[bytes, bytes]]:
        """At most ``limit`` entries under ``prefix`` with keys strictly after ``after``.

        Seeks to ``after`` (O(log n)) and reads only what it returns, so a client
        paging through a large prefix costs each page the same.
        """
        end = compute_prefix_end(prefix)
        start, from_start = (prefix, True) if after is None else (after, False)
        keys = itertools.islice(self._keys.irange(start, end, inclusive=(from_start, False)), limit)
        return [(key, self._values[key]) for key in keys]

    @property
    def root(self) -> bytes:
        """The state root committed to in block headers."""
        return self._tree.root()

    def apply_writes(self, writes: Mapping[bytes, bytes | None]) -> WriteSet:
        """Apply ``writes``; return the previous values (an undo write set)."""
        undo: WriteSet = {}
        for key, value in writes.items():
            if key not in undo:
                undo[key] = self._values.get(key)
            if value is None:
                if self._values.pop(key, None) is not None:
                    self._keys.discard(key)
            else:
                if key not in self._values:
                    self._keys.add(key)
                self._values[key] = value
            self._tree.set(key, value)
        return undo

    def prove(self, key: bytes) -> tuple[bytes | None, StateProof]:
        """The current value of ``key`` (or ``None``) and its proof against :attr:`root`."""
        return self._values.get(key), self._tree.prove(key)


class Overlay:
    """Uncommitted writes on top of a reader; :meth:`commit_to` folds them into a parent."""

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self.writes: WriteSet = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._base.get(key)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The base's entries under ``prefix`` with this layer's writes folded in, ascending."""
        mine = {k: v for k, v in self.writes.items() if k.startswith(prefix)}
        if not mine:
            yield from self._base.scan(prefix)
            return
        merged: dict[bytes, bytes | None] = dict(self._base.scan(prefix))
        merged.update(mine)
        for key in sorted(merged):
            value = merged[key]
            if value is not None:
                yield key, value

    def put(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def commit_to(self, parent: Overlay) -> None:
        parent.writes.update(self.writes)
