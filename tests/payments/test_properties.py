"""Hypothesis properties over random withdraw / pay / redeem / deposit sequences.

* value is conserved: withdrawn = deposited + outstanding + paid to the DSO - paid by the DSO,
  both in the model (wallets) and on chain (``supply``);
* no coin is accepted twice (every replayed coin is refused, every accepted one is new);
* every bill equals withdrawn - deposited.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.payments.coins import Coin
from gridledger.payments.contract import get_bill, get_supply
from gridledger.payments.messages import PaymentContents
from gridledger.payments.mint import (
    build_absorb_tx,
    build_bill_tx,
    create_dso_invoice,
    get_verifiers,
    process_dso_withdrawal,
)
from gridledger.payments.wallet import (
    HeldCoin,
    Wallet,
    build_pay_tx,
    build_redeem_tx,
    build_refresh_tx,
    choose_coins,
    choose_denomination_keys,
    choose_refresh,
    create_payment,
    open_payment,
    process_remove_coins,
)
from tests.ledger.helpers import CHAIN
from tests.payments.helpers import DAY_MS, Harness, World, make_harness

HOUSES = 3

op_strategy = st.one_of(
    st.tuples(st.just("withdraw"), st.integers(0, HOUSES - 1), st.integers(1, 40)),
    st.tuples(
        st.just("pay"), st.integers(0, HOUSES - 1), st.integers(0, HOUSES - 1), st.integers(1, 30)
    ),
    st.tuples(st.just("pay-dso"), st.integers(0, HOUSES - 1), st.integers(1, 20)),
    st.tuples(st.just("dso-pays"), st.integers(0, HOUSES - 1), st.integers(1, 20)),
    st.tuples(st.just("replay"), st.integers(0, HOUSES - 1), st.integers(0, 1000)),
    st.tuples(st.just("deposit"), st.integers(0, HOUSES - 1)),
)


@dataclass
class Model:
    h: Harness
    wallets: list[Wallet]
    withdrawn: list[int] = field(default_factory=lambda: [0] * HOUSES)
    deposited: list[int] = field(default_factory=lambda: [0] * HOUSES)
    to_dso: int = 0
    by_dso: int = 0
    accepted: list[Coin] = field(default_factory=list)

    def accept(self, coins: tuple[Coin, ...]) -> None:
        ids = {c.coin_id for c in self.accepted}
        assert not ids & {c.coin_id for c in coins}, "a coin was accepted twice"
        self.accepted.extend(coins)

    def make_payable(self, who: int, amount: int) -> tuple[HeldCoin, ...] | None:
        wallet = self.wallets[who]
        if wallet.balance < amount:
            return None
        coins = choose_coins(wallet, amount)
        if coins is None:  # refresh into the binary split of the whole refreshed value
            spend = choose_refresh(wallet, amount)
            owner = Ed25519PrivateKey.generate(self.h.rng)
            self.h.commit_ok(build_refresh_tx(CHAIN, spend, owner))
            self.accept(tuple(c.coin for c in spend))
            process_remove_coins(wallet, spend)
            total = sum(c.value for c in spend)
            wallet.coins.extend(self.h.reissue_split(owner, (amount, total - amount)))
            coins = choose_coins(wallet, amount)
        assert coins is not None
        return coins

    def pay_and_redeem(self, coins: tuple[HeldCoin, ...], amount: int) -> PaymentContents:
        h = self.h
        seller = h.publish_invoice(amount)
        msg, _ = create_payment("shop", seller.invoice, coins, h.rng)
        h.commit_ok(build_pay_tx(CHAIN, msg, Ed25519PrivateKey.generate(h.rng), 0))
        contents = h.open(seller, msg)
        h.commit_ok(build_redeem_tx(CHAIN, msg, contents, seller.redeem_key))
        self.accept(contents.coins)
        self.last_redeem_key = seller.redeem_key
        return contents

    def step(self, op: tuple[object, ...]) -> None:
        h = self.h
        kind = op[0]
        if kind == "withdraw":
            who, amount = int(op[1]), int(op[2])  # type: ignore[call-overload]
            self.wallets[who].coins.extend(h.withdraw(h.world.households[who], amount))
            self.withdrawn[who] += amount
        elif kind == "pay":
            payer, payee, amount = (int(x) for x in op[1:])  # type: ignore[call-overload]
            coins = self.make_payable(payer, amount)
            if coins is None:
                return
            process_remove_coins(self.wallets[payer], coins)
            self.pay_and_redeem(coins, amount)
            self.wallets[payee].coins.extend(h.reissue(self.last_redeem_key, amount))
        elif kind == "pay-dso":
            payer, amount = int(op[1]), int(op[2])  # type: ignore[call-overload]
            coins = self.make_payable(payer, amount)
            if coins is None:
                return
            process_remove_coins(self.wallets[payer], coins)
            dso, tx = create_dso_invoice(h.mint, amount, h.now_ms + DAY_MS, h.rng)
            h.commit_ok(tx)
            msg, _ = create_payment("payments", dso.invoice, coins, h.rng)
            h.commit_ok(build_pay_tx(CHAIN, msg, Ed25519PrivateKey.generate(h.rng), 0))
            contents = open_payment(
                "payments", dso.invoice, msg, dso.enc_key, get_verifiers(h.mint), h.now_ms
            )
            h.commit_ok(build_redeem_tx(CHAIN, msg, contents, dso.redeem_key))
            h.commit_ok(build_absorb_tx(h.mint, dso.redeem_key.public_key.raw))
            self.accept(contents.coins)
            self.to_dso += amount
        elif kind == "dso-pays":
            payee, amount = int(op[1]), int(op[2])  # type: ignore[call-overload]
            keys = choose_denomination_keys((d for d, _ in h.world.coin_keys), amount, h.now_ms)
            coins, tx = process_dso_withdrawal(h.mint, keys, 0, h.now_ms, h.rng)
            h.commit_ok(tx)
            self.by_dso += amount
            self.pay_and_redeem(coins, amount)
            self.wallets[payee].coins.extend(h.reissue(self.last_redeem_key, amount))
        elif kind == "replay":
            if not self.accepted:
                return
            coin = self.accepted[int(op[2]) % len(self.accepted)]  # type: ignore[call-overload]
            who = int(op[1])  # type: ignore[call-overload]
            value = next(d.value for d, _ in h.world.coin_keys if d.key_id == coin.key_id)
            r = h.deposit(h.world.households[who], [HeldCoin(coin, value)])
            assert not r.ok and "already spent" in r.reason
        elif kind == "deposit":
            who = int(op[1])  # type: ignore[call-overload]
            wallet = self.wallets[who]
            if not wallet.coins:
                return
            coins = tuple(wallet.coins[:64])
            assert h.deposit(h.world.households[who], coins).ok
            self.accept(tuple(c.coin for c in coins))
            self.deposited[who] += sum(c.value for c in coins)
            process_remove_coins(wallet, coins)

    def check_conservation(self) -> None:
        outstanding = sum(w.balance for w in self.wallets)
        assert sum(self.withdrawn) == (
            sum(self.deposited) + outstanding + self.to_dso - self.by_dso
        )
        s = get_supply(self.h.view())
        open_credits = s.redeemed + s.refreshed - s.reissued - s.absorbed
        assert open_credits == 0  # every credit in this model is reissued or absorbed at once
        assert s.withdrawn == sum(self.withdrawn) and s.deposited == sum(self.deposited)
        assert s.absorbed == self.to_dso and s.dso_minted == self.by_dso
        # the chain's spent registry holds exactly the coins accepted, once each
        spent = [key for key, _ in self.h.view().scan(b"spent/")]
        assert len(spent) == len(self.accepted) == len({c.coin_id for c in self.accepted})


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op_strategy, min_size=1, max_size=8))
def test_conservation_no_double_acceptance_and_bills(
    world: World, ops: list[tuple[object, ...]]
) -> None:
    h = make_harness(world, seed=repr(ops))
    model = Model(h, [Wallet() for _ in range(HOUSES)])
    model.wallets[0].coins.extend(h.withdraw(h.world.households[0], 50))
    model.withdrawn[0] += 50
    for op in ops:
        model.step(op)
        model.check_conservation()
    for who in range(HOUSES):
        h.commit_ok(build_bill_tx(h.mint, f"house-{who}", 0))
        bill = get_bill(h.view(), 0, f"house-{who}")
        assert bill is not None
        assert bill.total == model.withdrawn[who] - model.deposited[who]
        assert (bill.withdrawn, bill.deposited) == (model.withdrawn[who], model.deposited[who])
