"""Settlement: every trade is two obligations, closed by what the chain shows.

* **Money leg** (buyer owes ``price * quantity``): the contract publishes a
  payments :class:`~gridledger.payments.invoice.Invoice` with the trade's id,
  payable to the sell order's one-time keys. Its state is the payments layer's
  proof (:func:`get_money_leg`): paid, unpaid (nothing posted, or every posted
  payment revealed bad by the seller), or a payment posted and not redeemed,
  which accuses nobody unless the seller shows it bad by the recheck time.
* **Energy leg** (seller owes ``quantity`` Wh in the slot): closed by a
  :class:`~gridledger.market.messages.SignedAttestation` from one of the
  attestation keys named at genesis (a meter's or the substation's measurement
  service), before the deadline (:func:`process_attestation`).

At the first block after the deadline (:func:`process_trade_due`), a trade with both
legs closed is marked settled; every leg still open becomes a
:class:`~gridledger.market.messages.DefaultRecord` naming exactly the pseudonym
that owed it, with that pseudonym's own signed order as proof that it committed.
That record is evidence built by every replica from chain state only: no
creditor's word, so a paid and delivered trade can never produce one. Beside it the
contract writes identity's generic
:class:`~gridledger.identity.messages.ContractDefault` at ``default/<evidence id>``,
which the identity contract accepts as evidence (``identity.contract-evidence``) when
the identity genesis names ``market`` an evidence source: the on-chain trace path.
"""

from __future__ import annotations

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.errors import InvalidSignature, KeyFormatError
from gridledger.crypto.signatures import Ed25519PublicKey
from gridledger.identity.messages import ContractDefault, compute_contract_default_key
from gridledger.ledger.contracts import BlockContext, StateView
from gridledger.market import keys
from gridledger.market.errors import SettlementRejected
from gridledger.market.messages import (
    ATTESTATION_TAG,
    LEG_ENERGY,
    LEG_MONEY,
    DefaultRecord,
    MarketConfig,
    PublicTrade,
    RestingRecord,
    SignedAttestation,
    SignedOrder,
    Trade,
    compute_evidence_id,
    compute_trade_id,
)
from gridledger.payments.contract import (
    LEG_PAID,
    LEG_PAYMENT_POSTED,
    LEG_UNPAID,
    get_leg_status,
)
from gridledger.payments.invoice import Invoice, compute_invoice_key
from gridledger.payments.units import Money

NAMESPACE = "market"


def get_next_seq(view: StateView) -> int:
    """The next arrival number (consensus order): orders and trades share one counter."""
    raw = view.get(keys.SEQ)
    seq = 0 if raw is None else int.from_bytes(raw, "big")
    view.put(keys.SEQ, keys.u64(seq + 1))
    return seq


def compute_deadline(config: MarketConfig, slot: int) -> int:
    """Both legs of a trade for ``slot`` are due ``settle_ms`` after the slot ends."""
    return (slot + 1) * config.slot_ms + config.settle_ms


def get_trade(view: StateView, trade_id: bytes) -> Trade | None:
    raw = view.get(keys.TRADE + trade_id)
    return None if raw is None else decode_as(Trade, raw)


def process_trade(
    view: StateView,
    config: MarketConfig,
    ctx: BlockContext,
    buy: RestingRecord,
    sell: RestingRecord,
    price: int,
    quantity: int,
) -> Trade:
    """Record one fill: the trade, its invoice (money leg), its deadline, its public line."""
    seq = get_next_seq(view)
    trade_id = compute_trade_id(buy.order_id, sell.order_id, seq)
    deadline = compute_deadline(config, sell.slot)
    trade = Trade(
        trade_id, sell.slot, price, quantity, buy.order_id, sell.order_id,
        buy.pseudonym, sell.pseudonym, buy.round, sell.round, ctx.height, deadline,
    )  # fmt: skip
    view.put(keys.TRADE + trade_id, encode(trade))
    invoice = Invoice(trade_id, Money(price * quantity), sell.redeem_key, sell.enc_key, deadline)
    view.put(compute_invoice_key(trade_id), encode(invoice))
    keys.process_due(view.put, deadline, keys.DUE_TRADE, trade_id)
    view.put(keys.NEW_TRADE + keys.u64(seq), encode(PublicTrade(sell.slot, price, quantity)))
    return trade


def is_energy_leg_closed(view: StateView, trade_id: bytes) -> bool:
    return view.get(keys.ATTESTED + trade_id) is not None


def process_attestation(
    view: StateView, config: MarketConfig, signed: SignedAttestation, now_ms: int
) -> bytes:
    """Close a trade's energy leg with an attestation by a genesis attestation key."""
    att = signed.attestation
    if att.attester not in config.attesters:
        raise SettlementRejected("attester is not an attestation key named at genesis")
    try:
        Ed25519PublicKey(att.attester).verify(ATTESTATION_TAG, encode(att), signed.signature)
    except (InvalidSignature, KeyFormatError):
        raise SettlementRejected("attestation signature does not verify") from None
    trade = get_trade(view, att.trade_id)
    if trade is None:
        raise SettlementRejected("no such trade")
    if att.slot != trade.slot or att.quantity != trade.quantity:
        raise SettlementRejected("attestation does not match the trade's slot and quantity")
    if now_ms > trade.deadline_ms:
        raise SettlementRejected("the trade's deadline has passed")
    if is_energy_leg_closed(view, att.trade_id):
        raise SettlementRejected("energy leg already attested")
    view.put(keys.ATTESTED + att.trade_id, encode(signed))
    return att.trade_id


