"""Attacks, written as an attacker would try them; each must fail with its reason."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.encryption import open_sealed
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvSet
from gridledger.ledger.tx import Transaction
from gridledger.payments.coins import Coin, DenominationVerifier
from gridledger.payments.contract import get_credit
from gridledger.payments.errors import MintRejected, PaymentError, PaymentMessageRejected
from gridledger.payments.invoice import compute_invoice_key, get_payment
from gridledger.payments.messages import (
    KIND_REDEEM,
    KIND_WITHDRAWN,
    PaymentContents,
    PaymentMessage,
    Redeem,
    ReissueRecord,
    WithdrawalRecord,
    compute_payment_context,
)
from gridledger.payments.mint import (
    add_mint_key,
    build_bill_tx,
    create_denomination_key,
    process_deposit,
    process_reissue,
    process_withdrawal,
)
from gridledger.payments.units import Money
from gridledger.payments.wallet import (
    HeldCoin,
    Wallet,
    build_deposit_request,
    build_pay_tx,
    build_redeem_tx,
    build_refresh_tx,
    build_reissue_request,
    build_withdraw_request,
    choose_denomination_keys,
    create_payment,
    finalize_coins,
    open_payment,
    prepare_coins,
)
from tests.ledger.helpers import CHAIN
from tests.payments.helpers import DAY_MS, SHOP, Harness, Seller


def _paid(h: Harness, amount: int = 12) -> tuple[Seller, PaymentMessage, Wallet]:
    wallet = h.load_wallet(h.world.households[0], amount)
    copy = Wallet(list(wallet.coins))
    seller = h.publish_invoice(amount)
    msg, _ = h.pay(wallet, seller)
    return seller, msg, copy


def _open_raw(seller: Seller, msg: PaymentMessage) -> PaymentContents:
    """Decrypt without the payee's checks (to push bad coins at the contract)."""
    context = compute_payment_context(SHOP, seller.invoice.invoice_id, msg.receipt_hash)
    return decode_as(PaymentContents, open_sealed(seller.enc_key, msg.ciphertext, context))


def _pay_bad_coins(h: Harness, coins: list[Coin], amount: int) -> str:
    """A payer pays ``coins`` claiming they make ``amount``; the payee's own check refuses
    them, and so does the contract when the redeem is sent anyway. Returns its reason."""
    seller = h.publish_invoice(amount)
    claimed = [HeldCoin(c, Money(amount if i == 0 else 0)) for i, c in enumerate(coins)]
    msg, _ = create_payment(SHOP, seller.invoice, claimed, h.rng)
    h.commit_ok(build_pay_tx(CHAIN, msg, Ed25519PrivateKey.generate(h.rng), 0))
    with pytest.raises(PaymentMessageRejected):
        h.open(seller, msg)
    contents = _open_raw(seller, msg)
    (r,) = h.commit(build_redeem_tx(CHAIN, msg, contents, seller.redeem_key))
    assert not r.ok
    assert get_payment(h.view(), SHOP, seller.invoice.invoice_id) is None
    return r.reason


# -- coins ------------------------------------------------------------------------------


def test_double_spent_coin_refused(h: Harness) -> None:
    seller, msg, copy = _paid(h)
    h.commit_ok(h.redeem_tx(seller, msg))
    coins = tuple(copy.coins)
    # paid again, refreshed, deposited: every later spend of a spent coin is refused
    other = h.publish_invoice(12)
    again, _ = create_payment(SHOP, other.invoice, coins, h.rng)
    (r,) = h.commit(build_pay_tx(CHAIN, again, Ed25519PrivateKey.generate(h.rng), 0))
    assert not r.ok and "already spent" in r.reason
    (r,) = h.commit(build_refresh_tx(CHAIN, coins, Ed25519PrivateKey.generate(h.rng)))
    assert not r.ok and "already spent" in r.reason
    r = h.deposit(h.world.households[0], coins)
    assert not r.ok and "already spent" in r.reason


