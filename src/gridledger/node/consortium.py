"""A local consortium in one directory: keys, genesis, configs, and the processes.

Layout written by :func:`init_consortium`::

    DIR/
      consortium.json        n, chain id, base port, the node config files
      genesis.cbor           canonical GenesisConfig (chain id + validator set)
      keys/replica-<i>.pem   Ed25519 replica keys (0600)
      node-<i>.json          one NodeConfig per replica
      node-<i>/              data dir (chain.sqlite); replica.crt, its X.509 certificate
      identity/              CA, RM, MM and TC trustees' material, one 0700 directory per
                             role, 0600 private files (:mod:`gridledger.node.identity_material`)
      logs/node-<i>.log      written by ``up``

The genesis carries the identity contract's parameters (CA root, the RM's
pseudonym-key certificate, the TC threshold key) as initial state, so that every
replica builds the same contracts from it (:func:`gridledger.node.replica.build_registry`).

:class:`ConsortiumProcesses` starts one ``python -m gridledger.node.run`` process
per replica, waits (bounded) until every client API answers, and stops them
with SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gridledger.consensus.dpos.config import DposConfig
from gridledger.consensus.dpos.config import make_genesis_section as make_dpos_section
from gridledger.consensus.ordering.config import OrderingConfig
from gridledger.consensus.ordering.config import make_genesis_section as make_ordering_section
from gridledger.consensus.ordering.servers import (
    NATS_PLAN_FILE,
    NatsCluster,
    plan_nats_cluster,
    read_nats_plan,
    start_nats_cluster,
    write_nats_plan,
)
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.errors import EncodingError
from gridledger.crypto.rng import SYSTEM_RNG, Rng
from gridledger.errors import ConfigError, NodeError
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import Validator
from gridledger.ledger.plugins import GenesisSetup, compute_plugin_genesis
from gridledger.node.client import ClientError, ConsortiumClient
from gridledger.node.config import (
    Address,
    ConsensusParams,
    NodeConfig,
    PeerConfig,
    load_config,
    write_config,
)
from gridledger.node.identity_material import (
    IDENTITY_DIR,
    IdentitySetup,
    create_identity_material,
)
from gridledger.node.keys import generate_key_file

MANIFEST = "consortium.json"
GENESIS_FILE = "genesis.cbor"
DEFAULT_BASE_PORT = 7100


@dataclass(frozen=True)
class ConsortiumLayout:
    """The files of a consortium directory, as listed in its manifest."""

    root: Path
    chain_id: str
    configs: tuple[Path, ...]

    @property
    def n(self) -> int:
        return len(self.configs)

    def load_configs(self) -> list[NodeConfig]:
        return [load_config(p) for p in self.configs]

    def get_api_addresses(self) -> dict[int, Address]:
        cfg = load_config(self.configs[0])
        return {pid: p.api for pid, p in cfg.peers.items()}

    def get_http_addresses(self) -> dict[int, Address]:
        """Each replica's HTTP API and dashboard address (replicas without one left out)."""
        found = {}
        for i, path in enumerate(self.configs):
            http = load_config(path).http
            if http is not None:
                found[i] = http
        return found

    def log_path(self, replica: int) -> Path:
        return self.root / "logs" / f"node-{replica}.log"

    @property
    def identity_dir(self) -> Path | None:
        """``root/identity`` if the consortium was created with identity material."""
        path = self.root / IDENTITY_DIR
        return path if path.is_dir() else None


