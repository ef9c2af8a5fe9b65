"""Money legs closed by proof, not by word: what the chain shows decides, never a creditor.

``get_leg_status`` is what evidence for the trace center may rest on: only
``unpaid`` (past the deadline with no payment posted, or every posted payment
shown bad by the payee's reveal) counts against a payer.
"""

from __future__ import annotations

from gridledger.crypto.encryption import EncryptionPrivateKey
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.payments.coins import Coin
from gridledger.payments.contract import (
    LEG_OPEN,
    LEG_PAID,
    LEG_PAYMENT_POSTED,
    LEG_UNPAID,
    get_leg_status,
)
from gridledger.payments.units import Money
from gridledger.payments.wallet import (
    HeldCoin,
    build_pay_tx,
    build_refresh_tx,
    build_reveal_tx,
    create_payment,
)
from tests.ledger.helpers import CHAIN
from tests.payments.helpers import SHOP, Harness

HOUR = 3_600_000


def _status(h: Harness, invoice_id: bytes) -> str:
    return get_leg_status(h.view(), SHOP, invoice_id, h.now_ms)


def test_paid_open_and_unpaid(h: Harness) -> None:
    wallet = h.load_wallet(h.world.households[0], 5)
    seller = h.publish_invoice(5, deadline_ms=h.now_ms + HOUR)
    iid = seller.invoice.invoice_id
    assert _status(h, iid) == LEG_OPEN
    msg, _ = h.pay(wallet, seller)
    h.commit_ok(h.redeem_tx(seller, msg))
    assert _status(h, iid) == LEG_PAID
    nobody = h.publish_invoice(5, deadline_ms=h.now_ms + HOUR)
    h.now_ms += 2 * HOUR
    assert _status(h, nobody.invoice.invoice_id) == LEG_UNPAID


def test_payee_who_never_redeems_cannot_frame_an_honest_payer(h: Harness) -> None:
    wallet = h.load_wallet(h.world.households[0], 5)
    coins = tuple(wallet.coins)
    seller = h.publish_invoice(5, deadline_ms=h.now_ms + HOUR)
    msg, _ = h.pay(wallet, seller)
    h.now_ms += 2 * HOUR  # the payee sat on the payment and now claims it was never paid
    assert _status(h, seller.invoice.invoice_id) == LEG_PAYMENT_POSTED
    (r,) = h.commit(build_reveal_tx(CHAIN, msg, seller.enc_key, seller.redeem_key))
    assert not r.ok and "the payment was valid" in r.reason
    assert _status(h, seller.invoice.invoice_id) == LEG_PAYMENT_POSTED
    # past the deadline the locks are gone: the payer can take its coins back
    h.commit_ok(build_refresh_tx(CHAIN, coins, Ed25519PrivateKey.generate(h.rng)))


def test_bad_payment_revealed_makes_the_leg_unpaid(h: Harness) -> None:
    seller = h.publish_invoice(4, deadline_ms=h.now_ms + HOUR)
    key_id = h.world.coin_keys[2][0].key_id
    junk = HeldCoin(Coin(h.rng.random_bytes(32), key_id, h.rng.random_bytes(256)), Money(4))
    msg, _ = create_payment(SHOP, seller.invoice, [junk], h.rng)
    h.commit_ok(build_pay_tx(CHAIN, msg, Ed25519PrivateKey.generate(h.rng), 0))
    intruder = Ed25519PrivateKey.generate(h.rng)
    (r,) = h.commit(build_reveal_tx(CHAIN, msg, seller.enc_key, intruder))
    assert not r.ok and "payee key" in r.reason
    wrong_key = EncryptionPrivateKey.generate(h.rng)
    (r,) = h.commit(build_reveal_tx(CHAIN, msg, wrong_key, seller.redeem_key, 2))
    assert not r.ok and "encryption key" in r.reason
    (r,) = h.commit(build_reveal_tx(CHAIN, msg, seller.enc_key, seller.redeem_key, 3))
    assert r.ok and b"forged or altered" in r.data
    assert _status(h, seller.invoice.invoice_id) == LEG_OPEN  # the payer may still pay
    h.now_ms += 2 * HOUR
    assert _status(h, seller.invoice.invoice_id) == LEG_UNPAID


def test_reveal_before_the_deadline_leaves_room_for_a_good_payment(h: Harness) -> None:
    seller = h.publish_invoice(1, deadline_ms=h.now_ms + HOUR)
    key_id = h.world.coin_keys[0][0].key_id
    junk = HeldCoin(Coin(h.rng.random_bytes(32), key_id, h.rng.random_bytes(256)), Money(1))
    bad, _ = create_payment(SHOP, seller.invoice, [junk], h.rng)
    h.commit_ok(build_pay_tx(CHAIN, bad, Ed25519PrivateKey.generate(h.rng), 0))
    h.commit_ok(build_reveal_tx(CHAIN, bad, seller.enc_key, seller.redeem_key))
    msg, _ = h.pay(h.load_wallet(h.world.households[0], 1), seller)
    (r,) = h.commit(build_reveal_tx(CHAIN, msg, seller.enc_key, seller.redeem_key, 2))
    assert not r.ok and "the payment was valid" in r.reason
    h.commit_ok(h.redeem_tx(seller, msg))
    assert _status(h, seller.invoice.invoice_id) == LEG_PAID
