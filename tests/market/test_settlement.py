"""Settlement with real e-coins: paid and delivered -> settled, never evidence; unpaid ->
evidence against exactly the reneging pseudonym, whose tag t trustees then decrypt."""

from __future__ import annotations

import pytest

from gridledger.crypto import threshold
from gridledger.crypto.encoding import decode_as
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.identity.trace_center import compute_identity_from_shares, get_tag_ciphertext
from gridledger.market import client, keys
from gridledger.market.errors import SettlementRejected
from gridledger.market.messages import (
    LEG_ENERGY,
    LEG_MONEY,
    DefaultRecord,
    OrderReceipt,
    SignedOrder,
    Trade,
    compute_evidence_id,
    compute_order_id,
)
from gridledger.market.settlement import check_default, compute_recheck_ms, get_default
from gridledger.payments.invoice import Invoice, get_invoice
from gridledger.payments.messages import PaymentMessage
from gridledger.payments.mint import Mint, get_verifiers, process_withdrawal
from gridledger.payments.wallet import (
    HeldCoin,
    build_pay_tx,
    build_reveal_tx,
    build_withdraw_request,
    choose_denomination_keys,
    finalize_coins,
    prepare_coins,
)
from tests.ledger.helpers import CHAIN

from .helpers import Chain, Pseudonym, World, make_chain


def trade_between(
    chain: Chain, seller: Pseudonym, buyer: Pseudonym, qty: int, price: int
) -> tuple[Trade, client.OrderSecrets]:
    sell, secrets = chain.order(seller, qty, price)
    chain.commit_ok(sell)
    (r,) = chain.commit_ok(chain.order(buyer, -qty, price)[0])
    (trade_id,) = decode_as(OrderReceipt, r.data).trades
    trade = chain.decode(Trade, keys.TRADE + trade_id)
    assert isinstance(trade, Trade)
    return trade, secrets


def withdraw(chain: Chain, mint: Mint, amount: int) -> tuple[HeldCoin, ...]:
    hh_key, hh_cert = chain.world.household
    denoms = choose_denomination_keys((d for d, _ in chain.world.coin_keys), amount, chain.now_ms)
    pending = prepare_coins(denoms, chain.rng)
    request = build_withdraw_request(CHAIN, hh_cert, hh_key, 0, pending, chain.now_ms, chain.rng)
    response, tx = process_withdrawal(mint, request, chain.now_ms)
    chain.commit_ok(tx)
    return finalize_coins(pending, response.blind_signatures)


def pay_and_redeem(chain: Chain, mint: Mint, trade: Trade, secrets: client.OrderSecrets) -> None:
    invoice = get_invoice(chain.view(), "market", trade.trade_id)
    assert isinstance(invoice, Invoice)
    coins = withdraw(chain, mint, invoice.amount)
    message, _ = client.create_trade_payment(invoice, coins, chain.rng)
    one_time = Ed25519PrivateKey.generate(chain.rng)  # the buyer pays under no name at all
    chain.commit_ok(build_pay_tx(CHAIN, message, one_time, 0))
    redeem = client.build_trade_redeem(
        CHAIN, invoice, message, secrets, get_verifiers(mint), chain.now_ms
    )
    chain.commit_ok(redeem)


def attest(chain: Chain, trade: Trade) -> None:
    chain.commit_ok(
        chain.tx("market.attest", client.create_attestation(chain.world.attester, trade))
    )


def pass_deadline(chain: Chain, trade: Trade) -> None:
    chain.commit_ok(at_ms=trade.deadline_ms + 1)


def test_paid_and_delivered_trade_is_settled_and_never_evidence(world: World) -> None:
    chain = make_chain(world, real_payments=True)
    mint = world.create_mint()
    seller, buyer = world.pseudonyms[:2]
    trade, secrets = trade_between(chain, seller, buyer, 5, 100)
    pay_and_redeem(chain, mint, trade, secrets)
    attest(chain, trade)
    pass_deadline(chain, trade)
    assert chain.get(keys.SETTLED + trade.trade_id) == b"\x01"
    assert list(chain.view().scan(keys.EVIDENCE)) == []
    for leg in (LEG_MONEY, LEG_ENERGY):  # no evidence can be made to stand against them
        with pytest.raises(SettlementRejected):
            check_default(chain.view(), compute_evidence_id(trade.trade_id, leg), chain.now_ms)
    assert (
        chain.get(keys.compute_due_key(trade.deadline_ms, keys.DUE_TRADE, trade.trade_id)) is None
    )


