"""The trading day's chain as separate replica processes on 127.0.0.1.

:class:`ProcessChain` is the second backend of the trading day beside the
in-process :class:`~gridledger.sim.trading_day.SimChain`, with the same four
operations (``at``, ``now_ms``, ``submit``, ``view``). It runs the project's real
replica: one ``gridledger node run CONFIG`` process per validator, PBFT over
authenticated TCP on loopback, SQLite stores, the JSON-lines client API.

* **Files.** The day's genesis (the day's validator keys, identity, payments and
  market sections) plus the entry that declares a simulation chain
  (:func:`~gridledger.node.sim_clock.compute_simulation_genesis_state`), key files
  and one config per replica with ports the kernel hands out on 127.0.0.1.
* **Time.** Each replica runs a :class:`~gridledger.node.sim_clock.SimulationClock`
  (wall time + an offset), started with the offset that puts it at the genesis
  time. :meth:`ProcessChain.at` first waits until every replica is on one head with
  nothing in flight, then raises the offset on every replica (``sim_clock``), so a
  jump never fires an armed consensus timer; between jumps time passes at wall speed.
* **Submissions** follow the client rule: every transaction goes to every replica
  and a receipt counts once f+1 replicas return equal receipts.
* **Reads.** :meth:`ProcessChain.view` pins the head all replicas settled on and
  reads keys (``state``) and ordered prefix scans (``scan``, paged) through the API,
  accepting an answer only when f+1 replicas return equal answers at that head.

A replica that dies, a port taken at start-up or a chain that does not settle is a
:class:`~gridledger.sim.trading_day.TradingDayError` with one line naming the replica
and the last line of its log. :meth:`ProcessChain.close` always stops every process.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from gridledger.crypto.encoding import encode
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.errors import GridledgerError
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import Validator
from gridledger.ledger.contracts import StateView
from gridledger.ledger.state import Overlay
from gridledger.ledger.tx import Transaction
from gridledger.node.client import ClientError, ConsortiumClient
from gridledger.node.config import ConsensusParams
from gridledger.node.consortium import (
    GENESIS_FILE,
    MANIFEST,
    ConsortiumLayout,
    ConsortiumProcesses,
    write_node_configs,
)
from gridledger.node.keys import write_key
from gridledger.node.sim_clock import compute_simulation_genesis_state, get_wall_ms
from gridledger.node.simnet import SIM_CHAIN
from gridledger.sim.trading_day import TradingDayError

T = TypeVar("T")

HOST = "127.0.0.1"
START_ATTEMPTS = 3  # fresh ports each time: another program may take one between checks
READY_S = 60.0
SETTLE_S = 30.0  # for every replica to reach one head with nothing in flight
COMMIT_S = 60.0  # for f+1 receipts of one submission
ORPHAN_LIMIT_S = 4 * 3600  # a replica stops by itself after this, whatever happens
SCAN_PAGE = 1_000
SUBMIT_CHUNK = 500  # transactions per submit call (the API takes at most 2,000)
SUBMIT_CHUNK_HEX = 4 * 1024 * 1024  # and at most this much hex per call (lines ≤ 8 MiB)
PARAMS = ConsensusParams(
    max_batch=16,  # as the in-process day's replicas: a submission splits into the same blocks
    batch_delay_ms=10,
    view_change_timeout_ms=4000,
    checkpoint_interval=8,
    watermark_window=16,
    tick_ms=10,
    status_log_s=60,
)


def get_free_ports(count: int) -> list[int]:
    """Ports the kernel hands out on 127.0.0.1 now (free unless another program races us)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def write_sim_consortium(
    root: Path,
    keys: Sequence[Ed25519PrivateKey],
    genesis_state: Mapping[bytes, bytes],
    epoch_ms: int,
    params: ConsensusParams = PARAMS,
) -> ConsortiumLayout:
    """Keys, the simulation genesis and one config per replica (ephemeral loopback ports)."""
    root.mkdir(parents=True)
    (root / "keys").mkdir()
    (root / "logs").mkdir()
    validators = [Validator(i, k.public_key.raw) for i, k in enumerate(keys)]
    state = dict(genesis_state)
    state.update(compute_simulation_genesis_state())
    genesis = GenesisConfig.create(SIM_CHAIN, validators, epoch_ms, state)
    (root / GENESIS_FILE).write_bytes(encode(genesis))
    n = len(keys)
    for i, key in enumerate(keys):
        write_key(root / "keys" / f"replica-{i}.pem", key)
    free = get_free_ports(2 * n)
    ports = [(free[2 * i], free[2 * i + 1]) for i in range(n)]
    configs = write_node_configs(root, SIM_CHAIN, HOST, ports, params)
    manifest = {"chain_id": SIM_CHAIN, "n": n, "configs": [p.name for p in configs]}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return ConsortiumLayout(root, SIM_CHAIN, configs)


