"""Simulator benchmark: seed 003's Table 1 side by side, speed and memory, both markets.

Prints markdown (< 5 min on the shared 2-core machine):

1. Table 1 (average pairing time, offers by the DSO and by meters) for the five
   scenarios, ours next to the paper's, with the fitted time per meter.
2. Simulated seconds per wall second and peak memory (max RSS of a fresh
   process per size) for 10, 30, 100 and 300 households over a day on the
   packaged default scenario (fixed-piece market, 30 ms bus), and where the
   time goes (building households from the data vs the event loop).
3. The same day on the double auction against the fixed-piece market.

Usage: ``python benchmarks/simulator.py`` (all) or ``--one N MARKET`` (one
measurement as JSON, used internally).
"""

from __future__ import annotations

import dataclasses
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import machine_note
from gridledger.sim.households import build_households
from gridledger.sim.reproduce import format_table1, reproduce_table1
from gridledger.sim.results import compute_household_summary, compute_kpis
from gridledger.sim.run import run_scenario
from gridledger.sim.scenario import (
    ChannelSpec,
    Scenario,
    load_default_scenario,
    replace_households,
)

SIZES = (10, 30, 100, 300)
MAX_SECONDS_PER_SIZE = 240


def _scenario(households: int, market: str) -> Scenario:
    """The default scenario scaled to ``households`` (60 % type A, 40 % type B)."""
    base = dataclasses.replace(load_default_scenario(), market=market)
    type_a = households * 6 // 10
    return replace_households(base, {"A": type_a, "B": households - type_a})


def measure_one(households: int, market: str) -> dict[str, float]:
    """Time one day in this process: building households, then the run itself."""
    scenario = _scenario(households, market)
    started = time.perf_counter()
    build_households(scenario)  # loads the data (cached) and draws profiles
    built = time.perf_counter()
    result = run_scenario(scenario)  # builds again (cached data) and simulates
    finished = time.perf_counter()
    kpis = compute_kpis(result)
    return {
        "build_s": built - started,
        "run_s": finished - built,
        "simulated_s": result.end_us / 1e6,
        "messages": kpis["messages"],
        "max_queue": kpis["max_queue"],
        "pairing_dso_s": kpis["mean_pairing_s_dso"],
        "pairing_sm_s": kpis["mean_pairing_s_sm"],
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _measure_in_subprocess(households: int, market: str) -> dict[str, float] | None:
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(households), market],
            capture_output=True,
            text=True,
            timeout=MAX_SECONDS_PER_SIZE,
            check=True,
        )
    except (subprocess.TimeoutExpired, subprocess.CalledProcessError):
        return None
    values: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return values


def print_speed() -> None:
    print("### Speed and memory: one simulated day on the default scenario")
    print()
    print(
        "| households | market | build households (s) | simulate (s) | simulated s / wall s "
        "| messages on the bus | longest queue | mean pairing DSO / SM (s) | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for households in SIZES:
        for market in ("fixed-piece", "double-auction"):
            m = _measure_in_subprocess(households, market)
            if m is None:
                print(f"| {households} | {market} | timeout ({MAX_SECONDS_PER_SIZE} s) |||||||")
                continue
            rate = m["simulated_s"] / (m["build_s"] + m["run_s"])
            print(
                f"| {households} | {market} | {m['build_s']:.2f} | {m['run_s']:.2f} "
                f"| {rate:,.0f} | {m['messages']:,.0f} | {m['max_queue']:,.0f} "
                f"| {m['pairing_dso_s']:.2f} / {m['pairing_sm_s']:.2f} | {m['max_rss_mb']:.0f} |"
            )
    print()


def print_markets() -> None:
    print("### The same day on both markets (default scenario, 10 households)")
    print()
    print(
        "| market | self-sufficiency | self-consumption | traded locally (kWh) "
        "| bills (units) | without market | all from DSO | welfare gain of the market |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for market in ("fixed-piece", "double-auction"):
        scenario = _scenario(10, market)
        result = run_scenario(scenario)
        kpis = compute_kpis(result)
        prices = scenario.prices
        summaries = [
            compute_household_summary(result, h, prices.grid_import, prices.grid_export)
            for h in range(len(result.households))
        ]
        bill = sum(s.bill_mc for s in summaries) / 1e5
        without = sum(s.bill_without_market_mc for s in summaries) / 1e5
        grid_only = sum(s.bill_grid_only_mc for s in summaries) / 1e5
        print(
            f"| {market} | {kpis['self_sufficiency']:.1%} | {kpis['self_consumption']:.1%} "
            f"| {kpis['local_traded_kwh']:.1f} | {bill:.2f} | {without:.2f} | {grid_only:.2f} "
            f"| {without - bill:.2f} |"
        )
    print()


def main() -> None:
    print("## simulator.py")
    print()
    print(f"Machine: {machine_note()}.")
    print()
    print("### Seed 003 Table 1: average pairing time, 30 ms per message (3 seeded days pooled)")
    print()
    started = time.perf_counter()
    print(format_table1(reproduce_table1()))
    print()
    print(f"(15 simulated days in {time.perf_counter() - started:.1f} s wall)")
    print()
    print("Same five scenarios on a LAN bus (1 ms latency, 10 Mbit/s, our message sizes):")
    print()
    lan = ChannelSpec(model="lan", message_ms=30, latency_ms=1, bandwidth_kbps=10_000)
    print(format_table1(reproduce_table1(channel=lan)))
    print()
    print_speed()
    print_markets()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(measure_one(int(sys.argv[2]), sys.argv[3])))
    else:
        main()
