"""Node cores with the ``jetstream`` engine over a real NATS JetStream cluster, in one process.

The replicas' frames go through in-process queues (the TCP transport is tested
elsewhere); the ordered log is real: nats-server processes on 127.0.0.1, a
stream with 3 replicas, each replica's own client and ordered consumer.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence

from gridledger.consensus.ordering.config import get_config
from gridledger.consensus.ordering.nats_log import JetStreamLog, LogUnavailable
from gridledger.consensus.params import ConsensusParams
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.plugins import build_registry
from gridledger.ledger.storage import MemoryBlockStore
from gridledger.node.core import BlockCommitted, LogAppend, NodeCore, NodeEffect, Transmit


def now_ms() -> int:
    return int(time.time() * 1000)


class NatsConsortium:
    """n replicas (node cores + log adapters) sharing one JetStream stream."""

    def __init__(
        self,
        genesis: GenesisConfig,
        keys: Sequence[Ed25519PrivateKey],
        urls: Sequence[str],
        tick_ms: int = 10,
    ) -> None:
        self.genesis = genesis
        self.keys = list(keys)
        self.urls = list(urls)
        self.tick_ms = tick_ms
        self.ids = [v.replica_id for v in genesis.validators]
        self.stores = {i: MemoryBlockStore() for i in self.ids}
        self.cores: dict[int, NodeCore | None] = dict.fromkeys(self.ids)
        self.logs: dict[int, JetStreamLog] = {}
        self.tickers: dict[int, asyncio.Task[None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.acked: dict[str, int] = {}  # log key -> stream sequence
        self.unacked: set[str] = set()
        self.errors: dict[str, int] = {}
        self.tx_keys: dict[str, bytes] = {}  # log key -> tx hash
        self.commit_ms: dict[bytes, int] = {}
        self.submit_ms: dict[bytes, int] = {}
        self.stream_replicas = get_config(genesis).stream_replicas

    async def start_replica(self, i: int) -> None:
        core = NodeCore(
            replica_id=i,
            key=self.keys[i],
            genesis=self.genesis,
            store=self.stores[i],
            registry=build_registry(self.genesis),
            params=ConsensusParams(),
            rng=DeterministicRng(f"nats/{i}/{time.monotonic_ns()}"),
        )
        # Each replica prefers "its" server and fails over to the others.
        k = self.ids.index(i) % len(self.urls)
        log = JetStreamLog(
            self.urls[k:] + self.urls[:k], self.genesis.chain_id, self.stream_replicas
        )
        self.cores[i] = core
        self.logs[i] = log
        await log.start(core.log_position, lambda seq, data: self._on_entry(i, seq, data))
        self.tickers[i] = asyncio.get_running_loop().create_task(self._tick(i))

    async def crash_replica(self, i: int) -> None:
        self.cores[i] = None
        ticker = self.tickers.pop(i, None)
        if ticker is not None:
            ticker.cancel()
        log = self.logs.pop(i, None)
        if log is not None:
            await log.close()

    async def stop(self) -> None:
        for i in list(self.logs):
            await self.crash_replica(i)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, *self.tickers.values(), return_exceptions=True)

    def submit(self, i: int, payload: bytes) -> dict[str, object]:
        core = self.cores[i]
        assert core is not None
        key = "tx/" + hashlib.sha256(payload).hexdigest()
        results, effects = core.submit([payload], now_ms())
        tx_hash = results[0].get("tx_hash")
        if isinstance(tx_hash, str):
            self.tx_keys[key] = bytes.fromhex(tx_hash)
            self.submit_ms.setdefault(bytes.fromhex(tx_hash), now_ms())
        self._carry_out(i, effects)
        return results[0]

    def get_heights(self) -> dict[int, int]:
        return {i: self.stores[i].head_height() or 0 for i in self.ids}

    def get_acked_tx_hashes(self) -> set[bytes]:
        return {self.tx_keys[k] for k in self.acked if k in self.tx_keys}

    def get_committed(self, i: int) -> list[bytes]:
        """Every transaction hash on replica ``i``'s chain, in chain order."""
        store = self.stores[i]
        out: list[bytes] = []
        for h in range(1, (store.head_height() or 0) + 1):
            block = store.get_block(h)
            assert block is not None
            out.extend(tx.tx_hash for tx in block.transactions)
        return out

    async def wait_for(self, cond: object, timeout_s: float) -> bool:
        assert callable(cond)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cond():
                return True
            await asyncio.sleep(0.05)
        return bool(cond())

    # -- plumbing ---------------------------------------------------------------------

    async def _tick(self, i: int) -> None:
        while True:
            core = self.cores.get(i)
            if core is None:
                return
            self._carry_out(i, core.on_tick(now_ms()))
            await asyncio.sleep(self.tick_ms / 1000)

    def _on_entry(self, i: int, seq: int, data: bytes) -> None:
        core = self.cores.get(i)
        if core is not None:
            self._carry_out(i, core.on_log(seq, data, now_ms()))

    def _deliver(self, sender: int, to: int, frame: bytes) -> None:
        core = self.cores.get(to)
        if core is not None:
            self._carry_out(to, core.on_frame(sender, frame, now_ms()))

    def _carry_out(self, i: int, effects: list[NodeEffect]) -> None:
        loop = asyncio.get_running_loop()
        for effect in effects:
            if isinstance(effect, Transmit):
                targets = [effect.to] if effect.to is not None else [j for j in self.ids if j != i]
                for to in targets:
                    loop.call_soon(self._deliver, i, to, effect.frame)
            elif isinstance(effect, LogAppend):
                task = loop.create_task(self._append(i, effect.key, effect.payload))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif isinstance(effect, BlockCommitted):
                at = now_ms()
                for tx in effect.block.transactions:
                    self.commit_ms.setdefault(tx.tx_hash, at)

    async def _append(self, i: int, key: str, payload: bytes) -> None:
        log = self.logs.get(i)
        if log is None:
            self.unacked.add(key)
            return
        try:
            self.acked[key] = await log.append(key, payload)
        except (LogUnavailable, asyncio.CancelledError, ConnectionError) as exc:
            self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
            self.unacked.add(key)
        except Exception as exc:  # a closed client while the replica crashes: not acknowledged
            self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
            self.unacked.add(key)
