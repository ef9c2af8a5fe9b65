"""A four-replica consortium with the market, payments and identity, HTTP on every replica,
running in a background thread's event loop for the duration of a test module.

The genesis is the market tests' world (tests/market/helpers.py): certified
pseudonyms (one revoked), the market and payments configs. Orders are signed by
those pseudonyms, so trades happen and the market data, trades and depth are
real contract output.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from gridledger.crypto.encoding import decode_as, encode
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.tx import Transaction
from gridledger.market.config import compute_genesis_state
from gridledger.node.config import load_config
from gridledger.node.consortium import GENESIS_FILE, ConsortiumLayout, init_consortium
from gridledger.node.http import HttpSettings
from gridledger.node.replica import Replica
from gridledger.payments.config import compute_genesis_state as payments_genesis
from tests.market.consortium import CHAIN_ID, make_registry
from tests.market.helpers import World
from tests.node.helpers import FAST, get_free_ports

T = TypeVar("T")


def make_http_consortium(root: Path, world: World) -> ConsortiumLayout:
    ports = get_free_ports(12)
    pairs = [(ports[2 * i], ports[2 * i + 1]) for i in range(4)]
    layout = init_consortium(
        root,
        4,
        consensus=FAST,
        ports=pairs,
        http_ports=ports[8:12],
        chain_id=CHAIN_ID,
        identity=None,
    )
    path = root / GENESIS_FILE
    old = decode_as(GenesisConfig, path.read_bytes())
    state = dict(world.identity_state)
    state.update(compute_genesis_state(world.market_config()))
    state.update(payments_genesis(world.payments_config()))
    path.write_bytes(
        encode(GenesisConfig.create(CHAIN_ID, old.validators, old.timestamp_ms, state))
    )
    return layout


@dataclass
class RunningConsortium:
    """Replicas started in a private loop on a daemon thread; :meth:`run` calls into it."""

    layout: ConsortiumLayout
    world: World
    settings: HttpSettings | None = None

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.replicas: list[Replica] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        config = self.world.market_config()

        async def start() -> None:
            for path in self.layout.configs:
                replica = Replica(
                    load_config(path),
                    synchronous="NORMAL",
                    registry=make_registry(self.world, config),
                    http_settings=self.settings,
                )
                await replica.start()
                self.replicas.append(replica)

        self.run(start())
        deadline = time.monotonic() + 20
        while not all(
            len(r.transport.get_connected_peers()) == len(self.replicas) - 1 for r in self.replicas
        ):
            if time.monotonic() > deadline:
                raise AssertionError("the replicas did not connect to each other")
            time.sleep(0.05)

    def stop(self) -> None:
        async def stop() -> None:
            for replica in self.replicas:
                await replica.stop()

        try:
            self.run(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    def url(self, replica: int = 0) -> str:
        http = self.replicas[replica].http
        assert http is not None
        return f"http://127.0.0.1:{http.port}"

    def submit(self, txs: list[Transaction], timeout: float = 20.0) -> list[dict[str, Any]]:
        """Submit through replica 0's HTTP API and wait for the receipts."""
        body = {"txs": [encode(tx).hex() for tx in txs], "wait": True, "timeout": timeout}
        answer = httpx.post(f"{self.url()}/v1/transactions", json=body, timeout=timeout + 5)
        assert answer.status_code == 200, answer.text
        receipts: list[dict[str, Any]] = answer.json()["receipts"]
        return receipts

    def wait_height(self, height: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while min(r.ledger.height for r in self.replicas) < height:
            if time.monotonic() > deadline:
                raise AssertionError(f"replicas did not reach height {height}")
            time.sleep(0.05)


_relay_seeds = iter(range(10_000, 1_000_000))


def make_crossing_orders(world: World, pairs: int, price: int = 100) -> list[Transaction]:
    """``pairs`` sells and matching buys at ``price``: every pair trades. Fresh relays each call."""
    from gridledger.crypto.rng import DeterministicRng
    from gridledger.crypto.signatures import Ed25519PrivateKey
    from gridledger.market import client
    from tests.market.helpers import ROUND, SLOT_MS

    seed = next(_relay_seeds)
    rng = DeterministicRng(f"crossing-{seed}")
    slot = int(time.time()) * 1000 // SLOT_MS + 3
    txs = []
    for i in range(pairs):
        for side, who in (
            (1, world.pseudonyms[2 * i % 8]),
            (-1, world.pseudonyms[(2 * i + 1) % 8]),
        ):
            order, _ = client.create_order(who.raw, ROUND, slot, side * 2, price, rng)
            relay = Ed25519PrivateKey(
                hashlib.sha256(b"relay%d" % seed + bytes([len(txs)])).digest()
            )
            txs.append(
                Transaction.create(
                    CHAIN_ID, "market.order", client.sign_order(order, who.key), relay, 1
                )
            )
    return txs