def test_conflicting_spends_in_one_block_only_first_wins(h: Harness) -> None:
    wallet = h.load_wallet(h.world.households[0], 12)
    coins = tuple(wallet.coins)
    a, b = h.publish_invoice(12), h.publish_invoice(12)
    msg_a, _ = create_payment(SHOP, a.invoice, coins, h.rng)
    msg_b, _ = create_payment(SHOP, b.invoice, coins, h.rng)
    payer = Ed25519PrivateKey.generate(h.rng)
    r1, r2 = h.commit(build_pay_tx(CHAIN, msg_a, payer, 1), build_pay_tx(CHAIN, msg_b, payer, 2))
    assert r1.ok and not r2.ok and "locked by another payment" in r2.reason
    # the payer's refresh in the same block as the payee's redeem: the lock decides
    r1, r2 = h.commit(
        build_refresh_tx(CHAIN, coins, Ed25519PrivateKey.generate(h.rng)), h.redeem_tx(a, msg_a)
    )
    assert not r1.ok and "locked to another posted payment" in r1.reason and r2.ok
    # two copies of one coin in one deposit
    one = h.load_wallet(h.world.households[1], 1).coins[0]
    r = h.deposit(h.world.households[1], [one, one])
    assert not r.ok and "already spent" in r.reason
    with pytest.raises(PaymentError, match="twice"):
        create_payment(SHOP, h.publish_invoice(2).invoice, [one, one], h.rng)


def test_forged_coin_refused(h: Harness) -> None:
    key_id = h.world.coin_keys[0][0].key_id
    forged = Coin(h.rng.random_bytes(32), key_id, h.rng.random_bytes(256))
    assert "forged or altered" in _pay_bad_coins(h, [forged], 1)


def test_altered_coins_refused(h: Harness) -> None:
    real = h.load_wallet(h.world.households[0], 1).coins[0].coin
    new_serial = Coin(bytes(32), real.key_id, real.signature)
    assert "forged or altered" in _pay_bad_coins(h, [new_serial], 1)
    flipped = Coin(real.serial, real.key_id, bytes([real.signature[0] ^ 1]) + real.signature[1:])
    assert "forged or altered" in _pay_bad_coins(h, [flipped], 1)
    # claim a bigger denomination for a 1-coin: the 2-key does not verify it
    two = next(d for d, _ in h.world.coin_keys if d.value == 2)
    upgraded = Coin(real.serial, two.key_id, real.signature)
    assert "forged or altered" in _pay_bad_coins(h, [upgraded], 2)


def test_coin_under_unpublished_key_refused(h: Harness) -> None:
    # A mint that signs one household's coins under a private key (to tag them) is
    # caught: only published keys are accepted.
    secret = create_denomination_key(h.world.spare_key, 1, 0, h.now_ms + DAY_MS, h.now_ms + DAY_MS)
    add_mint_key(h.mint, secret, h.world.spare_key)
    pending = prepare_coins([secret], h.rng)
    who = h.world.households[0]
    request = build_withdraw_request(CHAIN, who.cert, who.key, 0, pending, h.now_ms, h.rng)
    response, _ = process_withdrawal(h.mint, request, h.now_ms)
    (tagged,) = finalize_coins(pending, response.blind_signatures)
    assert "unknown denomination key" in _pay_bad_coins(h, [tagged.coin], 1)


def test_expired_denomination_refused(h: Harness) -> None:
    record, _ = h.world.expiring_key
    pending = prepare_coins([record], h.rng)
    who = h.world.households[0]
    request = build_withdraw_request(CHAIN, who.cert, who.key, 0, pending, h.now_ms, h.rng)
    response, tx = process_withdrawal(h.mint, request, h.now_ms)
    h.commit_ok(tx)
    wallet = Wallet(list(finalize_coins(pending, response.blind_signatures)))
    seller = h.publish_invoice(1, deadline_ms=h.now_ms + 10 * 3_600_000)
    msg, _ = h.pay(wallet, seller)
    contents = h.open(seller, msg)
    h.now_ms = record.spend_until_ms  # the key's spending window has closed
    (r,) = h.commit(build_redeem_tx(CHAIN, msg, contents, seller.redeem_key))
    assert not r.ok and "not valid at" in r.reason
    with pytest.raises(PaymentMessageRejected, match="not valid at"):
        h.open(seller, msg)
    req = build_withdraw_request(
        CHAIN, who.cert, who.key, 0, prepare_coins([record], h.rng), h.now_ms, h.rng
    )
    with pytest.raises(MintRejected, match="not withdrawable"):  # nor does the mint sign
        process_withdrawal(h.mint, req, h.now_ms)


