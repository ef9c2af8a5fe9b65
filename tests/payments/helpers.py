"""Test harness: a CA with households, a mint, a single-replica ledger, an invoice board.

``ShopContract`` (namespace ``shop``) stands in for the market: it publishes any
:class:`Invoice` it is sent at ``invoice/<id>``, which is all the payments
contract needs from a trusted invoice source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.encryption import EncryptionPrivateKey
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey, RsaPrivateKey
from gridledger.identity.ca import (
    CertificateAuthority,
    MemberAttributes,
    create_authority,
    process_issue,
)
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.chain import Ledger
from gridledger.ledger.contracts import BlockContext, ContractRegistry, StateView
from gridledger.ledger.contracts_builtin import KvContract
from gridledger.ledger.execution import Receipt
from gridledger.ledger.state import Overlay
from gridledger.ledger.storage import BlockStore, MemoryBlockStore
from gridledger.ledger.storage_sqlite import SqliteBlockStore
from gridledger.ledger.tx import Transaction
from gridledger.payments.coins import DenominationKey
from gridledger.payments.config import PaymentsConfig, compute_genesis_state
from gridledger.payments.contract import (
    PaymentsContract,
    get_credit,
    get_published_verifiers,
)
from gridledger.payments.invoice import Invoice, compute_invoice_key
from gridledger.payments.messages import PaymentContents, PaymentMessage
from gridledger.payments.mint import (
    Mint,
    create_denomination_key,
    create_mint,
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
    build_reissue_request,
    build_withdraw_request,
    choose_coins,
    choose_denomination_keys,
    create_payment,
    finalize_coins,
    open_payment,
    prepare_coins,
    process_remove_coins,
)
from tests.ledger.helpers import CHAIN, VALIDATORS, key

NOW = 1_750_000_000  # seconds (certificates)
NOW_MS = NOW * 1000
DAY_MS = 86_400_000
DENOMINATION_VALUES = (1, 2, 4, 8, 16, 32, 64, 128)
SHOP = "shop"
SHOP_KIND = "shop.invoice"


@dataclass(frozen=True)
class ShopContract:
    """Publishes invoices (a stand-in for the market contract)."""

    namespace: str = SHOP
    kinds: frozenset[str] = frozenset({SHOP_KIND})

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        invoice = decode_as(Invoice, tx.payload)
        view.put(compute_invoice_key(invoice.invoice_id), encode(invoice))
        return b""


@dataclass
class Household:
    name: str
    key: RsaPrivateKey
    cert: x509.Certificate


@dataclass
class World:
    ca: CertificateAuthority
    households: list[Household]
    outsider: Household  # an aggregator: not a household
    operator: Ed25519PrivateKey
    coin_keys: list[tuple[DenominationKey, RsaPrivateKey]]
    expiring_key: tuple[DenominationKey, RsaPrivateKey]  # value 1, spendable one hour
    spare_key: RsaPrivateKey  # for rotation tests

    @property
    def roots(self) -> tuple[x509.Certificate, ...]:
        return (self.ca.certificate,)

    def config(self) -> PaymentsConfig:
        keys = (*(d for d, _ in self.coin_keys), self.expiring_key[0])
        return PaymentsConfig(self.operator.public_key.raw, keys, (SHOP,))


def make_world(coin_keys: list[RsaPrivateKey], household_keys: list[RsaPrivateKey]) -> World:
    rng = DeterministicRng("payments-world")
    ca = create_authority(
        "grid CA", Ed25519PrivateKey.generate(rng), NOW - 86400, 3650 * 86400, rng
    )
    households = []
    for i in range(4):
        k = household_keys[i % len(household_keys)]
        attrs = MemberAttributes("prosumer", f"house-{i}", f"meter-{i}", ("trade",))
        cert = process_issue(ca, f"house-{i}", k.public_key, attrs, NOW - 86400, 365 * 86400, rng)
        households.append(Household(f"house-{i}", k, cert))
    attrs = MemberAttributes("aggregator", "agg-1", None, ("validate",))
    k = household_keys[0]
    outsider = Household(
        "agg-1", k, process_issue(ca, "agg-1", k.public_key, attrs, NOW - 86400, 365 * 86400, rng)
    )
    keys = [
        (create_denomination_key(k, v, 0, NOW_MS + 30 * DAY_MS, NOW_MS + 60 * DAY_MS), k)
        for v, k in zip(DENOMINATION_VALUES, coin_keys, strict=False)
    ]
    n = len(DENOMINATION_VALUES)
    expiring = coin_keys[n]
    expiring_record = create_denomination_key(expiring, 1, 0, NOW_MS + 1_000, NOW_MS + 3_600_000)
    return World(
        ca,
        households,
        outsider,
        key("mint-operator"),
        keys,
        (expiring_record, expiring),
        coin_keys[n + 1],
    )


@dataclass
class Seller:
    """A payee's one-time keys for one invoice."""

    invoice: Invoice
    redeem_key: Ed25519PrivateKey
    enc_key: EncryptionPrivateKey


