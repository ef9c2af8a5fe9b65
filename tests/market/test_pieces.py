"""Seed 003's fixed-piece market on chain: pairing in arrival order, DSO fallback and
surplus purchase, expiry and re-announcement, and attacks on the pairing."""

from __future__ import annotations

import dataclasses

import pytest

from gridledger.crypto.encoding import decode_as
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.errors import ProofError
from gridledger.ledger.light import LightClient
from gridledger.ledger.state import compute_state_key
from gridledger.ledger.tx import Transaction
from gridledger.market import client, keys
from gridledger.market.messages import OfferRecord, Pairing, PieceOffer
from gridledger.market.pieces import compute_piece_energy_mj, get_pairing
from gridledger.payments.invoice import get_invoice, get_payment
from gridledger.payments.messages import Redeem
from gridledger.payments.mint import get_verifiers, process_dso_withdrawal
from gridledger.payments.wallet import build_pay_tx, choose_denomination_keys
from tests.ledger.helpers import CHAIN, certify

from .helpers import SLOT, Chain, World, make_chain, withdraw


def offer(chain: Chain, slot: int = SLOT) -> tuple[Transaction, client.OrderSecrets]:
    o, secrets = client.create_piece_offer(slot, chain.rng)
    return chain.tx("market.piece-offer", o), secrets


def request(chain: Chain, slot: int = SLOT) -> Pairing:
    (r,) = chain.commit_ok(
        chain.tx("market.piece-request", client.create_piece_request(slot, chain.rng))
    )
    return decode_as(Pairing, r.data)


def test_request_pairs_with_the_oldest_offer_first(world: World) -> None:
    chain = make_chain(world)
    (tx1, s1), (tx2, s2) = offer(chain), offer(chain)
    chain.commit_ok(tx1)
    chain.commit_ok(tx2)
    first, second = request(chain), request(chain)
    assert client.is_our_pairing(first, s1) and client.is_our_pairing(second, s2)
    assert first.amount == chain.config.piece_price
    invoice = get_invoice(chain.view(), "market", first.pairing_id)
    assert invoice is not None and invoice.payee_redeem_key == first.redeem_key


def test_dso_offers_grid_energy_when_no_local_offer_is_open(world: World) -> None:
    chain = make_chain(world)
    pairing = request(chain)
    assert pairing.offer_id == b"" and pairing.amount == chain.config.dso_import_price
    assert pairing.redeem_key == chain.config.dso_redeem_key


def test_variable_price_by_the_power_time_tuple(world: World) -> None:
    chain = make_chain(world)
    a, b = request(chain, SLOT), request(chain, SLOT + 1)
    assert {a.energy_mj, b.energy_mj} == {10 * 600_000, 10 * 900_000}
    assert a.amount == b.amount  # one coin amount; the longer piece is the cheaper Wh
    assert compute_piece_energy_mj(chain.config, SLOT) == a.energy_mj


def test_expired_offer_is_not_paired_and_leaves_the_pool(world: World) -> None:
    chain = make_chain(world)
    tx, secrets = offer(chain)
    chain.commit_ok(tx)
    chain.commit_ok(at_ms=chain.now_ms + chain.config.offer_validity_ms)
    assert list(chain.view().scan(keys.POOL)) == []
    pairing = request(chain)
    assert pairing.offer_id == b""  # the DSO, not the stale offer
    (entry,) = list(chain.view().scan(keys.OFFER))
    record = decode_as(OfferRecord, entry[1])
    assert client.is_offer_stale(record, chain.now_ms)  # the seller re-announces
    assert secrets.redeem_key is not None
    assert record.redeem_key == secrets.redeem_key.public_key.raw


