"""The market on four in-process replicas over TCP: every order committed, same state root."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gridledger.crypto.signatures import RsaPrivateKey
from gridledger.ledger.contracts import StateView
from gridledger.ledger.state import Overlay
from gridledger.market import keys
from gridledger.node.client import ConsortiumClient
from tests.node.helpers import FAST, wait_until

from .consortium import get_now_s, make_market_consortium, presign_orders, run_load, start_replicas
from .helpers import make_world


def test_orders_through_four_replicas(tmp_path: Path, rsa_keys: list[RsaPrivateKey]) -> None:
    now = get_now_s()
    live = make_world(rsa_keys, now=now)  # certificates valid at wall-clock block time
    config = live.market_config()
    layout = make_market_consortium(tmp_path / "c", live, config, FAST)
    txs = presign_orders(live, 300, now)

    async def scenario() -> None:
        replicas = await start_replicas(layout, live, config)
        api = ConsortiumClient(layout.get_api_addresses())
        try:
            result = await run_load(api, txs, 300, 0.1, 20)
            assert result.fail == 0, result.rejected[:3]
            assert result.succ == 300
            height = max(r.ledger.height for r in replicas)
            await wait_until(
                lambda: all(r.ledger.height == height for r in replicas), 10, "heights"
            )
            assert len({r.ledger.state.root for r in replicas}) == 1
            view = StateView(Overlay(replicas[0].ledger.state), "market")
            assert len(list(view.scan(keys.TRADE))) > 0
        finally:
            await api.close()
            for r in replicas:
                await r.stop()

    asyncio.run(asyncio.wait_for(scenario(), 90))
