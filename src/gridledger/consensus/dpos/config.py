"""DPoS settings and schedules: what the genesis fixes and what the contract and engine share.

The chain's genesis enables DPoS with one entry, ``b"dpos/genesis/config"``
(:class:`DposConfig`). The *candidates* are the genesis validators: every
accounting node runs a replica, executes final blocks and confirms their
headers; the members' votes decide which ``producers`` of them take the slots
of a round, the rest wait on the standby list.

Time is cut into slots of ``block_interval_ms`` from the genesis timestamp;
``producers`` consecutive slots make a round and slot ``s`` belongs to
``schedule.producers[s % producers]``. A block's timestamp is exactly the start
of its slot, so the contract reads the slot off the block context and the
engine checks it off the proposal: no clock is ever consulted.

The schedule of round ``r >= 2`` is the one the contract stored at the first
block of round ``r - 1`` (see :mod:`gridledger.consensus.dpos.contract`); rounds
0 and 1 use :func:`compute_initial_schedule`. The functions here are pure and
used by both sides, so that the engine's idea of who owns a slot and the
contract's record of who missed it never differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.errors import EncodingError
from gridledger.errors import ConfigError
from gridledger.ledger.block import GenesisConfig

NAMESPACE = "dpos"
ENGINE_NAME = "dpos"
CONFIG_KEY = b"genesis/config"  # in the namespace
SCHEDULE_PREFIX = b"schedule/"  # + round (8 bytes, big endian), in the namespace
MAX_PRODUCERS = 1_000


@wire_type("dpos.config/1")
@dataclass(frozen=True)
class DposConfig:
    """The DPoS knobs of one chain (seed 002: 101 producers, 2 s blocks)."""

    producers: int = 101
    block_interval_ms: int = 2_000
    miss_limit: int = 0  # a producer with more misses than this since the last election is out
    max_block_requests: int = 1_000
    voters: tuple[bytes, ...] = ()  # members allowed to vote (empty: any signed account)

    def __post_init__(self) -> None:
        if not 1 <= self.producers <= MAX_PRODUCERS:
            raise ValueError(f"producers must be in 1..{MAX_PRODUCERS}")
        if self.block_interval_ms < 1:
            raise ValueError("block_interval_ms must be positive")
        if self.miss_limit < 0:
            raise ValueError("miss_limit must not be negative")
        if self.max_block_requests < 1:
            raise ValueError("max_block_requests must be positive")


@wire_type("dpos.schedule/1")
@dataclass(frozen=True)
class Schedule:
    """Who produces in round ``round`` (slot order) and who waits (rank order)."""

    round: int
    producers: tuple[int, ...]
    standby: tuple[int, ...]


def compute_full_key(key: bytes) -> bytes:
    """A key of the DPoS namespace as the world state stores it."""
    return NAMESPACE.encode() + b"/" + key


def compute_schedule_key(round_: int) -> bytes:
    """The namespace key of round ``round_``'s schedule."""
    return SCHEDULE_PREFIX + round_.to_bytes(8, "big")


def make_genesis_section(config: DposConfig) -> dict[bytes, bytes]:
    """The genesis entries that enable DPoS with ``config``."""
    return {compute_full_key(CONFIG_KEY): encode(config)}


def get_config(genesis: GenesisConfig) -> DposConfig | None:
    """The chain's DPoS settings; ``None`` if the genesis does not enable DPoS.

    Raise :class:`ConfigError` if the entry is corrupt or asks for more
    producers than there are candidates.
    """
    raw = dict(genesis.state).get(compute_full_key(CONFIG_KEY))
    if raw is None:
        return None
    try:
        config = decode_as(DposConfig, raw)
    except EncodingError as exc:
        raise ConfigError(f"the DPoS genesis section is corrupt: {exc.reason}") from None
    if config.producers > len(genesis.validators):
        raise ConfigError(
            f"DPoS asks for {config.producers} producers but the genesis names "
            f"{len(genesis.validators)} candidates"
        )
    return config


def require_config(genesis: GenesisConfig) -> DposConfig:
    """Like :func:`get_config`, for a chain whose engine is DPoS (a missing section is an error)."""
    config = get_config(genesis)
    if config is None:
        raise ConfigError("a DPoS chain needs the genesis entry dpos/genesis/config")
    return config


def compute_slot(timestamp_ms: int, genesis_ms: int, interval_ms: int) -> int:
    """The slot a time falls in (slot 0 starts at the genesis timestamp)."""
    return max(0, (timestamp_ms - genesis_ms) // interval_ms)


def compute_slot_time(slot: int, genesis_ms: int, interval_ms: int) -> int:
    """The start of ``slot``: the timestamp of the block produced in it."""
    return genesis_ms + slot * interval_ms


def compute_initial_schedule(genesis: GenesisConfig, config: DposConfig) -> Schedule:
    """Rounds 0 and 1: the first ``producers`` candidates by id, the rest standby."""
    ids = sorted(v.replica_id for v in genesis.validators)
    return Schedule(0, tuple(ids[: config.producers]), tuple(ids[config.producers :]))


def compute_election(
    round_: int,
    candidates: Sequence[int],
    votes: Mapping[int, int],
    excluded: frozenset[int],
    producers: int,
) -> Schedule:
    """Rank candidates by votes (then id), skip the excluded, take ``producers`` of them.

    The excluded (past the miss limit, or caught double-producing) go to the end
    of the standby list; they are only drafted back if fewer than ``producers``
    candidates remain, so a round always has all its slots owned.
    """
    ranked = sorted(candidates, key=lambda c: (-votes.get(c, 0), c))
    eligible = [c for c in ranked if c not in excluded]
    barred = [c for c in ranked if c in excluded]
    order = eligible + barred
    chosen = order[:producers]
    return Schedule(round_, tuple(sorted(chosen)), tuple(order[producers:]))


def get_owner(schedule: Schedule, slot: int) -> int:
    """The producer of ``slot`` under ``schedule``."""
    return schedule.producers[slot % len(schedule.producers)]