def test_dso_buys_the_surplus_beyond_the_threshold(world: World) -> None:
    chain = make_chain(world)
    threshold = chain.config.surplus_threshold
    txs = [offer(chain) for _ in range(threshold + 3)]
    chain.commit_ok(*(tx for tx, _ in txs))
    pairings = [decode_as(Pairing, raw) for _, raw in chain.view().scan(keys.PAIRING)]
    assert len(pairings) == 3 and all(p.request_id == b"" for p in pairings)
    assert all(p.amount == chain.config.dso_export_price for p in pairings)
    oldest = {txs[i][1].redeem_key.public_key.raw for i in range(3)}  # type: ignore[union-attr]
    assert {p.redeem_key for p in pairings} == oldest
    assert len(list(chain.view().scan(keys.POOL))) == threshold


def test_unpaid_pairing_is_void_and_the_offer_returns_in_its_place(world: World) -> None:
    chain = make_chain(world)
    (tx1, s1), (tx2, _) = offer(chain), offer(chain)
    chain.commit_ok(tx1, tx2)
    unpaid = request(chain)
    assert client.is_our_pairing(unpaid, s1)
    chain.commit_ok(at_ms=unpaid.deadline_ms + 1)
    assert chain.get(keys.VOID + unpaid.pairing_id) is not None
    again = request(chain)
    assert client.is_our_pairing(again, s1)  # back at the head of the queue


def test_paid_pairing_is_settled_with_real_coins(world: World) -> None:
    chain = make_chain(world, real_payments=True)
    mint = world.create_mint()
    tx, secrets = offer(chain)
    chain.commit_ok(tx)
    pairing = request(chain)
    invoice = get_invoice(chain.view(), "market", pairing.pairing_id)
    assert invoice is not None
    message, _ = client.create_trade_payment(
        invoice, withdraw(chain, mint, invoice.amount), chain.rng
    )
    chain.commit_ok(build_pay_tx(CHAIN, message, Ed25519PrivateKey.generate(chain.rng), 0))
    chain.commit_ok(
        client.build_trade_redeem(
            CHAIN, invoice, message, secrets, get_verifiers(mint), chain.now_ms
        )
    )
    chain.commit_ok(at_ms=pairing.deadline_ms + 1)
    assert chain.get(keys.SETTLED + pairing.pairing_id) is not None


def test_forged_or_replayed_pairing_diverts_no_coin(world: World) -> None:
    chain = make_chain(world, real_payments=True)
    mint = world.create_mint()
    victim_tx, victim = offer(chain)
    chain.commit_ok(victim_tx)
    # 1. Replaying the victim's offer (same one-time keys) under another sender is refused.
    (r,) = chain.commit(
        chain.tx("market.piece-offer", victim_tx.payload, Ed25519PrivateKey.generate(chain.rng))
    )
    assert not r.ok and "used before" in r.reason
    # 2. An attacker's own offer queues behind the victim's: arrival order decides.
    attacker_tx, attacker = offer(chain)
    chain.commit_ok(attacker_tx)
    pairing = request(chain)
    assert client.is_our_pairing(pairing, victim) and not client.is_our_pairing(pairing, attacker)
    # 3. A pairing cannot be injected: no transaction kind writes one but a request.
    assert attacker.redeem_key is not None and attacker.enc_key is not None
    attacker_keys = (attacker.redeem_key.public_key.raw, attacker.enc_key.public_key.raw)
    forged = Pairing(
        b"\x01" * 32,
        b"",
        b"",
        SLOT,
        1,
        1,
        attacker_keys[0],
        attacker_keys[1],
        pairing.deadline_ms,
        0,
    )
    (r,) = chain.commit(chain.tx("market.pairing", forged))
    assert not r.ok
    # 4. Replaying the request (same nonce) pairs nothing new.
    req = client.create_piece_request(SLOT, chain.rng)
    chain.commit_ok(chain.tx("market.piece-request", req))
    (r,) = chain.commit(chain.tx("market.piece-request", req))
    assert not r.ok and "nonce used before" in r.reason
    # 5. The payment is sealed to the victim's key; the attacker cannot redeem it.
    invoice = get_invoice(chain.view(), "market", pairing.pairing_id)
    assert invoice is not None
    message, _ = client.create_trade_payment(
        invoice, withdraw(chain, mint, invoice.amount), chain.rng
    )
    chain.commit_ok(build_pay_tx(CHAIN, message, Ed25519PrivateKey.generate(chain.rng), 0))
    honest = client.build_trade_redeem(
        CHAIN, invoice, message, victim, get_verifiers(mint), chain.now_ms
    )
    stolen = decode_as(Redeem, honest.payload)
    theft = Transaction.create(CHAIN, "payments.redeem", stolen, attacker.redeem_key, 0)
    (r,) = chain.commit(theft)
    assert not r.ok
    assert get_payment(chain.view(), "market", pairing.pairing_id) is None
    chain.commit_ok(honest)
    record = get_payment(chain.view(), "market", pairing.pairing_id)
    assert record is not None and record.amount == invoice.amount
    assert get_pairing(chain.view(), pairing.pairing_id) == pairing


