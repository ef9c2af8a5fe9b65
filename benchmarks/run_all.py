"""Run every benchmark and rewrite ``docs/benchmarks.md`` with their tables.

Each benchmark is a script that prints markdown; this runs them one after the
other as subprocesses (bounded by a timeout each) and collects their output.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = [
    ("crypto_ops.py", 300),
    ("identity.py", 600),
    ("consensus_scaling.py", 600),
    ("byzantine_runs.py", 2400),
    ("profile_ledger.py", 600),
    ("ledger_load.py", 1200),
    ("simulator.py", 900),
    ("trading_day.py", 1500),
    ("trading_day_processes.py", 900),
    ("payments.py", 600),
    ("aggregation.py", 600),
    ("attacks.py", 900),
    ("crash_soak.py", 1500),
    ("market.py", 900),
    ("api.py", 600),
    ("engines.py", 1800),
]


def main() -> int:
    sections = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`benchmarks/run_all.py`); each section is the output",
        "of one script in `benchmarks/`, run on the machine it names. This is a shared",
        "2-core virtual machine: whole runs differ by up to ~30% from one another (for",
        "example the RM at K = 32 measured 42-61 registrations/s across runs on one day).",
        f"Last run: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
    ]
    failed = False
    only = set(sys.argv[1:])
    for script, timeout in BENCHMARKS:
        if only and script not in only:
            continue
        path = ROOT / "benchmarks" / script
        if not path.exists():
            continue
        print(f"running {script} ...", flush=True)
        try:
            res = subprocess.run(
                [sys.executable, str(path)],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=ROOT,
                check=False,
            )
            out = res.stdout.strip()
            if res.returncode != 0:
                failed = True
                out += f"\n\n(exit code {res.returncode})\n\n```\n{res.stderr[-2000:]}\n```"
        except subprocess.TimeoutExpired:
            failed = True
            out = f"(timed out after {timeout} s)"
        sections += [f"## {script}", "", out, ""]
    if only:  # a partial run prints; only a full run rewrites docs/benchmarks.md
        print("\n".join(sections))
    else:
        (ROOT / "docs" / "benchmarks.md").write_text("\n".join(sections))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
