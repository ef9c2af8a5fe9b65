"""Market benchmarks: the matching engine, the order checks, the contract, and a 4-replica
consortium in the Caliper layout (seed 004, Table 1); allocative efficiency side by side.

1. Matching engine alone (in memory, price-time priority, mid price): orders/s over a
   replay of random limit orders and cancels. Targets and references: >= 200,000/s here;
   the best published pure-Python engine replays about 150,000/s, a C++ engine such as
   Liquibook about 2.5 million/s.
2. With the checks an order needs before the book: Ed25519 signature by the pseudonym
   and the pseudonym-certificate check against identity state.
3. The market contract on one ledger (blocks of 500 orders: checks, matching in state,
   trades, invoices, sparse-Merkle state root).
4. End to end: four replicas in this process over TCP on 127.0.0.1 (PBFT, SQLite), orders
   submitted to every replica, success = f+1 matching committed receipts. Target: >= 500
   orders/s at an average latency under 1 s.
5. Allocative efficiency of the CDA next to pay-as-bid, pay-as-clear (uniform price) and
   trade reduction on the same random bids.

Usage: ``python benchmarks/market.py [--quick] [--rates 250,500,750] [--seconds 8]``.
Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.market.consortium import (  # noqa: E402
    LoadResult,
    get_now_s,
    make_market_consortium,
    presign_orders,
    run_load,
    start_replicas,
)
from tests.market.helpers import DENOMINATIONS, World, make_chain, make_world  # noqa: E402

from benchmarks._common import machine_note, markdown_table  # noqa: E402
from gridledger.crypto.encoding import decode_as, encode  # noqa: E402
from gridledger.crypto.rng import DeterministicRng  # noqa: E402
from gridledger.crypto.signatures import Ed25519PublicKey, RsaPrivateKey  # noqa: E402
from gridledger.market.clearing import (  # noqa: E402
    Bid,
    compute_muda,
    compute_pay_as_bid,
    compute_trade_reduction,
    compute_uniform_price,
)
from gridledger.market.engine import OrderBook  # noqa: E402
from gridledger.market.messages import ORDER_TAG, SignedOrder  # noqa: E402
from gridledger.market.pseudonyms import check_pseudonym  # noqa: E402
from gridledger.market.units import BUY, SELL  # noqa: E402
from gridledger.market.welfare import MatchedTrade, compute_allocative_efficiency  # noqa: E402
from gridledger.node.client import ConsortiumClient  # noqa: E402
from gridledger.node.config import ConsensusParams  # noqa: E402

TICK_S = 0.1
MAX_SECONDS = 20.0


def load_average() -> str:
    try:
        with open("/proc/loadavg") as fh:
            return ", ".join(fh.read().split()[:3])
    except OSError:
        return "unknown"


def make_stream(n: int, seed: int = 7) -> list[tuple[int, int, int, int, int]]:
    """(kind, side, price, qty, target): kind 0 = order, 1 = cancel of an earlier order."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i and rng.random() < 0.1:
            out.append((1, 0, 0, 0, rng.randrange(i)))
        else:
            side = BUY if rng.random() < 0.5 else SELL
            mid = 1000
            price = mid + rng.randint(-20, 20) + (-5 if side == BUY else 5)
            out.append((0, side, price, rng.randint(1, 20), 0))
    return out


def bench_engine(n: int, repeat: int) -> tuple[float, int]:
    """Median orders/s (orders and cancels) and the fills of one run."""
    stream = make_stream(n)
    ids = [i.to_bytes(8, "big") for i in range(n)]
    rates = []
    fills = 0
    deadline = time.perf_counter() + MAX_SECONDS
    for _ in range(repeat):
        book = OrderBook()
        process, cancel = book.process_order, book.cancel
        t0 = time.process_time()
        fills = 0
        for i, (kind, side, price, qty, target) in enumerate(stream):
            if kind:
                cancel(ids[target])
            else:
                fills += len(process(ids[i], side, price, qty, i))
        rates.append(n / (time.process_time() - t0))
        if time.perf_counter() > deadline:
            break
    return statistics.median(rates), fills


