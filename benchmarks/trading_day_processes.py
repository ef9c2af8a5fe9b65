"""The default trading day with its 4 replicas in process and as separate processes.

Same scenario, seed and steps (10 households, 24 hourly slots, K = 32, one
reneging buyer traced): first with the replicas as node cores in this process in
simulated time (:class:`~gridledger.sim.trading_day.SimChain`), then as 4
``gridledger node run`` processes over authenticated TCP on 127.0.0.1 with the
simulation clock (:class:`~gridledger.sim.process_chain.ProcessChain`). Prints wall
time, CPU time of the driver and of the replica processes, transactions, blocks,
frames, where the time goes, and whether both runs gave the same trades and bills.

    python benchmarks/trading_day_processes.py [HOUSEHOLDS]     (default: the scenario's 10)
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import sys
import time

from benchmarks._common import machine_note, markdown_table
from gridledger.sim.scenario import load_default_scenario, replace_households
from gridledger.sim.trading_day import DayResult, Replicas, run_trading_day


def _run(replicas: Replicas, households: int | None) -> tuple[DayResult, float, float, float]:
    scenario = load_default_scenario()
    if households is not None:
        a = households * 6 // 10
        scenario = replace_households(scenario, {"A": a, "B": households - a})
    cpu0 = time.process_time()
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = run_trading_day(scenario, replicas=replicas)
    wall = time.perf_counter() - start
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    replica_cpu = (kids.ru_utime + kids.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    return result, wall, time.process_time() - cpu0, replica_cpu


def main() -> int:
    households = int(sys.argv[1]) if len(sys.argv) > 1 else None
    runs = {mode: _run(mode, households) for mode in ("in-process", "processes")}
    inproc, procs = runs["in-process"][0], runs["processes"][0]
    same = (
        inproc.trades == procs.trades
        and inproc.households == procs.households
        and (inproc.reneger, inproc.traced) == (procs.reneger, procs.traced)
    )
    rows = []
    for mode, (r, wall, cpu, replica_cpu) in runs.items():
        rows.append(
            [
                mode,
                f"{wall:.1f}",
                f"{cpu:.1f}",
                f"{replica_cpu:.1f}" if mode == "processes" else "(in the driver)",
                len(r.households),
                len(r.trades),
                r.transactions,
                r.blocks,
                f"{r.transactions / wall:.0f}",
                r.consensus_messages,
                r.traced == r.reneger,
            ]
        )
    print("### The default day: replicas in process vs as 4 processes over TCP")
    print()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Machine: {machine_note()}; shared, load average {load} at the end; {now}.")
    print()
    headers = [
        *("replicas", "wall s", "driver CPU s", "replica CPU s", "households", "trades"),
        *("transactions", "blocks", "tx per wall s", "frames / messages", "traced the reneger"),
    ]
    print(markdown_table(headers, rows))
    print()
    print(f"Same trades, bills and tracing in both runs: **{same}**.")
    print()
    steps = sorted({s for _, (r, *_rest) in runs.items() for s in r.steps})
    print("Where the time goes (wall seconds per step):")
    print()
    print(
        markdown_table(
            ["replicas", *steps],
            [[m, *(f"{r.steps.get(s, 0.0):.1f}" for s in steps)] for m, (r, *_x) in runs.items()],
        )
    )
    print()
    ratio = runs["processes"][1] / runs["in-process"][1]
    print(f"Processes / in-process wall time: {ratio:.2f}.")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