def test_offer_checks(world: World) -> None:
    chain = make_chain(world)
    o, _ = client.create_piece_offer(SLOT, chain.rng)
    bad = PieceOffer(o.slot, b"\x00" * 31, o.enc_key, o.nonce)
    (r,) = chain.commit(chain.tx("market.piece-offer", bad))
    assert not r.ok and "Ed25519" in r.reason
    closed = PieceOffer(0, o.redeem_key, o.enc_key, o.nonce)
    (r,) = chain.commit(chain.tx("market.piece-offer", closed))
    assert not r.ok and "closed" in r.reason


def test_dso_pays_for_the_surplus_it_buys(world: World) -> None:
    chain = make_chain(world, world.market_config(surplus_threshold=0), real_payments=True)
    mint = world.create_mint()
    tx, secrets = offer(chain)
    chain.commit_ok(tx)  # end of block: one live offer > threshold 0 -> the DSO buys it
    (entry,) = list(chain.view().scan(keys.PAIRING))
    pairing = decode_as(Pairing, entry[1])
    assert pairing.request_id == b"" and client.is_our_pairing(pairing, secrets)
    invoice = get_invoice(chain.view(), "market", pairing.pairing_id)
    assert invoice is not None and invoice.amount == chain.config.dso_export_price
    denoms = choose_denomination_keys((d for d, _ in world.coin_keys), invoice.amount, chain.now_ms)
    coins, mint_tx = process_dso_withdrawal(mint, denoms, 0, chain.now_ms, chain.rng)
    chain.commit_ok(mint_tx)
    message, _ = client.create_trade_payment(invoice, coins, chain.rng)
    chain.commit_ok(build_pay_tx(CHAIN, message, Ed25519PrivateKey.generate(chain.rng), 0))
    redeem = client.build_trade_redeem(
        CHAIN, invoice, message, secrets, get_verifiers(mint), chain.now_ms
    )
    chain.commit_ok(redeem)
    chain.commit_ok(at_ms=pairing.deadline_ms + 1)
    assert chain.get(keys.SETTLED + pairing.pairing_id) is not None


def test_a_light_meter_tells_the_consortiums_pairing_from_a_forged_one(world: World) -> None:
    chain = make_chain(world)
    tx, secrets = offer(chain)
    chain.commit_ok(tx)
    pairing = request(chain)
    light = LightClient(chain.ledger.genesis)
    for h in range(1, chain.ledger.height + 1):
        header = chain.ledger.get_block(h).header
        light.add_header(header, certify(header))  # 2f+1 validator signatures
    key = compute_state_key("market", keys.PAIRING + pairing.pairing_id)
    height, value, proof = chain.ledger.get_state_proof(key)
    assert value is not None and decode_as(Pairing, value) == pairing
    client.verify_pairing(light, height, pairing, proof)  # the consortium's pairing
    thief = Ed25519PrivateKey.generate(chain.rng).public_key.raw
    forged = dataclasses.replace(pairing, redeem_key=thief)  # same ids, the thief's key
    with pytest.raises(ProofError):
        client.verify_pairing(light, height, forged, proof)
    assert client.is_our_pairing(pairing, secrets) and not client.is_our_pairing(forged, secrets)