def bench_checked_engine(world: World, n: int) -> float:
    """Orders/s through signature + certificate checks, then the engine."""
    chain = make_chain(world, now_ms=get_now_s() * 1000)
    state = {k[len(b"identity/") :]: v for k, v in world.identity_state.items()}
    read = state.get
    txs = [
        chain.order(world.pseudonyms[i % 8], (i % 7 + 1) * (1 if i % 2 else -1), 95 + i % 11)[0]
        for i in range(n)
    ]
    signed = [decode_as(SignedOrder, tx.payload) for tx in txs]
    book = OrderBook()
    now_ms = chain.now_ms
    t0 = time.process_time()
    for i, s in enumerate(signed):
        o = s.order
        Ed25519PublicKey(o.pseudonym).verify(ORDER_TAG, encode(o), s.signature)
        check_pseudonym(read, o.pseudonym, o.round, now_ms)
        book.process_order(
            i.to_bytes(8, "big"),
            SELL if o.quantity > 0 else BUY,
            o.price,
            abs(o.quantity),
            i,
            o.pseudonym,
        )
    return n / (time.process_time() - t0)


def bench_contract(world: World, n: int, block: int = 500) -> float:
    """Orders/s through the contract on one ledger (no consensus)."""
    chain = make_chain(world, now_ms=get_now_s() * 1000)
    txs = [
        chain.order(world.pseudonyms[i % 8], (i % 7 + 1) * (1 if i % 2 else -1), 95 + i % 11)[0]
        for i in range(n)
    ]
    t0 = time.process_time()
    for i in range(0, n, block):
        receipts = chain.commit(*txs[i : i + block])
        assert all(r.ok for r in receipts)
    return n / (time.process_time() - t0)


def bench_efficiency(sessions: int, size: int) -> list[list[object]]:
    rng = random.Random(3)
    results: dict[str, list[Fraction]] = {
        "CDA (continuous, mid price)": [],
        "pay-as-bid": [],
        "pay-as-clear (uniform)": [],
        "Huang (trade reduction)": [],
        "MUDA (random halves)": [],
    }
    split = DeterministicRng("muda")
    for _ in range(sessions):
        book = OrderBook()
        bids: list[Bid] = []
        asks: list[Bid] = []
        limit: dict[bytes, int] = {}
        trades = []
        for i in range(size):
            side = BUY if rng.random() < 0.5 else SELL
            price, qty = rng.randint(50, 150), rng.randint(1, 10)
            oid = i.to_bytes(4, "big")
            limit[oid] = price
            (bids if side == BUY else asks).append(Bid(oid, price, qty, i))
            for f in book.process_order(oid, side, price, qty, i):
                trades.append(MatchedTrade(limit[f.buy_id], limit[f.sell_id], f.price, f.quantity))
        results["CDA (continuous, mid price)"].append(
            compute_allocative_efficiency(trades, bids, asks)
        )
        for name, fn in (
            ("pay-as-bid", compute_pay_as_bid),
            ("pay-as-clear (uniform)", compute_uniform_price),
            ("Huang (trade reduction)", compute_trade_reduction),
        ):
            cleared = fn(bids, asks)
            matched = [
                MatchedTrade(limit[c.buy_id], limit[c.sell_id], c.price, c.quantity)
                for c in cleared
            ]
            results[name].append(compute_allocative_efficiency(matched, bids, asks))
        muda = [
            MatchedTrade(limit[c.buy_id], limit[c.sell_id], c.price, c.quantity)
            for c in compute_muda(bids, asks, split)
        ]
        results["MUDA (random halves)"].append(compute_allocative_efficiency(muda, bids, asks))
    rows: list[list[object]] = []
    for name, values in results.items():
        floats = sorted(float(v) for v in values)
        rows.append(
            [
                name,
                f"{statistics.fmean(floats):.3f}",
                f"{statistics.median(floats):.3f}",
                f"{floats[0]:.3f}",
            ]
        )
    return rows