def init_consortium(
    root: Path,
    n: int,
    base_port: int = DEFAULT_BASE_PORT,
    *,
    chain_id: str = "gridledger-local",
    host: str = "127.0.0.1",
    consensus: ConsensusParams | None = None,
    genesis_time_ms: int | None = None,
    ports: list[tuple[int, int]] | None = None,
    identity: IdentitySetup | None = IdentitySetup(),  # noqa: B008 (frozen, immutable)
    rng: Rng = SYSTEM_RNG,
    plugins: tuple[str, ...] | None = None,
    http_ports: list[int] | None = None,
    engine: str = "pbft",
) -> ConsortiumLayout:
    """Write keys, identity material, genesis and one config per replica into ``root``.

    ``root`` must be empty or absent. Replica ``i`` listens for replicas on
    ``base_port + i`` and for clients on ``base_port + 100 + i`` (or on
    ``ports[i] = (replica_port, api_port)`` if given). With ``identity`` (the
    default: a 3-of-5 TC over edwards25519) the CA, replica certificates, RM, MM
    and TC trustees are created and the genesis carries the identity contract's
    parameters; ``identity=None`` makes a KV-only chain. ``rng`` draws the
    replica keys, the CA key, serials and the DKG (RSA keys come from OpenSSL).
    Every installed contract plugin that makes a genesis section
    (:class:`~gridledger.ledger.plugins.GenesisSectionMaker`) writes its role
    material under ``root/<plugin>/`` and adds its section (``plugins`` names a
    subset; ``()`` for none). Replica ``i`` serves the HTTP API and dashboard on
    ``base_port + 200 + i`` (on ``http_ports[i]`` if given; none when ``ports`` is
    given without ``http_ports``). ``engine`` picks the consensus engine: ``pbft``,
    ``dpos`` (every replica a producer, 1 s slots) or ``jetstream`` (a 3-server
    NATS JetStream cluster planned in ``nats.json``, started by ``consortium up``).
    """
    if n < 1:
        raise ConfigError("a consortium needs at least one replica (n = 3f+1, e.g. 4)")
    if not 1024 <= base_port <= 65535 - 200 - n:
        raise ConfigError(f"base port {base_port} leaves no room for {n} replicas")
    try:
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise ConfigError(f"{root} is not an empty directory")
    except OSError as exc:
        raise ConfigError(f"cannot use {root}: {exc.strerror or exc}") from None
    if ports is not None and len(ports) != n:
        raise ConfigError(f"{len(ports)} port pairs given for {n} replicas")
    if identity is not None:
        identity.check()
    try:
        (root / "keys").mkdir(parents=True, exist_ok=True)
        (root / "logs").mkdir(exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {root}: {exc.strerror or exc}") from None
    validators = []
    replica_keys = []
    for i in range(n):
        key = generate_key_file(root / "keys" / f"replica-{i}.pem", rng)
        validators.append(Validator(i, key.public_key.raw))
        replica_keys.append(key.public_key)
    ts = int(time.time() * 1000) if genesis_time_ms is None else genesis_time_ms
    state: dict[bytes, bytes] = {}
    if identity is not None:
        material = create_identity_material(root, replica_keys, ts // 1000, identity, rng)
        state = material.genesis_state()
    setup = GenesisSetup(root, chain_id, tuple(validators), ts, rng)
    for state_key, value in compute_plugin_genesis(setup, plugins).items():
        if state_key in state:
            raise ConfigError(f"genesis key {state_key!r} is written twice")
        state[state_key] = value
    for state_key, value in compute_engine_genesis(root, engine, n).items():
        if state_key in state:
            raise ConfigError(f"genesis key {state_key!r} is written twice")
        state[state_key] = value
    genesis = GenesisConfig.create(chain_id, validators, ts, state, engine=engine)
    (root / GENESIS_FILE).write_bytes(encode(genesis))
    if http_ports is not None and len(http_ports) != n:
        raise ConfigError(f"{len(http_ports)} HTTP ports given for {n} replicas")
    if ports is None:
        ports = [(base_port + i, base_port + 100 + i) for i in range(n)]
        if http_ports is None:
            http_ports = [base_port + 200 + i for i in range(n)]
    configs = write_node_configs(
        root, chain_id, host, ports, consensus or ConsensusParams(), http_ports
    )
    manifest = {
        "chain_id": chain_id,
        "n": n,
        "base_port": base_port,
        "configs": [p.name for p in configs],
        "identity": None
        if identity is None
        else {
            "dir": IDENTITY_DIR,
            "tc_threshold": identity.tc_threshold,
            "tc_trustees": identity.tc_trustees,
            "group": identity.group.name,
        },
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return ConsortiumLayout(root, chain_id, configs)


def write_node_configs(
    root: Path,
    chain_id: str,
    host: str,
    ports: Sequence[tuple[int, int]],
    consensus: ConsensusParams,
    http_ports: Sequence[int] | None = None,
) -> tuple[Path, ...]:
    """``node-<i>.json`` for each replica of a layout under ``root`` (keys in ``keys/``,
    the genesis in :data:`GENESIS_FILE`): replica and API ports per replica, every peer."""
    peers = {
        i: PeerConfig(Address(host, replica), Address(host, api))
        for i, (replica, api) in enumerate(ports)
    }
    configs = []
    for i in peers:
        cfg = NodeConfig(
            replica_id=i,
            chain_id=chain_id,
            listen=peers[i].replica,
            api=peers[i].api,
            peers=peers,
            data_dir=root / f"node-{i}",
            key_file=root / "keys" / f"replica-{i}.pem",
            genesis_file=root / GENESIS_FILE,
            consensus=consensus,
            http=None if http_ports is None else Address(host, http_ports[i]),
        )
        path = root / f"node-{i}.json"
        write_config(path, cfg)
        configs.append(path)
    return tuple(configs)


def compute_engine_genesis(root: Path, engine: str, n: int) -> dict[bytes, bytes]:
    """The genesis section an engine needs (and, for ``jetstream``, the NATS server plan)."""
    if engine == "pbft":
        return {}
    if engine == "dpos":
        return make_dpos_section(DposConfig(producers=n, block_interval_ms=1_000))
    if engine == "jetstream":
        write_nats_plan(root / NATS_PLAN_FILE, plan_nats_cluster(root, 3))
        return make_ordering_section(OrderingConfig(stream_replicas=3))
    raise ConfigError(f"unknown consensus engine {engine!r} (pbft, dpos, jetstream)")


def load_layout(root: Path) -> ConsortiumLayout:
    """Read ``root/consortium.json``; :class:`ConfigError` if absent or malformed."""
    if not root.is_dir():
        raise ConfigError(f"{root}: no such consortium directory")
    try:
        manifest = json.loads((root / MANIFEST).read_text())
        chain_id = manifest["chain_id"]
        names = manifest["configs"]
        if not isinstance(chain_id, str) or not isinstance(names, list) or not names:
            raise ValueError("bad fields")
        configs = tuple(root / str(name) for name in names)
    except OSError:
        raise ConfigError(f"{root}: not a consortium directory (no {MANIFEST})") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{root}/{MANIFEST}: malformed manifest") from None
    return ConsortiumLayout(root, chain_id, configs)


def load_genesis(path: Path) -> GenesisConfig:
    """Read the canonical genesis file; :class:`ConfigError` if missing or malformed."""
    try:
        return decode_as(GenesisConfig, path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read genesis ({exc.strerror})") from None
    except EncodingError as exc:
        raise ConfigError(f"{path}: not a genesis file ({exc.reason})") from None


# -- processes ------------------------------------------------------------------------


def compute_replica_command(config_path: Path) -> list[str]:
    return [sys.executable, "-m", "gridledger.node.run", str(config_path)]


class ConsortiumProcesses:
    """The replica processes of a consortium directory (start, wait ready, kill, stop)."""

    def __init__(self, layout: ConsortiumLayout, *, env: dict[str, str] | None = None) -> None:
        self.layout = layout
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._logs: dict[int, IO[bytes]] = {}
        self._env = env
        self.nats: NatsCluster | None = None

    def start_replica(self, replica: int) -> None:
        """Spawn replica ``replica`` (its output appended to ``logs/node-<i>.log``)."""
        log_path = self.layout.log_path(replica)
        log_path.parent.mkdir(exist_ok=True)
        old = self._logs.pop(replica, None)
        if old is not None:
            old.close()
        fh = log_path.open("ab")
        self._logs[replica] = fh
        env = dict(os.environ if self._env is None else self._env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.procs[replica] = subprocess.Popen(
            compute_replica_command(self.layout.configs[replica]),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not them directly
        )

    def start(self) -> None:
        """Start the NATS servers the consortium needs (``jetstream``), then every replica."""
        plan = self.layout.root / NATS_PLAN_FILE
        if plan.exists() and self.nats is None:
            self.nats = start_nats_cluster(read_nats_plan(plan))
        for i in range(self.layout.n):
            self.start_replica(i)

    def get_dead(self) -> dict[int, int]:
        """Replicas whose process has exited, with their exit codes."""
        out = {}
        for rid, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                out[rid] = code
        return out

    def wait_ready(self, timeout: float = 30.0, replicas: list[int] | None = None) -> None:
        """Block until every (listed) replica answers ``status``; :class:`NodeError` on timeout."""
        wanted = list(range(self.layout.n)) if replicas is None else replicas
        asyncio.run(_wait_ready(self, wanted, timeout))

    def kill_replica(self, replica: int) -> None:
        """SIGKILL one replica (crash tests)."""
        proc = self.procs[replica]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_replica(self, replica: int, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        proc = self.procs.get(replica)
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            return proc.wait(timeout=10)

    def stop(self, grace: float = 10.0) -> dict[int, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        codes = {rid: self.stop_replica(rid, grace) for rid in list(self.procs)}
        for fh in self._logs.values():
            fh.close()
        self._logs.clear()
        if self.nats is not None:
            self.nats.stop()
            self.nats = None
        return codes

    def __enter__(self) -> ConsortiumProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _wait_ready(procs: ConsortiumProcesses, wanted: list[int], timeout: float) -> None:
    apis = procs.layout.get_api_addresses()
    client = ConsortiumClient(apis)
    deadline = time.monotonic() + timeout
    pending = set(wanted)
    try:
        while pending:
            dead = {r: c for r, c in procs.get_dead().items() if r in pending}
            if dead:
                rid, code = next(iter(dead.items()))
                raise NodeError(
                    f"replica {rid} exited with code {code}; see {procs.layout.log_path(rid)}"
                )
            for rid in sorted(pending):
                with contextlib.suppress(ClientError):
                    await client.call(rid, "status", {}, timeout=1.0)
                    pending.discard(rid)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise NodeError(f"replicas {sorted(pending)} not ready after {timeout:.0f}s")
            await asyncio.sleep(0.2)
    finally:
        await client.close()


def get_status_all(layout: ConsortiumLayout, timeout: float = 3.0) -> dict[int, Any]:
    """``status`` of every replica (a :class:`ClientError` for the unreachable ones)."""

    async def query() -> dict[int, Any]:
        client = ConsortiumClient(layout.get_api_addresses())
        try:
            return await client.call_all("status", {}, timeout)
        finally:
            await client.close()

    return asyncio.run(query())
