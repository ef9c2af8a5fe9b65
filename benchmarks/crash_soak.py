"""Crash soak: kill -9 random replicas (the primary included) under load, again and again.

A 4-replica PBFT consortium runs as separate processes on 127.0.0.1 (SQLite with
``synchronous=FULL``). A client keeps submitting signed transactions to every
replica; every ``--every`` seconds one replica, drawn at random and the primary
one time in four, is killed with SIGKILL and restarted after a short pause. Its
catch-up time is the time until it reports the height the others had when it
came back. At the end, with the load stopped:

* every transaction the client saw committed is on every replica (``wait`` on
  its hash answers ``committed`` from each replica's own store);
* every replica has the same head.

    python benchmarks/crash_soak.py [--kills 100] [--every 2.0] [--seed 1]

Everything is bounded: each kill round by time, the whole run by ``--budget`` s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gridledger.crypto.encoding import encode
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvSet
from gridledger.ledger.tx import Transaction
from gridledger.node.client import ClientError, ConsortiumClient
from gridledger.node.config import ConsensusParams
from gridledger.node.consortium import ConsortiumLayout, ConsortiumProcesses, init_consortium

CHAIN = "soak-chain"


async def _heights(client: ConsortiumClient) -> dict[int, int]:
    answers = await client.call_all("status", {}, timeout=2.0)
    return {i: a["height"] for i, a in answers.items() if isinstance(a, dict)}


async def _primary(client: ConsortiumClient) -> int | None:
    answers = await client.call_all("status", {}, timeout=2.0)
    views = [a["primary"] for a in answers.values() if isinstance(a, dict)]
    return max(set(views), key=views.count) if views else None


async def run(
    args: argparse.Namespace, layout: ConsortiumLayout, procs: ConsortiumProcesses
) -> int:
    rng = random.Random(args.seed)
    client = ConsortiumClient(layout.get_api_addresses())
    committed: set[str] = set()
    key = Ed25519PrivateKey(bytes([args.seed % 256]) * 32)
    nonce = 0
    stop = asyncio.Event()

    async def load() -> None:
        nonlocal nonce
        while not stop.is_set():
            txs = []
            for _ in range(20):
                nonce += 1
                txs.append(
                    encode(
                        Transaction.create(
                            CHAIN, KV_SET_KIND, KvSet(b"k%d" % (nonce % 97), b"v"), key, nonce
                        )
                    )
                )
            try:
                receipts = await client.submit(txs, timeout=5)
            except ClientError:
                await asyncio.sleep(0.2)
                continue
            committed.update(r["tx_hash"] for r in receipts if r.get("status") == "committed")
            await asyncio.sleep(0.05)

    loader = asyncio.create_task(load())
    catch_up: list[float] = []
    primaries_killed = 0
    deadline = time.monotonic() + args.budget
    try:
        for k in range(args.kills):
            if time.monotonic() > deadline:
                print(f"budget spent after {k} kills", file=sys.stderr)
                break
            await asyncio.sleep(args.every)
            primary = await _primary(client)
            victim = primary if (primary is not None and k % 4 == 0) else rng.randrange(4)
            primaries_killed += victim == primary
            procs.kill_replica(victim)
            await asyncio.sleep(0.3)
            procs.start_replica(victim)
            began = time.monotonic()
            target = max((await _heights(client)).values(), default=0)
            while time.monotonic() - began < 60:
                heights = await _heights(client)
                if heights.get(victim, -1) >= target:
                    break
                await asyncio.sleep(0.1)
            catch_up.append(time.monotonic() - began)
    finally:
        stop.set()
        await loader
    await asyncio.sleep(3)  # let the last blocks reach everyone
    for _ in range(100):
        heights = await _heights(client)
        if len(heights) == 4 and len(set(heights.values())) == 1:
            break
        await asyncio.sleep(0.2)
    statuses = await client.call_all("status", {}, timeout=2.0)
    heads = {a["head_hash"] for a in statuses.values() if isinstance(a, dict)}
    missing = 0
    hashes = sorted(committed)
    for replica in range(4):
        for i in range(0, len(hashes), 500):
            chunk = hashes[i : i + 500]
            answer = await client.call(replica, "wait", {"hashes": chunk, "timeout": 1}, 30)
            missing += sum(1 for r in answer["receipts"] if r["status"] != "committed")
    await client.close()
    print("| kills | primaries killed | txs seen committed | missing on some replica | "
          "heads equal | catch-up median s | catch-up max s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    med = statistics.median(catch_up) if catch_up else 0.0
    print(
        f"| {len(catch_up)} | {primaries_killed} | {len(committed)} | {missing} | "
        f"{len(heads) == 1} | {med:.2f} | {max(catch_up, default=0.0):.2f} |"
    )
    return 0 if missing == 0 and len(heads) == 1 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=float, default=1500.0)
    parser.add_argument("--base-port", type=int, default=47600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        layout = init_consortium(
            Path(tmp) / "c", 4, args.base_port, chain_id=CHAIN, identity=None,
            consensus=ConsensusParams(view_change_timeout_ms=2000),
        )  # fmt: skip
        procs = ConsortiumProcesses(layout)
        procs.start()
        try:
            procs.wait_ready(60)
            return asyncio.run(run(args, layout, procs))
        finally:
            procs.stop()


if __name__ == "__main__":
    sys.exit(main())
