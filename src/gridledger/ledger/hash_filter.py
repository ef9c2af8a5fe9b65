"""A Bloom filter over digests: "certainly absent" without a storage read.

Every client submission asks the block store whether the transaction is
already on chain (so that a resent transaction gets its receipt instead of a
second execution). Almost every one is new, and the answer "no" cost an
indexed SQLite read per transaction per replica. The store keeps this filter
of every stored transaction hash: a miss is certain, a hit (stored, or a false
positive about once in 6,000 at a million transactions) falls back to the read.

The filter never gives a false negative, whatever the input, so correctness
does not depend on digests being random; only the false-positive rate does,
and transaction hashes are SHA-256 outputs. Four probes take 32 bits each from
the digest's first 16 bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_BITS_LOG2 = 25  # 4 MiB of bits
_PROBES = 4


class HashFilter:
    """A fixed-size Bloom filter of 32-byte digests (``add`` only; no removal)."""

    def __init__(self, bits_log2: int = DEFAULT_BITS_LOG2) -> None:
        if not 3 <= bits_log2 <= 32:
            raise ValueError("bits_log2 must be between 3 and 32")
        self._bits = bytearray(1 << (bits_log2 - 3))
        self._mask = (1 << bits_log2) - 1
        self.count = 0

    def add(self, digest: bytes) -> None:
        bits, mask = self._bits, self._mask
        word = int.from_bytes(digest[: 4 * _PROBES].ljust(4 * _PROBES, b"\0"), "little")
        for _ in range(_PROBES):
            position = word & mask
            bits[position >> 3] |= 1 << (position & 7)
            word >>= 32
        self.count += 1

    def add_new(self, digest: bytes) -> bool:
        """Add ``digest``; False if it was certainly absent before (one pass of probes)."""
        bits, mask = self._bits, self._mask
        word = int.from_bytes(digest[: 4 * _PROBES].ljust(4 * _PROBES, b"\0"), "little")
        present = True
        for _ in range(_PROBES):
            position = word & mask
            byte, bit = position >> 3, 1 << (position & 7)
            if not bits[byte] & bit:
                present = False
                bits[byte] |= bit
            word >>= 32
        self.count += 1
        return present

    def update(self, digests: Iterable[bytes]) -> None:
        for digest in digests:
            self.add(digest)

    def may_contain(self, digest: bytes) -> bool:
        """False only if ``digest`` was never added."""
        bits, mask = self._bits, self._mask
        word = int.from_bytes(digest[: 4 * _PROBES].ljust(4 * _PROBES, b"\0"), "little")
        for _ in range(_PROBES):
            position = word & mask
            if not bits[position >> 3] & (1 << (position & 7)):
                return False
            word >>= 32
        return True
