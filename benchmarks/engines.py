"""PBFT, DPoS and the JetStream ordering service on the same work (issue 14).

Part 1, real processes: for each engine a 4-replica consortium on 127.0.0.1 made
exactly as ``gridledger consortium init --engine E`` makes it (DPoS: every
replica a producer, 1 s slots; JetStream: 3 NATS servers, stream R3, started
by ``consortium up``'s code), and the Caliper-style rounds of
``benchmarks/ledger_load.py`` (same client rule: each batch to every replica,
committed at f+1 matching receipts): name, succ, fail, send rate, max / min /
avg latency, throughput, plus the CPU seconds per committed transaction of the
replica processes (and, for JetStream, of the NATS servers) and their resident
memory. Beside them: seed 004's Fabric 1.1 (saturation about 280-297 tps,
latencies of seconds) and seed 002's DPoS (2 s blocks, about 12 s to confirm).

Part 2, simulated network (simulated time, :mod:`gridledger.node.simcluster`):
DPoS with 4, 21, 51 and 101 producers at seed 002's 2 s slots: throughput and
the time from submission to a final block (a stored 2/3+1 proof), median and
max; the ordering service with 4 replicas for contrast.

Usage: ``python benchmarks/engines.py [--rates 100,300,1000] [--seconds 5]
[--producers 4,21,51,101] [--engines pbft,dpos,jetstream]``. Every loop is
bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_note, markdown_table
from gridledger.consensus.dpos.config import DposConfig
from gridledger.consensus.ordering.config import OrderingConfig
from gridledger.consensus.simhub import NetworkModel
from gridledger.crypto.encoding import encode
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import Validator
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvSet
from gridledger.ledger.tx import Transaction
from gridledger.node.client import ConsortiumClient
from gridledger.node.config import ConsensusParams
from gridledger.node.consortium import ConsortiumProcesses, init_consortium
from gridledger.node.core import NodeLimits
from gridledger.node.simcluster import SimCluster
from ledger_load import CHAIN_ID, LoadClient, RoundResult, _free_base_port, presign, run_round

DEFAULT_RATES = (100, 300, 1000)
DEFAULT_PRODUCERS = (4, 21, 51, 101)
SEED_004 = "Fabric 1.1 (seed 004, Table 1): saturates at 276-297 tps; avg latency 1.9-8.0 s there"
SEED_002 = "DPoS (seed 002): 101 producers, 2 s blocks, about 12 s to confirm a transaction"


def _rss_mb(procs: list[psutil.Process]) -> float:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 2**20


def run_processes(engine: str, rates: list[int], seconds: float) -> list[tuple[RoundResult, float]]:
    """Caliper rounds against a 4-replica consortium of ``engine``; (round, RSS MB) each."""
    total = sum(int(r * seconds) + 1 for r in rates)
    txs = presign(total)
    out: list[tuple[RoundResult, float]] = []
    with tempfile.TemporaryDirectory(prefix=f"gridledger-{engine}-") as tmp:
        layout = init_consortium(
            Path(tmp) / "c",
            4,
            base_port=_free_base_port(),
            chain_id=CHAIN_ID,
            consensus=ConsensusParams(),
            identity=None,
            engine=engine,
        )
        with ConsortiumProcesses(layout) as procs:
            procs.start()
            procs.wait_ready(60)
            ps = [psutil.Process(p.pid) for p in procs.procs.values()]
            if procs.nats is not None:
                ps += [psutil.Process(p.pid) for p in procs.nats.processes.values()]

            async def go() -> None:
                client = ConsortiumClient(layout.get_api_addresses())
                load = LoadClient(client, [0, 1, 2, 3])
                offset = 0
                try:
                    for rate in rates:
                        need = int(rate * seconds) + 1
                        chunk = txs[offset : offset + need]
                        offset += need
                        print(f"{engine}: round at {rate} tps ...", file=sys.stderr, flush=True)
                        result = await run_round(load, chunk, rate, seconds, ps, engine)
                        out.append((result, _rss_mb(ps)))
                        await asyncio.sleep(2.0)
                finally:
                    await client.close()

            asyncio.run(go())
    return out


def render_processes(results: list[tuple[RoundResult, float]]) -> str:
    rows = []
    for r, rss in results:
        lat = r.latencies or [0.0]
        rows.append(
            [
                f"{r.label} @ {r.rate}",
                r.succ,
                r.sent - r.succ,
                f"{r.send_rate:.0f}",
                f"{max(lat):.2f}",
                f"{min(lat):.2f}",
                f"{statistics.mean(lat):.2f}",
                f"{r.throughput:.0f}",
                f"{1000 * r.replica_cpu_s / max(1, r.succ):.2f}",
                f"{rss:.0f}",
            ]
        )
    headers = [
        "Name",
        "Succ",
        "Fail",
        "Send Rate (tps)",
        "Max Latency (s)",
        "Min Latency (s)",
        "Avg Latency (s)",
        "Throughput (tps)",
        "CPU ms / tx",
        "RSS (MB)",
    ]
    return markdown_table(headers, rows)


# -- part 2: simulated network ------------------------------------------------------------


def _kv_txs(count: int, chain_id: str) -> list[bytes]:
    key = Ed25519PrivateKey(b"engines-bench".ljust(32, b"."))
    return [
        encode(Transaction.create(chain_id, KV_SET_KIND, KvSet(b"k%d" % i, b"v"), key, i + 1))
        for i in range(count)
    ]


def _keys(n: int, label: bytes) -> list[Ed25519PrivateKey]:
    return [Ed25519PrivateKey(i.to_bytes(4, "big") + label.ljust(28, b".")) for i in range(n)]


def run_sim_dpos(producers: int, tx_per_slot: int = 20) -> dict[str, float]:
    """DPoS in simulated time at 2 s slots: load for one round, run until it is final."""
    from gridledger.consensus.dpos.config import make_genesis_section

    interval = 2_000
    keys = _keys(producers, b"bench-dpos")
    validators = [Validator(i, k.public_key.raw) for i, k in enumerate(keys)]
    config = DposConfig(producers=producers, block_interval_ms=interval)
    genesis = GenesisConfig.create(
        "bench-dpos", validators, 0, make_genesis_section(config), engine="dpos"
    )
    cluster = SimCluster(
        genesis,
        keys,
        model=NetworkModel(delay_ms=(5, 50)),
        seed=f"bench-dpos-{producers}",
        limits=NodeLimits(gossip_ms=600_000),
        tick_ms=interval // 4,
    )
    load_slots = max(4, min(producers, 20))
    txs = _kv_txs(load_slots * tx_per_slot, "bench-dpos")
    for j, tx in enumerate(txs):
        at = interval + j * interval // tx_per_slot
        cluster.submit(j % producers, tx, at_ms=at)
    wall = time.monotonic()
    end = interval * (load_slots + 2 * producers // 3 + 8)
    cluster.run_until(end)
    return _summarise(cluster, txs, wall, load_slots * interval)


def run_sim_ordering(n: int = 4, tx_per_s: int = 200, seconds: int = 20) -> dict[str, float]:
    from gridledger.consensus.ordering.config import make_genesis_section

    keys = _keys(n, b"bench-ordering")
    validators = [Validator(i, k.public_key.raw) for i, k in enumerate(keys)]
    section = make_genesis_section(OrderingConfig())
    genesis = GenesisConfig.create("bench-ord", validators, 0, section, engine="jetstream")
    cluster = SimCluster(
        genesis, keys, model=NetworkModel(delay_ms=(5, 50)), seed="bench-ord", tick_ms=20
    )
    txs = _kv_txs(tx_per_s * seconds, "bench-ord")
    for j, tx in enumerate(txs):
        cluster.submit(j % n, tx, at_ms=100 + j * 1000 // tx_per_s)
    wall = time.monotonic()
    cluster.run_until(100 + seconds * 1000 + 3_000)
    return _summarise(cluster, txs, wall, seconds * 1000)


def _summarise(
    cluster: SimCluster, txs: list[bytes], wall: float, load_ms: int
) -> dict[str, float]:
    core = cluster.get_core(0)
    final: list[float] = []
    committed = 0
    for h in range(1, core.ledger.height + 1):
        block = core.ledger.get_block(h)
        final_at = cluster.stats.final_ms.get(h)
        for tx in block.transactions:
            committed += 1
            sent = cluster.stats.submit_ms.get(tx.tx_hash)
            if sent is not None and final_at is not None:
                final.append((final_at - sent) / 1000)
    return {
        "sent": len(txs),
        "committed": committed,
        "throughput": committed / (load_ms / 1000),
        "final_median": statistics.median(final) if final else float("nan"),
        "final_max": max(final) if final else float("nan"),
        "height": core.ledger.height,
        "wall_s": time.monotonic() - wall,
        "violations": len(cluster.get_safety_violations()),
    }


def render_sim(rows: list[tuple[str, dict[str, float]]]) -> str:
    table = [
        [
            name,
            int(r["sent"]),
            int(r["committed"]),
            f"{r['throughput']:.0f}",
            f"{r['final_median']:.1f}",
            f"{r['final_max']:.1f}",
            int(r["height"]),
            int(r["violations"]),
            f"{r['wall_s']:.1f}",
        ]
        for name, r in rows
    ]
    headers = [
        "Engine (simulated)",
        "Sent",
        "Committed",
        "Throughput (tx/s, sim)",
        "To final, median (s)",
        "To final, max (s)",
        "Blocks",
        "Safety violations",
        "Wall (s)",
    ]
    return markdown_table(headers, table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default=",".join(map(str, DEFAULT_RATES)))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--producers", default=",".join(map(str, DEFAULT_PRODUCERS)))
    parser.add_argument("--engines", default="pbft,dpos,jetstream")
    args = parser.parse_args()
    rates = [int(x) for x in args.rates.split(",") if x]
    producers = [int(x) for x in args.producers.split(",") if x]
    load_before = psutil.getloadavg()
    t0 = time.monotonic()
    sections: list[str] = []
    for engine in [e for e in args.engines.split(",") if e]:
        results = run_processes(engine, rates, args.seconds)
        sections.append(f"**{engine}**, 4 replicas:\n\n{render_processes(results)}")
    sim_rows: list[tuple[str, dict[str, float]]] = []
    for p in producers:
        print(f"simulating DPoS with {p} producers ...", file=sys.stderr, flush=True)
        sim_rows.append((f"DPoS, {p} producers, 2 s slots", run_sim_dpos(p)))
    sim_rows.append(("JetStream ordering, 4 replicas (simulated log)", run_sim_ordering()))
    print("## engines.py\n")
    print("## Engines: PBFT, DPoS and the JetStream ordering service (issue 14)\n")
    print(f"Machine: {machine_note()}; load average before: {load_before[0]:.1f}; ")
    print(f"run took {time.monotonic() - t0:.0f} s. {args.seconds:.0f} s per round.\n")
    print("\n\n".join(sections))
    print(f"\nPapers: {SEED_004}. {SEED_002}.\n")
    print(render_sim(sim_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
