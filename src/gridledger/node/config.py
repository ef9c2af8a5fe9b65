"""Node configuration: one JSON (or TOML) file per replica.

Example (``node-0.json``; relative paths are resolved against the file's
directory)::

    {
      "replica_id": 0,
      "chain_id": "gridledger-local",
      "listen": "127.0.0.1:7100",
      "api": "127.0.0.1:7200",
      "http": "127.0.0.1:7300",
      "peers": {"0": {"replica": "127.0.0.1:7100", "api": "127.0.0.1:7200"}, ...},
      "data_dir": "node-0",
      "key_file": "keys/replica-0.pem",
      "genesis_file": "genesis.cbor",
      "consensus": {"max_batch": 1000, "batch_delay_ms": 20, "view_change_timeout_ms": 4000,
                    "checkpoint_interval": 16, "watermark_window": 64, "tick_ms": 20}
    }

:func:`load_config` turns every problem (missing file, bad JSON, wrong field
type, unknown replica) into one :class:`~gridledger.errors.ConfigError` line.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gridledger.consensus.params import ConsensusParams as ConsensusParams  # re-exported
from gridledger.errors import ConfigError
from gridledger.ledger.quorum import compute_f


@dataclass(frozen=True)
class Address:
    """A ``host:port`` pair."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PeerConfig:
    """Where one replica listens for replicas and for clients."""

    replica: Address
    api: Address


@dataclass(frozen=True)
class NodeConfig:
    """Everything one replica process needs to start."""

    replica_id: int
    chain_id: str
    listen: Address
    api: Address
    peers: dict[int, PeerConfig]
    data_dir: Path
    key_file: Path
    genesis_file: Path
    consensus: ConsensusParams = field(default_factory=ConsensusParams)
    http: Address | None = None  # the HTTP API and dashboard (optional; port 0 picks one)

    @property
    def n(self) -> int:
        return len(self.peers)

    @property
    def f(self) -> int:
        return compute_f(self.n)


def parse_address(text: Any, where: str) -> Address:
    """Parse ``"host:port"``; :class:`ConfigError` naming ``where`` otherwise."""
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError(f"{where}: expected 'host:port', got {text!r}")
    host, _, port_text = text.rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{where}: port {port_text!r} is not a number") from None
    if not host or not 0 <= port <= 65535:
        raise ConfigError(f"{where}: bad address {text!r}")
    return Address(host, port)


def _get(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise ConfigError(f"{where}: missing field {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: field {key!r} must be {kind.__name__}")
    return value


# consensus parameters for which 0 is meaningful (automatic size, no limit)
_ZERO_MEANS_AUTO = frozenset({"max_batch_bytes", "max_inflight_batches"})


def _parse_consensus(data: Any, where: str) -> ConsensusParams:
    if data is None:
        return ConsensusParams()
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: 'consensus' must be a table")
    known = {f.name for f in fields(ConsensusParams)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown consensus parameter(s) {unknown}")
    values: dict[str, int] = {}
    for name, value in data.items():
        lowest = 0 if name in _ZERO_MEANS_AUTO else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
            kind = "a non-negative" if lowest == 0 else "a positive"
            raise ConfigError(f"{where}: consensus.{name} must be {kind} integer")
        values[name] = value
    return ConsensusParams(**values)


def parse_config(data: Any, base_dir: Path, where: str) -> NodeConfig:
    """Build a :class:`NodeConfig` from decoded JSON/TOML, resolving paths under ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    replica_id = _get(data, "replica_id", int, where)
    chain_id = _get(data, "chain_id", str, where)
    raw_peers = _get(data, "peers", dict, where)
    peers: dict[int, PeerConfig] = {}
    for key, value in raw_peers.items():
        try:
            pid = int(key)
        except ValueError:
            raise ConfigError(f"{where}: peer id {key!r} is not a number") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: peer {key} must be a table")
        peers[pid] = PeerConfig(
            parse_address(value.get("replica"), f"{where}: peers.{key}.replica"),
            parse_address(value.get("api"), f"{where}: peers.{key}.api"),
        )
    if sorted(peers) != list(range(len(peers))) or len(peers) < 1:
        raise ConfigError(f"{where}: peer ids must be 0..n-1")
    if replica_id not in peers:
        raise ConfigError(f"{where}: replica_id {replica_id} is not among the peers")
    return NodeConfig(
        replica_id=replica_id,
        chain_id=chain_id,
        listen=parse_address(_get(data, "listen", str, where), f"{where}: listen"),
        api=parse_address(_get(data, "api", str, where), f"{where}: api"),
        peers=peers,
        data_dir=base_dir / _get(data, "data_dir", str, where),
        key_file=base_dir / _get(data, "key_file", str, where),
        genesis_file=base_dir / _get(data, "genesis_file", str, where),
        consensus=_parse_consensus(data.get("consensus"), where),
        http=None if data.get("http") is None else parse_address(data["http"], f"{where}: http"),
    )


def load_config(path: Path) -> NodeConfig:
    """Read a JSON (``.json``) or TOML (``.toml``) node configuration file."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text.decode())
        else:
            data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    return parse_config(data, path.resolve().parent, str(path))


def config_to_json(config: NodeConfig, base_dir: Path) -> dict[str, Any]:
    """The JSON form of ``config`` with paths relative to ``base_dir`` where possible."""

    def rel(p: Path) -> str:
        try:
            return str(p.resolve().relative_to(base_dir.resolve()))
        except ValueError:
            return str(p)

    answer: dict[str, Any] = {
        "replica_id": config.replica_id,
        "chain_id": config.chain_id,
        "listen": str(config.listen),
        "api": str(config.api),
        "peers": {
            str(pid): {"replica": str(p.replica), "api": str(p.api)}
            for pid, p in sorted(config.peers.items())
        },
        "data_dir": rel(config.data_dir),
        "key_file": rel(config.key_file),
        "genesis_file": rel(config.genesis_file),
        "consensus": asdict(config.consensus),
    }
    if config.http is not None:
        answer["http"] = str(config.http)
    return answer


def write_config(path: Path, config: NodeConfig) -> None:
    """Write ``config`` as JSON next to the files it names."""
    path.write_text(json.dumps(config_to_json(config, path.parent), indent=2) + "\n")
