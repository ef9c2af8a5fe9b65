"""Coins and wallets: the OpenSSL coin check agrees with RFC 9474's; coin choice is exact."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.crypto import blind_rsa
from gridledger.crypto.errors import InvalidSignature
from gridledger.payments.coins import VARIANT, Coin, DenominationVerifier, compute_coin_message
from gridledger.payments.errors import InsufficientCoins
from gridledger.payments.units import Money, compute_denominations
from gridledger.payments.wallet import HeldCoin, Wallet, choose_coins, choose_refresh
from tests.payments.helpers import Harness


def _rfc_valid(verifier: DenominationVerifier, coin: Coin) -> bool:
    try:
        blind_rsa.verify(
            verifier.public_key,
            VARIANT,
            compute_coin_message(coin.serial, coin.key_id),
            coin.signature,
        )
    except InvalidSignature:
        return False
    return True


def test_openssl_check_agrees_with_rfc9474(h: Harness) -> None:
    wallet = h.load_wallet(h.world.households[0], 255)
    n = h.world.coin_keys[0][0]
    verifiers = {d.key_id: DenominationVerifier.from_key(d) for d, _ in h.world.coin_keys}
    k = verifiers[n.key_id].public_key.modulus_bytes
    for held in wallet.coins:
        coin = held.coin
        v = verifiers[coin.key_id]
        variants = [
            coin,
            Coin(coin.serial, coin.key_id, b"\xff" * k),  # >= n
            Coin(coin.serial, coin.key_id, b"\x00" * k),
            Coin(coin.serial, coin.key_id, b"\x00" + coin.signature),  # wrong length
            Coin(coin.serial[::-1], coin.key_id, coin.signature),
            Coin(coin.serial, coin.key_id, coin.signature[:-1] + bytes([coin.signature[-1] ^ 1])),
        ]
        for c in variants:
            assert v.is_valid_signature(c) == _rfc_valid(v, c)
        assert v.is_valid_signature(coin)


def test_denominations_are_the_binary_expansion() -> None:
    assert compute_denominations(0) == ()
    assert compute_denominations(13) == (8, 4, 1)
    with pytest.raises(ValueError):
        compute_denominations(-1)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.integers(0, 5).map(lambda e: 1 << e), min_size=1, max_size=9),
    amount=st.integers(1, 80),
)
def test_choose_coins_is_exact_whenever_a_subset_is(values: list[int], amount: int) -> None:
    coins = [
        HeldCoin(Coin(bytes([i]) * 32, bytes(32), bytes(256)), Money(v))
        for i, v in enumerate(values)
    ]
    wallet = Wallet(list(coins))
    if sum(values) < amount:
        with pytest.raises(InsufficientCoins):
            choose_coins(wallet, amount)
        return
    exists = any(
        sum(c) == amount for r in range(1, len(values) + 1) for c in combinations(values, r)
    )
    chosen = choose_coins(wallet, amount)
    assert (chosen is not None) == exists
    if chosen is not None:
        assert sum(c.value for c in chosen) == amount
        assert len({c.coin.serial for c in chosen}) == len(chosen)
    else:
        spend = choose_refresh(wallet, amount)
        assert sum(c.value for c in spend) >= amount
