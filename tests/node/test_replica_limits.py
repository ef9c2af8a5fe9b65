"""Replica runtime limits: censorship by forged request ids, sizes, fetch replies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gridledger.crypto.encoding import decode, encode, from_value
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvSet
from gridledger.ledger.tx import Transaction
from gridledger.node import core as core_module
from gridledger.node.client import ClientError, ConsortiumClient
from gridledger.node.config import load_config
from gridledger.node.core import NODE_CHANNEL, Transmit
from gridledger.node.replica import MAX_SUBMIT_TXS, Replica
from gridledger.node.sync import BlocksReply, FetchBlocks

from .helpers import make_consortium

CHAIN = "test-chain"


def test_forgery_size_caps_and_fetch_replies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = make_consortium(tmp_path / "c")

    async def scenario() -> None:
        replicas = [Replica(load_config(p), synchronous="NORMAL") for p in layout.configs]
        for r in replicas:
            await r.start()
        client = ConsortiumClient(layout.get_api_addresses())
        try:
            victim = Ed25519PrivateKey(b"\x07" * 32)
            ok = Transaction.create(CHAIN, KV_SET_KIND, KvSet(b"a", b"1"), victim, 1)
            assert (await client.submit([encode(ok)], timeout=10))[0]["status"] == "committed"
            # Victim's sender, the largest nonce, a bad signature: must not censor the victim.
            forged = Transaction(
                CHAIN,
                KV_SET_KIND,
                encode(KvSet(b"x", b"y")),
                victim.public_key.raw,
                2**64 - 1,
                b"\x00" * 64,
            )
            await client.submit([encode(forged)], timeout=5)
            legit = Transaction.create(CHAIN, KV_SET_KIND, KvSet(b"b", b"2"), victim, 2)
            assert (await client.submit([encode(legit)], timeout=10))[0]["status"] == "committed"
            # Nonces out of order from an honest sender are ordered too.
            alice = Ed25519PrivateKey(b"\x09" * 32)
            t10 = Transaction.create(CHAIN, KV_SET_KIND, KvSet(b"c", b"3"), alice, 10)
            t5 = Transaction.create(CHAIN, KV_SET_KIND, KvSet(b"d", b"4"), alice, 5)
            assert (await client.submit([encode(t10)], timeout=10))[0]["status"] == "committed"
            assert (await client.submit([encode(t5)], timeout=10))[0]["status"] != "pending"

            # A transaction above the size cap: a typed refusal, never ordered.
            big = Transaction.create(CHAIN, KV_SET_KIND, KvSet(b"e", b"\xab" * 70_000), alice, 11)
            receipt = (await client.submit([encode(big)], timeout=3))[0]
            assert receipt["status"] == "invalid" and receipt["error"] == "too-large"
            # Too many transactions in one call.
            with pytest.raises(ClientError, match="too many transactions"):
                await client.call(0, "submit", {"txs": ["00"] * (MAX_SUBMIT_TXS + 1)}, 5)

            # Fetch replies are sized by their encoding (at least one block each).
            r0 = replicas[0]
            sizes = []
            for i in range(3):
                tx = Transaction.create(
                    CHAIN, KV_SET_KIND, KvSet(b"f", b"\x01" * 30_000), alice, 20 + i
                )
                res = await client.submit([encode(tx)], timeout=10)
                assert res[0]["status"] in ("committed", "rejected"), res  # in a block
                sizes.append(res[0]["height"])
            monkeypatch.setattr(core_module, "MAX_FETCH_BYTES", 40_000)
            ask = FetchBlocks(7, sizes[0], sizes[-1])
            effects = r0.core.on_frame(1, bytes([NODE_CHANNEL]) + encode(ask), 0)
            (sent,) = effects
            assert isinstance(sent, Transmit) and sent.to == 1
            assert sent.frame[0] == NODE_CHANNEL
            reply = from_value(BlocksReply, decode(sent.frame[1:]))
            assert len(reply.blocks) == 1 and reply.request_id == 7

            # A BlocksReply nobody asked for is dropped and counted.
            before = r0.core.bad_frames["unasked-blocks"]
            unasked = bytes([NODE_CHANNEL]) + encode(BlocksReply(99, (), ()))
            assert r0.core.on_frame(2, unasked, 0) == []
            assert r0.core.bad_frames["unasked-blocks"] == before + 1
        finally:
            await client.close()
            for r in replicas:
                await r.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