class SimReplicaProcesses(ConsortiumProcesses):
    """Replica processes on the simulation clock (``gridledger node run`` with its flags)."""

    def __init__(self, layout: ConsortiumLayout, offset_ms: int, max_tx_bytes: int) -> None:
        super().__init__(layout)
        self.offset_ms = offset_ms
        self.max_tx_bytes = max_tx_bytes

    def start_replica(self, replica: int) -> None:
        """Spawn replica ``replica`` on the simulation clock (output to ``logs/node-<i>.log``)."""
        command = [
            *(sys.executable, "-m", "gridledger.cli.main", "node", "run"),
            str(self.layout.configs[replica]),
            *("--simulation-clock-offset-ms", str(self.offset_ms)),
            *("--max-tx-bytes", str(self.max_tx_bytes)),
            # a safety net should the driver itself be killed (close() never ran)
            *("--duration", str(ORPHAN_LIMIT_S)),
        ]
        fh = self.layout.log_path(replica).open("ab")
        self._logs[replica] = fh
        self.procs[replica] = subprocess.Popen(
            command,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )


def get_last_log_line(path: Path) -> str:
    """The last non-empty line of a replica's log (what it said before it died)."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1].strip() if lines else "(empty log)"


class ProcessChain:
    """The client side of replica processes: submit to all, f+1 equal answers, read, jump."""

    def __init__(
        self,
        root: Path,
        keys: Sequence[Ed25519PrivateKey],
        genesis_state: Mapping[bytes, bytes],
        epoch_ms: int,
        *,
        max_tx_bytes: int,
        progress: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.root = root
        self.keys = list(keys)
        self.genesis_state = dict(genesis_state)
        self.epoch_ms = epoch_ms
        self.max_tx_bytes = max_tx_bytes
        self.progress = progress
        self.transactions = 0
        self.offset_ms = 0
        self.procs: SimReplicaProcesses | None = None
        self.layout: ConsortiumLayout | None = None
        self._loop = asyncio.new_event_loop()
        self._client: ConsortiumClient | None = None
        self._pinned: tuple[int, str] | None = None  # (height, head) while nothing was sent

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Write the consortium and start its replicas; retry on fresh ports if one is taken."""
        last = ""
        for attempt in range(START_ATTEMPTS):
            layout = write_sim_consortium(
                self.root / f"consortium-{attempt}", self.keys, self.genesis_state, self.epoch_ms
            )
            self.offset_ms = self.epoch_ms - get_wall_ms()
            procs = SimReplicaProcesses(layout, self.offset_ms, self.max_tx_bytes)
            self.procs, self.layout = procs, layout
            ports = ", ".join(str(p.api.port) for p in layout.load_configs()[0].peers.values())
            self.progress(f"starting {layout.n} replica processes (APIs on {HOST}: {ports})")
            try:
                procs.start()
                procs.wait_ready(READY_S)
            except GridledgerError as exc:
                last = self._describe_dead() or exc.reason
                procs.stop(grace=2.0)
                self.procs = None
                if "in use" not in last:
                    raise TradingDayError(f"replica processes did not start: {last}") from None
                self.progress(f"a port was taken ({last}); retrying on fresh ports")
                continue
            self._client = ConsortiumClient(layout.get_api_addresses())
            return
        raise TradingDayError(f"no free ports after {START_ATTEMPTS} attempts: {last}")

    def close(self) -> None:
        """Stop every replica process (SIGTERM, then SIGKILL) and the client."""
        try:
            if self._client is not None:
                self._run(self._client.close())
                self._client = None
        finally:
            if self.procs is not None:
                self.procs.stop(grace=5.0)
                self.procs = None
            self._loop.close()

    def __enter__(self) -> ProcessChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the four operations ------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        """What the replicas' clocks read now (wall time + the current offset)."""
        return get_wall_ms() + self.offset_ms

    def at(self, abs_ms: int) -> None:
        """Jump every replica's clock to ``abs_ms`` (once they are idle); never backwards."""
        if abs_ms <= self.now_ms:
            return
        self.settle()
        offset = abs_ms - get_wall_ms()
        answers = self._run(self._get_client().call_all("sim_clock", {"offset_ms": offset}, 10.0))
        failed = {rid: a for rid, a in answers.items() if isinstance(a, ClientError)}
        if failed:
            rid, error = next(iter(failed.items()))
            self._fail(f"replica {rid} did not take the clock jump: {error.reason}")
        self.offset_ms = offset

    def submit(
        self, txs: Sequence[Transaction], *, must_commit: bool = True
    ) -> list[dict[str, Any]]:
        """Send ``txs`` to every replica; their receipts once f+1 replicas agree on them."""
        payloads = [encode(tx) for tx in txs]
        for tx, raw in zip(txs, payloads, strict=True):
            if len(raw) > self.max_tx_bytes:
                raise TradingDayError(
                    f"a {tx.kind} transaction of {len(raw)} bytes exceeds {self.max_tx_bytes}"
                )
        self._pinned = None
        receipts: list[dict[str, Any]] = []
        for chunk in _chunks(payloads):
            try:
                receipts.extend(self._run(self._get_client().submit(chunk, timeout=COMMIT_S)))
            except ClientError as exc:
                self._fail(f"{len(chunk)} transactions did not commit: {exc.reason}")
        self.transactions += len(txs)
        open_ = [r for r in receipts if r.get("status") not in ("committed", "rejected")]
        if open_:
            self._fail(f"a transaction came back {open_[0].get('status')}: {open_[0]}")
        if must_commit:
            bad = [r for r in receipts if r["status"] != "committed"]
            if bad:
                raise TradingDayError(f"refused: {bad[0]['reason']}")
        return receipts

    def view(self, namespace: str) -> StateView:
        """A read-only view of the replicas' committed state; f+1 equal answers per read."""
        return StateView(Overlay(RemoteState(self)), namespace)

    # -- figures for the day's result ---------------------------------------------------

    def get_blocks(self) -> int:
        return self.settle()[0]

    def get_consensus_messages(self) -> int:
        """Frames the replicas handed to their transports (engine and node frames)."""
        statuses = self._statuses()
        return sum(int(s.get("frames_sent", 0)) for s in statuses.values())

    def is_on_one_head(self) -> bool:
        statuses = self._statuses()
        return len({s["head_hash"] for s in statuses.values()}) == 1

    # -- helpers ------------------------------------------------------------------------

    def settle(self) -> tuple[int, str]:
        """Wait until every replica is on one head, nothing in flight; return (height, head)."""
        if self._pinned is not None:
            return self._pinned
        deadline = time.monotonic() + SETTLE_S
        while True:
            statuses = self._statuses()
            heads = {(s["height"], s["head_hash"]) for s in statuses.values()}
            idle = all(
                s["inflight_txs"] == 0
                and not s["syncing"]
                and not s["consensus"].get("in_view_change", False)
                for s in statuses.values()
            )
            if len(heads) == 1 and idle:
                self._pinned = next(iter(heads))
                return self._pinned
            if time.monotonic() > deadline:
                heights = {rid: s["height"] for rid, s in statuses.items()}
                self._fail(
                    f"the replicas did not settle on one head in {SETTLE_S:.0f} s: {heights}"
                )
            time.sleep(0.005)

    def _statuses(self) -> dict[int, dict[str, Any]]:
        answers = self._run(self._get_client().call_all("status", {}, 10.0))
        out = {}
        for rid, answer in answers.items():
            if isinstance(answer, ClientError):
                self._fail(f"replica {rid} does not answer: {answer.reason}")
            out[rid] = answer
        return out

    def read_agreed(self, method: str, params: dict[str, Any]) -> Any:
        """One read that f+1 replicas answered equally."""
        try:
            return self._run(self._get_client().call_agreed(method, params, 10.0))
        except ClientError as exc:
            self._fail(f"{method}: {exc.reason}")

    def _get_client(self) -> ConsortiumClient:
        if self._client is None:
            raise TradingDayError("the replica processes are not running")
        return self._client

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def _describe_dead(self) -> str | None:
        if self.procs is None or self.layout is None:
            return None
        dead = self.procs.get_dead()
        if not dead:
            return None
        rid, code = sorted(dead.items())[0]
        path = self.layout.log_path(rid)
        return f"replica {rid} exited with code {code}: {get_last_log_line(path)} (log: {path})"

    def _fail(self, reason: str) -> Any:
        """Raise one line: a dead replica first (the likely cause), else ``reason``."""
        raise TradingDayError(self._describe_dead() or reason)


