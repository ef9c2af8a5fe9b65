"""A trading day on the real stack, in simulated time.

Households built from real readings (:mod:`gridledger.sim.households`) trade a
day of hourly delivery slots in the continuous double auction, on a 4-replica
PBFT consortium of real node cores (:class:`~gridledger.node.simnet.SimNetwork`:
the real ledger, the identity, payments and market contracts, simulated time):

1. the CA admits every household (X.509 with attributes);
2. each registers for the day's round with the RM (cut and choose, K = 32) and
   gets, anonymously, a pseudonym certificate from the MM's shuffled batch;
3. each loads its wallet at the mint while identified (RFC 9474 blind coins);
4. every hour, each household with a surplus sells it and each with a deficit
   buys, with signed pseudonymous orders; the contract matches them (price-time
   priority, mid price); buyers pay each trade's invoice with coins sealed to the
   seller's one-time key, sellers redeem them and withdraw fresh coins
   anonymously, the substation attests every delivery after the slot;
5. the buyer of the day's first trade reneges on it: at its deadline every replica
   records the default from chain state alone; anyone points the identity contract
   at it, and t of n trustees trace exactly that pseudonym to its owner, who is
   blacklisted and whose later orders are refused (:func:`trace_default`);
6. at the end of the day every household deposits its coins while identified
   and the mint posts its bill: withdrawn − deposited + grid energy at tariff.

Energy not traded locally is bought from or sold to the grid at the DSO's
tariffs. ``market="fixed-piece"`` trades the hours in seed 003's fixed-piece
market instead (:mod:`gridledger.sim.trading_day_fixed`); the scenario's
``pseudonym_round_hours`` opens a new pseudonym round every N hours
(:meth:`TradingDay.start_round_if_due`, :func:`sweep_round`). The run is
deterministic for a seed, except RSA key generation (OpenSSL's), which changes
signatures but no figure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.encryption import EncryptionPrivateKey
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey, RsaPrivateKey
from gridledger.errors import GridledgerError
from gridledger.identity.admission import RoleKey, issue_member
from gridledger.identity.ca import Role, compute_certificate_hash
from gridledger.identity.client import register_household
from gridledger.identity.contracts import KIND_BATCH, get_blacklist, get_revocations
from gridledger.identity.genesis import compute_evidence_sources_state
from gridledger.identity.pseudonym_issuer import (
    compute_pseudonym_request,
    on_pseudonym_request,
    process_close_batch,
    process_open_batch,
)
from gridledger.identity.registration import PseudonymCredential, process_open_round
from gridledger.ledger.contracts import StateView
from gridledger.ledger.state import Overlay
from gridledger.ledger.tx import Transaction
from gridledger.market import keys as market_keys
from gridledger.market.client import (
    OrderSecrets,
    build_attest_tx,
    build_order_tx,
    build_trade_redeem,
    create_attestation,
    create_order,
    create_trade_payment,
    sign_order,
)
from gridledger.market.config import compute_genesis_state as compute_market_genesis
from gridledger.market.messages import DefaultRecord, MarketConfig, Trade, compute_order_id
from gridledger.node.core import NodeLimits
from gridledger.node.identity_material import (
    ConsortiumIdentity,
    IdentitySetup,
    create_identity_material,
)
from gridledger.node.simnet import SIM_CHAIN, SimNetwork, make_keys
from gridledger.payments.coins import DenominationKey
from gridledger.payments.config import PaymentsConfig
from gridledger.payments.config import compute_genesis_state as compute_payments_genesis
from gridledger.payments.contract import get_bill, get_credit, get_published_verifiers
from gridledger.payments.invoice import get_invoice
from gridledger.payments.messages import Bill
from gridledger.payments.mint import (
    Mint,
    build_bill_tx,
    compute_grid_charge,
    create_denomination_key,
    create_mint,
    process_deposit,
    process_reissue,
    process_withdrawal,
)
from gridledger.payments.wallet import (
    HeldCoin,
    Wallet,
    build_deposit_request,
    build_pay_tx,
    build_refresh_tx,
    build_reissue_request,
    build_withdraw_request,
    choose_coins,
    choose_denomination_keys,
    choose_refresh,
    finalize_coins,
    prepare_coins,
    process_remove_coins,
)
from gridledger.sim.households import Household, build_households, compute_slot_balance
from gridledger.sim.scenario import Scenario

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
ROUND = 1
DENOMINATIONS = 20  # coins of 1, 2, 4, ... 2**19 milli-cents
ORDER_LEAD_MS = 45 * 60_000  # orders for hour h go in 45 minutes before it starts
ATTEST_LAG_MS = 60_000  # the substation attests a slot's deliveries a minute after it ends
MAX_DEPOSIT_COINS = 64  # the mint's bound per deposit request
EVIDENCE_SOURCES = ("market",)
MAX_TX_BYTES = 256 * 1024  # contracts whose defaults the identity contract accepts


class TradingDayError(GridledgerError):
    """The trading day could not go on (a transaction that had to commit did not)."""


@dataclass
class Home:
    """One household: its identity, pseudonym, wallet and what it did in the day."""

    index: int
    name: str
    kind: str
    member: RoleKey
    net_wh: tuple[int, ...]  # per hour: > 0 surplus offered, < 0 deficit wanted
    consumption_wh: int
    production_wh: int
    credential: PseudonymCredential | None = None
    wallet: Wallet = field(default_factory=Wallet)
    sold_wh: int = 0
    bought_wh: int = 0
    earned_mc: int = 0
    paid_mc: int = 0
    grid_import_wh: int = 0
    grid_export_wh: int = 0
    withdrawn_mc: int = 0
    deposited_mc: int = 0
    bill: Bill | None = None

    @property
    def pseudonym(self) -> bytes:
        assert self.credential is not None
        return self.credential.pseudonym.public_key.raw


@dataclass(frozen=True)
class TradeRecord:
    hour: int
    price: int
    quantity: int
    buyer: str
    seller: str
    paid: bool


@dataclass(frozen=True)
class DayResult:
    """What the day produced: per household, per hour, and on chain."""

    households: tuple[dict[str, Any], ...]
    trades: tuple[TradeRecord, ...]
    hourly: tuple[dict[str, int], ...]
    reneger: str | None
    traced: str | None
    trustees_used: int
    refused_orders: int
    blocks: int
    transactions: int
    consensus_messages: int
    heights_agree: bool
    conservation: dict[str, int]
    kpis: dict[str, float]
    wall_s: float
    steps: dict[str, float]
    market: str = "double-auction"  # or "fixed-piece" (sim/trading_day_fixed.py)


MARKETS = ("double-auction", "fixed-piece")


class Accusation(Protocol):
    """What tracing needs of a default on chain: its evidence id and whom it accuses."""

    @property
    def evidence_id(self) -> bytes: ...

    @property
    def accused(self) -> bytes: ...


Replicas = Literal["in-process", "processes"]
REPLICA_MODES: tuple[Replicas, ...] = ("in-process", "processes")


class ChainBackend(Protocol):
    """What the day needs of its consortium: in process (:class:`SimChain`, simulated
    time) or as replica processes over TCP (:class:`~gridledger.sim.process_chain.ProcessChain`)."""

    transactions: int

    def at(self, abs_ms: int) -> None:
        """Let the replicas' clocks reach ``abs_ms`` (never backwards)."""
        ...

    @property
    def now_ms(self) -> int:
        """What the replicas' clocks read now."""
        ...

    def submit(
        self, txs: Sequence[Transaction], *, must_commit: bool = True
    ) -> list[dict[str, Any]]:
        """Send ``txs`` to every replica; their receipts once f+1 replicas agree."""
        ...

    def view(self, namespace: str) -> StateView:
        """A read-only view of committed state."""
        ...

    def get_blocks(self) -> int:
        """The chain's height."""
        ...

    def get_consensus_messages(self) -> int:
        """Messages the replicas sent each other."""
        ...

    def is_on_one_head(self) -> bool:
        """Whether every replica is on the same head."""
        ...

    def close(self) -> None:
        """Release the replicas (stop processes)."""
        ...


