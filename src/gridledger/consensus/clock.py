"""Time for the consensus drivers: the protocol core only ever receives ``now_ms``.

:class:`SystemClock` reads the monotonic clock (for the node); :class:`FakeClock`
is advanced by hand or by the simulator, so a 30-second view-change timeout
takes no real time at all.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of the current time in integer milliseconds."""

    def now_ms(self) -> int:
        """Milliseconds since an arbitrary, fixed origin; never decreases."""
        ...


class SystemClock:
    """The process's monotonic clock."""

    def now_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, delta_ms: int) -> int:
        """Move forward by ``delta_ms`` (>= 0) and return the new time."""
        if delta_ms < 0:
            raise ValueError("time never goes backwards")
        self._now += delta_ms
        return self._now

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms``, which must not be in the past."""
        if now_ms < self._now:
            raise ValueError("time never goes backwards")
        self._now = now_ms