class RemoteState:
    """State read through the replicas' API (a ``StateReader``), live like a replica's own:
    each read is at the head every replica settled on, cached until the head moves."""

    def __init__(self, chain: ProcessChain) -> None:
        self.chain = chain
        self._head: tuple[int, str] | None = None
        self._values: dict[bytes, bytes | None] = {}
        self._scans: dict[bytes, list[tuple[bytes, bytes]]] = {}

    def get(self, key: bytes) -> bytes | None:
        height, _ = self._settle()
        if key not in self._values:
            answer = self.chain.read_agreed("state", {"key": key.hex()})
            _check(answer["height"], height)
            value = answer["value"]
            self._values[key] = None if value is None else bytes.fromhex(value)
        return self._values[key]

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        height, head = self._settle()
        if prefix not in self._scans:
            entries: list[tuple[bytes, bytes]] = []
            after: str | None = None
            while True:
                params: dict[str, Any] = {"prefix": prefix.hex(), "limit": SCAN_PAGE}
                if after is not None:
                    params["after"] = after
                answer = self.chain.read_agreed("scan", params)
                _check(answer["height"], height, answer["head_hash"], head)
                entries.extend((bytes.fromhex(k), bytes.fromhex(v)) for k, v in answer["entries"])
                after = answer["resume_after"]
                if after is None:
                    break
            self._scans[prefix] = entries
        return iter(self._scans[prefix])

    def _settle(self) -> tuple[int, str]:
        head = self.chain.settle()
        if head != self._head:
            self._head = head
            self._values.clear()
            self._scans.clear()
        return head


def _check(height: int, expected: int, head: str = "", expected_head: str = "") -> None:
    if height != expected or head != expected_head:
        raise TradingDayError(
            f"the chain moved during a read (settled at {expected}, read {height})"
        )


def _chunks(payloads: list[bytes]) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    size = 0
    for raw in payloads:
        if chunk and (len(chunk) == SUBMIT_CHUNK or size + 2 * len(raw) > SUBMIT_CHUNK_HEX):
            yield chunk
            chunk, size = [], 0
        chunk.append(raw)
        size += 2 * len(raw)
    if chunk:
        yield chunk
