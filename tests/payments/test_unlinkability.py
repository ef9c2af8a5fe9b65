"""Unlinkability: the mint's complete records plus the chain do not link withdrawals to redeems.

The adversary is the mint itself (honest-but-curious, seed 003 Assumption 1)
with everything it saw: who withdrew, in which order, each blinded message and
the blind signature it returned. It also reads the chain: every redeemed coin
in order. It matches each redeemed coin to a withdrawal session by the best
test it has (does ``s^e mod n`` equal a blinded message it signed?), breaking
ties by withdrawal order. Over many trials it must do no better than chance.

A control runs the same adversary against a broken wallet that "blinds" with
r = 1: there it links every coin, so the test has the power to catch a leak.
"""

from __future__ import annotations

import gmpy2

from gridledger.crypto import blind_rsa
from gridledger.crypto.encoding import decode_as
from gridledger.crypto.rng import DeterministicRng
from gridledger.payments.coins import (
    SERIAL_SIZE,
    VARIANT,
    Coin,
    DenominationVerifier,
    compute_coin_message,
)
from gridledger.payments.messages import Redeem
from gridledger.payments.mint import process_withdrawal
from gridledger.payments.wallet import (
    HeldCoin,
    PendingCoin,
    Wallet,
    build_withdraw_request,
    finalize_coins,
    prepare_coins,
)
from tests.ledger.helpers import CHAIN
from tests.payments.helpers import Harness, World, make_harness

SESSIONS = 6
TRIALS = 20


def _broken_prepare(key_record, rng: DeterministicRng) -> PendingCoin:  # type: ignore[no-untyped-def]
    public = DenominationVerifier.from_key(key_record)
    serial = rng.random_bytes(SERIAL_SIZE)
    msg = compute_coin_message(serial, public.key_id)
    blinding = blind_rsa.blind_with(public.public_key, VARIANT, msg, 1, rng.random_bytes(48))
    return PendingCoin(key_record, public, serial, blinding)


def _run_trial(h: Harness, broken: bool, order_rng: DeterministicRng) -> int:
    """One trial: SESSIONS withdrawals of a 1-coin, paid in random order; return correct links."""
    one = next(d for d, _ in h.world.coin_keys if d.value == 1)
    mint_view: list[bytes] = []  # the blinded message of each session, in withdrawal order
    coins: list[HeldCoin] = []
    for j in range(SESSIONS):
        who = h.world.households[j % len(h.world.households)]
        pending = (_broken_prepare(one, h.rng),) if broken else prepare_coins([one], h.rng)
        request = build_withdraw_request(CHAIN, who.cert, who.key, 0, pending, h.now_ms, h.rng)
        response, tx = process_withdrawal(h.mint, request, h.now_ms)
        h.commit_ok(tx)
        mint_view.append(request.body.blinded[0].blinded_msg)
        coins.extend(finalize_coins(pending, response.blind_signatures))
    order = list(range(SESSIONS))
    for i in range(SESSIONS - 1, 0, -1):  # payments happen in an order the mint does not see
        k = order_rng.randbelow(i + 1)
        order[i], order[k] = order[k], order[i]
    chain_view: list[Coin] = []
    truth: list[int] = []
    for j in order:
        seller = h.publish_invoice(1)
        msg, _ = h.pay(Wallet([coins[j]]), seller)
        h.commit_ok(h.redeem_tx(seller, msg))
        block = h.ledger.store.get_block(h.ledger.height)
        assert block is not None
        tx = block.transactions[0]
        chain_view.extend(decode_as(Redeem, tx.payload).coins)
        truth.append(j)
    public = DenominationVerifier.from_key(one).public_key
    correct = 0
    for pos, coin in enumerate(chain_view):
        s_e = int(gmpy2.powmod(int.from_bytes(coin.signature, "big"), public.e, public.n))
        matches = [j for j, b in enumerate(mint_view) if int.from_bytes(b, "big") == s_e]
        guess = matches[0] if matches else pos  # else: guess "first withdrawn, first paid"
        correct += guess == truth[pos]
    return correct


def test_mint_with_full_records_links_no_better_than_chance(world: World) -> None:
    order_rng = DeterministicRng("payment-order")
    correct = 0
    for t in range(TRIALS):
        correct += _run_trial(make_harness(world, seed=f"unlink-{t}"), False, order_rng)
    guesses = TRIALS * SESSIONS
    # Chance is 1/SESSIONS per guess: mean 20, sd ~4.1 over 120 guesses; allow 4 sd.
    print(f"adversary linked {correct} of {guesses}")
    assert correct <= guesses / SESSIONS + 4 * (guesses * (1 / SESSIONS) * (5 / 6)) ** 0.5


def test_control_broken_blinding_is_linked(world: World) -> None:
    order_rng = DeterministicRng("payment-order")
    h = make_harness(world, seed="broken")
    assert _run_trial(h, True, order_rng) == SESSIONS


def test_every_session_explains_every_coin(world: World) -> None:
    """Perfect blindness, checked: for any (session j, coin i) the mint saw, the blinding factor
    r = blind_sig_j / s_i is a unit with (s_i * r)^e = blinded_j, so the mint's view is the same
    for every assignment of coins to sessions."""
    h = make_harness(world, seed="explain")
    one, _ = next((d, k) for d, k in h.world.coin_keys if d.value == 1)
    public = DenominationVerifier.from_key(one).public_key
    n, e = public.n, public.e
    sessions = []
    coins = []
    for j in range(4):
        who = h.world.households[j]
        pending = prepare_coins([one], h.rng)
        request = build_withdraw_request(CHAIN, who.cert, who.key, 0, pending, h.now_ms, h.rng)
        response, _ = process_withdrawal(h.mint, request, h.now_ms)
        sessions.append((request.body.blinded[0].blinded_msg, response.blind_signatures[0]))
        coins.extend(finalize_coins(pending, response.blind_signatures))
    for blinded, blind_sig in sessions:
        for held in coins:
            s = int.from_bytes(held.coin.signature, "big")
            r = int(gmpy2.mpz(int.from_bytes(blind_sig, "big")) * gmpy2.invert(s, n) % n)
            assert gmpy2.gcd(r, n) == 1
            assert int(gmpy2.powmod(s * r, e, n)) == int.from_bytes(blinded, "big")
