"""A replica that crashes between payment and redeem loses no coin and spends none twice."""

from __future__ import annotations

from pathlib import Path

from gridledger.crypto.encoding import decode_as
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.payments.contract import get_posted_payments, is_spent
from gridledger.payments.invoice import get_payment
from gridledger.payments.messages import PaymentMessage
from gridledger.payments.wallet import Wallet, build_pay_tx, build_redeem_tx, create_payment
from tests.ledger.helpers import CHAIN
from tests.payments.helpers import SHOP, World, open_sqlite_harness


def test_crash_between_payment_and_redeem(world: World, tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite"
    h = open_sqlite_harness(world, path)
    wallet = h.load_wallet(world.households[0], 12)
    copy = Wallet(list(wallet.coins))
    seller = h.publish_invoice(12)
    msg, _ = h.pay(wallet, seller)
    root = h.ledger.state_root
    h.ledger.store.close()  # the replica dies after the payment's block

    h2 = open_sqlite_harness(world, path, seed="after-crash")
    h2.now_ms, h2.mint = h.now_ms, h.mint
    assert h2.ledger.state_root == root
    # The seller, holding only its one-time keys, finds the payment on chain again.
    ((payment_hash, posted),) = get_posted_payments(h2.view(), SHOP, seller.invoice.invoice_id)
    location = h2.ledger.store.find_tx(posted.tx_hash)
    assert location is not None
    block = h2.ledger.store.get_block(location[0])
    assert block is not None
    found = decode_as(PaymentMessage, block.transactions[location[1]].payload)
    assert found == msg and found.payment_hash == payment_hash
    contents = h2.open(seller, found)
    h2.commit_ok(build_redeem_tx(CHAIN, found, contents, seller.redeem_key))
    h2.ledger.store.close()  # and dies again right after the redeem

    h3 = open_sqlite_harness(world, path, seed="after-second-crash")
    h3.now_ms, h3.nonce = h2.now_ms, 100
    assert get_payment(h3.view(), SHOP, seller.invoice.invoice_id) is not None
    assert all(is_spent(h3.view(), c) for c in contents.coins)
    # Submitting the redeem again (the seller was unsure it landed) spends nothing twice.
    (r,) = h3.commit(build_redeem_tx(CHAIN, found, contents, seller.redeem_key, 9))
    assert not r.ok and "already paid" in r.reason
    other = h3.publish_invoice(12)
    msg2, _ = create_payment(SHOP, other.invoice, copy.coins, h3.rng)  # the same coins again
    (r,) = h3.commit(build_pay_tx(CHAIN, msg2, Ed25519PrivateKey.generate(h3.rng), 0))
    assert not r.ok and "already spent" in r.reason
    h3.ledger.store.close()
