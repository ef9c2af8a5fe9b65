"""On four replicas over TCP: conflicting spends sent to different replicas, one wins."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from gridledger.crypto.encoding import encode
from gridledger.crypto.encryption import EncryptionPrivateKey
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.contracts_builtin import KvContract
from gridledger.ledger.tx import Transaction
from gridledger.node.client import ConsortiumClient
from gridledger.node.config import load_config
from gridledger.node.consortium import init_consortium
from gridledger.node.replica import Replica
from gridledger.payments.contract import PaymentsContract
from gridledger.payments.invoice import Invoice
from gridledger.payments.mint import create_mint, get_verifiers, process_withdrawal
from gridledger.payments.units import Money
from gridledger.payments.wallet import (
    build_pay_tx,
    build_redeem_tx,
    build_withdraw_request,
    choose_denomination_keys,
    create_payment,
    finalize_coins,
    open_payment,
    prepare_coins,
)
from tests.node.helpers import FAST, get_free_ports, wait_until
from tests.payments.helpers import SHOP, SHOP_KIND, ShopContract, World

CHAIN = "test-chain"
HOUR_MS = 3_600_000


def wide_world(world: World) -> World:
    """The same RSA keys under records valid around the wall clock (block time is real here)."""
    keys = [
        (replace(d, valid_from_ms=0, withdraw_until_ms=2**42, spend_until_ms=2**42), k)
        for d, k in world.coin_keys
    ]
    return replace(world, coin_keys=keys)


def test_conflicting_redeems_at_different_replicas(world: World, tmp_path: Path) -> None:
    w = wide_world(world)
    ports = get_free_ports(8)
    layout = init_consortium(
        tmp_path / "c",
        4,
        chain_id=CHAIN,
        consensus=FAST,
        ports=[(ports[2 * i], ports[2 * i + 1]) for i in range(4)],
        identity=None,
        rng=DeterministicRng("consortium"),
    )
    config = w.config()
    rng = DeterministicRng("consortium-payments")
    now = int(time.time() * 1000)
    mint = create_mint(CHAIN, w.operator, w.roots, w.coin_keys)
    who = w.households[0]
    # cert validity is in the test world's past: the mint authenticates at the world's time
    keys = choose_denomination_keys((d for d, _ in w.coin_keys), 12, now)
    pending = prepare_coins(keys, rng)
    cert_now = 1_750_000_000_000
    request = build_withdraw_request(CHAIN, who.cert, who.key, 0, pending, cert_now, rng)
    response, withdrawn_tx = process_withdrawal(mint, request, cert_now)
    coins = finalize_coins(pending, response.blind_signatures)
    shop = Ed25519PrivateKey.generate(rng)
    sellers = []
    txs: list[Transaction] = [withdrawn_tx]
    for i in range(2):
        redeem, enc = Ed25519PrivateKey.generate(rng), EncryptionPrivateKey.generate(rng)
        invoice = Invoice(
            rng.random_bytes(32),
            Money(12),
            redeem.public_key.raw,
            enc.public_key.raw,
            now + HOUR_MS,
        )
        sellers.append((invoice, redeem, enc))
        txs.append(Transaction.create(CHAIN, SHOP_KIND, invoice, shop, i + 1))
    messages = [
        create_payment(SHOP, inv, coins, rng)[0] for inv, _, _ in sellers
    ]  # same coins twice
    pays = [build_pay_tx(CHAIN, m, Ed25519PrivateKey.generate(rng), 0) for m in messages]
    redeems = []
    for (inv, redeem, enc), msg in zip(sellers, messages, strict=True):
        contents = open_payment(SHOP, inv, msg, enc, get_verifiers(mint), now)
        redeems.append(build_redeem_tx(CHAIN, msg, contents, redeem))

    def registry() -> ContractRegistry:
        return ContractRegistry((KvContract(), ShopContract(), PaymentsContract(config)))

    async def scenario() -> None:
        replicas = [
            Replica(load_config(p), synchronous="NORMAL", registry=registry())
            for p in layout.configs
        ]
        for r in replicas:
            await r.start()
        client = ConsortiumClient(layout.get_api_addresses())
        try:
            setup = await client.submit([encode(tx) for tx in txs], timeout=15)
            assert [r["status"] for r in setup] == ["committed"] * 3
            # Two payments with the same coins race: one to replica 0, the other to replica 2.
            answers = await asyncio.gather(
                *(
                    client.call(
                        rid, "submit", {"txs": [encode(tx).hex()], "wait": True, "timeout": 15}, 20
                    )
                    for rid, tx in ((0, pays[0]), (2, pays[1]))
                )
            )
            statuses = [a["receipts"][0]["status"] for a in answers]
            assert sorted(statuses) == ["committed", "rejected"]
            loser = answers[statuses.index("rejected")]["receipts"][0]
            assert "locked by another payment" in loser["reason"]
            # Only the winner's payee can redeem; the other redeem finds no payment.
            winner = statuses.index("committed")
            got = await client.submit([encode(redeems[winner]), encode(redeems[1 - winner])])
            assert [r["status"] for r in got] == ["committed", "rejected"]
            assert "no such payment message" in got[1]["reason"]
            height = max(r.ledger.height for r in replicas)
            await wait_until(
                lambda: all(r.ledger.height >= height for r in replicas), 10, "heights"
            )
            assert len({r.store.get_header(height) for r in replicas}) == 1
        finally:
            await client.close()
            for r in replicas:
                await r.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