async def run_consortium(world: World, rates: list[int], seconds: float) -> list[LoadResult]:
    config = world.market_config()
    params = ConsensusParams(
        max_batch=1000,
        batch_delay_ms=30,
        view_change_timeout_ms=20_000,
        checkpoint_interval=8,
        watermark_window=16,
        tick_ms=20,
        status_log_s=60,
    )
    now = get_now_s()
    total = sum(int(r * seconds) for r in rates)
    txs = presign_orders(world, total, now, seed=11)
    results = []
    with tempfile.TemporaryDirectory(prefix="gridledger-market-") as tmp:
        layout = make_market_consortium(Path(tmp) / "c", world, config, params)
        replicas = await start_replicas(layout, world, config)
        api = ConsortiumClient(layout.get_api_addresses())
        try:
            offset = 0
            for rate in rates:
                chunk = txs[offset : offset + int(rate * seconds)]
                offset += len(chunk)
                print(f"round at {rate} orders/s ...", file=sys.stderr, flush=True)
                results.append(await run_load(api, chunk, rate, TICK_S, 60, via_primary=True))
                await asyncio.sleep(1.0)
        finally:
            await api.close()
            for r in replicas:
                await r.stop()
    return results


def run_processes(world: World, rates: list[int], seconds: float) -> list[LoadResult]:
    """The same load on four replica processes (the two cores shared by all four)."""
    from gridledger.node.consortium import ConsortiumProcesses

    config = world.market_config()
    params = ConsensusParams(
        max_batch=1000,
        batch_delay_ms=30,
        view_change_timeout_ms=20_000,
        checkpoint_interval=8,
        watermark_window=16,
        tick_ms=20,
        status_log_s=60,
    )
    txs = presign_orders(world, sum(int(r * seconds) for r in rates), get_now_s(), seed=13)
    results = []
    with tempfile.TemporaryDirectory(prefix="gridledger-market-p-") as tmp:
        layout = make_market_consortium(Path(tmp) / "c", world, config, params)
        with ConsortiumProcesses(layout) as procs:
            procs.start()
            procs.wait_ready(60)

            async def go() -> None:
                api = ConsortiumClient(layout.get_api_addresses())
                try:
                    offset = 0
                    for rate in rates:
                        chunk = txs[offset : offset + int(rate * seconds)]
                        offset += len(chunk)
                        print(f"processes: {rate} orders/s ...", file=sys.stderr, flush=True)
                        results.append(
                            await run_load(api, chunk, rate, TICK_S, 60, via_primary=True)
                        )
                        await asyncio.sleep(1.0)
                finally:
                    await api.close()

            asyncio.run(go())
    return results


def render_cpu(results: list[LoadResult]) -> str:
    """CPU per committed order (all four replicas and the client): independent of the load."""
    rows = []
    for r in results:
        if r.succ:
            per = r.cpu_s / r.succ
            rows.append([f"{r.rate}", f"{per * 1000:.2f}", f"{1 / per:.0f}"])
    table: str = markdown_table(
        ["send rate (orders/s)", "CPU ms per committed order", "capacity of one free core"],
        rows,
    )
    return table


def render_caliper(results: list[LoadResult]) -> str:
    rows = []
    for r in results:
        lat = r.latencies or [float("nan")]
        rows.append(
            [
                "submit_order",
                r.succ,
                r.fail,
                f"{r.send_rate:.0f} tps",
                f"{max(lat):.2f} s",
                f"{min(lat):.2f} s",
                f"{statistics.fmean(lat):.2f} s",
                f"{r.throughput:.0f} tps",
            ]
        )
    headers = [
        "Name",
        "Succ",
        "Fail",
        "Send Rate",
        "Max Latency",
        "Min Latency",
        "Avg Latency",
        "Throughput",
    ]
    table: str = markdown_table(headers, rows)
    return table


def max_ok(results: list[LoadResult]) -> LoadResult | None:
    """The round with the highest throughput among those with no failure and avg < 1 s."""
    ok = [r for r in results if r.fail == 0 and r.latencies and statistics.fmean(r.latencies) < 1]
    return max(ok, key=lambda r: r.throughput) if ok else None


