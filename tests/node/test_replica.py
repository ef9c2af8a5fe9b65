"""The replica process shell: its loops are supervised and report what happened."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from gridledger.node.client import ConsortiumClient
from gridledger.node.config import load_config
from gridledger.node.replica import Replica

from .helpers import FAST, make_consortium, wait_until


def test_a_loop_that_dies_is_restarted_and_shown_in_the_status(tmp_path: Path) -> None:
    layout = make_consortium(tmp_path / "c", params=dataclasses.replace(FAST, status_log_s=1))

    async def scenario() -> None:
        replica = Replica(load_config(layout.configs[0]), synchronous="NORMAL")
        real = replica.transport.get_connected_peers
        calls = {"n": 0}

        def flaky() -> list[int]:
            task = asyncio.current_task()
            if task is None or not task.get_name().endswith("-log"):
                return real()  # another caller (the status API): not the loop under test
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("a bug in the status loop")
            return real()

        replica.transport.get_connected_peers = flaky  # type: ignore[method-assign]
        await replica.start()
        try:
            await wait_until(lambda: calls["n"] >= 2, 10, "the status loop to run again")
            client = ConsortiumClient({0: layout.get_api_addresses()[0]})
            try:
                status = await client.call(0, "status", {}, 5)
            finally:
                await client.close()
            assert status["task_restarts"] == {"status-log": 1}
            assert status["height"] == 0  # and the replica is still serving
        finally:
            await replica.stop()

    asyncio.run(asyncio.wait_for(scenario(), 30))
