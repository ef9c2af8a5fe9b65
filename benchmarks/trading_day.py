"""The trading day on the real stack: wall time, simulated time per wall second, memory.

Each size runs in its own process (so its peak memory is its own): 4 PBFT node
cores in simulated time with the real ledger and the identity, payments and
market contracts, households from the real readings (type A and B in the
default scenario's 6:4 ratio), registration with K = 32, e-coin settlement of
every trade, one reneging buyer traced on chain. Issue 12's target: a day of 30
households with real cryptography in at most 60 s.

    python benchmarks/trading_day.py [SIZES...]     (default: 10 30 100)
    python benchmarks/trading_day.py --compare [SIZES...]   (default: 10)

``--compare``: the same day (scenario, households, readings, seed) on the double
auction and on seed 003's fixed-piece market, each in its own process; prints
``sim/day_compare.py``'s table per size (docs/benchmarks.md, "Trading day: double
auction vs fixed piece on the real stack").
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time

DAY_S = 86_400
_CHILD = """
import json, resource, sys, time
from gridledger.sim.scenario import load_default_scenario, replace_households
from gridledger.sim.trading_day import run_trading_day
n = int(sys.argv[1])
a = n * 6 // 10
scenario = replace_households(load_default_scenario(), {"A": a, "B": n - a})
start = time.perf_counter()
result = run_trading_day(scenario)
wall = time.perf_counter() - start
print(json.dumps({
    "households": len(result.households), "wall_s": wall, "steps": result.steps,
    "trades": len(result.trades), "transactions": result.transactions,
    "blocks": result.blocks, "messages": result.consensus_messages,
    "traced_ok": result.traced == result.reneger,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "cpu_s": time.process_time(),
}))
"""


_COMPARE_CHILD = """
import json, sys
from gridledger.sim.day_compare import compute_figures
from gridledger.sim.scenario import load_default_scenario, replace_households
from gridledger.sim.trading_day import run_trading_day
n, market = int(sys.argv[1]), sys.argv[2]
a = n * 6 // 10
scenario = replace_households(load_default_scenario(), {"A": a, "B": n - a})
result = run_trading_day(scenario, market=market, renege=sys.argv[3] == "renege")
figures = compute_figures(result)
print(json.dumps(figures))
"""


def compare(sizes: list[int]) -> None:
    """Both markets per size; one table per size, the fixed-piece day over the auction's."""
    print("### Trading day: double auction vs fixed piece on the real stack")
    print()
    print(
        "The same day (default scenario, June 2007, households 6:4 type A:B, seed 7, 24 hourly "
        "slots, K = 32, every trader honest) on 4 PBFT node cores in simulated time, once on "
        "the continuous double auction and once on seed 003's fixed-piece market (100 Wh "
        "pieces, the DSO as fallback, `sim/trading_day_fixed.py`); `sim/day_compare.py`'s "
        "figures. Money in euro (1 € = 100,000 mc); welfare gain = households' savings "
        "against trading only with the DSO at its tariffs. Honest days: who reneges differs "
        "between the markets and is refused once traced, which alone moves the local volume "
        "(tracing is shown by the tests and `gridledger sim compare-markets`)."
    )
    print()
    print(f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, 2 cores shared; ")
    for n in sizes:
        runs = {}
        for market in ("double-auction", "fixed-piece"):
            res = subprocess.run(
                [sys.executable, "-c", _COMPARE_CHILD, str(n), market, "honest"],
                capture_output=True,
                text=True,
                timeout=1800,
                check=True,
            )
            runs[market] = json.loads(res.stdout.strip().splitlines()[-1])
        load = os.getloadavg()[0]
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        print(f"load average {load:.1f} at the end; {when}.")
        print()
        print(f"{n} households (default scenario, A:B = 6:4, seed 7, a whole day):")
        print()
        print("| figure | double auction | fixed piece | fixed / auction |")
        print("|---|---|---|---|")
        da, fp = runs["double-auction"], runs["fixed-piece"]
        for name, a in da.items():
            b = fp[name]
            ratio = f"{b / a:.2f}" if a else "–"
            print(f"| {name} | {a:,.2f} | {b:,.2f} | {ratio} |")
        print()


def run_size(n: int) -> dict[str, object]:
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, str(n)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    data: dict[str, object] = json.loads(res.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10, 30, 100]
    rows = [run_size(n) for n in sizes]
    load = os.getloadavg()[0]
    print(f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, 2 cores shared; ")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"load average {load:.1f} at the end; {when}.")
    print()
    print(
        "| households | wall s | CPU s | simulated s per wall s | peak MB | trades | "
        "transactions | blocks | consensus msgs | traced the reneger |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        wall = float(str(r["wall_s"]))
        print(
            f"| {r['households']} | {wall:.1f} | {float(str(r['cpu_s'])):.1f} | "
            f"{DAY_S / wall:,.0f} | {float(str(r['peak_rss_mb'])):.0f} | {r['trades']} | "
            f"{r['transactions']} | {r['blocks']} | {r['messages']} | {r['traced_ok']} |"
        )
    print()
    print("Where the time goes (seconds of wall time per step):")
    print()
    steps = sorted({k for r in rows for k in dict(r["steps"])})  # type: ignore[call-overload]
    print("| households | " + " | ".join(steps) + " |")
    print("|---" * (len(steps) + 1) + "|")
    for r in rows:
        st: dict[str, float] = dict(r["steps"])  # type: ignore[call-overload]
        print(f"| {r['households']} | " + " | ".join(f"{st.get(k, 0):.1f}" for k in steps) + " |")
    print()
    target = next((r for r in rows if r["households"] == 30), None)
    if target is not None:
        wall = float(str(target["wall_s"]))
        verdict = "met" if wall <= 60 else "not met"
        print(f"Target (issue 12): 30 households in at most 60 s: {wall:.0f} s, {verdict}.")
    print(f"(this process: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime:.0f} s CPU)")
    print()
    compare([10])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--compare"]:
        compare([int(a) for a in sys.argv[2:]] or [10])
    else:
        main()
