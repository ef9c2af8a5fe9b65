"""A replica clock for simulation chains only: the wall clock shifted by an offset
that the simulation driver moves forward.

Why: the market contracts judge times against block timestamps (gate closure,
settlement deadlines, delivery slots). A simulated trading day starts on a past
date and jumps from one trading hour to the next; replicas in separate processes
cannot run an in-memory fake clock, so each one reads

    now_ms = wall_ms + offset_ms          (never decreasing)

and the driver, which launched them with the same starting offset, raises the
offset on every replica (``sim_clock`` request of the JSON-lines API) when it wants
simulated time to jump. Between jumps time passes at wall speed, so consensus
timers (batching, request and view-change timeouts, retransmission) behave as on
a real consortium. A jump is only made while the consortium is idle (every replica
on one head, nothing in flight): no timer is then armed that the jump could fire.

Safety: a production consortium must never run on such a clock. The replica
refuses to start with it unless the genesis carries :data:`SIMULATION_GENESIS_KEY`
(:func:`is_simulation_genesis`), which every validator agreed to by agreeing on the
genesis hash; the ``sim_clock`` request exists only on a replica started with the
clock, and the offset never decreases.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gridledger.errors import ConfigError
from gridledger.ledger.block import GenesisConfig

SIMULATION_GENESIS_KEY = b"node/genesis/simulation-clock"
MAX_JUMP_MS = 400 * 86_400_000  # one jump: a simulated year and some
MAX_TIME_MS = 1 << 62  # far inside the 64-bit block timestamps
SIMULATION_GENESIS_VALUE = b"simulation chain: block times follow a driver-set clock"


def compute_simulation_genesis_state() -> dict[bytes, bytes]:
    """The genesis entry that declares a chain a simulation (its block times are not real)."""
    return {SIMULATION_GENESIS_KEY: SIMULATION_GENESIS_VALUE}


def is_simulation_genesis(genesis: GenesisConfig) -> bool:
    """Whether the genesis declares a simulation chain (the only kind a simulation clock runs)."""
    return any(
        key == SIMULATION_GENESIS_KEY and value == SIMULATION_GENESIS_VALUE
        for key, value in genesis.state
    )


def get_wall_ms() -> int:
    """Milliseconds since the Unix epoch: the origin every process on the machine shares."""
    return time.time_ns() // 1_000_000


class SimulationClock:
    """``wall_ms + offset_ms``, never decreasing; the offset only moves forward."""

    def __init__(self, offset_ms: int, wall: Callable[[], int] = get_wall_ms) -> None:
        self.offset_ms = offset_ms
        self._wall = wall
        self._last = 0

    def now_ms(self) -> int:
        self._last = max(self._last, self._wall() + self.offset_ms)
        return self._last

    def advance(self, offset_ms: int) -> int:
        """Raise the offset to ``offset_ms``; refuse to lower it. Returns the new time."""
        if offset_ms < self.offset_ms:
            raise ConfigError(
                f"the simulation clock never goes back (offset {offset_ms} < {self.offset_ms})"
            )
        if offset_ms - self.offset_ms > MAX_JUMP_MS or self._wall() + offset_ms >= MAX_TIME_MS:
            # a jump past the 64-bit timestamps blocks carry would stop every primary for good
            raise ConfigError(f"a simulation clock jump is at most {MAX_JUMP_MS} ms")
        self.offset_ms = offset_ms
        return self.now_ms()


def check_simulation_clock(genesis: GenesisConfig) -> None:
    """Refuse a simulation clock on a chain whose genesis does not declare a simulation."""
    if not is_simulation_genesis(genesis):
        raise ConfigError(
            f"chain {genesis.chain_id!r} is not a simulation chain: its genesis does not "
            "declare one, so the replica refuses the simulation clock"
        )