def test_wrong_amount_refused(h: Harness) -> None:
    eight = h.load_wallet(h.world.households[0], 8).coins[0].coin
    assert "coins sum to 8, invoice asks 12" in _pay_bad_coins(h, [eight], 12)


def test_redeem_of_other_coins_than_the_locked_ones_refused(h: Harness) -> None:
    seller, msg, _ = _paid(h, 12)
    contents = h.open(seller, msg)
    swap = h.load_wallet(h.world.households[1], 12).coins
    wrong = replace(contents, coins=tuple(c.coin for c in swap))
    (r,) = h.commit(build_redeem_tx(CHAIN, msg, wrong, seller.redeem_key))
    assert not r.ok and "not the ones the payment locked" in r.reason


# -- who may redeem -----------------------------------------------------------------------


def test_stolen_coins_redeemed_by_another_key_refused(h: Harness) -> None:
    seller, msg, _ = _paid(h)
    contents = h.open(seller, msg)  # suppose the thief learnt the coins and the receipt
    thief = Ed25519PrivateKey.generate(h.rng)
    (r,) = h.commit(build_redeem_tx(CHAIN, msg, contents, thief))
    assert not r.ok and "only the invoice's payee key may redeem" in r.reason
    (r,) = h.commit(
        build_refresh_tx(CHAIN, [HeldCoin(c, Money(0)) for c in contents.coins], thief, 1)
    )
    assert not r.ok and "locked to another posted payment" in r.reason
    h.commit_ok(h.redeem_tx(seller, msg))  # the payee still can


def test_payer_racing_the_payee_fails(h: Harness) -> None:
    wallet = h.load_wallet(h.world.households[0], 12)
    coins = tuple(c.coin for c in wallet.coins)
    seller = h.publish_invoice(12)
    msg, receipt = h.pay(wallet, seller)
    payer_key = Ed25519PrivateKey.generate(h.rng)
    # 1. redeem its own coins against the seller's invoice under its own key
    own = Redeem(SHOP, seller.invoice.invoice_id, msg.payment_hash, receipt, coins)
    (r,) = h.commit(Transaction.create(CHAIN, KIND_REDEEM, own, payer_key, 1))
    assert not r.ok and "payee key" in r.reason
    # 2. publish its own invoice where anyone can write (the KV namespace) and redeem there
    fake = replace(seller.invoice, invoice_id=bytes(32), payee_redeem_key=payer_key.public_key.raw)
    kv = KvSet(compute_invoice_key(fake.invoice_id), encode(fake))
    h.commit_ok(Transaction.create(CHAIN, KV_SET_KIND, kv, payer_key, 2))
    own_fake = Redeem("test", fake.invoice_id, msg.payment_hash, receipt, coins)
    (r,) = h.commit(Transaction.create(CHAIN, KIND_REDEEM, own_fake, payer_key, 3))
    assert not r.ok and "may not publish invoices" in r.reason
    # 3. refresh or deposit them: the payment locked them to the seller's invoice
    who = h.world.households[0]
    held = [HeldCoin(c, Money(0)) for c in coins]
    deposit = build_deposit_request(CHAIN, who.cert, who.key, 0, held, h.now_ms, h.rng)
    for tx in (
        build_refresh_tx(CHAIN, held, Ed25519PrivateKey.generate(h.rng)),
        process_deposit(h.mint, deposit, h.now_ms),
    ):
        (r,) = h.commit(tx)
        assert not r.ok and "locked to another posted payment" in r.reason
    # The seller's redeem goes through: the coins went only to the invoice's payee key.
    h.commit_ok(h.redeem_tx(seller, msg))
    assert get_payment(h.view(), SHOP, seller.invoice.invoice_id) is not None


# -- replays, receipts, deadlines ---------------------------------------------------------