def test_unpaid_trade_is_evidence_against_exactly_the_buyer_and_traces_them(world: World) -> None:
    chain = make_chain(world, real_payments=True)
    seller, buyer = world.pseudonyms[2:4]
    trade, _ = trade_between(chain, seller, buyer, 4, 120)
    attest(chain, trade)  # the seller delivered
    chain.commit_ok(at_ms=trade.deadline_ms)  # at the deadline itself: not yet
    assert list(chain.view().scan(keys.EVIDENCE)) == []
    pass_deadline(chain, trade)
    (entry,) = list(chain.view().scan(keys.EVIDENCE))
    record = decode_as(DefaultRecord, entry[1])
    assert record.evidence_id == compute_evidence_id(trade.trade_id, LEG_MONEY)
    assert (record.leg, record.accused, record.round) == (LEG_MONEY, buyer.raw, trade.buyer_round)
    assert compute_order_id(record.order) == trade.buy_order  # its own signed order is the proof
    assert get_default(chain.view(), compute_evidence_id(trade.trade_id, LEG_ENERGY)) is None
    # What a trustee re-derives from chain state before it releases a share:
    assert check_default(chain.view(), record.evidence_id, chain.now_ms) == record
    with pytest.raises(SettlementRejected, match="deadline has not passed"):
        check_default(chain.view(), record.evidence_id, trade.deadline_ms)
    with pytest.raises(SettlementRejected, match="no such evidence"):
        check_default(chain.view(), compute_evidence_id(trade.trade_id, LEG_ENERGY), chain.now_ms)
    # t of n trustees decrypt the accused pseudonym's tag: exactly the buyer's identity.
    cert = buyer.certificate.certificate
    ct = get_tag_ciphertext(world.tc_key, cert)
    rng = DeterministicRng("trustees")
    shares = [threshold.decryption_share(world.tc_key, ks, ct, rng) for ks in world.key_shares[:3]]
    plaintext, bad = compute_identity_from_shares(world.tc_key, cert, shares)
    assert plaintext.identity == buyer.identity and bad == ()
    assert plaintext.identity != seller.identity


def test_undelivered_trade_is_evidence_against_the_seller_only(world: World) -> None:
    chain = make_chain(world, real_payments=True)
    mint = world.create_mint()
    seller, buyer = world.pseudonyms[4:6]
    trade, secrets = trade_between(chain, seller, buyer, 3, 90)
    pay_and_redeem(chain, mint, trade, secrets)
    pass_deadline(chain, trade)
    (entry,) = list(chain.view().scan(keys.EVIDENCE))
    record = decode_as(DefaultRecord, entry[1])
    assert (record.leg, record.accused) == (LEG_ENERGY, seller.raw)
    raw = chain.get(keys.SIGNED_ORDER + trade.sell_order)
    assert raw is not None and decode_as(SignedOrder, raw) == record.order


def test_payment_posted_but_not_redeemed_accuses_nobody(world: World) -> None:
    chain = make_chain(world, real_payments=True)
    mint = world.create_mint()
    seller, buyer = world.pseudonyms[6:8]
    trade, _ = trade_between(chain, seller, buyer, 2, 100)
    invoice = get_invoice(chain.view(), "market", trade.trade_id)
    assert invoice is not None
    message, _ = client.create_trade_payment(invoice, withdraw(chain, mint, 200), chain.rng)
    chain.commit_ok(build_pay_tx(CHAIN, message, Ed25519PrivateKey.generate(chain.rng), 0))
    attest(chain, trade)
    pass_deadline(chain, trade)  # the seller never redeems (to frame the buyer?)
    assert list(chain.view().scan(keys.EVIDENCE)) == []
    chain.commit_ok(at_ms=compute_recheck_ms(chain.config, trade) + 1)
    assert list(chain.view().scan(keys.EVIDENCE)) == []
    assert chain.get(keys.UNREDEEMED + trade.trade_id) is not None
    assert chain.get(keys.SETTLED + trade.trade_id) is None