@dataclass
class Harness:
    world: World
    mint: Mint
    ledger: Ledger
    contract: PaymentsContract
    rng: DeterministicRng
    now_ms: int = NOW_MS
    nonce: int = 1
    shop_key: Ed25519PrivateKey = field(default_factory=lambda: key("shop"))

    # -- chain ---------------------------------------------------------------------
    def commit(self, *txs: Transaction) -> tuple[Receipt, ...]:
        self.now_ms += 1000
        _, outcome = self.ledger.commit(list(txs), self.now_ms, 0, 0)
        return outcome.receipts

    def commit_ok(self, *txs: Transaction) -> tuple[Receipt, ...]:
        receipts = self.commit(*txs)
        for r in receipts:
            assert r.ok, r.reason
        return receipts

    def view(self) -> StateView:
        return StateView(Overlay(self.ledger.state), "payments")

    def mint_tx(self, kind: str, payload: object) -> Transaction:
        """A transaction signed by the mint's operator key, outside the mint's helpers."""
        tx = Transaction.create(CHAIN, kind, payload, self.mint.operator, self.mint.next_nonce)
        self.mint.next_nonce += 1
        return tx

    def next_nonce(self) -> int:
        self.nonce += 1
        return self.nonce

    # -- flows ---------------------------------------------------------------------
    def load_wallet(self, who: Household, amount: int, period: int = 0) -> Wallet:
        wallet = Wallet()
        wallet.coins.extend(self.withdraw(who, amount, period))
        return wallet

    def withdraw(self, who: Household, amount: int, period: int = 0) -> tuple[HeldCoin, ...]:
        keys = choose_denomination_keys((d for d, _ in self.world.coin_keys), amount, self.now_ms)
        pending = prepare_coins(keys, self.rng)
        request = build_withdraw_request(
            CHAIN, who.cert, who.key, period, pending, self.now_ms, self.rng
        )
        response, tx = process_withdrawal(self.mint, request, self.now_ms)
        self.commit_ok(tx)
        return finalize_coins(pending, response.blind_signatures)

    def publish_invoice(self, amount: int, deadline_ms: int | None = None) -> Seller:
        redeem_key = Ed25519PrivateKey.generate(self.rng)
        enc_key = EncryptionPrivateKey.generate(self.rng)
        invoice = Invoice(
            self.rng.random_bytes(32),
            Money(amount),
            redeem_key.public_key.raw,
            enc_key.public_key.raw,
            deadline_ms if deadline_ms is not None else self.now_ms + DAY_MS,
        )
        self.commit_ok(self.shop_tx(invoice))
        return Seller(invoice, redeem_key, enc_key)

    def shop_tx(self, invoice: Invoice) -> Transaction:
        return Transaction.create(CHAIN, SHOP_KIND, invoice, self.shop_key, self.next_nonce())

    def pay(
        self, wallet: Wallet, seller: Seller, payer: Ed25519PrivateKey | None = None
    ) -> tuple[PaymentMessage, bytes]:
        coins = choose_coins(wallet, seller.invoice.amount)
        assert coins is not None
        msg, receipt = create_payment(SHOP, seller.invoice, coins, self.rng)
        payer = payer or Ed25519PrivateKey.generate(self.rng)
        self.commit_ok(build_pay_tx(CHAIN, msg, payer, 0))
        process_remove_coins(wallet, coins)
        return msg, receipt

    def open(self, seller: Seller, msg: PaymentMessage) -> PaymentContents:
        verifiers = get_published_verifiers(self.view(), self.contract.config)
        return open_payment(SHOP, seller.invoice, msg, seller.enc_key, verifiers, self.now_ms)

    def redeem_tx(self, seller: Seller, msg: PaymentMessage) -> Transaction:
        return build_redeem_tx(CHAIN, msg, self.open(seller, msg), seller.redeem_key)

    def reissue(self, owner: Ed25519PrivateKey, amount: int) -> tuple[HeldCoin, ...]:
        keys = choose_denomination_keys((d for d, _ in self.world.coin_keys), amount, self.now_ms)
        pending = prepare_coins(keys, self.rng)
        request = build_reissue_request(CHAIN, owner, pending)
        credit = get_credit(self.view(), owner.public_key.raw)
        tx, response = process_reissue(self.mint, request, credit, self.now_ms)
        self.commit_ok(tx)  # only then are the signatures released
        return finalize_coins(pending, response.blind_signatures)

    def reissue_split(self, owner: Ed25519PrivateKey, parts: Sequence[int]) -> tuple[HeldCoin, ...]:
        """Reissue a credit as the binary splits of each part (change for a refresh)."""
        all_keys = [d for d, _ in self.world.coin_keys]
        keys = [
            k
            for part in parts
            if part
            for k in choose_denomination_keys(all_keys, part, self.now_ms)
        ]
        pending = prepare_coins(keys, self.rng)
        request = build_reissue_request(CHAIN, owner, pending)
        credit = get_credit(self.view(), owner.public_key.raw)
        tx, response = process_reissue(self.mint, request, credit, self.now_ms)
        self.commit_ok(tx)
        return finalize_coins(pending, response.blind_signatures)

    def deposit(self, who: Household, coins: Sequence[HeldCoin], period: int = 0) -> Receipt:
        request = build_deposit_request(
            CHAIN, who.cert, who.key, period, coins, self.now_ms, self.rng
        )
        (receipt,) = self.commit(process_deposit(self.mint, request, self.now_ms))
        return receipt


def make_genesis(world: World) -> GenesisConfig:
    return GenesisConfig.create(
        CHAIN, VALIDATORS, NOW_MS - DAY_MS, compute_genesis_state(world.config())
    )


def make_registry(world: World) -> tuple[ContractRegistry, PaymentsContract]:
    contract = PaymentsContract(world.config())
    return ContractRegistry((KvContract(), ShopContract(), contract)), contract


def make_harness(world: World, store: BlockStore | None = None, seed: str = "h") -> Harness:
    registry, contract = make_registry(world)
    ledger = Ledger(store or MemoryBlockStore(), registry, make_genesis(world))
    mint = create_mint(CHAIN, world.operator, world.roots, [*world.coin_keys, world.expiring_key])
    return Harness(world, mint, ledger, contract, DeterministicRng(seed))


def open_sqlite_harness(world: World, path: Path, seed: str = "h") -> Harness:
    return make_harness(world, SqliteBlockStore(path), seed)
