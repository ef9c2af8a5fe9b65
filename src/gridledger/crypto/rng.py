"""Injectable randomness.

Protocol code never calls ``secrets`` or ``os.urandom`` itself: it takes an
:class:`Rng`. Production passes :data:`SYSTEM_RNG`; tests, test vectors and the
simulator pass a :class:`DeterministicRng` so that the same seed replays the
same run byte for byte.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Protocol


class Rng(Protocol):
    """A source of uniformly random bytes and integers."""

    def random_bytes(self, n: int) -> bytes:
        """Return ``n`` uniformly random bytes."""
        ...

    def randbelow(self, upper: int) -> int:
        """Return a uniform integer in ``[0, upper)``; ``upper`` must be positive."""
        ...


class SystemRng:
    """The operating system's CSPRNG (``secrets``)."""

    def random_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)

    def randbelow(self, upper: int) -> int:
        if upper <= 0:
            raise ValueError("upper bound must be positive")
        return secrets.randbelow(upper)


class DeterministicRng:
    """SHAKE-256 stream keyed by a seed: reproducible, for tests and simulation only.

    Never use it for real keys: anyone who knows the seed knows every output.
    """

    def __init__(self, seed: bytes | int | str) -> None:
        if isinstance(seed, int):
            seed = seed.to_bytes(32, "big", signed=True)
        elif isinstance(seed, str):
            seed = seed.encode()
        self._seed = hashlib.sha256(b"gridledger/rng/v1" + seed).digest()
        self._counter = 0

    def random_bytes(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("n must be non-negative")
        block = hashlib.shake_256(self._seed + self._counter.to_bytes(8, "big")).digest(n)
        self._counter += 1
        return block

    def randbelow(self, upper: int) -> int:
        if upper <= 0:
            raise ValueError("upper bound must be positive")
        nbytes = (upper.bit_length() + 7) // 8 + 8
        # 64 extra bits make the modulo bias below 2**-64.
        return int.from_bytes(self.random_bytes(nbytes), "big") % upper

    def fork(self, label: str) -> DeterministicRng:
        """An independent stream derived from this one's seed and a label."""
        return DeterministicRng(self._seed + label.encode())


SYSTEM_RNG: Rng = SystemRng()