def test_replays_refused(h: Harness) -> None:
    seller, msg, _ = _paid(h)
    tx = h.redeem_tx(seller, msg)
    h.commit_ok(tx)
    assert h.commit(tx) == ()  # the very same tx: left out of the block (one receipt per hash)
    (r,) = h.commit(build_redeem_tx(CHAIN, msg, h.open(seller, msg), seller.redeem_key, 7))
    assert not r.ok and "already paid" in r.reason
    again = h.load_wallet(h.world.households[1], 12)
    m2, _ = create_payment(SHOP, seller.invoice, again.coins, h.rng)
    (r,) = h.commit(build_pay_tx(CHAIN, m2, Ed25519PrivateKey.generate(h.rng), 0))
    assert not r.ok and "already paid" in r.reason
    # the reissue, asked twice
    keys = choose_denomination_keys((d for d, _ in h.world.coin_keys), 12, h.now_ms)
    request = build_reissue_request(CHAIN, seller.redeem_key, prepare_coins(keys, h.rng))
    credit = get_credit(h.view(), seller.redeem_key.public_key.raw)
    rtx, _ = process_reissue(h.mint, request, credit, h.now_ms)
    h.commit_ok(rtx)
    with pytest.raises(MintRejected, match="no open credit"):
        process_reissue(h.mint, request, credit, h.now_ms)  # stale credit, same mint
    h.mint.reissued.clear()  # a restarted mint that forgot: the chain still refuses
    rtx2, _ = process_reissue(h.mint, request, credit, h.now_ms)
    (r,) = h.commit(rtx2)
    assert not r.ok and "credit already reissued" in r.reason


def test_replayed_withdrawal_and_deposit_refused(h: Harness) -> None:
    who = h.world.households[0]
    keys = choose_denomination_keys((d for d, _ in h.world.coin_keys), 3, h.now_ms)
    pending = prepare_coins(keys, h.rng)
    request = build_withdraw_request(CHAIN, who.cert, who.key, 0, pending, h.now_ms, h.rng)
    process_withdrawal(h.mint, request, h.now_ms)
    with pytest.raises(MintRejected, match="replayed"):
        process_withdrawal(h.mint, request, h.now_ms)
    wallet = h.load_wallet(who, 3)
    assert h.deposit(who, wallet.coins).ok
    r = h.deposit(who, wallet.coins)
    assert not r.ok and "already spent" in r.reason


def test_wrong_receipt_does_not_close(h: Harness) -> None:
    seller, msg, _ = _paid(h)
    contents = replace(h.open(seller, msg), receipt=bytes(32))
    (r,) = h.commit(build_redeem_tx(CHAIN, msg, contents, seller.redeem_key))
    assert not r.ok and r.reason == "wrong receipt"
    assert get_payment(h.view(), SHOP, seller.invoice.invoice_id) is None


def test_redeem_after_deadline_refused(h: Harness) -> None:
    wallet = h.load_wallet(h.world.households[0], 4)
    seller = h.publish_invoice(4, deadline_ms=h.now_ms + 5_000)
    msg, _ = h.pay(wallet, seller)
    tx = h.redeem_tx(seller, msg)
    h.now_ms += 10_000
    (r,) = h.commit(tx)
    assert not r.ok and "past its deadline" in r.reason


# -- the mint and its transactions --------------------------------------------------------


def test_mint_kinds_need_the_mint(h: Harness) -> None:
    rogue = Ed25519PrivateKey.generate(h.rng)
    record = WithdrawalRecord("house-0", 0, 0, Money(0))
    (r,) = h.commit(Transaction.create(CHAIN, KIND_WITHDRAWN, record, rogue, 1))
    assert not r.ok and "only the mint" in r.reason
    fake = ReissueRecord(rogue.public_key.raw, Money(1), bytes(32), bytes(64))
    (r,) = h.commit(Transaction.create(CHAIN, "payments.reissue", fake, rogue, 2))
    assert not r.ok and "only the mint" in r.reason


def test_malformed_payload_refused(h: Harness) -> None:
    sender = Ed25519PrivateKey.generate(h.rng)
    (r,) = h.commit(Transaction.create(CHAIN, KIND_REDEEM, b"\x00", sender, 1))
    assert not r.ok and r.reason.startswith("malformed payload")


