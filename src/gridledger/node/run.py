"""``python -m gridledger.node.run CONFIG``: run one replica until SIGTERM or SIGINT.

Logs go to stderr (one line per event, INFO by default; ``GRIDLEDGER_LOG=DEBUG``
for more). A bad configuration prints one line and exits with code 2.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from gridledger.consensus.clock import Clock
from gridledger.errors import GridledgerError
from gridledger.node.config import load_config
from gridledger.node.core import NodeLimits
from gridledger.node.replica import Replica

T = TypeVar("T")


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a libuv event loop (uvloop), as every replica does.

    A replica spends a measurable share of its CPU in the event loop itself (TCP
    reads and writes of client lines and peer frames, timers, futures): uvloop's
    loop, written in Cython over libuv, cut the replicas' CPU per committed
    transaction by about 7 % in ``benchmarks/ledger_load.py``. It is a drop-in
    ``asyncio`` loop: the node's code does not change.
    """
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def setup_logging() -> None:
    level = os.environ.get("GRIDLEDGER_LOG", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def run_replica(
    config_path: Path,
    duration_s: float | None = None,
    *,
    clock: Clock | None = None,
    limits: NodeLimits | None = None,
) -> None:
    """Start the replica of ``config_path`` and run until a signal (or ``duration_s``).

    ``clock`` and ``limits`` default to the wall clock and :class:`NodeLimits`; the
    simulator passes a :class:`~gridledger.node.sim_clock.SimulationClock` (refused
    unless the genesis declares a simulation chain).
    """
    replica = Replica(load_config(config_path), clock=clock, limits=limits)
    # Blocks of thousands of small frozen objects trigger the cyclic collector often;
    # a replica creates few cycles, so collect young objects less eagerly.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, replica.request_stop)
    if duration_s is not None:
        loop.call_later(duration_s, replica.request_stop)
    await replica.run_forever()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m gridledger.node.run CONFIG", file=sys.stderr)
        return 2
    setup_logging()
    profile_path = os.environ.get("GRIDLEDGER_PROFILE")  # for benchmarks: cProfile dump
    try:
        if profile_path:
            import cProfile

            cProfile.runctx(
                "run_event_loop(run_replica(Path(args[0])))",
                globals(),
                {
                    "args": args,
                    "run_event_loop": run_event_loop,
                    "run_replica": run_replica,
                    "Path": Path,
                },
                filename=f"{profile_path}.{os.getpid()}",
            )
        else:
            run_event_loop(run_replica(Path(args[0])))
    except GridledgerError as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
