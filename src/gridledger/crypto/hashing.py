"""Domain-separated hashing.

Every hash in gridledger is SHA-256 over ``len(tag) || tag || data`` where the
tag names the kind of object (``"gridledger/ledger/tx/1"``). Two kinds of object
can therefore never share a digest unless SHA-256 collides, so a transaction
hash can never be passed off as a block hash or a Merkle node. Tags are
registered once, at import time, and a duplicate registration is a programming
error caught on import.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from gridledger.crypto.encoding import encode

DIGEST_SIZE = 32
_TAGS: set[str] = set()


@dataclass(frozen=True)
class HashTag:
    """A registered domain-separation tag; build one with :func:`register_tag`."""

    name: str
    prefix: bytes


def register_tag(name: str) -> HashTag:
    """Register a new domain tag; each name may be registered once."""
    if not name or len(name) > 255:
        raise ValueError("tag names are 1..255 characters")
    if name in _TAGS:
        raise ValueError(f"hash tag {name!r} registered twice")
    _TAGS.add(name)
    raw = name.encode()
    return HashTag(name, bytes([len(raw)]) + raw)


def hash_bytes(tag: HashTag, data: bytes) -> bytes:
    """SHA-256 of ``data`` under domain ``tag``."""
    h = hashlib.sha256(tag.prefix)
    h.update(data)
    return h.digest()


def hash_value(tag: HashTag, value: Any) -> bytes:
    """SHA-256 of the canonical encoding of ``value`` under domain ``tag``."""
    return hash_bytes(tag, encode(value))


def tagged_message(tag: HashTag, data: bytes) -> bytes:
    """The bytes a signature covers: the tag prefix, then the message."""
    return tag.prefix + data
