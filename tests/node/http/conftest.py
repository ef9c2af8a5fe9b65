"""One consortium with HTTP for the whole directory (RSA keys and startup are the slow part)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridledger.crypto.signatures import RsaPrivateKey
from tests.market.consortium import presign_orders
from tests.market.helpers import DENOMINATIONS, World, make_world
from tests.node.http.helpers import RunningConsortium, make_http_consortium


@pytest.fixture(scope="session")
def live_world() -> World:
    keys = [RsaPrivateKey.generate(2048) for _ in range(3 + len(DENOMINATIONS))]
    return make_world(keys, now=int(time.time()))


@pytest.fixture(scope="session")
def consortium(
    tmp_path_factory: pytest.TempPathFactory, live_world: World
) -> Iterator[RunningConsortium]:
    root: Path = tmp_path_factory.mktemp("http") / "c"
    running = RunningConsortium(make_http_consortium(root, live_world), live_world)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def traded(consortium: RunningConsortium, live_world: World) -> list[dict[str, object]]:
    """Sixty orders committed (some cross, so trades exist); their receipts."""
    txs = presign_orders(live_world, 60, int(time.time()), seed=5)
    receipts = consortium.submit(txs)
    assert all(r["status"] == "committed" for r in receipts), receipts[:2]
    return receipts