class SimChain:
    """The client side of the simulated consortium: submit, wait for f+1 replies, read."""

    def __init__(self, sim: SimNetwork) -> None:
        self.sim = sim
        self.transactions = 0

    def at(self, abs_ms: int) -> None:
        """Let simulated time run until ``abs_ms`` on the replicas' clocks."""
        target = abs_ms - self.sim.epoch_ms
        if target > self.sim.now_ms:
            self.sim.run_until(target)

    @property
    def now_ms(self) -> int:
        return self.sim.clock_ms

    def submit(
        self, txs: Sequence[Transaction], *, must_commit: bool = True
    ) -> list[dict[str, Any]]:
        """Send ``txs`` to every replica; return their receipts once f+1 replicas replied."""
        limit = self.sim.replicas[0].core.max_tx_bytes
        for tx in txs:
            if len(encode(tx)) > limit:
                raise TradingDayError(
                    f"a {tx.kind} transaction of {len(encode(tx))} bytes exceeds {limit}"
                )
        digests = [self.sim.submit_transaction(tx) for tx in txs]
        self.transactions += len(txs)
        deadline = self.sim.now_ms + 60_000
        while not all(d in self.sim.completed_ms for d in digests):
            if self.sim.now_ms >= deadline:
                raise TradingDayError(f"{len(txs)} transactions did not commit within 60 s")
            self.sim.run_until(self.sim.now_ms + 20)
        receipts = [self._receipt(tx) for tx in txs]
        if must_commit:
            bad = [r for r in receipts if r["status"] != "committed"]
            if bad:
                raise TradingDayError(f"refused: {bad[0]['reason']}")
        return receipts

    def _receipt(self, tx: Transaction) -> dict[str, Any]:
        for _ in range(200):
            for r in self.sim.get_honest():
                found = r.core.get_receipt_json(tx.tx_hash)
                if found is not None:
                    return found
            self.sim.run_until(self.sim.now_ms + 20)
        raise TradingDayError("a replied transaction has no receipt")

    def view(self, namespace: str) -> StateView:
        """A read-only view of the most advanced honest replica's state."""
        best = max(self.sim.get_honest(), key=lambda r: r.core.ledger.height)
        return StateView(Overlay(best.core.ledger.state), namespace)

    def get_blocks(self) -> int:
        return self.sim.replicas[0].core.ledger.height

    def get_consensus_messages(self) -> int:
        return self.sim.stats.messages

    def is_on_one_head(self) -> bool:
        return len({r.core.ledger.head.header_hash for r in self.sim.replicas}) == 1

    def close(self) -> None:
        """Nothing to release: the replicas live in this process."""