def get_signed_order(view: StateView, order_id: bytes) -> SignedOrder:
    raw = view.get(keys.SIGNED_ORDER + order_id)
    assert raw is not None  # written when the order was accepted
    return decode_as(SignedOrder, raw)


def get_money_leg(view: StateView, trade_id: bytes, now_ms: int) -> str:
    """The money leg as the payments layer proves it: ``paid``, ``open`` (before the
    deadline), ``payment-posted`` (a payment was posted and never shown bad: the buyer is
    not accountable) or ``unpaid`` (nothing posted, or every posted payment revealed bad by
    the seller): only ``unpaid`` is evidence against the buyer."""
    return get_leg_status(view, NAMESPACE, trade_id, now_ms)


def _accuse(view: StateView, trade: Trade, leg: str, ctx: BlockContext) -> bytes:
    accused, round_, order_id = (
        (trade.buyer, trade.buyer_round, trade.buy_order)
        if leg == LEG_MONEY
        else (trade.seller, trade.seller_round, trade.sell_order)
    )
    evidence_id = compute_evidence_id(trade.trade_id, leg)
    record = DefaultRecord(
        evidence_id, trade.trade_id, leg, accused, round_, trade.deadline_ms,
        ctx.height, get_signed_order(view, order_id),
    )  # fmt: skip
    view.put(keys.EVIDENCE + evidence_id, encode(record))
    default = ContractDefault(
        evidence_id, accused, round_, trade.deadline_ms,
        f"market {leg} leg of trade {trade.trade_id.hex()} open past its deadline",
        ctx.height, ctx.timestamp_ms,
    )  # fmt: skip
    view.put(compute_contract_default_key(evidence_id), encode(default))
    return evidence_id


def compute_recheck_ms(config: MarketConfig, trade: Trade) -> int:
    """When a money leg with a posted payment is judged for good: a seller who received
    junk may still reveal it (``payments.reveal``) until then."""
    return trade.deadline_ms + config.settle_ms


def process_trade_due(
    view: StateView, config: MarketConfig, trade: Trade, ctx: BlockContext, *, final: bool
) -> tuple[bytes, ...]:
    """Judge a trade past its deadline from what the chain shows; return new evidence ids.

    Energy: attested, or evidence against the seller. Money: paid; ``unpaid`` ->
    evidence against the buyer; a payment posted but not redeemed is judged again at
    :func:`compute_recheck_ms` (``final``): revealed bad by then -> evidence against the
    buyer, otherwise ``unredeemed/<trade id>`` and nobody is accused (the seller could
    have redeemed it). Both legs closed -> ``settled/<trade id>``.
    """
    out = []
    money = get_money_leg(view, trade.trade_id, ctx.timestamp_ms)
    if not final and not is_energy_leg_closed(view, trade.trade_id):
        out.append(_accuse(view, trade, LEG_ENERGY, ctx))
    if money == LEG_UNPAID:
        out.append(_accuse(view, trade, LEG_MONEY, ctx))
    elif money == LEG_PAYMENT_POSTED and not final:
        keys.process_due(
            view.put, compute_recheck_ms(config, trade), keys.DUE_RECHECK, trade.trade_id
        )
    elif money == LEG_PAYMENT_POSTED:
        view.put(keys.UNREDEEMED + trade.trade_id, b"\x01")
    elif money == LEG_PAID and is_energy_leg_closed(view, trade.trade_id):
        view.put(keys.SETTLED + trade.trade_id, b"\x01")
    return tuple(out)


def get_contract_default(view: StateView, evidence_id: bytes) -> ContractDefault | None:
    """The identity-readable twin of :func:`get_default` (``default/<evidence id>``)."""
    raw = view.get(compute_contract_default_key(evidence_id))
    return None if raw is None else decode_as(ContractDefault, raw)


def get_default(view: StateView, evidence_id: bytes) -> DefaultRecord | None:
    raw = view.get(keys.EVIDENCE + evidence_id)
    return None if raw is None else decode_as(DefaultRecord, raw)


def check_default(view: StateView, evidence_id: bytes, now_ms: int) -> DefaultRecord:
    """Re-derive a default from chain state (what a trustee runs before releasing a share).

    The record must exist, its trade must exist and name the accused for that leg,
    the deadline must have passed at ``now_ms``, and the leg must still be open
    (no payment record or posted payment / no attestation). Raises
    :class:`SettlementRejected` otherwise.
    """
    record = get_default(view, evidence_id)
    if record is None:
        raise SettlementRejected("no such evidence")
    trade = get_trade(view, record.trade_id)
    if trade is None or compute_evidence_id(trade.trade_id, record.leg) != evidence_id:
        raise SettlementRejected("evidence does not name a trade of this chain")
    owed_by = {LEG_MONEY: trade.buyer, LEG_ENERGY: trade.seller}.get(record.leg)
    if owed_by != record.accused:
        raise SettlementRejected("evidence accuses a pseudonym that did not owe the leg")
    if now_ms <= trade.deadline_ms:
        raise SettlementRejected("the trade's deadline has not passed")
    if record.leg == LEG_MONEY and get_money_leg(view, trade.trade_id, now_ms) != LEG_UNPAID:
        raise SettlementRejected("the money leg was paid, or a payment was posted")
    if record.leg == LEG_ENERGY and is_energy_leg_closed(view, trade.trade_id):
        raise SettlementRejected("the energy leg was attested")
    return record