def render_best(best: LoadResult | None) -> str:
    if best is None:
        return "No round met 'no failure and average latency under 1 s'."
    met = "met" if best.rate >= 500 else "not met"
    return (
        "Highest send rate with no failure and average latency under 1 s: "
        f"{best.rate} orders/s (throughput {best.throughput:.0f}); target >= 500: {met}."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rates", default="250,500,750")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--no-consortium", action="store_true")
    parser.add_argument("--processes", action="store_true", help="also run four replica processes")
    args = parser.parse_args()
    n = 50_000 if args.quick else 200_000
    t_start = time.monotonic()
    load = load_average()
    print("engine ...", file=sys.stderr, flush=True)
    engine_rate, fills = bench_engine(n, 3 if args.quick else 5)
    keys = [RsaPrivateKey.generate(2048) for _ in range(3 + len(DENOMINATIONS))]
    now = get_now_s()
    world = make_world(keys, now=now)
    print("checks + engine ...", file=sys.stderr, flush=True)
    checked_rate = bench_checked_engine(world, 5_000 if args.quick else 20_000)
    print("contract ...", file=sys.stderr, flush=True)
    contract_rate = bench_contract(world, 2_000 if args.quick else 5_000)
    lines = [
        f"Machine: {machine_note()}; load average at start: {load}.",
        "Rates divide by this process's CPU time (the machine is shared), so they do not",
        "depend on the load; the end-to-end rounds are wall-clock.",
        "",
        "### Matching engine and order path",
        "",
        markdown_table(
            ["what", "orders per CPU-second (ours)", "reference", "target met"],
            [
                [
                    f"engine alone ({n:,} orders and cancels, {fills:,} fills, median of runs)",
                    f"{engine_rate:,.0f}",
                    "pure-Python engines ~150,000/s; Liquibook (C++) ~2.5 million/s",
                    "yes" if engine_rate >= 200_000 else "no (target 200,000)",
                ],
                [
                    "+ Ed25519 order signature + pseudonym-certificate check",
                    f"{checked_rate:,.0f}",
                    "-",
                    "-",
                ],
                [
                    "market contract, one ledger, blocks of 500 "
                    "(checks, book in state, trades, invoices, state root)",
                    f"{contract_rate:,.0f}",
                    "-",
                    "-",
                ],
            ],
        ),
        "",
    ]
    if not args.no_consortium:
        rates = [int(x) for x in args.rates.split(",") if x]
        results = asyncio.run(run_consortium(world, rates, 4.0 if args.quick else args.seconds))
        best = max_ok(results)
        lines += [
            "### End to end: four in-process replicas (Caliper layout, seed 004 Table 1)",
            "",
            "Four replicas and the load generator in one Python process (one core) over TCP on",
            "127.0.0.1, PBFT, SQLite synchronous=NORMAL; a batch every 100 ms to the primary,",
            "f backups report receipts by hash (PBFT's normal case, as in ledger_load.py);",
            "success = f+1 matching committed receipts. Every replica executes every order",
            "(two Ed25519 checks, the certificate check, matching in state, trades and invoices).",
            "Seed 004 measured only reads (`query`) on Fabric 1.1, saturating near 280-297 tps;",
            "these are writes that match.",
            "",
            render_caliper(results),
            "",
            render_best(best),
            "",
            "The process's own CPU time per committed order does not depend on what else",
            "runs on the machine; one core divided by it is what this in-process consortium",
            "would sustain with a core to itself:",
            "",
            render_cpu(results),
            "",
        ]
    if args.processes:
        rates = [int(x) for x in args.rates.split(",") if x]
        proc_results = run_processes(world, rates, 4.0 if args.quick else args.seconds)
        lines += [
            "### End to end: four replica processes (Caliper layout)",
            "",
            "The same load on four replica processes (the two cores shared by the four and",
            "the load generator), SQLite synchronous=FULL as deployed.",
            "",
            render_caliper(proc_results),
            "",
            render_best(max_ok(proc_results)),
            "",
        ]
    lines += [
        "### Allocative efficiency on the same bids (realised / maximum surplus)",
        "",
        "300 random sessions of 40 limit orders (prices 50-150, 1-10 Wh), truthful bids; the",
        "CDA sees them in arrival order, the sealed-bid mechanisms all at once (gsy-e's",
        "pay-as-bid and pay-as-clear; pymarket's Huang trade reduction and MUDA, our own",
        "implementations of their published rules).",
        "",
        markdown_table(["mechanism", "mean", "median", "worst"], bench_efficiency(300, 40)),
        "",
        f"Total run {time.monotonic() - t_start:.0f} s.",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
