"""Settlement with real e-coins: paid and delivered -> settled, never evidence; unpaid ->
evidence against exactly the reneging pseudonym, whose tag t trustees then decrypt.

On a chain whose identity genesis names ``market`` an evidence source, the market's
default is evidence on chain (``identity.contract-evidence``): t of n trustees' shares
go into a trace record, and the household is blacklisted and its certificate revoked;
nothing anyone else writes (the KV namespace, a made-up id) traces anybody."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gridledger.crypto import threshold
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey, RsaPrivateKey
from gridledger.identity.admission import issue_role_key
from gridledger.identity.ca import (
    MemberAttributes,
    compute_certificate_der,
    compute_certificate_hash,
    compute_member_key,
    get_attributes,
)
from gridledger.identity.client import create_contract_evidence_tx
from gridledger.identity.contracts import (
    KIND_CONTRACT_EVIDENCE,
    KIND_TRACE,
    Reader,
)
from gridledger.identity.genesis import GENESIS_EVIDENCE_SOURCES_KEY, EvidenceSources
from gridledger.identity.messages import (
    CONSENT_TAG,
    PSEUDONYM_CERT_TAG,
    ContractDefault,
    ContractEvidence,
    PseudonymCertificate,
    SignedPseudonymCertificate,
    TraceRecord,
    TraceResult,
    compute_contract_default_key,
)
from gridledger.identity.plugin import PLUGIN as IDENTITY_PLUGIN
from gridledger.identity.tags import (
    compute_consent_message,
    compute_handle,
    compute_handle_hash,
    compute_tag,
    compute_tag_exponent,
)
from gridledger.identity.trace_center import (
    TraceRequestRead,
    Trustee,
    compute_contract_evidence_id,
    compute_identity_from_shares,
    compute_trace,
    get_tag_ciphertext,
    on_trace_request,
)
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.chain import Ledger
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvContract, KvSet
from gridledger.ledger.execution import Receipt
from gridledger.ledger.state import compute_state_key
from gridledger.ledger.storage import MemoryBlockStore
from gridledger.market import client, keys
from gridledger.market.config import compute_genesis_state
from gridledger.market.contract import MarketContract
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
from gridledger.market.settlement import (
    check_default,
    compute_recheck_ms,
    get_contract_default,
    get_default,
)
from gridledger.payments.config import compute_genesis_state as payments_genesis
from gridledger.payments.contract import PaymentsContract
from gridledger.payments.invoice import Invoice, get_invoice
from gridledger.payments.messages import PaymentMessage
from gridledger.payments.mint import Mint, get_verifiers
from gridledger.payments.wallet import (
    build_pay_tx,
    build_reveal_tx,
)
from tests.ledger.helpers import CHAIN, VALIDATORS

from .helpers import DAY, NOW, NOW_MS, ROUND, SLOT_MS, Chain, Pseudonym, World, make_chain, withdraw


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
    twin = get_contract_default(chain.view(), record.evidence_id)  # identity's generic record
    assert twin is not None and (twin.accused, twin.round) == (buyer.raw, trade.buyer_round)
    assert (twin.deadline_ms, twin.found_ms) == (trade.deadline_ms, trade.deadline_ms + 1)
    # this chain's identity genesis names no evidence source: the pointer is refused
    (r,) = chain.commit(
        chain.tx(KIND_CONTRACT_EVIDENCE, ContractEvidence("market", record.evidence_id))
    )
    assert not r.ok and "not an evidence source" in r.reason
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


# -- tracing on chain from the market's own default --------------------------------------


@dataclass(frozen=True)
class Tracing:
    trustees: tuple[Trustee, ...]  # certified tc-1 .. tc-5 holding the world's key shares
    reneger: Pseudonym  # the world's real household (house-0), with an accountable tag


@pytest.fixture(scope="module")
def tracing(world: World, rsa_keys: list[RsaPrivateKey]) -> Tracing:
    rng = DeterministicRng("market-tracing")
    trustees = []
    for share in world.key_shares:
        i = share.index
        attrs = MemberAttributes("tc-trustee", f"tc-{i}", None, ("trace",))
        role = issue_role_key(
            world.ca, f"tc-{i}", attrs, NOW - DAY, 365 * DAY, rng, rsa_keys[1 + i]
        )
        trustees.append(Trustee(i, share, world.tc_key, role.key, role.certificate))
    # A pseudonym exactly as registration makes one: its tag names house-0's certificate
    # and carries house-0's consent (so the trace is accountable, not just a decryption).
    hh_key, hh_cert = world.household
    identity, tc = compute_certificate_hash(hh_cert), world.tc_key
    key_ = Ed25519PrivateKey.generate(rng)
    handle = compute_handle(tc, identity, tc.group.random_scalar(rng))
    consent = hh_key.sign(
        CONSENT_TAG,
        compute_consent_message(ROUND, key_.public_key.raw, compute_handle_hash(tc.group, *handle)),
    )
    r = compute_tag_exponent(tc.group, rng)
    tag = compute_tag(tc, identity, ROUND, r, rng.random_bytes(12), handle, consent)
    mm = world.identity_config.mm_certificate
    assert mm is not None
    cert = PseudonymCertificate(
        ROUND, rng.random_bytes(16), key_.public_key.raw, tag, rng.random_bytes(32),
        rng.random_bytes(256), NOW - DAY, NOW + 2 * DAY, compute_certificate_hash(mm),
    )  # fmt: skip
    signed = SignedPseudonymCertificate(cert, rsa_keys[1].sign(PSEUDONYM_CERT_TAG, encode(cert)))
    return Tracing(tuple(trustees), Pseudonym(key_, identity, signed))


def make_sourced_chain(world: World, tracing: Tracing) -> Chain:
    """Like ``make_chain(real_payments=True)``, but every contract is built from a genesis
    whose identity section names ``market`` an evidence source (and certifies the reneger)."""
    config = world.market_config()
    state = dict(world.identity_state)
    state[GENESIS_EVIDENCE_SOURCES_KEY] = encode(EvidenceSources(("market",)))
    state[compute_state_key("identity", b"pc/" + tracing.reneger.raw)] = encode(
        tracing.reneger.certificate
    )
    state.update(compute_genesis_state(config))
    state.update(payments_genesis(world.payments_config()))
    genesis = GenesisConfig.create(CHAIN, VALIDATORS, NOW_MS - DAY * 1000, state)
    (identity,) = IDENTITY_PLUGIN.build_contracts(genesis)
    payments = PaymentsContract(world.payments_config())
    registry = ContractRegistry((KvContract(), identity, MarketContract(config), payments))
    ledger = Ledger(MemoryBlockStore(), registry, genesis)
    return Chain(world, config, ledger, now_ms=NOW_MS, slot=NOW_MS // SLOT_MS + 3)


def point_at(chain: Chain, namespace: str, source_id: bytes) -> tuple[Receipt, bytes]:
    """Post ``identity.contract-evidence`` (any key may); the receipt and the identity id."""
    chain.nonce += 1
    tx, eid = create_contract_evidence_tx(CHAIN, namespace, source_id, chain.sender, chain.nonce)
    (r,) = chain.commit(tx)
    return r, eid


def trustee_read(chain: Chain, eid: bytes) -> TraceRequestRead:
    """What a trustee reads from the chain (f+1-agreed in deployment: client.get_trace_request)."""
    view = chain.view("identity")
    read = Reader(view.get).trace_request(eid, view.get_in)
    assert read.contract is not None
    return read


def test_unpaid_trade_is_traced_on_chain_blacklisted_and_revoked(
    world: World, tracing: Tracing
) -> None:
    chain = make_sourced_chain(world, tracing)
    seller, reneger = world.pseudonyms[6], tracing.reneger
    trade, _ = trade_between(chain, seller, reneger, 4, 120)
    attest(chain, trade)  # the seller delivered; the buyer never pays
    pass_deadline(chain, trade)
    money = compute_evidence_id(trade.trade_id, LEG_MONEY)
    default = get_contract_default(chain.view(), money)
    assert default is not None and default.accused == reneger.raw
    # the honest seller: no default, so no pointer can name them
    r, _ = point_at(chain, "market", compute_evidence_id(trade.trade_id, LEG_ENERGY))
    assert not r.ok and "no default record" in r.reason
    # anyone points the identity contract at the market's default
    r, eid = point_at(chain, "market", money)
    assert r.ok, r.reason
    assert r.data == eid == compute_contract_evidence_id(ContractEvidence("market", money))
    # 3 of 5 trustees re-check (the market's own rule too), then release shares
    rng = DeterministicRng("market-trustees")
    shares = []
    for trustee in tracing.trustees[:3]:
        assert check_default(chain.view(), money, chain.now_ms).accused == reneger.raw
        read = trustee_read(chain, eid)
        shares.append(on_trace_request(trustee, read, rng, evidence_sources=("market",)))
    cert = reneger.certificate.certificate
    outcome = compute_trace(world.tc_key, cert, shares, eid, world.roots, chain.now_ms // 1000)
    hh_cert = world.household[1]
    assert outcome.identity == compute_certificate_hash(hh_cert)
    record = TraceRecord(eid, outcome.entries, compute_certificate_der(hh_cert))
    (r,) = chain.commit_ok(chain.tx(KIND_TRACE, record))
    result = decode_as(TraceResult, r.data)
    assert result.accountable and result.pseudonym_key == reneger.raw
    reader = Reader(chain.view("identity").get)
    assert reader.trace(eid) == result
    assert reader.is_blacklisted(compute_member_key(get_attributes(hh_cert)))
    assert reader.is_revoked(compute_certificate_hash(hh_cert))
    assert reader.is_pseudonym_revoked(reneger.raw)
    assert not reader.is_pseudonym_revoked(seller.raw)
    # the traced pseudonym cannot trade any more; the seller can
    later = chain.now_ms // SLOT_MS + 3  # a slot still open for orders
    (r,) = chain.commit(chain.order(reneger, -1, 120, slot=later)[0])
    assert not r.ok and "revoked" in r.reason
    chain.commit_ok(chain.order(seller, 1, 120, slot=later)[0])


def test_paid_trade_and_forged_defaults_trace_nobody(world: World, tracing: Tracing) -> None:
    chain = make_sourced_chain(world, tracing)
    mint = world.create_mint()
    seller, honest = world.pseudonyms[7], tracing.reneger  # this time it pays
    trade, secrets = trade_between(chain, seller, honest, 2, 100)
    pay_and_redeem(chain, mint, trade, secrets)
    attest(chain, trade)
    pass_deadline(chain, trade)
    assert chain.get(keys.SETTLED + trade.trade_id) == b"\x01"
    assert list(chain.view().scan(b"default/")) == []
    for leg in (LEG_MONEY, LEG_ENERGY):
        r, _ = point_at(chain, "market", compute_evidence_id(trade.trade_id, leg))
        assert not r.ok and "no default record" in r.reason
    # The attacker writes a perfect default naming the honest household where it can write.
    money = compute_evidence_id(trade.trade_id, LEG_MONEY)
    forged = ContractDefault(
        money, honest.raw, ROUND, trade.deadline_ms, "unpaid", chain.ledger.height,
        trade.deadline_ms + 1,
    )  # fmt: skip
    kv = KvSet(compute_contract_default_key(money), encode(forged))
    chain.commit_ok(chain.tx(KV_SET_KIND, kv))
    for namespace in ("test", "payments", "identity"):
        r, _ = point_at(chain, namespace, money)
        assert not r.ok and "not an evidence source" in r.reason
    r, _ = point_at(chain, "market", chain.rng.random_bytes(32))  # a made-up id
    assert not r.ok and "no default record" in r.reason
    assert list(chain.view("identity").scan(b"cev/")) == []
    assert not Reader(chain.view("identity").get).is_pseudonym_revoked(honest.raw)
