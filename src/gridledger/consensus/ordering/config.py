"""Settings of the crash-fault-tolerant ordering service, fixed by the genesis.

Every replica must cut the ordered log into the same blocks, so the cut rule is
part of the chain's identity: the genesis entry ``b"jetstream/genesis/config"``
(:class:`OrderingConfig`). Without it the defaults apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.errors import EncodingError
from gridledger.errors import ConfigError
from gridledger.ledger.block import GenesisConfig

ENGINE_NAME = "jetstream"
CONFIG_KEY = b"jetstream/genesis/config"


@wire_type("ordering.config/1")
@dataclass(frozen=True)
class OrderingConfig:
    """Blocks close after ``max_block_requests`` entries or a cut marker, whichever is first."""

    max_block_requests: int = 500
    cut_delay_ms: int = 50  # a replica holding uncut entries this long asks for a cut
    stream_replicas: int = 3  # JetStream replicas of the stream (the NATS servers)

    def __post_init__(self) -> None:
        if self.max_block_requests < 1:
            raise ValueError("max_block_requests must be positive")
        if self.cut_delay_ms < 1:
            raise ValueError("cut_delay_ms must be positive")
        if self.stream_replicas not in (1, 3, 5):
            raise ValueError("stream_replicas must be 1, 3 or 5")


def make_genesis_section(config: OrderingConfig) -> dict[bytes, bytes]:
    return {CONFIG_KEY: encode(config)}


def get_config(genesis: GenesisConfig) -> OrderingConfig:
    """The chain's ordering settings (defaults without a genesis entry; corrupt: ConfigError)."""
    raw = dict(genesis.state).get(CONFIG_KEY)
    if raw is None:
        return OrderingConfig()
    try:
        return decode_as(OrderingConfig, raw)
    except EncodingError as exc:
        raise ConfigError(f"the ordering genesis section is corrupt: {exc.reason}") from None


def compute_stream_name(chain_id: str) -> str:
    """The JetStream stream of a chain (letters, digits, ``-`` and ``_`` only)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in chain_id)
    return f"GRIDLEDGER_{safe}"


def compute_subject(chain_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in chain_id)
    return f"gridledger.{safe}.log"
