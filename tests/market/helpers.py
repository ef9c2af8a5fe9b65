"""A market world: identity genesis with certified pseudonyms, a mint, a one-replica ledger.

Pseudonym certificates are written into the genesis state of the identity
namespace exactly as the identity contract publishes them (``pc/<key>``), with
a real tracing tag under a dealt t-of-n TC key, so that the market's certificate
check and a trustee's decryption run unchanged; the RM's blind signature and the
MM's signature are not re-checked by the market (the identity contract checked
them at publication), so the fixture does not run registrations.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.encryption import EncryptionPrivateKey
from gridledger.crypto.groups import EDWARDS25519
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey, RsaPrivateKey
from gridledger.crypto.threshold import KeyShare, ThresholdPublicKey
from gridledger.identity.admission import issue_role_key
from gridledger.identity.ca import (
    CertificateAuthority,
    MemberAttributes,
    compute_certificate_hash,
    create_authority,
    process_issue,
)
from gridledger.identity.contracts import IdentityConfig, IdentityContract
from gridledger.identity.genesis import compute_identity_genesis_state
from gridledger.identity.messages import (
    PSEUDONYM_CERT_TAG,
    PseudonymCertificate,
    SignedPseudonymCertificate,
)
from gridledger.identity.tags import compute_handle, compute_tag, compute_tag_exponent
from gridledger.identity.trace_center import deal_trustee_keys
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.chain import Ledger
from gridledger.ledger.contracts import BlockContext, ContractRegistry, StateView
from gridledger.ledger.contracts_builtin import KvContract
from gridledger.ledger.execution import Receipt
from gridledger.ledger.state import Overlay, compute_state_key
from gridledger.ledger.storage import BlockStore, MemoryBlockStore
from gridledger.ledger.tx import Transaction
from gridledger.market import client
from gridledger.market.config import compute_genesis_state
from gridledger.market.contract import MarketContract
from gridledger.market.messages import MarketConfig
from gridledger.payments.coins import DenominationKey
from gridledger.payments.config import PaymentsConfig
from gridledger.payments.config import compute_genesis_state as payments_genesis
from gridledger.payments.contract import PaymentsContract
from gridledger.payments.invoice import PaymentRecord, compute_payment_key
from gridledger.payments.mint import Mint, create_denomination_key, create_mint, process_withdrawal
from gridledger.payments.wallet import (
    HeldCoin,
    build_withdraw_request,
    choose_denomination_keys,
    finalize_coins,
    prepare_coins,
)
from tests.ledger.helpers import CHAIN, VALIDATORS, key

NOW = 1_750_000_000  # seconds (certificates)
NOW_MS = NOW * 1000
DAY = 86_400
HOUR_MS = 3_600_000
SLOT_MS = HOUR_MS
ROUND = 7
SLOT = NOW_MS // SLOT_MS + 3  # a delivery slot three hours ahead of NOW
DENOMINATIONS = tuple(1 << i for i in range(12))  # 1 .. 2048 money units


@dataclass(frozen=True)
class Pseudonym:
    key: Ed25519PrivateKey
    identity: bytes
    certificate: SignedPseudonymCertificate

    @property
    def raw(self) -> bytes:
        return self.key.public_key.raw


@dataclass
class World:
    ca: CertificateAuthority
    identity_state: dict[bytes, bytes]
    identity_config: IdentityConfig
    tc_key: ThresholdPublicKey
    key_shares: tuple[KeyShare, ...]
    pseudonyms: list[Pseudonym]
    expired: Pseudonym
    revoked: Pseudonym
    other_round: Pseudonym
    attester: Ed25519PrivateKey
    dso_redeem: Ed25519PrivateKey
    dso_enc: EncryptionPrivateKey
    mint_operator: Ed25519PrivateKey
    coin_keys: list[tuple[DenominationKey, RsaPrivateKey]]
    household: tuple[RsaPrivateKey, x509.Certificate]

    @property
    def roots(self) -> tuple[x509.Certificate, ...]:
        return (self.ca.certificate,)

    def market_config(self, **changes: object) -> MarketConfig:
        base = MarketConfig(
            tick=1,
            lot=1,
            min_price=50,
            max_price=400,
            slot_ms=SLOT_MS,
            gate_lead_ms=300_000,
            settle_ms=HOUR_MS,
            attesters=(self.attester.public_key.raw,),
            dso_redeem_key=self.dso_redeem.public_key.raw,
            dso_enc_key=self.dso_enc.public_key.raw,
            surplus_threshold=4,
            piece_ms=(600_000, 900_000),
        )
        return dataclasses.replace(base, **changes)  # type: ignore[arg-type]

    def payments_config(self) -> PaymentsConfig:
        return PaymentsConfig(
            self.mint_operator.public_key.raw, tuple(d for d, _ in self.coin_keys), ("market",)
        )

    def create_mint(self) -> Mint:
        return create_mint(CHAIN, self.mint_operator, self.roots, self.coin_keys)


def _make_pseudonym(
    rng: DeterministicRng,
    tc_key: ThresholdPublicKey,
    mm_hash: bytes,
    mm_key: RsaPrivateKey,
    identity: bytes,
    round_: int,
    valid: tuple[int, int],
) -> Pseudonym:
    key_ = Ed25519PrivateKey.generate(rng)
    handle = compute_handle(tc_key, identity, tc_key.group.random_scalar(rng))
    r = compute_tag_exponent(tc_key.group, rng)
    tag = compute_tag(tc_key, identity, round_, r, rng.random_bytes(12), handle, b"\x00" * 256)
    cert = PseudonymCertificate(
        round=round_,
        serial=rng.random_bytes(16),
        pseudonym_key=key_.public_key.raw,
        tag=tag,
        msg_prefix=rng.random_bytes(32),
        rm_signature=rng.random_bytes(256),
        valid_from=valid[0],
        valid_until=valid[1],
        mm=mm_hash,
    )
    signed = SignedPseudonymCertificate(cert, mm_key.sign(PSEUDONYM_CERT_TAG, encode(cert)))
    return Pseudonym(key_, identity, signed)


def make_world(rsa_keys: Sequence[RsaPrivateKey], households: int = 8, now: int = NOW) -> World:
    """Identity genesis, pseudonyms valid around ``now`` (seconds), a mint, keys."""
    rng = DeterministicRng("market-world")
    NOW = now
    ca = create_authority("grid CA", Ed25519PrivateKey.generate(rng), NOW - DAY, 3650 * DAY, rng)
    rm_blind = issue_role_key(
        ca,
        "rm-pseudonyms",
        MemberAttributes("rm", "rm-1", None, ("sign-pseudonyms",)),
        NOW - DAY,
        365 * DAY,
        rng,
        rsa_keys[0],
    )
    mm = issue_role_key(
        ca,
        "mm",
        MemberAttributes("mm", "mm-1", None, ("issue-pseudonym-certs",)),
        NOW - DAY,
        365 * DAY,
        rng,
        rsa_keys[1],
    )
    tc_key, shares = deal_trustee_keys(3, 5, EDWARDS25519, rng)
    mm_hash = compute_certificate_hash(mm.certificate)
    window = (NOW - DAY, NOW + 2 * DAY)

    def make(name: str, round_: int = ROUND, valid: tuple[int, int] = window) -> Pseudonym:
        identity = hashlib.sha256(name.encode()).digest()
        return _make_pseudonym(rng, tc_key, mm_hash, mm.key, identity, round_, valid)

    pseudonyms = [make(f"house-{i}") for i in range(households)]
    expired = make("house-expired", valid=(NOW - 2 * DAY, NOW - DAY))
    revoked = make("house-revoked")
    other_round = make("house-other-round", round_=ROUND + 1)
    state = compute_identity_genesis_state(
        (ca.certificate,), rm_blind.certificate, tc_key, mm.certificate
    )
    for p in (*pseudonyms, expired, revoked, other_round):
        state[compute_state_key("identity", b"pc/" + p.raw)] = encode(p.certificate)
    state[compute_state_key("identity", b"revp/" + revoked.raw)] = b"traced"
    config = IdentityConfig((ca.certificate,), rm_blind.certificate, tc_key, mm.certificate)
    coin_keys = [
        (create_denomination_key(k, v, 0, (NOW + 30 * DAY) * 1000, (NOW + 60 * DAY) * 1000), k)
        for v, k in zip(DENOMINATIONS, rsa_keys[2:], strict=False)
    ]
    attrs = MemberAttributes("prosumer", "house-0", "meter-0", ("trade",))
    hh_key = rsa_keys[-1]
    hh_cert = process_issue(ca, "house-0", hh_key.public_key, attrs, NOW - DAY, 365 * DAY, rng)
    return World(
        ca,
        state,
        config,
        tc_key,
        shares,
        pseudonyms,
        expired,
        revoked,
        other_round,
        key("attester"),
        key("dso-redeem"),
        EncryptionPrivateKey(hashlib.sha256(b"dso-enc").digest()),
        key("mint-operator"),
        coin_keys,
        (hh_key, hh_cert),
    )


@dataclass(frozen=True)
class PaidStub:
    """Namespace ``payments`` for tests that need many payments fast: records a payment
    for any market invoice it is told about (stands in for coins; the market only reads
    ``payments/paid/market/<id>``). The real payments contract is used in test_settlement."""

    namespace: str = "payments"
    kinds: frozenset[str] = frozenset({"stub.paid"})

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        invoice_id = tx.payload
        record = PaymentRecord("market", invoice_id, 1, b"", b"", b"", ctx.height, ctx.timestamp_ms)  # type: ignore[arg-type]
        view.put(compute_payment_key("market", invoice_id), encode(record))
        return b""


@dataclass
class Chain:
    """A one-replica ledger with the market (and identity, payments) on it."""

    world: World
    config: MarketConfig
    ledger: Ledger
    now_ms: int = NOW_MS
    slot: int = SLOT  # the default delivery slot: three hours after the chain starts
    nonce: int = 0
    sender: Ed25519PrivateKey = field(default_factory=lambda: key("relay"))
    rng: DeterministicRng = field(default_factory=lambda: DeterministicRng("chain"))

    def commit(self, *txs: Transaction, at_ms: int | None = None) -> tuple[Receipt, ...]:
        self.now_ms = at_ms if at_ms is not None else self.now_ms + 1000
        _, outcome = self.ledger.commit(list(txs), self.now_ms, 0, 0)
        return outcome.receipts

    def commit_ok(self, *txs: Transaction, at_ms: int | None = None) -> tuple[Receipt, ...]:
        receipts = self.commit(*txs, at_ms=at_ms)
        for r in receipts:
            assert r.ok, r.reason
        return receipts

    def view(self, namespace: str = "market") -> StateView:
        return StateView(Overlay(self.ledger.state), namespace)

    def tx(
        self, kind: str, payload: object, signer: Ed25519PrivateKey | None = None
    ) -> Transaction:
        self.nonce += 1
        return Transaction.create(CHAIN, kind, payload, signer or self.sender, self.nonce)

    def order(
        self,
        who: Pseudonym,
        quantity: int,
        price: int,
        slot: int | None = None,
        round_: int = ROUND,
    ) -> tuple[Transaction, client.OrderSecrets]:
        slot = self.slot if slot is None else slot
        order, secrets = client.create_order(who.raw, round_, slot, quantity, price, self.rng)
        signed = client.sign_order(order, who.key)
        return self.tx("market.order", signed), secrets

    def paid_stub(self, invoice_id: bytes) -> Transaction:
        return self.tx("stub.paid", invoice_id)

    def get(self, key_: bytes) -> bytes | None:
        return self.view().get(key_)

    def decode(self, cls: type, key_: bytes) -> object:
        raw = self.get(key_)
        assert raw is not None
        return decode_as(cls, raw)


def make_chain(
    world: World,
    config: MarketConfig | None = None,
    *,
    real_payments: bool = False,
    now_ms: int = NOW_MS,
    store: BlockStore | None = None,
) -> Chain:
    config = config or world.market_config()
    state = dict(world.identity_state)
    state.update(compute_genesis_state(config))
    state.update(payments_genesis(world.payments_config()))
    genesis = GenesisConfig.create(CHAIN, VALIDATORS, now_ms - DAY * 1000, state)
    payments = PaymentsContract(world.payments_config()) if real_payments else PaidStub()
    registry = ContractRegistry(
        (KvContract(), IdentityContract(world.identity_config), MarketContract(config), payments)
    )
    ledger = Ledger(store or MemoryBlockStore(), registry, genesis)
    return Chain(world, config, ledger, now_ms=now_ms, slot=now_ms // SLOT_MS + 3)


def withdraw(chain: Chain, mint: Mint, amount: int) -> tuple[HeldCoin, ...]:
    """The test household withdraws, identified, coins worth ``amount``."""
    hh_key, hh_cert = chain.world.household
    denoms = choose_denomination_keys((d for d, _ in chain.world.coin_keys), amount, chain.now_ms)
    pending = prepare_coins(denoms, chain.rng)
    request = build_withdraw_request(CHAIN, hh_cert, hh_key, 0, pending, chain.now_ms, chain.rng)
    response, tx = process_withdrawal(mint, request, chain.now_ms)
    chain.commit_ok(tx)
    return finalize_coins(pending, response.blind_signatures)
