"""The replica process: a thin asyncio shell around the node core.

Everything a replica decides happens in :class:`~gridledger.node.core.NodeCore`
(consensus engine, ledger, state transfer, client intake). This shell owns
what the core must not touch:

* the transport (TCP between replicas): frames in are queued and fed to
  ``core.on_frame`` in time slices of at most ``_SLICE_S`` so that signature
  checks never hold the loop for long; ``Transmit`` effects go out;
* the wall clock: ``core.on_tick(now)`` every ``tick_ms``;
* SQLite (opened here, handed to the core as its store);
* the client API: ``submit`` and ``wait`` park a future per transaction hash,
  resolved by the core's ``BlockCommitted`` effects; reads go through
  :class:`~gridledger.node.service.NodeService`;
* the HTTP API and dashboard (when the config names an ``http`` address):
  uvicorn in this same loop (:mod:`gridledger.node.http`), with every
  ``BlockCommitted`` fanned out to its event-stream subscribers.

The core loop is supervised: a bug that escapes a handler is logged with its
traceback and counted, and the loop goes on; only a failed write of the
engine's persisted state (fail-stop) stops the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from gridledger.consensus import pbft_engine
from gridledger.consensus.clock import Clock
from gridledger.consensus.ordering.config import ENGINE_NAME as ORDERING_ENGINE
from gridledger.consensus.ordering.config import get_config as get_ordering_config
from gridledger.consensus.ordering.nats_log import JetStreamLog, LogUnavailable
from gridledger.consensus.ordering.servers import NATS_PLAN_FILE, read_nats_plan
from gridledger.consensus.tcp import TcpTransport
from gridledger.consensus.transport import Transport, TransportError
from gridledger.crypto.rng import SYSTEM_RNG
from gridledger.errors import ConfigError
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.plugins import build_registry
from gridledger.ledger.storage import SqliteBlockStore
from gridledger.node.api import ApiError, ApiServer, TooManyTransactions, get_hex_param, get_param
from gridledger.node.config import NodeConfig
from gridledger.node.consortium import load_genesis
from gridledger.node.core import (
    BlockCommitted,
    LogAppend,
    Logged,
    NodeCore,
    NodeCoreError,
    NodeEffect,
    NodeLimits,
    Transmit,
    compute_dropped_json,
    compute_receipt_json,
)
from gridledger.node.http import Broadcaster, HttpServer, HttpSettings, create_app
from gridledger.node.http.auth import SessionTable
from gridledger.node.keys import read_key
from gridledger.node.service import NodeService, ServiceError
from gridledger.node.sim_clock import SimulationClock, check_simulation_clock

log = logging.getLogger("gridledger.replica")

__all__ = ["MAX_SUBMIT_TXS", "VOTES_META", "Replica", "WallClock", "build_registry"]

_SLICE_S = 0.02
_SUBMIT_SLICE = 100  # yield to the event loop after taking this many transactions
VOTES_META = pbft_engine.VOTES_KEY
MAX_SUBMIT_TXS = NodeLimits().max_submit_txs


class WallClock:
    """Milliseconds since the Unix epoch, never decreasing.

    Block timestamps are agreed from the primary's clock and compared with the
    backups' clocks (and with the genesis time), so the replicas need a shared
    origin: the wall clock, not ``SystemClock``'s per-boot monotonic one.
    """

    def __init__(self) -> None:
        self._last = 0

    def now_ms(self) -> int:
        self._last = max(self._last, time.time_ns() // 1_000_000)
        return self._last


def _make_log_adapter(config: NodeConfig, genesis: GenesisConfig) -> JetStreamLog | None:
    """The NATS JetStream client of a ``jetstream`` chain (servers from ``nats.json`` beside
    the genesis file, or ``GRIDLEDGER_NATS_URLS``, comma-separated); ``None`` otherwise."""
    if genesis.engine != ORDERING_ENGINE:
        return None
    env = os.environ.get("GRIDLEDGER_NATS_URLS")
    if env:
        urls = [u.strip() for u in env.split(",") if u.strip()]
    else:
        urls = [s.url for s in read_nats_plan(config.genesis_file.parent / NATS_PLAN_FILE)]
    # Each replica prefers a different server and fails over to the others.
    k = config.replica_id % len(urls)
    replicas = get_ordering_config(genesis).stream_replicas
    return JetStreamLog(urls[k:] + urls[:k], genesis.chain_id, replicas)


def _open_store(config: NodeConfig, synchronous: str) -> SqliteBlockStore:
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        if not config.data_dir.is_dir():
            raise ConfigError(f"data_dir {config.data_dir} is not a directory")
        return SqliteBlockStore(
            config.data_dir / "chain.sqlite",
            synchronous="NORMAL" if synchronous == "NORMAL" else "FULL",
        )
    except OSError as exc:
        raise ConfigError(f"cannot use data_dir {config.data_dir}: {exc.strerror or exc}") from None


class _Waiter:
    """One API call waiting for receipts: woken once, when the last one it waits for arrives."""

    __slots__ = ("found", "future", "missing")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.found: dict[str, dict[str, Any]] = {}
        self.missing = 0

    def deliver(self, text: str, answer: dict[str, Any]) -> None:
        self.found[text] = answer
        self.missing -= 1
        if self.missing <= 0 and not self.future.done():
            self.future.set_result(None)


class Replica:
    """One consortium replica process: node core + transport + clock + SQLite + client API."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        transport: Transport | None = None,
        clock: Clock | None = None,
        registry: ContractRegistry | None = None,
        synchronous: str = "FULL",
        verify_on_submit: bool = False,
        limits: NodeLimits | None = None,
        http_settings: HttpSettings | None = None,
    ) -> None:
        self.config = config
        self.id = config.replica_id
        key = read_key(config.key_file)
        self.genesis: GenesisConfig = load_genesis(config.genesis_file)
        if self.genesis.chain_id != config.chain_id:
            raise ConfigError(
                f"genesis is for chain {self.genesis.chain_id!r}, config says {config.chain_id!r}"
            )
        if len(self.genesis.validators) != config.n:
            raise ConfigError("the genesis validator set and the peer list differ in size")
        if isinstance(clock, SimulationClock):
            check_simulation_clock(self.genesis)  # never on a production chain
        self.store = _open_store(config, synchronous)
        self.clock = clock or WallClock()
        self.core = NodeCore(
            replica_id=self.id,
            key=key,
            genesis=self.genesis,
            store=self.store,
            registry=registry or build_registry(self.genesis),
            params=config.consensus,
            rng=SYSTEM_RNG,
            limits=limits,
            verify_on_submit=verify_on_submit,
        )
        self.service = NodeService(self.core)
        self.transport: Transport = transport or TcpTransport(
            self.id,
            config.chain_id,
            (config.listen.host, config.listen.port),
            {pid: (p.replica.host, p.replica.port) for pid, p in config.peers.items()},
            key=key,
            validators=self.genesis.validators,
        )
        self.transport.set_receiver(self._on_frame)
        self.api = ApiServer(config.api.host, config.api.port, self._api_methods())
        self.broadcaster = Broadcaster()
        self.http: HttpServer | None = None
        if config.http is not None:
            app = create_app(
                self.service,
                submit=self.api_submit,
                wait=self.api_wait,
                status=self.api_status,
                broadcaster=self.broadcaster,
                sessions=SessionTable(config.chain_id),
                settings=http_settings,
            )
            self.http = HttpServer(
                app, config.http.host, config.http.port, on_close=self.broadcaster.close
            )
        self._frames: deque[tuple[int, bytes]] = deque()
        # Engines that order through an outside log (jetstream): the NATS client lives here.
        self.log_adapter = _make_log_adapter(config, self.genesis)
        self._log_entries: deque[tuple[int, bytes]] = deque()
        self._appends: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: dict[bytes, list[tuple[_Waiter, str]]] = {}  # tx hash -> calls waiting
        self.loop_errors = 0
        self.task_restarts: dict[str, int] = {}
        self.frames_sent = 0  # frames handed to the transport (a broadcast counts n-1)

    # -- views ------------------------------------------------------------------------

    @property
    def ledger(self) -> Any:
        return self.core.ledger

    @property
    def restored_votes(self) -> int:
        return int(self.core.get_status()["consensus"].get("restored_votes", 0))

    def get_view(self) -> int:
        return self.core.view

    def get_primary(self) -> int:
        return self.core.leader

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (replicas and clients) and start the core loop."""
        await self.transport.start()
        if self.log_adapter is not None:
            await self.log_adapter.start(self.core.log_position, self._on_log_entry)
        await self.api.start()
        if self.http is not None:
            await self.http.start()
        self._tasks = [
            asyncio.create_task(
                self._supervise("core", self._run_core), name=f"replica-{self.id}-core"
            ),
            asyncio.create_task(
                self._supervise("status-log", self._run_status_log), name=f"replica-{self.id}-log"
            ),
        ]
        log.info(
            "replica %d started at height %d, view %d (n=%d, engine %s, api %s)",
            self.id,
            self.core.ledger.height,
            self.get_view(),
            self.config.n,
            self.genesis.engine,
            self.config.api,
        )

    async def stop(self) -> None:
        """Stop tasks, close sockets and the store."""
        self._stopping.set()
        self._wakeup.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.api.close()
        if self.http is not None:
            await self.http.close()
        await self.transport.close()
        for task in list(self._appends):
            task.cancel()
        if self.log_adapter is not None:
            await self.log_adapter.close()
        self.store.close()
        log.info("replica %d stopped at height %d", self.id, self.core.ledger.height)

    async def run_forever(self) -> None:
        await self.start()
        try:
            await self._stopping.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        self._stopping.set()

    # -- the core loop ----------------------------------------------------------------

    def _on_frame(self, sender: int, frame: bytes) -> None:
        self._frames.append((sender, frame))
        self._wakeup.set()

    def _on_log_entry(self, seq: int, entry: bytes) -> None:
        self._log_entries.append((seq, entry))
        self._wakeup.set()

    async def _append(self, effect: LogAppend) -> None:
        assert self.log_adapter is not None
        try:
            await self.log_adapter.append(effect.key, effect.payload)
        except LogUnavailable as exc:
            log.warning("replica %d: %s", self.id, exc.reason)

    async def _supervise(self, name: str, body: Any) -> None:
        """Run a replica loop; if it dies of a bug, say so loudly, count it and restart it.

        Protocol steps already catch their own errors (``_guard``); this is the last line
        for a bug in the loop itself, so a replica never goes silently deaf.
        """
        while not self._stopping.is_set():
            try:
                await body()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.task_restarts[name] = self.task_restarts.get(name, 0) + 1
                log.exception("replica %d: the %s loop died; restarting it", self.id, name)
                await asyncio.sleep(0.1)

    async def _run_core(self) -> None:
        tick_s = self.config.consensus.tick_ms / 1000
        next_tick = time.monotonic()
        while not self._stopping.is_set():
            timeout = max(0.0, next_tick - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            self._wakeup.clear()
            slice_start = time.monotonic()
            while self._frames:
                sender, frame = self._frames.popleft()
                self._guard(lambda s=sender, f=frame: self.core.on_frame(s, f, self.clock.now_ms()))
                if time.monotonic() - slice_start > _SLICE_S:
                    await asyncio.sleep(0)  # let the transport and the API run
                    slice_start = time.monotonic()
            while self._log_entries:
                seq, entry = self._log_entries.popleft()
                self._guard(lambda q=seq, e=entry: self.core.on_log(q, e, self.clock.now_ms()))
            if time.monotonic() >= next_tick:
                self._guard(lambda: self.core.on_tick(self.clock.now_ms()))
                next_tick = time.monotonic() + tick_s

    def _guard(self, step: Any) -> None:
        """Run one core step and carry out its effects; a bug is logged, never fatal."""
        try:
            self._carry_out(step())
        except NodeCoreError as exc:
            log.critical("replica %d: %s; stopping", self.id, exc.reason)
            self.request_stop()
        except Exception:
            self.loop_errors += 1
            log.exception("replica %d: a core step failed; going on", self.id)

    def _carry_out(self, effects: Sequence[NodeEffect]) -> None:
        for effect in effects:
            if isinstance(effect, Transmit):
                self.frames_sent += 1 if effect.to is not None else self.config.n - 1
                with contextlib.suppress(TransportError):
                    if effect.to is None:
                        self.transport.broadcast(effect.frame)
                    else:
                        self.transport.send(effect.to, effect.frame)
            elif isinstance(effect, BlockCommitted):
                self._resolve_waiters(effect)
                if self.broadcaster.count:
                    self._publish(effect)
            elif isinstance(effect, Logged):
                log.log(effect.level, "%s", effect.message)
            elif isinstance(effect, LogAppend) and self.log_adapter is not None:
                task = asyncio.get_running_loop().create_task(self._append(effect))
                self._appends.add(task)
                task.add_done_callback(self._appends.discard)

    def _publish(self, effect: BlockCommitted) -> None:
        """Fan the block and its trades out to event streams; a failure here never
        keeps the effects after it from being carried out."""
        try:
            block, trades = self.service.get_commit_event(effect.block)
            self.broadcaster.on_block(block, trades)
        except Exception:
            log.exception("replica %d: publishing block %d failed", self.id, effect.block.height)

    def _resolve_waiters(self, effect: BlockCommitted) -> None:
        if not self._waiters:
            return
        block = effect.block
        block_hash = block.header.header_hash
        for index, receipt in enumerate(effect.receipts):
            entries = self._waiters.pop(receipt.tx_hash, None)
            if entries:
                answer = compute_receipt_json(receipt, block.height, index, block_hash)
                for waiter, text in entries:
                    waiter.deliver(text, answer)
        for dropped in effect.dropped:
            entries = self._waiters.pop(dropped.tx_hash, None)
            if entries:
                answer = compute_dropped_json(dropped, block.height)
                for waiter, text in entries:
                    waiter.deliver(text, answer)

    async def _run_status_log(self) -> None:
        period = self.config.consensus.status_log_s
        last = self.core.executed_txs
        while True:
            await asyncio.sleep(period)
            rate = (self.core.executed_txs - last) / period
            last = self.core.executed_txs
            log.info(
                "replica %d: height %d, view %d, %.0f tx/s, peers %s, bad frames %s",
                self.id,
                self.core.ledger.height,
                self.get_view(),
                rate,
                self.transport.get_connected_peers(),
                dict(self.core.bad_frames),
            )

    # -- client API -------------------------------------------------------------------

    def _api_methods(self) -> dict[str, Any]:
        methods = {
            "status": self.api_status,
            "submit": self.api_submit,
            "wait": self.api_wait,
            "block": self._api_block,
            "headers": self._api_headers,
            "tx_proof": self._api_tx_proof,
            "state": self._api_state,
            "scan": self._api_scan,
        }
        if isinstance(self.clock, SimulationClock):  # only on a simulation chain (checked)
            methods["sim_clock"] = self._api_sim_clock
        return methods

    async def api_status(self, params: dict[str, Any]) -> dict[str, Any]:
        status = self.core.get_status()
        status["peers"] = self.transport.get_connected_peers()
        status["restored_votes"] = self.restored_votes
        status["loop_errors"] = self.loop_errors
        status["task_restarts"] = dict(self.task_restarts)
        status["frames_sent"] = self.frames_sent
        if isinstance(self.transport, TcpTransport):
            status["transport"] = {
                "auth_failures": dict(self.transport.get_auth_failures()),
                "frame_failures": dict(self.transport.get_frame_failures()),
                "pending_handshakes": self.transport.get_pending_handshakes(),
                "dropped": self.transport.get_dropped(),
            }
        return status

    @staticmethod
    def _get_timeout(params: dict[str, Any]) -> float:
        timeout = params.get("timeout", 10.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise ApiError("timeout must be a number of seconds in (0, 120]")
        if not 0 < timeout <= 120:
            raise ApiError("timeout must be a number of seconds in (0, 120]")
        return float(timeout)

    async def api_submit(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = params.get("txs", [])
        if "tx" in params:
            raw = [params["tx"]]
        if not isinstance(raw, list) or not raw:
            raise ApiError("submit needs 'tx' or a non-empty list 'txs' of hex transactions")
        if len(raw) > MAX_SUBMIT_TXS:
            raise TooManyTransactions(
                f"too many transactions: {len(raw)} in one submit, at most {MAX_SUBMIT_TXS}"
            )
        wait = params.get("wait", False)
        if not isinstance(wait, bool):
            raise ApiError("wait must be true or false")
        timeout = self._get_timeout(params)
        max_hex = 2 * self.core.max_tx_bytes
        results: list[dict[str, Any]] = []
        for start in range(0, len(raw), _SUBMIT_SLICE):
            if start:
                await asyncio.sleep(0)  # a large submit must not hold the loop
            payloads: list[bytes] = []
            slots: list[int] = []
            for text in raw[start : start + _SUBMIT_SLICE]:
                results.append({})
                if not isinstance(text, str):
                    results[-1] = {"status": "invalid", "reason": "not hex"}
                    continue
                if len(text) > max_hex:
                    results[-1] = {
                        "status": "invalid",
                        "error": "too-large",
                        "reason": f"transaction too large: {len(text) // 2} bytes, "
                        f"at most {max_hex // 2}",
                    }
                    continue
                try:
                    payloads.append(bytes.fromhex(text))
                except ValueError:
                    results[-1] = {"status": "invalid", "reason": "not hex"}
                    continue
                slots.append(len(results) - 1)
            answers, effects = self.core.submit(payloads, self.clock.now_ms())
            for slot, answer in zip(slots, answers, strict=True):
                results[slot] = answer
            self._carry_out(effects)
            self._wakeup.set()
        if wait:
            pending = [r["tx_hash"] for r in results if r.get("status") == "pending"]
            if pending:
                found = await self._wait_for(pending, timeout)
                for r in results:
                    if r.get("status") == "pending" and r["tx_hash"] in found:
                        r.update(found[r["tx_hash"]])
        return {"receipts": results}

    async def _wait_for(self, hashes: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        """Receipts of these transactions, from the chain or as their blocks execute.

        One future per call, not per transaction: a submit of hundreds of
        transactions to every replica would otherwise cost each replica a future,
        a callback and a wake-up per transaction.
        """
        loop = asyncio.get_running_loop()
        found: dict[str, dict[str, Any]] = {}
        waiter = _Waiter(loop.create_future())
        parked: list[bytes] = []
        for text in hashes:
            tx_hash = bytes.fromhex(text)
            known = self.core.get_receipt_json(tx_hash)
            if known is not None:
                found[text] = known
                continue
            self._waiters.setdefault(tx_hash, []).append((waiter, text))
            waiter.missing += 1
            parked.append(tx_hash)
        if parked:
            try:
                await asyncio.wait({waiter.future}, timeout=timeout)
            finally:
                waiter.future.cancel()
                for tx_hash in parked:
                    entries = self._waiters.get(tx_hash)
                    if entries is not None:
                        entries[:] = [e for e in entries if e[0] is not waiter]
                        if not entries:
                            del self._waiters[tx_hash]
            found.update(waiter.found)
        return found

    async def api_wait(self, params: dict[str, Any]) -> dict[str, Any]:
        """Receipts of transactions submitted anywhere: at once if on chain, else when executed."""
        hashes = params.get("hashes")
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise ApiError("wait needs 'hashes', a list of hex transaction hashes")
        if len(hashes) > MAX_SUBMIT_TXS:
            raise TooManyTransactions(f"at most {MAX_SUBMIT_TXS} hashes per wait")
        for text in hashes:
            try:
                bytes.fromhex(text)
            except ValueError:
                raise ApiError(f"{text!r} is not hex") from None
        timeout = self._get_timeout(params)
        found = await self._wait_for(list(hashes), timeout)
        return {"receipts": [found.get(h, {"tx_hash": h, "status": "pending"}) for h in hashes]}

    async def _api_block(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.service.get_block(get_param(params, "height", int))
        except ServiceError as exc:
            raise ApiError(exc.reason) from None

    async def _api_headers(self, params: dict[str, Any]) -> dict[str, Any]:
        start = get_param(params, "from", int)
        return self.service.get_headers(start, get_param(params, "to", int))

    async def _api_tx_proof(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.service.get_tx_proof(get_hex_param(params, "hash"))
        except ServiceError as exc:
            raise ApiError(exc.reason) from None

    async def _api_state(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.service.get_state(get_hex_param(params, "key"))

    async def _api_scan(self, params: dict[str, Any]) -> dict[str, Any]:
        after = params.get("after")
        limit = get_param(params, "limit", int, 100)
        try:
            return self.service.get_scan(
                get_hex_param(params, "prefix"),
                None if after is None else get_hex_param(params, "after"),
                limit,
            )
        except ServiceError as exc:
            raise ApiError(exc.reason) from None

    async def _api_sim_clock(self, params: dict[str, Any]) -> dict[str, Any]:
        """Move a simulation chain's clock forward (see :mod:`gridledger.node.sim_clock`)."""
        assert isinstance(self.clock, SimulationClock)
        offset = get_param(params, "offset_ms", int)
        try:
            now = self.clock.advance(offset)
        except ConfigError as exc:
            raise ApiError(exc.reason) from None
        self._wakeup.set()
        return {"now_ms": now, "offset_ms": self.clock.offset_ms}
