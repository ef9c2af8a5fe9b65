"""End to end on one ledger: load, pay, redeem, reissue, refresh, deposit, bill; DSO flows."""

from __future__ import annotations

import dataclasses

from gridledger.crypto.encoding import decode_as
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.tx import Transaction
from gridledger.payments.contract import get_bill, get_credit, get_supply, get_totals, is_spent
from gridledger.payments.invoice import PaymentRecord, get_payment
from gridledger.payments.messages import KIND_PAY, Bill, compute_receipt_hash
from gridledger.payments.mint import (
    build_absorb_tx,
    build_bill_tx,
    compute_grid_charge,
    create_dso_invoice,
    get_verifiers,
    process_dso_withdrawal,
    process_reissue,
)
from gridledger.payments.units import Money
from gridledger.payments.wallet import (
    Wallet,
    build_redeem_tx,
    build_refresh_tx,
    build_reissue_request,
    choose_coins,
    choose_denomination_keys,
    choose_refresh,
    create_payment,
    finalize_coins,
    open_payment,
    prepare_coins,
    process_remove_coins,
)
from tests.ledger.helpers import CHAIN
from tests.payments.helpers import DAY_MS, SHOP, Harness


def test_withdraw_pay_redeem_reissue_deposit_bill(h: Harness) -> None:
    alice, bob = h.world.households[0], h.world.households[1]
    wallet = h.load_wallet(alice, 100)
    assert wallet.balance == 100
    assert sorted(c.value for c in wallet.coins) == [4, 32, 64]
    assert get_totals(h.view(), "wd", 0, "house-0").value == 100

    seller = h.publish_invoice(36)
    msg, receipt = h.pay(wallet, seller)
    assert wallet.balance == 64
    contents = h.open(seller, msg)
    assert contents.receipt == receipt
    (r,) = h.commit_ok(build_redeem_tx(CHAIN, msg, contents, seller.redeem_key))
    record = decode_as(PaymentRecord, r.data)
    assert get_payment(h.view(), SHOP, seller.invoice.invoice_id) == record
    assert record.amount == 36 and record.receipt_hash == compute_receipt_hash(receipt)
    assert all(is_spent(h.view(), c) for c in contents.coins)

    fresh = h.reissue(seller.redeem_key, 36)
    assert sum(c.value for c in fresh) == 36
    assert get_credit(h.view(), seller.redeem_key.public_key.raw).status == "reissued"

    # Bob (the seller) deposits his fresh coins; Alice deposits her change.
    assert h.deposit(bob, fresh).ok
    assert h.deposit(alice, wallet.coins).ok
    (ra,) = h.commit_ok(build_bill_tx(h.mint, "house-0", 0))
    grid = compute_grid_charge(imported_wh=40, exported_wh=25, import_price=2, export_price=3)
    assert grid == 5
    h.commit_ok(build_bill_tx(h.mint, "house-1", 0, grid_charge=grid))
    assert decode_as(Bill, ra.data).total == 100 - 64
    assert get_bill(h.view(), 0, "house-1") == Bill("house-1", 0, 0, 36, 5, -31)
    supply = get_supply(h.view())
    assert supply.withdrawn == 100 and supply.deposited == 100
    assert supply.redeemed == supply.reissued == 36


def test_refresh_into_chosen_split_pays_exactly(h: Harness) -> None:
    alice = h.world.households[0]
    wallet = h.load_wallet(alice, 8)
    assert choose_coins(wallet, 5) is None  # a single 8 cannot pay 5
    owner = Ed25519PrivateKey.generate(h.rng)
    spend = choose_refresh(wallet, 5)
    h.commit_ok(build_refresh_tx(CHAIN, spend, owner))
    process_remove_coins(wallet, spend)
    # Refresh the 8 into 5 + 3 under a fresh one-time key: nothing links it to Alice.
    keys = [
        *choose_denomination_keys((d for d, _ in h.world.coin_keys), 5, h.now_ms),
        *choose_denomination_keys((d for d, _ in h.world.coin_keys), 3, h.now_ms),
    ]
    pending = prepare_coins(keys, h.rng)
    request = build_reissue_request(CHAIN, owner, pending)
    tx, response = process_reissue(
        h.mint, request, get_credit(h.view(), owner.public_key.raw), h.now_ms
    )
    h.commit_ok(tx)
    wallet.coins.extend(finalize_coins(pending, response.blind_signatures))
    seller = h.publish_invoice(5)
    h.pay(wallet, seller)
    assert wallet.balance == 3


