"""HTTP API benchmarks: read latency under 50 concurrent clients, and live stream subscribers
while the consortium commits load.

A child process runs four replicas in one event loop over TCP on 127.0.0.1 (the market
world of ``tests/market``: certified pseudonyms, the market and payments contracts) with
HTTP on every replica and the rate limit off; it is preloaded with crossing orders so
trades, depth and slots exist. This process is the load: plain keep-alive HTTP/1.1
over asyncio streams (a minimal client, so that the client costs little next to the
server; both share this 2-core machine, which the numbers include).

1. Reads: for each read endpoint, 50 concurrent clients, each a keep-alive connection
   sending its next request when the answer arrives, for ``--seconds``; requests/s,
   p50 and p95 latency. Target: p95 < 100 ms at 50 clients.
2. Streams: KV transactions committed as fast as the consortium takes them (batches of
   100, 8 in flight) with 0 and then 200 subscribers on replica 0's ``/v1/stream``,
   alternated; commit throughput and how many block events each subscriber got.
   Target: 200 subscribers slow commits by no more than 10 %.

There are no published figures for this in the five papers (they run no HTTP API);
the targets come from issue 15. Usage: ``python benchmarks/api.py [--quick]``.
Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import machine_note, markdown_table  # noqa: E402
from gridledger.crypto.encoding import encode  # noqa: E402
from gridledger.node.client import ConsortiumClient  # noqa: E402
from gridledger.node.consortium import load_layout  # noqa: E402

CLIENTS = 50
SUBSCRIBERS = 200


# -- the child: four replicas with HTTP --------------------------------------------------


def serve(root: Path) -> None:
    """Start the consortium, preload it, print READY <json>, run until stdin closes."""
    from tests.market.helpers import DENOMINATIONS, make_world
    from tests.node.http.helpers import (
        RunningConsortium,
        make_crossing_orders,
        make_http_consortium,
    )

    from gridledger.crypto.signatures import RsaPrivateKey
    from gridledger.node.http import HttpSettings

    keys = [RsaPrivateKey.generate(2048) for _ in range(3 + len(DENOMINATIONS))]
    world = make_world(keys, now=int(time.time()))
    settings = HttpSettings(rate_per_s=0, max_subscribers=SUBSCRIBERS + 50)
    running = RunningConsortium(make_http_consortium(root, world), world, settings)
    running.start()
    try:
        receipts = running.submit(make_crossing_orders(world, 40, price=100))
        receipts += running.submit(make_crossing_orders(world, 40, price=104))
        ready = {
            "root": str(root),
            "url": running.url(0),
            "tx_hash": receipts[0]["tx_hash"],
            "height": receipts[-1]["height"],
            "pseudonym": world.pseudonyms[0].raw.hex(),
        }
        print("READY " + json.dumps(ready), flush=True)
        sys.stdin.read()  # until the parent closes it
    finally:
        running.stop()


# -- a minimal keep-alive HTTP/1.1 client ------------------------------------------------


class Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await self.reader.readexactly(length)
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run_reads(host: str, port: int, path: str, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        conn = Conn(host, port)
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                status, _ = await conn.get(path)
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    errors += 1
        finally:
            conn.close()

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(CLIENTS))), seconds + 30)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p95": latencies[int(0.95 * (len(latencies) - 1))],
        "n": len(latencies),
        "errors": errors,
    }


# -- streams while committing ------------------------------------------------------------


async def subscribe(host: str, port: int, counts: list[int], stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /v1/stream?topics=blocks HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    slot = len(counts)
    counts.append(0)
    try:
        while not stop.is_set():
            try:
                line = await asyncio.wait_for(reader.readline(), 0.5)
            except TimeoutError:
                continue
            if not line:
                break
            if line.startswith(b"event: block"):
                counts[slot] += 1
    finally:
        writer.close()


async def commit_load(root: Path, count: int, seed: int) -> tuple[float, int]:
    from tests.node.helpers import make_kv_txs
    from tests.node.http.helpers import CHAIN_ID

    txs = [encode(tx) for tx in make_kv_txs(count, chain_id=CHAIN_ID, seed=seed)]
    client = ConsortiumClient(load_layout(root).get_api_addresses())
    gate = asyncio.Semaphore(8)
    committed = 0

    async def send(batch: list[bytes]) -> None:
        nonlocal committed
        async with gate:
            receipts = await client.submit(batch, timeout=60)
            committed += sum(r.get("status") == "committed" for r in receipts)

    try:
        start = time.perf_counter()
        batches = [txs[i : i + 100] for i in range(0, len(txs), 100)]
        await asyncio.wait_for(asyncio.gather(*(send(b) for b in batches)), 120)
        return committed / (time.perf_counter() - start), committed
    finally:
        await client.close()


async def run_streams(
    root: Path, host: str, port: int, subscribers: int, count: int, seed: int
) -> dict[str, float]:
    counts: list[int] = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(subscribe(host, port, counts, stop)) for _ in range(subscribers)]
    deadline = time.monotonic() + 30
    while len(counts) < subscribers and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # every subscription reached the node
    rate, committed = await commit_load(root, count, seed)
    await asyncio.sleep(1.0)  # the last events arrive
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "rate": rate,
        "committed": committed,
        "min_events": min(counts) if counts else 0,
        "max_events": max(counts) if counts else 0,
    }


# -- main --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    seconds = 1.5 if args.quick else args.seconds
    txs = 1000 if args.quick else 2000
    rounds = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(Path(tmp) / "c")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdin is not None
        found: list[dict[str, Any]] = []

        def wait_ready() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                if line.startswith("READY "):
                    found.append(json.loads(line[6:]))
                    return

        waiter = threading.Thread(target=wait_ready, daemon=True)
        waiter.start()
        waiter.join(180)
        if not found:
            child.kill()
            print("the consortium did not start", file=sys.stderr)
            return 1
        ready = found[0]
        host, port = "127.0.0.1", int(ready["url"].rsplit(":", 1)[1])
        try:
            reads = [
                ("/v1/status", "/v1/status"),
                ("/v1/blocks?limit=20", "/v1/blocks?limit=20"),
                ("/v1/blocks/{height}", f"/v1/blocks/{ready['height']}"),
                ("/v1/transactions/{hash}", f"/v1/transactions/{ready['tx_hash']}"),
                ("/v1/market/book", "/v1/market/book"),
                ("/v1/market/trades?limit=50", "/v1/market/trades?limit=50"),
                ("/v1/market/slots", "/v1/market/slots"),
                ("/v1/identity/pseudonyms/{key}", f"/v1/identity/pseudonyms/{ready['pseudonym']}"),
            ]
            rows = []
            for name, path in reads:
                r = asyncio.run(run_reads(host, port, path, seconds))
                rows.append(
                    [
                        name,
                        f"{r['rps']:.0f}",
                        f"{1000 * r['p50']:.1f}",
                        f"{1000 * r['p95']:.1f}",
                        "yes" if r["p95"] < 0.1 else "no",
                        int(r["n"]),
                        int(r["errors"]),
                    ]
                )
            stream_rows = []
            by: dict[int, list[float]] = {0: [], SUBSCRIBERS: []}
            seed = 1000
            for k in range(rounds):  # alternated, so that drift hits both sides alike
                for subs in (0, SUBSCRIBERS) if k % 2 == 0 else (SUBSCRIBERS, 0):
                    seed += 1
                    s = asyncio.run(run_streams(Path(ready["root"]), host, port, subs, txs, seed))
                    by[subs].append(s["rate"])
                    stream_rows.append(
                        [
                            subs,
                            f"{s['rate']:.0f}",
                            int(s["committed"]),
                            f"{int(s['min_events'])}..{int(s['max_events'])}" if subs else "-",
                        ]
                    )
        finally:
            child.stdin.close()
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                child.kill()
    base, loaded = statistics.median(by[0]), statistics.median(by[SUBSCRIBERS])
    slowdown = 100 * (1 - loaded / base) if base else 0.0
    print("## API")
    print()
    print(f"Machine: {machine_note()}; load generator and all four replicas share it.")
    print()
    print(
        f"Reads from one replica's HTTP API, {CLIENTS} concurrent keep-alive clients, "
        f"{seconds:g} s per endpoint (target: p95 < 100 ms):"
    )
    print()
    print(
        markdown_table(
            ["endpoint", "requests/s", "p50 ms", "p95 ms", "p95 < 100 ms", "requests", "errors"],
            rows,
        )
    )
    print()
    print(
        f"Commit throughput (KV transactions, {txs} per run, f+1 receipts) with 0 and "
        f"{SUBSCRIBERS} event-stream subscribers on replica 0; events = block events each "
        "subscriber received (min..max):"
    )
    print()
    print(markdown_table(["subscribers", "committed tx/s", "committed", "events"], stream_rows))
    print()
    print(
        f"Median commit rate: {base:.0f} tx/s without subscribers, {loaded:.0f} tx/s with "
        f"{SUBSCRIBERS}: {slowdown:+.1f} % slower (target: at most 10 %)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
