"""Shared helpers for the node tests: free ports, consortium directories, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvSet
from gridledger.ledger.tx import Transaction
from gridledger.node.client import ConsortiumClient
from gridledger.node.config import ConsensusParams, load_config
from gridledger.node.consortium import ConsortiumLayout, init_consortium
from gridledger.node.core import NodeLimits
from gridledger.node.replica import Replica

FAST = ConsensusParams(
    max_batch=200,
    batch_delay_ms=10,
    view_change_timeout_ms=1500,
    checkpoint_interval=4,
    watermark_window=16,
    tick_ms=20,
    status_log_s=5,
)


def get_free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out on 127.0.0.1 (free unless someone races us)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def make_consortium(root: Path, n: int = 4, params: ConsensusParams = FAST) -> ConsortiumLayout:
    ports = get_free_ports(2 * n)
    pairs = [(ports[2 * i], ports[2 * i + 1]) for i in range(n)]
    return init_consortium(root, n, consensus=params, ports=pairs, chain_id="test-chain")


def make_kv_txs(
    count: int, *, chain_id: str = "test-chain", seed: int = 1, start_nonce: int = 1
) -> list[Transaction]:
    key = Ed25519PrivateKey(seed.to_bytes(32, "big"))
    return [
        Transaction.create(
            chain_id, KV_SET_KIND, KvSet(b"k%d" % i, b"v%d" % i), key, start_nonce + i
        )
        for i in range(count)
    ]


async def wait_until(
    cond: Callable[[], bool] | Callable[[], Awaitable[bool]],
    timeout: float,
    what: str = "condition",
) -> None:
    """Poll ``cond`` every 50 ms; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = cond()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_consortium(
    layout: ConsortiumLayout, limits: NodeLimits | None = None
) -> AsyncIterator[tuple[list[Replica], ConsortiumClient]]:
    """The layout's replicas started in this process (SQLite NORMAL) and a client;
    both closed and stopped on the way out, whatever the test did."""
    replicas = [
        Replica(load_config(p), synchronous="NORMAL", limits=limits) for p in layout.configs
    ]
    for r in replicas:
        await r.start()
    client = ConsortiumClient(layout.get_api_addresses())
    try:
        yield replicas, client
    finally:
        await client.close()
        for r in replicas:
            await r.stop()
