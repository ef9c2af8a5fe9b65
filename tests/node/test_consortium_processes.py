"""A consortium of four replica processes on 127.0.0.1: commit, crash, recover, view change."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gridledger.consensus.effects import SLOT_PHASES, VoteRecord
from gridledger.consensus.pbft import decode_vote_log
from gridledger.crypto.encoding import encode
from gridledger.ledger.storage import SqliteBlockStore
from gridledger.node.client import ClientError, ConsortiumClient
from gridledger.node.consortium import ConsortiumLayout, ConsortiumProcesses
from gridledger.node.replica import VOTES_META

from .helpers import make_consortium, make_kv_txs, wait_until

pytestmark = pytest.mark.slow


async def _statuses(client: ConsortiumClient, replicas: list[int]) -> dict[int, Any]:
    out = {}
    for rid in replicas:
        try:
            out[rid] = await client.call(rid, "status", {}, timeout=2)
        except ClientError:
            out[rid] = None
    return out


async def _same_head(client: ConsortiumClient, replicas: list[int]) -> bool:
    st = await _statuses(client, replicas)
    if any(s is None for s in st.values()):
        return False
    return len({(s["height"], s["head_hash"]) for s in st.values()}) == 1


def test_processes_commit_survive_sigkill_and_primary_crash(tmp_path: Path) -> None:
    layout = make_consortium(tmp_path / "c")
    txs = [encode(tx) for tx in make_kv_txs(900)]
    with ConsortiumProcesses(layout) as procs:
        procs.start()
        procs.wait_ready(30)
        asyncio.run(asyncio.wait_for(_scenario(layout, procs, txs), 150))


def _read_votes(layout: ConsortiumLayout, replica: int) -> tuple[VoteRecord, ...]:
    """The vote log a (dead) replica left in its SQLite store."""
    store = SqliteBlockStore(layout.root / f"node-{replica}" / "chain.sqlite")
    try:
        raw = store.get_meta(VOTES_META)
    finally:
        store.close()
    assert raw is not None, "no vote log on disk"
    return decode_vote_log(raw)


async def _scenario(layout: ConsortiumLayout, procs: ConsortiumProcesses, txs: list[bytes]) -> None:
    client = ConsortiumClient(layout.get_api_addresses())
    try:
        # 1. Commit with f+1 matching receipts.
        receipts = await client.submit(txs[:100], timeout=20)
        assert all(r["status"] == "committed" for r in receipts)
        assert len({r["tx_hash"] for r in receipts}) == 100

        # 2. SIGKILL replica 3 while a load is flowing, then restart it.
        load = asyncio.create_task(client.submit(txs[100:400], timeout=30))
        await asyncio.sleep(0.3)
        procs.kill_replica(3)
        receipts = await load  # three replicas keep committing (f+1 = 2 agree)
        assert all(r["status"] == "committed" for r in receipts)
        killed_at = await client.call(0, "status", {})
        # Its votes survived too: the prepares/commits it sent are in its meta area.
        votes = _read_votes(layout, 3)
        assert any(v.phase in SLOT_PHASES and v.seq >= 1 for v in votes)
        procs.start_replica(3)
        await asyncio.to_thread(procs.wait_ready, 30, [3])
        restarted = await client.call(3, "status", {})
        assert restarted["height"] >= 1  # its blocks survived the SIGKILL
        assert restarted["restored_votes"] == len(votes)  # and it reloaded its votes
        assert restarted["view"] >= max(v.view for v in votes)
        receipts = await client.submit(txs[400:500], timeout=20)
        assert all(r["status"] == "committed" for r in receipts)
        await wait_until(lambda: _same_head(client, [0, 1, 2, 3]), 40, "replica 3 to catch up")
        caught_up = await client.call(3, "status", {})
        assert caught_up["height"] > killed_at["height"]

        # 3. Crash the primary: the others change view and keep committing.
        primary = (await client.call(1, "status", {}))["primary"]
        procs.kill_replica(primary)
        survivors = [r for r in range(4) if r != primary]
        receipts = await client.submit(txs[500:600], timeout=40)
        assert all(r["status"] == "committed" for r in receipts)
        st = await _statuses(client, survivors)
        assert all(
            s is not None and s["view"] >= 1 and s["primary"] != primary for s in st.values()
        )
        await wait_until(lambda: _same_head(client, survivors), 20, "survivors to agree")
    finally:
        await client.close()


def test_cli_up_submit_status_explorer(tmp_path: Path) -> None:
    layout = make_consortium(tmp_path / "c")
    cli = [sys.executable, "-m", "gridledger.cli.main"]
    up = subprocess.Popen(
        [*cli, "consortium", "up", str(layout.root), "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert up.stdout is not None
        first = up.stdout.readline()  # blocks until ready (or a failure line)
        assert "replicas up" in first, first

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*cli, *args], capture_output=True, text=True, timeout=60, check=False
            )

        res = run("consortium", "submit", str(layout.root), "--key", "meter-7", "--value", "42")
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("committed ")
        tx_hash = res.stdout.split()[1]
        height = res.stdout.split("in block ")[1].split()[0]

        deadline = time.monotonic() + 20
        while True:  # the certificate arrives just after the block
            res = run("explorer", "tx", str(layout.root), "--hash", tx_hash)
            if res.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert res.returncode == 0, res.stderr
        assert f"included in block {height}" in res.stdout
        assert "Merkle proof verified" in res.stdout

        res = run("explorer", "block", str(layout.root), "--height", height)
        assert res.returncode == 0, res.stderr
        assert tx_hash in res.stdout and "test.kv-set" in res.stdout

        res = run("consortium", "status", str(layout.root))
        assert res.returncode == 0, res.stderr
        assert res.stdout.count(f"height {height} ") == 4
    finally:
        up.terminate()  # SIGTERM: 'up' stops every replica cleanly
        out, _ = up.communicate(timeout=40)
    assert up.returncode == 0
    assert "replica 0 exit 0" in out