@dataclass
class TradingDay:
    """The set-up and the steps of one day (see the module docstring)."""

    scenario: Scenario
    seed: int
    workdir: Path
    households: int | None = None
    renege: bool = True
    k: int = 32
    steps: dict[str, float] = field(default_factory=dict)
    replicas: Replicas = "in-process"
    progress: Callable[[str], None] = lambda _msg: None

    def __post_init__(self) -> None:
        self.rng = DeterministicRng(f"trading-day/{self.seed}")
        self.day_start_ms = _midnight_ms(self.scenario)
        self.epoch_ms = self.day_start_ms - 2 * HOUR_MS
        prices = self.scenario.prices
        self.import_price = max(1, prices.grid_import // 1000)  # mc per Wh
        self.export_price = max(1, prices.grid_export // 1000)
        self.local_price = min(max(prices.local // 1000, self.export_price), self.import_price)
        self.reneged: Trade | None = None
        self.round = ROUND  # the pseudonym round orders are placed in
        self.pseudonym_owner: dict[bytes, Home] = {}  # every round's pseudonyms
        self.swept = 0  # a traced household's later-round pseudonyms revoked by a sweep
        self.trading_hours: range = range(0)
        self.refused_orders = 0
        self.seen_trades: set[bytes] = set()
        self.pending_attestations: list[list[Trade]] = []

    # -- set-up -------------------------------------------------------------------------

    def setup(self) -> None:
        start = time.perf_counter()
        now_s = self.epoch_ms // 1000
        replica_keys = make_keys(4, self.seed)
        self.material: ConsortiumIdentity = create_identity_material(
            self.workdir, [k.public_key for k in replica_keys], now_s, IdentitySetup(), self.rng
        )
        self.attester = Ed25519PrivateKey.generate(self.rng.fork("attester"))
        dso_redeem = Ed25519PrivateKey.generate(self.rng.fork("dso-redeem"))
        dso_enc = EncryptionPrivateKey.generate(self.rng.fork("dso-enc"))
        self.market_config = MarketConfig(
            tick=1,
            lot=1,
            min_price=self.export_price,
            max_price=self.import_price,
            slot_ms=HOUR_MS,
            gate_lead_ms=5 * 60_000,
            settle_ms=HOUR_MS,
            attesters=(self.attester.public_key.raw,),
            dso_redeem_key=dso_redeem.public_key.raw,
            dso_enc_key=dso_enc.public_key.raw,
        )
        self.dso_redeem, self.dso_enc = dso_redeem, dso_enc  # the DSO's payee keys (pieces)
        self.market_config = self.compute_market_config(self.market_config)
        operator = Ed25519PrivateKey.generate(self.rng.fork("mint-operator"))
        valid_from, valid_until = self.epoch_ms, self.epoch_ms + 30 * DAY_MS
        coin_keys: list[tuple[DenominationKey, RsaPrivateKey]] = []
        for bit in range(DENOMINATIONS):
            rsa = RsaPrivateKey.generate(2048)
            coin_keys.append(
                (create_denomination_key(rsa, 1 << bit, valid_from, valid_until, valid_until), rsa)
            )
        self.coin_keys = coin_keys
        payments = PaymentsConfig(
            operator.public_key.raw, tuple(d for d, _ in coin_keys), ("market",)
        )
        state = self.material.genesis_state()
        state.update(compute_evidence_sources_state(EVIDENCE_SOURCES))
        state.update(compute_payments_genesis(payments))
        state.update(compute_market_genesis(self.market_config))
        self.chain: ChainBackend
        if self.replicas == "processes":
            from gridledger.sim.process_chain import ProcessChain

            chain = ProcessChain(
                self.workdir / "replicas", replica_keys, state, self.epoch_ms,
                max_tx_bytes=MAX_TX_BYTES, progress=self.progress,
            )  # fmt: skip
            self.chain = chain
            chain.start()
        else:
            self.sim = SimNetwork(
                4,
                seed=self.seed,
                tick_ms=500,
                # one fixed delay keeps each link first-in first-out, as TCP does: the
                # transactions of one submission reach every replica in the order sent,
                # so the day's trades do not depend on the runtime (ProcessChain)
                delay_ms=(5, 5),
                epoch_ms=self.epoch_ms,
                genesis_state=state,
                # a round's pseudonym batch is one transaction (one batch per round on chain):
                # 100 households make ~130 KB, so transactions may be larger than the default
                limits=NodeLimits(gossip_ms=30_000, max_tx_bytes=MAX_TX_BYTES),
                config_overrides={"retransmit_interval_ms": 10_000, "batch_timeout_ms": 20},
            )
            self.chain = SimChain(self.sim)
        self.mint: Mint = create_mint(SIM_CHAIN, operator, self.material.roots, coin_keys)
        self.steps["set-up"] = time.perf_counter() - start

    def close(self) -> None:
        """Release the chain (stop the replica processes, if any)."""
        chain: ChainBackend | None = getattr(self, "chain", None)
        if chain is not None:
            chain.close()

    def compute_market_config(self, config: MarketConfig) -> MarketConfig:
        """The genesis market parameters; a day on another market adjusts them here."""
        return config

    def compute_result(self, result: DayResult) -> DayResult:
        """The day's figures; a day on another market adds its own here (and rounds
        shorter than the day theirs: how many, and pseudonyms swept after the trace)."""
        if self.round == ROUND:
            return result
        kpis = {
            **result.kpis,
            "pseudonym_rounds": float(self.round),
            "swept_pseudonyms": float(self.swept),
        }
        return dataclasses.replace(result, kpis=kpis)

    def admit(self) -> list[Home]:
        start = time.perf_counter()
        built = build_households(self.scenario)
        if self.households is not None:
            built = built[: self.households]
        per_hour = 60 // self.scenario.slot_minutes
        homes = []
        for h in built:
            net, consumption, production = _hourly_net(h, per_hour)
            name = f"house-{h.index + 1}"
            member = issue_member(
                self.material.ca, name, Role.PROSUMER, self.epoch_ms // 1000,
                self.rng.fork(name), meter_id=f"meter-{h.index + 1:03d}",
            )  # fmt: skip
            homes.append(Home(h.index, name, h.kind, member, net, consumption, production))
        self.homes = homes
        self.steps["admission"] = time.perf_counter() - start
        return homes

    def register(self, round_: int = ROUND) -> int:
        """Every household gets a pseudonym for ``round_``; the MM publishes the batch.

        The RM reads the chain's blacklist and revocations: a traced household gets no
        pseudonym in a later round (``credential`` None: it cannot order any more).
        """
        start = time.perf_counter()
        now_s = self.chain.now_ms // 1000
        material = self.material
        rm = material.create_rm(k=self.k)
        identity = self.chain.view("identity")
        rm.blacklist, rm.revoked = get_blacklist(identity.get), get_revocations(identity.get)
        process_open_round(rm, round_)
        tag = "" if round_ == ROUND else f"/round-{round_}"  # round 1 draws as it always did
        for home in self.homes:
            try:
                home.credential = register_household(
                    rm, home.member.key, home.member.certificate, material.roots,
                    material.tc_key, round_, now_s, self.rng.fork(f"user-{home.name}{tag}"),
                    self.rng.fork(f"rm-{home.name}{tag}"),
                    rm_blind_certificate=material.rm_pseudonym.certificate,
                )  # fmt: skip
            except GridledgerError:  # blacklisted or revoked on chain: refused
                home.credential = None
        mm = material.create_mm(now_s)
        process_open_batch(mm, round_)
        for home in self.homes:
            if home.credential is not None:
                self.pseudonym_owner[home.pseudonym] = home
                on_pseudonym_request(
                    mm, compute_pseudonym_request(home.credential, material.mm.certificate)
                )
        batch = process_close_batch(
            mm, now_s - 60, (self.day_start_ms + 2 * DAY_MS) // 1000,
            self.rng.fork(f"mm-shuffle{tag}"),
        )  # fmt: skip
        tx = Transaction.create(SIM_CHAIN, KIND_BATCH, batch, self._one_time_key(), 0)
        self.chain.submit([tx])
        self.round = round_
        self.steps["registration"] = self.steps.get("registration", 0.0) + (
            time.perf_counter() - start
        )
        return len(batch.certificates)

    def start_round_if_due(self, hour: int) -> bool:
        """A new pseudonym round every ``pseudonym_round_hours`` (scenario key; 24: one
        round, the day's): registration runs just before the hour's orders."""
        every = self.scenario.pseudonym_round_hours
        if every >= 24 or hour == self.trading_hours.start or hour % every:
            return False
        self.chain.at(self.day_start_ms + hour * HOUR_MS - ORDER_LEAD_MS - 60_000)
        self.register(self.round + 1)
        return True

    def load_wallets(self) -> None:
        """Each household withdraws, identified, coins worth its day's deficit at the tariff."""
        start = time.perf_counter()
        txs = []
        for home in self.homes:
            need = sum(-n for n in home.net_wh if n < 0) * self.import_price
            amount = max(need, 1)
            coins, tx = self._withdraw(home, amount)
            home.wallet.coins.extend(coins)
            home.withdrawn_mc += amount
            txs.append(tx)
        self.chain.submit(txs)
        self.steps["wallet loading"] = time.perf_counter() - start

    def _withdraw(self, home: Home, amount: int) -> tuple[tuple[HeldCoin, ...], Transaction]:
        keys = choose_denomination_keys((d for d, _ in self.coin_keys), amount, self.chain.now_ms)
        pending = prepare_coins(keys, self.rng)
        request = build_withdraw_request(
            SIM_CHAIN, home.member.certificate, home.member.key, self.period,
            pending, self.chain.now_ms, self.rng,
        )  # fmt: skip
        response, tx = process_withdrawal(self.mint, request, self.chain.now_ms)
        return finalize_coins(pending, response.blind_signatures), tx

    @property
    def period(self) -> int:
        return self.day_start_ms // DAY_MS

    # -- trading ------------------------------------------------------------------------

    hour_steps = "orders, matching, payments"  # what trade_hour does, for progress lines

    def trade_hour(self, hour: int) -> list[TradeRecord]:
        """Orders for ``hour``, matching on chain, then payment and redemption of each trade."""
        slot = (self.day_start_ms + hour * HOUR_MS) // HOUR_MS
        self.chain.at(self.day_start_ms + hour * HOUR_MS - ORDER_LEAD_MS)
        orders: list[Transaction] = []
        secrets: dict[bytes, OrderSecrets] = {}  # by order id: the sellers' one-time keys
        for home in self.homes:
            want = home.net_wh[hour]
            if want == 0:
                continue
            spread = self.rng.randbelow(max(1, (self.import_price - self.export_price) // 2) + 1)
            price = self.local_price + spread if want < 0 else self.local_price - spread
            price = min(max(price, self.export_price), self.import_price)
            if home.credential is None:  # traced: the RM refused it a pseudonym this round
                self.refused_orders += 1
                continue
            order, secret = create_order(home.pseudonym, self.round, slot, want, price, self.rng)
            signed = sign_order(order, home.credential.pseudonym)
            secrets[compute_order_id(signed)] = secret
            orders.append(build_order_tx(SIM_CHAIN, signed, self._one_time_key()))
        if orders:
            # a traced household's pseudonym is revoked: its orders are refused, with reason
            receipts = self.chain.submit(orders, must_commit=False)
            self.refused_orders += sum(1 for r in receipts if r["status"] != "committed")
        trades = self._new_trades(slot)
        by_pseudonym = self.pseudonym_owner
        records = []
        to_pay: list[tuple[Trade, Home, Home, OrderSecrets]] = []
        for trade in trades:
            buyer, seller = by_pseudonym[trade.buyer], by_pseudonym[trade.seller]
            # the buyer of the day's first trade reneges on it (when the run asks for one)
            reneges = self.renege and self.reneged is None
            if reneges:
                self.reneged = trade
            else:
                to_pay.append((trade, buyer, seller, secrets[trade.sell_order]))
            buyer.bought_wh += trade.quantity
            seller.sold_wh += trade.quantity
            records.append(
                TradeRecord(hour, trade.price, trade.quantity, buyer.name, seller.name, not reneges)
            )
        if to_pay:
            self._settle_money(to_pay)
        self.pending_attestations.append(trades)
        return records

    def _new_trades(self, slot: int) -> list[Trade]:
        view = self.chain.view("market")
        out = []
        for _, raw in view.scan(market_keys.TRADE):
            trade = decode_as(Trade, raw)
            if trade.slot == slot and trade.trade_id not in self.seen_trades:
                self.seen_trades.add(trade.trade_id)
                out.append(trade)
        return sorted(out, key=lambda t: (t.height, t.trade_id))

    def _settle_money(self, to_pay: list[tuple[Trade, Home, Home, OrderSecrets]]) -> None:
        """Buyers pay the trades' invoices; each seller opens and redeems every payment to its
        order's one-time key, then withdraws fresh coins for the whole credit anonymously."""
        market = self.chain.view("market")
        pays, paid = [], []
        for trade, buyer, seller, secret in to_pay:
            invoice = get_invoice(market, "market", trade.trade_id)
            if invoice is None:
                raise TradingDayError("a trade has no invoice on chain")
            coins = self._coins_for(buyer, invoice.amount)
            message, _ = create_trade_payment(invoice, coins, self.rng)
            pays.append(build_pay_tx(SIM_CHAIN, message, self._one_time_key(), 0))
            process_remove_coins(buyer.wallet, coins)
            buyer.paid_mc += invoice.amount
            paid.append((invoice, message, seller, secret))
        self.chain.submit(pays)
        verifiers = get_published_verifiers(self.chain.view("payments"), self.mint_config)
        redeems = []
        credits: dict[bytes, tuple[Home, OrderSecrets, int, int]] = {}
        for invoice, message, seller, secret in paid:
            assert secret.redeem_key is not None
            key = secret.redeem_key.public_key.raw
            _, _, count, total = credits.get(key, (seller, secret, 0, 0))
            redeems.append(
                build_trade_redeem(
                    SIM_CHAIN, invoice, message, secret, verifiers, self.chain.now_ms, count
                )
            )
            credits[key] = (seller, secret, count + 1, total + invoice.amount)
        self.chain.submit(redeems)
        for seller, secret, _, total in credits.values():
            assert secret.redeem_key is not None
            seller.wallet.coins.extend(self._reissue(secret.redeem_key, total))
            seller.earned_mc += total

    @property
    def mint_config(self) -> PaymentsConfig:
        return PaymentsConfig(
            self.mint.operator.public_key.raw, tuple(d for d, _ in self.coin_keys), ("market",)
        )

    def _coins_for(self, home: Home, amount: int) -> tuple[HeldCoin, ...]:
        """Exact coins for ``amount``, refreshing larger coins into change first if needed."""
        coins = choose_coins(home.wallet, amount)
        if coins is not None:
            return coins
        spend = self._choose_refresh(home.wallet, amount)
        owner = self._one_time_key()
        self.chain.submit([build_refresh_tx(SIM_CHAIN, spend, owner)])
        process_remove_coins(home.wallet, spend)
        total = sum(c.value for c in spend)
        home.wallet.coins.extend(self._reissue(owner, amount, total - amount))
        coins = choose_coins(home.wallet, amount)
        if coins is None:
            raise TradingDayError("no exact change after a refresh")
        return coins

    def _choose_refresh(self, wallet: Wallet, amount: int) -> tuple[HeldCoin, ...]:
        """The coins to refresh into change when no exact coins pay ``amount``."""
        return choose_refresh(wallet, amount)

    def _reissue(self, owner: Ed25519PrivateKey, *amounts: int) -> tuple[HeldCoin, ...]:
        (coins,) = self._reissue_many([(owner, amounts)])
        return coins

    def _reissue_many(
        self, owners: Sequence[tuple[Ed25519PrivateKey, Sequence[int]]]
    ) -> list[tuple[HeldCoin, ...]]:
        """Fresh coins for open credits (one one-time key each, coins for each amount),
        reissued anonymously in one submission."""
        view = self.chain.view("payments")
        txs, pending, responses = [], [], []
        for owner, amounts in owners:
            keys: list[DenominationKey] = []
            for amount in amounts:
                if amount > 0:
                    keys.extend(
                        choose_denomination_keys(
                            (d for d, _ in self.coin_keys), amount, self.chain.now_ms
                        )
                    )
            coins = prepare_coins(keys, self.rng)
            request = build_reissue_request(SIM_CHAIN, owner, coins)
            credit = get_credit(view, owner.public_key.raw)
            tx, response = process_reissue(self.mint, request, credit, self.chain.now_ms)
            txs.append(tx)
            pending.append(coins)
            responses.append(response)
        self.chain.submit(txs)
        return [
            finalize_coins(p, r.blind_signatures) for p, r in zip(pending, responses, strict=True)
        ]

    def attest(self, hour: int) -> None:
        """The substation attests the deliveries of ``hour`` once the slot is over."""
        if not self.pending_attestations:
            return
        trades = self.pending_attestations.pop(0)
        if not trades:
            return
        self.chain.at(self.day_start_ms + (hour + 1) * HOUR_MS + ATTEST_LAG_MS)
        txs = [
            build_attest_tx(SIM_CHAIN, create_attestation(self.attester, t), self._one_time_key())
            for t in trades
        ]
        self.chain.submit(txs)

    def _one_time_key(self) -> Ed25519PrivateKey:
        """A fresh transaction key: submissions link nothing to each other."""
        return Ed25519PrivateKey.generate(self.rng)

    # -- end of day ---------------------------------------------------------------------

    def find_default(self) -> Accusation | None:
        """The money-leg default of the reneged trade, recorded by every replica."""
        if self.reneged is None:
            return None
        view = self.chain.view("market")
        for _, raw in view.scan(market_keys.EVIDENCE):
            record = decode_as(DefaultRecord, raw)
            if record.trade_id == self.reneged.trade_id:
                return record
        return None

    def settle_grid(self) -> None:
        """What each household did not trade locally, it bought from or sold to the grid."""
        for home in self.homes:
            wanted = sum(-n for n in home.net_wh if n < 0)
            offered = sum(n for n in home.net_wh if n > 0)  # hours not traded go to the grid
            home.grid_import_wh = max(0, wanted - home.bought_wh)
            home.grid_export_wh = max(0, offered - home.sold_wh)

    def deposit_and_bill(self) -> None:
        """Identified deposits of every wallet, then the bills: withdrawn − deposited + grid."""
        start = time.perf_counter()
        deposits = []
        for home in self.homes:
            coins = tuple(home.wallet.coins)
            for first in range(0, len(coins), MAX_DEPOSIT_COINS):
                request = build_deposit_request(
                    SIM_CHAIN, home.member.certificate, home.member.key, self.period,
                    coins[first : first + MAX_DEPOSIT_COINS], self.chain.now_ms, self.rng,
                )  # fmt: skip
                deposits.append(process_deposit(self.mint, request, self.chain.now_ms))
            home.deposited_mc += home.wallet.balance
            home.wallet.coins.clear()
        if deposits:
            self.chain.submit(deposits)
        bills = []
        for home in self.homes:
            charge = compute_grid_charge(
                home.grid_import_wh, home.grid_export_wh, self.import_price, self.export_price
            )
            bills.append(build_bill_tx(self.mint, home.name, self.period, charge))
        self.chain.submit(bills)
        view = self.chain.view("payments")
        for home in self.homes:
            home.bill = get_bill(view, self.period, home.name)
        self.steps["deposits and bills"] = time.perf_counter() - start


def _midnight_ms(scenario: Scenario) -> int:
    import datetime as dt

    start = dt.datetime.combine(scenario.start, dt.time(0), tzinfo=dt.UTC)
    return int(start.timestamp() * 1000)


def _hourly_net(h: Household, per_hour: int) -> tuple[tuple[int, ...], int, int]:
    """(net Wh per hour after own use and battery, total consumption Wh, total production Wh)."""
    soc = 0
    net: list[int] = []
    consumption = production = 0
    slots = len(h.consumption)
    for hour in range(slots // per_hour):
        surplus = deficit = 0
        for s in range(hour * per_hour, (hour + 1) * per_hour):
            energy = compute_slot_balance(h, s, soc)
            soc = energy.soc_after
            surplus += energy.surplus
            deficit += energy.deficit
            consumption += energy.consumption
            production += energy.production
        net.append((surplus - deficit) // 1000)  # mWh -> Wh
    return tuple(net), consumption // 1000, production // 1000


def trace_default(day: TradingDay, record: Accusation) -> tuple[str | None, int]:
    """From the market's default to a trace record on chain, as the parties would do it.

    1. anyone points the identity contract at the default (``identity.contract-evidence``);
       every replica checks the record is the market's and names a certified pseudonym;
    2. t trustees read the evidence from the chain, re-check it, and each releases a
       Chaum-Pedersen-proven decryption share of the accused pseudonym's tag;
    3. the combiner decrypts the tag and posts the trace record; every replica checks
       the shares and the household's consent signature, then blacklists the household
       and revokes its certificate and pseudonym.

    Returns the household the chain's trace record names, and how many trustees answered.
    """
    from gridledger.identity.ca import compute_certificate_der
    from gridledger.identity.client import create_contract_evidence_tx
    from gridledger.identity.contracts import KIND_TRACE, Reader
    from gridledger.identity.messages import TraceRecord, TraceResult
    from gridledger.identity.trace_center import compute_trace, on_trace_request

    tx, eid = create_contract_evidence_tx(
        SIM_CHAIN, "market", record.evidence_id, day._one_time_key(), 0
    )
    day.chain.submit([tx])
    view = day.chain.view("identity")
    read = Reader(view.get).trace_request(eid, view.get_in)
    if read.contract is None:
        raise TradingDayError("the contract evidence is not on chain")
    material = day.material
    trustees = material.trustees[: material.tc_key.t]
    rng = day.rng.fork("trustees")
    shares = [on_trace_request(t, read, rng, evidence_sources=EVIDENCE_SOURCES) for t in trustees]
    assert read.accused is not None
    now_s = day.chain.now_ms // 1000
    outcome = compute_trace(
        material.tc_key, read.accused.certificate, shares, eid, material.roots, now_s
    )
    by_identity = {compute_certificate_hash(h.member.certificate): h for h in day.homes}
    home = by_identity.get(outcome.identity)
    if home is None:  # the CA's register names everyone it certified
        raise TradingDayError("the traced identity is no household's certificate")
    der = compute_certificate_der(home.member.certificate)
    trace = Transaction.create(
        SIM_CHAIN, KIND_TRACE, TraceRecord(eid, outcome.entries, der), day._one_time_key(), 0
    )
    (receipt,) = day.chain.submit([trace])
    result = decode_as(TraceResult, bytes.fromhex(receipt["data"]))
    named = by_identity.get(result.identity)
    for later in range(read.accused.certificate.round + 1, day.round + 1):
        sweep_round(day, eid, later)  # rounds it registered for before it was traced
    return (named.name if named is not None else None), len(trustees)


def sweep_round(day: TradingDay, evidence_id: bytes, round_: int) -> tuple[bytes, ...]:
    """t trustees sweep ``round_`` for the traced identity's pseudonym (plaintext-equality
    tests on every handle, :mod:`gridledger.identity.sweep`); the contract revokes the
    match. Returns the revoked pseudonym keys."""
    from gridledger.identity.contracts import KIND_SWEEP, Reader
    from gridledger.identity.messages import PseudonymSweep, SweepResult
    from gridledger.identity.sweep import on_sweep_blind, on_sweep_decrypt

    reader = Reader(day.chain.view("identity").get)
    trace, certificates = reader.trace(evidence_id), reader.round_certificates(round_)
    now_s = day.chain.now_ms // 1000
    material = day.material
    trustees = material.trustees[: material.tc_key.t]
    rng = day.rng.fork(f"sweep-{round_}")
    blindings = tuple(
        on_sweep_blind(t, trace, round_, certificates, now_s, rng.fork(f"blind-{t.index}"))
        for t in trustees
    )
    shares = []
    for t in trustees:
        fork = rng.fork(f"share-{t.index}")
        roots = material.roots
        shares.append(
            on_sweep_decrypt(t, trace, round_, certificates, blindings, roots, now_s, fork)
        )
    sweep = PseudonymSweep(evidence_id, round_, blindings, tuple(shares))
    tx = Transaction.create(SIM_CHAIN, KIND_SWEEP, sweep, day._one_time_key(), 0)
    (receipt,) = day.chain.submit([tx])
    revoked = decode_as(SweepResult, bytes.fromhex(receipt["data"])).revoked
    day.swept += len(revoked)
    return revoked


def run_trading_day(
    scenario: Scenario,
    *,
    seed: int | None = None,
    households: int | None = None,
    renege: bool = True,
    k: int = 32,
    workdir: Path | None = None,
    hours: range | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    replicas: Replicas = "in-process",
    market: str = "double-auction",
) -> DayResult:
    """Run the whole day (module docstring); every step's figures in a :class:`DayResult`.

    ``replicas="processes"`` runs the 4 replicas as separate processes over loopback TCP
    (:mod:`gridledger.sim.process_chain`); they are stopped whatever happens.
    """
    if replicas not in REPLICA_MODES:
        raise TradingDayError(f"replicas must be one of {', '.join(REPLICA_MODES)}")
    day_class = _get_day_class(market)
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="gridledger-day-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        day = day_class(
            scenario,
            scenario.seed if seed is None else seed,
            workdir or Path(tmp),
            households=households,
            renege=renege,
            k=k,
            replicas=replicas,
            progress=progress,
        )
        stack.callback(day.close)
        progress("set-up: identity material, mint keys, market, 4 replicas")
        day.setup()
        homes = day.admit()
        progress(f"admission and registration of {len(homes)} households (K = {k})")
        day.register()
        progress("wallet loading at the mint")
        day.load_wallets()
        trades: list[TradeRecord] = []
        span = hours if hours is not None else range(len(homes[0].net_wh) if homes else 0)
        day.trading_hours = span
        start = time.perf_counter()
        traced, used, reneger, trace_s = None, 0, None, 0.0

        def trace_if_due() -> None:
            """Once the chain shows the default, point at it and trace (within its window)."""
            nonlocal traced, used, reneger, trace_s
            record = day.find_default() if traced is None else None
            if record is not None:
                progress("tracing the reneging pseudonym (t of n trustees)")
                began = time.perf_counter()
                traced, used = trace_default(day, record)
                trace_s = time.perf_counter() - began
                reneger = day.pseudonym_owner[record.accused].name

        for hour in span:
            if day.start_round_if_due(hour):
                progress(f"hour {hour:02d}: pseudonym round {day.round}")
            progress(f"hour {hour:02d}: {day.hour_steps}")
            trades.extend(day.trade_hour(hour))
            if hour > span.start:
                day.attest(hour - 1)  # the previous slot is over: its deliveries are measured
            trace_if_due()
        if len(span):
            day.attest(span[-1])
        day.steps["trading"] = time.perf_counter() - start
        end_hour = span[-1] + 1 if len(span) else 0
        last_deadline = day.day_start_ms + end_hour * HOUR_MS + 2 * day.market_config.settle_ms
        day.chain.at(last_deadline + 60_000)
        day.settle_grid()
        progress("deposits and bills")
        day.deposit_and_bill()  # its blocks come after every deadline: defaults are judged
        trace_if_due()
        if day.reneged is not None and traced is None:
            raise TradingDayError("the reneged trade left no default on chain")
        if trace_s:
            day.steps["tracing"] = trace_s
        result = day.compute_result(
            _collect(day, trades, reneger, traced, used, time.perf_counter() - t0)
        )
    return result


def _get_day_class(market: str) -> type[TradingDay]:
    """The day of ``market``: the double auction here, seed 003's pieces in their module."""
    if market == "fixed-piece":
        from gridledger.sim.trading_day_fixed import PieceDay

        return PieceDay
    if market != "double-auction":
        raise TradingDayError(f"market must be one of {', '.join(MARKETS)}, not {market!r}")
    return TradingDay


def _collect(
    day: TradingDay,
    trades: list[TradeRecord],
    reneger: str | None,
    traced: str | None,
    used: int,
    wall_s: float,
) -> DayResult:
    homes = day.homes
    rows: list[dict[str, Any]] = []
    for h in homes:
        bill = h.bill
        dso_only = (
            max(0, sum(-n for n in h.net_wh if n < 0)) * day.import_price
            - max(0, sum(n for n in h.net_wh if n > 0)) * day.export_price
        )
        total = bill.total if bill is not None else 0
        rows.append(
            {
                "household": h.name,
                "type": h.kind,
                "consumption_wh": h.consumption_wh,
                "production_wh": h.production_wh,
                "wanted_wh": sum(-n for n in h.net_wh if n < 0),
                "offered_wh": sum(n for n in h.net_wh if n > 0),
                "bought_local_wh": h.bought_wh,
                "sold_local_wh": h.sold_wh,
                "grid_import_wh": h.grid_import_wh,
                "grid_export_wh": h.grid_export_wh,
                "withdrawn_mc": bill.withdrawn if bill else h.withdrawn_mc,
                "deposited_mc": bill.deposited if bill else h.deposited_mc,
                "grid_charge_mc": bill.grid_charge if bill else 0,
                "bill_mc": total,
                "dso_only_mc": dso_only,
                "savings_mc": dso_only - total,
            }
        )
    hourly = []
    hours = len(homes[0].net_wh) if homes else 0
    for hour in range(hours):
        in_hour = [t for t in trades if t.hour == hour]
        volume = sum(t.quantity for t in in_hour)
        hourly.append(
            {
                "hour": hour,
                "trades": len(in_hour),
                "volume_wh": volume,
                "avg_price_mc_per_wh": (
                    sum(t.price * t.quantity for t in in_hour) // volume if volume else 0
                ),
                "offered_wh": sum(max(0, h.net_wh[hour]) for h in homes),
                "wanted_wh": sum(max(0, -h.net_wh[hour]) for h in homes),
            }
        )
    consumption = sum(h.consumption_wh for h in homes)
    production = sum(h.production_wh for h in homes)
    imported = sum(h.grid_import_wh for h in homes)
    exported = sum(h.grid_export_wh for h in homes)
    kpis = {
        "self_sufficiency": 1 - imported / consumption if consumption else 0.0,
        "self_consumption": 1 - exported / production if production else 0.0,
        "local_volume_wh": float(sum(t.quantity for t in trades)),
        "savings_mc": float(sum(r["savings_mc"] for r in rows)),
    }
    withdrawn = sum(int(r["withdrawn_mc"]) for r in rows)
    deposited = sum(int(r["deposited_mc"]) for r in rows)
    unpaid = sum(t.price * t.quantity for t in trades if not t.paid)
    conservation = {
        "withdrawn_mc": withdrawn,
        "deposited_mc": deposited,
        "paid_locally_mc": sum(h.paid_mc for h in homes),
        "earned_locally_mc": sum(h.earned_mc for h in homes),
        "unpaid_mc": unpaid,
    }
    return DayResult(
        households=tuple(rows),
        trades=tuple(trades),
        hourly=tuple(hourly),
        reneger=reneger,
        traced=traced,
        trustees_used=used,
        refused_orders=day.refused_orders,
        blocks=day.chain.get_blocks(),
        transactions=day.chain.transactions,
        consensus_messages=day.chain.get_consensus_messages(),
        heights_agree=day.chain.is_on_one_head(),
        conservation=conservation,
        kpis=kpis,
        wall_s=wall_s,
        steps=dict(day.steps),
    )


def check_ledger_and_bills(result: DayResult) -> list[str]:
    """What every day must show, whatever its market: one head, local payments equal
    local earnings, each bill = withdrawn − deposited + grid, the reneger and only it
    traced. The names of those that do not hold."""
    c = result.conservation
    failed = []
    if not result.heights_agree:
        failed.append("all replicas on one head")
    if c["paid_locally_mc"] != c["earned_locally_mc"]:
        failed.append("paid locally = earned locally")
    for h in result.households:
        if h["bill_mc"] != h["withdrawn_mc"] - h["deposited_mc"] + h["grid_charge_mc"]:
            failed.append(f"{h['household']}'s bill = withdrawn − deposited + grid")
    if result.reneger is not None and result.traced != result.reneger:
        failed.append("the reneging trader, and only it, traced")
    return failed


def result_to_json(result: DayResult) -> dict[str, Any]:
    return dataclasses.asdict(result)


def encode_result(result: DayResult) -> bytes:
    """Canonical bytes of the figures (for same-seed-same-result checks)."""
    data = result_to_json(result)
    data.pop("wall_s")
    data.pop("steps")
    return encode(_to_plain(data))


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, float):
        return round(value * 1_000_000)
    return value
