"""The simulation clock: forward only, and never past what block timestamps can hold."""

from __future__ import annotations

import pytest

from gridledger.errors import ConfigError
from gridledger.node.sim_clock import MAX_JUMP_MS, MAX_TIME_MS, SimulationClock


def test_a_jump_is_bounded_so_no_client_can_stop_the_chain() -> None:
    """An offset that took block time past the 64-bit range would stop every primary."""
    clock = SimulationClock(0, wall=lambda: 1_000)
    with pytest.raises(ConfigError, match="at most"):
        clock.advance(MAX_JUMP_MS + 1)
    with pytest.raises(ConfigError, match="at most"):
        clock.advance(2**64)
    assert clock.now_ms() == 1_000  # a refused jump changes nothing
    assert clock.advance(MAX_JUMP_MS) == 1_000 + MAX_JUMP_MS
    near_end = SimulationClock(MAX_TIME_MS - 10_000, wall=lambda: 0)
    with pytest.raises(ConfigError):
        near_end.advance(MAX_TIME_MS)