def test_junk_payment_revealed_by_the_seller_accuses_the_buyer(world: World) -> None:
    chain = make_chain(world, real_payments=True)
    seller, buyer = world.pseudonyms[0], world.pseudonyms[5]
    trade, secrets = trade_between(chain, seller, buyer, 2, 100)
    junk = PaymentMessage(
        "market", trade.trade_id, b"not coins" * 8, chain.rng.random_bytes(32),
        (chain.rng.random_bytes(32),),
    )  # fmt: skip
    chain.commit_ok(build_pay_tx(CHAIN, junk, Ed25519PrivateKey.generate(chain.rng), 0))
    assert secrets.enc_key is not None and secrets.redeem_key is not None
    chain.commit_ok(build_reveal_tx(CHAIN, junk, secrets.enc_key, secrets.redeem_key))
    attest(chain, trade)
    pass_deadline(chain, trade)
    (entry,) = list(chain.view().scan(keys.EVIDENCE))
    record = decode_as(DefaultRecord, entry[1])
    assert (record.leg, record.accused) == (LEG_MONEY, buyer.raw)
    assert check_default(chain.view(), record.evidence_id, chain.now_ms) == record


def test_valid_payment_cannot_be_revealed_to_frame_the_buyer(world: World) -> None:
    chain = make_chain(world, real_payments=True)
    mint = world.create_mint()
    seller, buyer = world.pseudonyms[1], world.pseudonyms[6]
    trade, secrets = trade_between(chain, seller, buyer, 1, 100)
    invoice = get_invoice(chain.view(), "market", trade.trade_id)
    assert invoice is not None and secrets.enc_key and secrets.redeem_key
    message, _ = client.create_trade_payment(invoice, withdraw(chain, mint, 100), chain.rng)
    chain.commit_ok(build_pay_tx(CHAIN, message, Ed25519PrivateKey.generate(chain.rng), 0))
    (r,) = chain.commit(build_reveal_tx(CHAIN, message, secrets.enc_key, secrets.redeem_key))
    assert not r.ok and "valid" in r.reason
    attest(chain, trade)
    chain.commit_ok(at_ms=compute_recheck_ms(chain.config, trade) + 1)
    assert list(chain.view().scan(keys.EVIDENCE)) == []


def test_attestation_checks(world: World) -> None:
    chain = make_chain(world)
    seller, buyer = world.pseudonyms[:2]
    trade, _ = trade_between(chain, seller, buyer, 3, 100)
    impostor = Ed25519PrivateKey.generate(chain.rng)
    (r,) = chain.commit(chain.tx("market.attest", client.create_attestation(impostor, trade)))
    assert not r.ok and "not an attestation key" in r.reason
    attest(chain, trade)
    (r,) = chain.commit(chain.tx("market.attest", client.create_attestation(world.attester, trade)))
    assert not r.ok and "already attested" in r.reason
    trade2, _ = trade_between(chain, seller, buyer, 3, 100)
    late = client.create_attestation(world.attester, trade2)
    (r,) = chain.commit(chain.tx("market.attest", late), at_ms=trade2.deadline_ms + 1)
    assert not r.ok and "deadline has passed" in r.reason


def test_deadline_work_is_bounded_per_block(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gridledger.market.contract.MAX_DUE_PER_BLOCK", 2)
    chain = make_chain(world)
    a, b = world.pseudonyms[:2]
    chain.commit_ok(chain.order(a, 5, 100)[0])
    for _ in range(5):
        chain.commit_ok(chain.order(b, -1, 100)[0])  # five trades, all unpaid
    trade = decode_as(Trade, next(iter(chain.view().scan(keys.TRADE)))[1])
    counts = []
    for k in range(4):
        chain.commit_ok(at_ms=trade.deadline_ms + 1 + k)
        counts.append(len(list(chain.view().scan(keys.EVIDENCE))))
    assert counts == [4, 8, 10, 10]  # two trades a block, two legs each
    assert list(chain.view().scan(keys.DUE)) == []
