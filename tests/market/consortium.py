"""Four in-process replicas over TCP on 127.0.0.1 running the market (test and benchmark).

The consortium directory comes from :func:`init_consortium` (KV-only); its genesis is
then replaced, before any replica starts, by one with the same validators that
carries the market world's identity section and pseudonyms, the market config
and the payments config, so every replica builds the same registry.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.identity.contracts import IdentityContract
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.contracts_builtin import KvContract
from gridledger.ledger.tx import Transaction
from gridledger.market import client
from gridledger.market.config import compute_genesis_state
from gridledger.market.contract import MarketContract
from gridledger.market.messages import MarketConfig
from gridledger.node.client import ClientError, ConsortiumClient
from gridledger.node.config import ConsensusParams, load_config
from gridledger.node.consortium import GENESIS_FILE, ConsortiumLayout, init_consortium
from gridledger.node.replica import Replica
from gridledger.payments.config import compute_genesis_state as payments_genesis
from gridledger.payments.contract import PaymentsContract
from tests.node.helpers import get_free_ports

from .helpers import ROUND, SLOT_MS, World

CHAIN_ID = "market-chain"
RELAYS = 64


def make_market_consortium(
    root: Path, world: World, config: MarketConfig, params: ConsensusParams
) -> ConsortiumLayout:
    ports = get_free_ports(8)
    pairs = [(ports[2 * i], ports[2 * i + 1]) for i in range(4)]
    layout = init_consortium(
        root, 4, consensus=params, ports=pairs, chain_id=CHAIN_ID, identity=None
    )
    path = root / GENESIS_FILE
    old = decode_as(GenesisConfig, path.read_bytes())
    state = dict(world.identity_state)
    state.update(compute_genesis_state(config))
    state.update(payments_genesis(world.payments_config()))
    genesis = GenesisConfig.create(CHAIN_ID, old.validators, old.timestamp_ms, state)
    path.write_bytes(encode(genesis))
    return layout


def make_registry(world: World, config: MarketConfig) -> ContractRegistry:
    return ContractRegistry(
        (
            KvContract(),
            IdentityContract(world.identity_config),
            MarketContract(config),
            PaymentsContract(world.payments_config()),
        )
    )


def presign_orders(world: World, count: int, now_s: int, seed: int = 1) -> list[Transaction]:
    """``count`` signed orders around a mid price, relayed by RELAYS one-time senders."""
    rng = DeterministicRng(f"orders-{seed}")
    pick = random.Random(seed)
    slot = now_s * 1000 // SLOT_MS + 3
    relays = [Ed25519PrivateKey((i + 1).to_bytes(32, "big")) for i in range(RELAYS)]
    out = []
    for i in range(count):
        who = world.pseudonyms[i % len(world.pseudonyms)]
        quantity = pick.randint(1, 10) * (1 if pick.random() < 0.5 else -1)
        price = pick.randint(90, 110)
        order, _ = client.create_order(who.raw, ROUND, slot, quantity, price, rng)
        signed = client.sign_order(order, who.key)
        relay = relays[i % RELAYS]
        out.append(Transaction.create(CHAIN_ID, "market.order", signed, relay, i // RELAYS + 1))
    return out


@dataclass
class LoadResult:
    rate: int
    succ: int
    fail: int
    send_rate: float
    latencies: list[float] = field(default_factory=list)
    throughput: float = 0.0
    rejected: list[str] = field(default_factory=list)
    cpu_s: float = 0.0  # this process's CPU time for the round (all in-process replicas)


async def run_load(
    api: ConsortiumClient,
    txs: Sequence[Transaction],
    rate: int,
    tick_s: float,
    timeout_s: float,
    *,
    via_primary: bool = False,
) -> LoadResult:
    """Send ``rate`` tx/s in a batch every ``tick_s``; success = f+1 agreeing receipts.

    ``via_primary``: the batch goes to the primary (replica 0) and f backups report
    their receipts by hash (PBFT's normal case); otherwise every replica gets it.
    """
    loop = asyncio.get_running_loop()
    per_tick = max(1, round(rate * tick_s))
    batches = [txs[i : i + per_tick] for i in range(0, len(txs), per_tick)]
    result = LoadResult(rate, 0, 0, 0.0)
    done: list[float] = []
    tasks = []

    async def send(batch: Sequence[Transaction], t0: float) -> None:
        raw = [encode(tx) for tx in batch]
        try:
            if via_primary:
                hashes = [tx.tx_hash for tx in batch]
                receipts = await api.submit_via_primary(raw, hashes, 0, timeout=timeout_s)
            else:
                receipts = await api.submit(raw, timeout=timeout_s)
        except ClientError:
            result.fail += len(batch)
            return
        t1 = loop.time()
        for r in receipts:
            if r.get("status") == "committed":
                result.succ += 1
                result.latencies.append(t1 - t0)
                done.append(t1)
            else:
                result.fail += 1
                result.rejected.append(str(r.get("reason")))

    cpu0 = time.process_time()
    start = loop.time()
    for k, batch in enumerate(batches):
        delay = start + k * tick_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(batch, loop.time())))
    last = loop.time()
    await asyncio.wait(tasks, timeout=timeout_s + 10)
    for t in tasks:
        t.cancel()
    result.cpu_s = time.process_time() - cpu0
    result.send_rate = len(txs) / max(last - start, tick_s)
    result.throughput = result.succ / max((max(done) - start) if done else 1.0, tick_s)
    return result


async def start_replicas(
    layout: ConsortiumLayout, world: World, config: MarketConfig
) -> list[Replica]:
    replicas = [
        Replica(load_config(p), synchronous="NORMAL", registry=make_registry(world, config))
        for p in layout.configs
    ]
    for r in replicas:
        await r.start()
    return replicas


def get_now_s() -> int:
    """Wall-clock seconds for the world's certificates (the replicas stamp blocks with it)."""
    return int(time.time())