def test_mint_refuses_bad_withdrawals(h: Harness) -> None:
    who = h.world.households[0]
    keys = choose_denomination_keys((d for d, _ in h.world.coin_keys), 3, h.now_ms)
    pending = prepare_coins(keys, h.rng)
    outsider = h.world.outsider
    req = build_withdraw_request(CHAIN, outsider.cert, outsider.key, 0, pending, h.now_ms, h.rng)
    with pytest.raises(MintRejected, match="not authenticated"):
        process_withdrawal(h.mint, req, h.now_ms)
    req = build_withdraw_request(CHAIN, who.cert, who.key, 0, pending, h.now_ms - 3_600_000, h.rng)
    with pytest.raises(MintRejected, match="not fresh"):
        process_withdrawal(h.mint, req, h.now_ms)
    req = build_withdraw_request(CHAIN, who.cert, who.key, 0, pending, h.now_ms, h.rng)
    forged = replace(req, body=replace(req.body, period=1))
    with pytest.raises(MintRejected, match="signature does not verify"):
        process_withdrawal(h.mint, forged, h.now_ms)
    other = h.world.households[1]  # Bob's certificate, Alice's key
    stolen = build_withdraw_request(CHAIN, other.cert, who.key, 0, pending, h.now_ms, h.rng)
    with pytest.raises(MintRejected, match="signature does not verify"):
        process_withdrawal(h.mint, stolen, h.now_ms)
    assert h.mint.withdrawn == {}


def test_mint_refuses_bad_reissues(h: Harness) -> None:
    seller, msg, _ = _paid(h, 12)
    h.commit_ok(h.redeem_tx(seller, msg))
    credit = get_credit(h.view(), seller.redeem_key.public_key.raw)
    keys = choose_denomination_keys((d for d, _ in h.world.coin_keys), 13, h.now_ms)
    greedy = build_reissue_request(CHAIN, seller.redeem_key, prepare_coins(keys, h.rng))
    with pytest.raises(MintRejected, match="sum to the credit"):
        process_reissue(h.mint, greedy, credit, h.now_ms)
    keys = choose_denomination_keys((d for d, _ in h.world.coin_keys), 12, h.now_ms)
    impostor = build_reissue_request(
        CHAIN, Ed25519PrivateKey.generate(h.rng), prepare_coins(keys, h.rng)
    )
    owner = seller.redeem_key.public_key.raw
    impostor = replace(impostor, body=replace(impostor.body, owner_key=owner))
    with pytest.raises(MintRejected, match="not signed"):
        process_reissue(h.mint, impostor, credit, h.now_ms)
    assert h.mint.reissued == set()


def test_period_closed_after_bill(h: Harness) -> None:
    who = h.world.households[0]
    h.load_wallet(who, 5)
    h.commit_ok(build_bill_tx(h.mint, "house-0", 0))
    keys = choose_denomination_keys((d for d, _ in h.world.coin_keys), 1, h.now_ms)
    pending = prepare_coins(keys, h.rng)
    req = build_withdraw_request(CHAIN, who.cert, who.key, 0, pending, h.now_ms, h.rng)
    _, tx = process_withdrawal(h.mint, req, h.now_ms)
    (r,) = h.commit(tx)
    assert not r.ok and "already billed" in r.reason
    (r,) = h.commit(build_bill_tx(h.mint, "house-0", 0))
    assert not r.ok and "already billed" in r.reason


def test_payee_checks_of_the_payment_message(h: Harness) -> None:
    seller, msg, _ = _paid(h, 3)
    verifiers = {d.key_id: DenominationVerifier.from_key(d) for d, _ in h.world.coin_keys}
    other = h.publish_invoice(3)
    with pytest.raises(PaymentMessageRejected, match="another invoice"):
        open_payment(SHOP, other.invoice, msg, other.enc_key, verifiers, h.now_ms)
    tampered = replace(msg, ciphertext=msg.ciphertext[:-1] + bytes([msg.ciphertext[-1] ^ 1]))
    with pytest.raises(PaymentMessageRejected, match="decrypt"):
        open_payment(SHOP, seller.invoice, tampered, seller.enc_key, verifiers, h.now_ms)
    swapped = replace(msg, receipt_hash=bytes(32))  # the context binds the receipt hash
    with pytest.raises(PaymentMessageRejected, match="decrypt"):
        open_payment(SHOP, seller.invoice, swapped, seller.enc_key, verifiers, h.now_ms)
    relocked = replace(msg, locks=(bytes(32),))
    with pytest.raises(PaymentMessageRejected, match="locked"):
        open_payment(SHOP, seller.invoice, relocked, seller.enc_key, verifiers, h.now_ms)
    assert open_payment(SHOP, seller.invoice, msg, seller.enc_key, verifiers, h.now_ms).coins