def test_dso_paid_and_paying_through_the_same_invoices(h: Harness) -> None:
    alice = h.world.households[0]
    wallet = h.load_wallet(alice, 20)
    # The DSO sells grid energy (fallback): Alice pays its invoice.
    dso_invoice, tx = create_dso_invoice(h.mint, 20, h.now_ms + DAY_MS, h.rng)
    h.commit_ok(tx)
    coins = choose_coins(wallet, 20)
    assert coins is not None
    msg, _ = create_payment("payments", dso_invoice.invoice, coins, h.rng)
    h.commit_ok(Transaction.create(CHAIN, KIND_PAY, msg, Ed25519PrivateKey.generate(h.rng), 0))
    contents = open_payment(
        "payments",
        dso_invoice.invoice,
        msg,
        dso_invoice.enc_key,
        get_verifiers(h.mint),
        h.now_ms,
    )
    h.commit_ok(build_redeem_tx(CHAIN, msg, contents, dso_invoice.redeem_key))
    h.commit_ok(build_absorb_tx(h.mint, dso_invoice.redeem_key.public_key.raw))
    # The DSO buys a surplus piece from Bob: it pays with coins it withdrew for itself.
    keys = choose_denomination_keys((d for d, _ in h.world.coin_keys), 12, h.now_ms)
    dso_coins, tx = process_dso_withdrawal(h.mint, keys, 0, h.now_ms, h.rng)
    h.commit_ok(tx)
    seller = h.publish_invoice(12)
    msg, _ = h.pay(Wallet(list(dso_coins)), seller)
    h.commit_ok(h.redeem_tx(seller, msg))
    supply = get_supply(h.view())
    assert supply.absorbed == 20 and supply.dso_minted == 12
    assert supply.withdrawn == 20


def test_one_payee_key_collects_several_invoices_then_reissues_once(h: Harness) -> None:
    """A sell order filled by two trades: two invoices to one key, one credit, one reissue."""
    alice = h.world.households[0]
    wallet = h.load_wallet(alice, 5)
    wallet.coins.extend(h.withdraw(alice, 7))
    first = h.publish_invoice(5)
    second_invoice = dataclasses.replace(first.invoice, invoice_id=b"\x02" * 32, amount=Money(7))
    h.commit_ok(h.shop_tx(second_invoice))
    second = dataclasses.replace(first, invoice=second_invoice)
    msg1, _ = h.pay(wallet, first)
    msg2, _ = h.pay(wallet, second)
    h.commit_ok(h.redeem_tx(first, msg1))
    redeem2 = build_redeem_tx(CHAIN, msg2, h.open(second, msg2), second.redeem_key, 1)
    h.commit_ok(redeem2)
    credit = get_credit(h.view(), first.redeem_key.public_key.raw)
    assert credit is not None and credit.amount == 12
    fresh = h.reissue(first.redeem_key, 12)
    assert sum(c.value for c in fresh) == 12
    # the credit is closed: a third invoice to the same key cannot be redeemed any more
    third_invoice = dataclasses.replace(first.invoice, invoice_id=b"\x03" * 32, amount=Money(1))
    h.commit_ok(h.shop_tx(third_invoice))
    third = dataclasses.replace(first, invoice=third_invoice)
    wallet.coins.extend(h.withdraw(alice, 1))
    msg3, _ = h.pay(wallet, third)
    (receipt,) = h.commit(build_redeem_tx(CHAIN, msg3, h.open(third, msg3), third.redeem_key, 2))
    assert not receipt.ok and "already reissued" in receipt.reason
