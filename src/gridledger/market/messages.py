"""Wire messages of the market: orders, cancels, trades, pieces, attestations, market data.

What is signed is always ``encode(body)`` under a per-message domain tag, so an
order signature can never be replayed as a cancel or an attestation.

Continuous double auction (seed 000 §IV.B.4, decisions §10.5)::

    household --SignedOrder--> chain    order under the round's pseudonym key
    household --SignedCancel-> chain    withdraw what is left of an order
    chain: Trade + payments Invoice per fill; BlockMarketData per block
    buyer    --payments.pay/redeem-->   closes the money leg (payments layer)
    meter/substation --SignedAttestation--> chain   closes the energy leg
    chain: a leg open at its deadline -> DefaultRecord (evidence for tracing)

Fixed-piece market (seed 003 §5.3-5.4)::

    offering meter   --PieceOffer-->   chain   one-time keys only (anonymous)
    requesting meter --PieceRequest--> chain   a random nonce only (anonymous)
    chain: Pairing (in arrival order; DSO offer if none open) + Invoice

No message carries an account, an address, a meter id or any other
quasi-identifier (§8.6): orders name only a per-round pseudonym key and
one-time settlement keys; pieces not even a pseudonym.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.hashing import hash_bytes, register_tag

ORDER_TAG = register_tag("gridledger/market/order/1")
CANCEL_TAG = register_tag("gridledger/market/cancel/1")
ATTESTATION_TAG = register_tag("gridledger/market/attestation/1")
ORDER_ID_TAG = register_tag("gridledger/market/order-id/1")
TRADE_ID_TAG = register_tag("gridledger/market/trade-id/1")
PIECE_ID_TAG = register_tag("gridledger/market/piece-id/1")
EVIDENCE_ID_TAG = register_tag("gridledger/market/evidence-id/1")
PIECE_REQUEST_TAG = register_tag("gridledger/market/piece-request/1")

KIND_ORDER = "market.order"
KIND_CANCEL = "market.cancel"
KIND_ATTEST = "market.attest"
KIND_PIECE_OFFER = "market.piece-offer"
KIND_PIECE_REQUEST = "market.piece-request"
KIND_SIGNED_PIECE_REQUEST = "market.signed-piece-request"

NONCE_SIZE = 16
LEG_MONEY = "money"
LEG_ENERGY = "energy"


@wire_type("market.config/1")
@dataclass(frozen=True)
class MarketConfig:
    """The market's parameters (genesis section ``market/genesis/config``).

    Prices in money units per Wh, quantities in Wh, times in ms of block time.
    Delivery slot ``s`` covers ``[s * slot_ms, (s + 1) * slot_ms)``; its gate
    closes ``gate_lead_ms`` before it starts; both legs of its trades are due
    ``settle_ms`` after it ends. ``clearing``: ``"cda"`` (continuous), or
    ``"pay-as-bid"`` / ``"uniform"`` (orders rest until the gate, then the slot
    clears as a sealed-bid auction; for comparison). ``attesters``: Ed25519 keys
    of meters' and substations' attestation services. Orders and offers are taken for
    slots that start at most ``horizon_ms`` after block time.

    Fixed-piece market: a piece is ``piece_power_w`` for ``piece_ms[s % len]``
    (the power-time tuple; a longer time for the same coin is a lower price),
    one piece costs ``piece_price``; the DSO sells at ``dso_import_price`` and
    buys at ``dso_export_price`` per piece, and buys the oldest offers when more
    than ``surplus_threshold`` are open for a slot. Offers live
    ``offer_validity_ms``; a pairing must be paid within ``pay_window_ms``.
    """

    tick: int = 1
    lot: int = 1
    min_price: int = 50
    max_price: int = 400
    max_quantity: int = 1_000_000
    slot_ms: int = 3_600_000
    gate_lead_ms: int = 300_000
    settle_ms: int = 3_600_000
    clearing: str = "cda"
    attesters: tuple[bytes, ...] = ()
    depth_levels: int = 10
    horizon_ms: int = 7 * 86_400_000
    piece_power_w: int = 10
    piece_ms: tuple[int, ...] = (600_000,)
    piece_price: int = 1
    dso_import_price: int = 2
    dso_export_price: int = 1
    surplus_threshold: int = 16
    offer_validity_ms: int = 600_000
    pay_window_ms: int = 60_000
    dso_redeem_key: bytes = b"\x00" * 32
    dso_enc_key: bytes = b"\x00" * 32


@wire_type("market.order/1")
@dataclass(frozen=True)
class Order:
    """A limit order for delivery slot ``slot``: ``quantity`` > 0 sells, < 0 buys (seed 000).

    ``pseudonym``: the round's certified Ed25519 pseudonym key, which signs.
    A sell order names one-time settlement keys (``redeem_key`` Ed25519,
    ``enc_key`` X25519) to be paid on; a buy order leaves them empty.
    ``nonce`` makes two otherwise equal orders distinct.
    """

    pseudonym: bytes
    round: int
    slot: int
    quantity: int
    price: int
    redeem_key: bytes
    enc_key: bytes
    nonce: bytes


@wire_type("market.signed-order/1")
@dataclass(frozen=True)
class SignedOrder:
    order: Order
    signature: bytes


@wire_type("market.cancel/1")
@dataclass(frozen=True)
class Cancel:
    """Withdraw whatever is still open of ``order_id``."""

    order_id: bytes


@wire_type("market.signed-cancel/1")
@dataclass(frozen=True)
class SignedCancel:
    cancel: Cancel
    signature: bytes  # by the order's pseudonym key


@wire_type("market.resting/1")
@dataclass(frozen=True)
class RestingRecord:
    """An order in the on-chain book: what matching and settlement need of it."""

    order_id: bytes
    pseudonym: bytes
    round: int
    slot: int
    side: int
    price: int
    remaining: int
    seq: int
    redeem_key: bytes
    enc_key: bytes


@wire_type("market.order-status/1")
@dataclass(frozen=True)
class OrderStatus:
    """An order's account: ``filled + open + cancelled == submitted`` (``open`` in the book)."""

    order_id: bytes
    submitted: int
    filled: int
    cancelled: int
    book_key: bytes  # b"" once nothing is open


@wire_type("market.trade/1")
@dataclass(frozen=True)
class Trade:
    """One fill and the two obligations it creates, due at ``deadline_ms``.

    Money leg: the buyer pays ``price * quantity`` on the invoice with the same id.
    Energy leg: the seller delivers ``quantity`` Wh in ``slot`` (attested).
    """

    trade_id: bytes
    slot: int
    price: int
    quantity: int
    buy_order: bytes
    sell_order: bytes
    buyer: bytes
    seller: bytes
    buyer_round: int
    seller_round: int
    height: int
    deadline_ms: int


@wire_type("market.order-receipt/1")
@dataclass(frozen=True)
class OrderReceipt:
    """Receipt data of an accepted order: its id, arrival number and immediate fills."""

    order_id: bytes
    seq: int
    filled: int
    trades: tuple[bytes, ...]


@wire_type("market.public-trade/1")
@dataclass(frozen=True)
class PublicTrade:
    """A trade as the market data shows it: no pseudonym, no order id."""

    slot: int
    price: int
    quantity: int


@wire_type("market.slot-depth/1")
@dataclass(frozen=True)
class SlotDepth:
    """The open book of one slot: best levels as ``(price, open quantity)``."""

    slot: int
    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]


@wire_type("market.block-data/1")
@dataclass(frozen=True)
class BlockMarketData:
    """What the market publishes after every block: trades, volume, the book without identities."""

    height: int
    timestamp_ms: int
    trades: tuple[PublicTrade, ...]
    volume: int
    depth: tuple[SlotDepth, ...]
    open_pieces: int


@wire_type("market.attestation/1")
@dataclass(frozen=True)
class DeliveryAttestation:
    """A meter or substation service: ``quantity`` Wh of ``trade_id`` delivered in ``slot``."""

    trade_id: bytes
    slot: int
    quantity: int
    attester: bytes


@wire_type("market.signed-attestation/1")
@dataclass(frozen=True)
class SignedAttestation:
    attestation: DeliveryAttestation
    signature: bytes


@wire_type("market.default/1")
@dataclass(frozen=True)
class DefaultRecord:
    """Evidence made by the contract from what the chain shows: a leg open past its deadline.

    ``accused`` is the pseudonym that owed the leg (the buyer for money, the
    seller for energy); ``order`` is its own signed order, which bound it to pay
    or deliver for any fill. No trading partner's word enters it.
    """

    evidence_id: bytes
    trade_id: bytes
    leg: str
    accused: bytes
    round: int
    deadline_ms: int
    height: int
    order: SignedOrder


@wire_type("market.piece-offer/1")
@dataclass(frozen=True)
class PieceOffer:
    """Seed 003's ``Offer_i``: one piece in ``slot``, paid to one-time keys only."""

    slot: int
    redeem_key: bytes
    enc_key: bytes
    nonce: bytes


@wire_type("market.piece-request/1")
@dataclass(frozen=True)
class PieceRequest:
    """Seed 003's ``Request_j``: one piece in ``slot``; a random nonce, nothing else."""

    slot: int
    nonce: bytes


@wire_type("market.bound-piece-request/2")
@dataclass(frozen=True)
class BoundPieceRequest:
    """A ``Request_j`` bound to the requester's round pseudonym (an accountable request).

    Seed 003's requests name nobody, so a requester who never pays its pairing is
    untraceable (its pairing is simply void). Signed under a certified round
    pseudonym, as a double-auction order is, the request makes the requester owe
    the pairing's invoice: unpaid at the deadline, the contract writes a
    :class:`~gridledger.identity.messages.ContractDefault` naming that pseudonym,
    which t of n trustees can trace. The price: one round's requests are linkable
    to each other (like one round's orders), not to a household.

    Because a signed request creates a debt, the requester also signs what it
    agrees to owe: at most ``max_amount`` (a pairing that would cost more, such
    as the DSO's when the requester only wants a peer's piece, is refused) and
    only in a block no later than ``not_after_ms``. Without the time bound,
    whoever holds the signed request (a relay, a replica) could submit it long
    after the requester stopped watching, or after the requester, seeing no
    answer, asked again: the requester would then owe a pairing it never
    learned of, and be accused of a default. With it, once ``not_after_ms`` has
    passed in a committed block the requester knows the request can never pair.
    """

    request: PieceRequest
    pseudonym: bytes
    round: int
    max_amount: int
    not_after_ms: int


@wire_type("market.signed-piece-request/1")
@dataclass(frozen=True)
class SignedPieceRequest:
    body: BoundPieceRequest
    signature: bytes  # by the pseudonym key, over encode(body) under PIECE_REQUEST_TAG


@wire_type("market.piece-offer-record/1")
@dataclass(frozen=True)
class OfferRecord:
    offer_id: bytes
    slot: int
    redeem_key: bytes
    enc_key: bytes
    seq: int
    expires_ms: int


@wire_type("market.pairing/1")
@dataclass(frozen=True)
class Pairing:
    """Seed 003's ``Pairing_{i,j}``, made by the contract in arrival order.

    ``offer_id`` empty: a DSO offer (grid energy); ``request_id`` empty: a DSO
    purchase of surplus. The invoice ``pairing_id`` pays ``amount`` to the
    offer's one-time keys. Signed in effect by the consortium: it is state of a
    block that 2f+1 replicas certify, so no meter can forge or replay one.
    """

    pairing_id: bytes
    offer_id: bytes
    request_id: bytes
    slot: int
    energy_mj: int  # the piece's power (W) times its duration (ms)
    amount: int
    redeem_key: bytes
    enc_key: bytes
    deadline_ms: int
    height: int


@functools.lru_cache(maxsize=8192)
def decode_resting(raw: bytes) -> RestingRecord:
    """Decode a book entry, memoised on its bytes (records are immutable; the book is hot)."""
    return decode_as(RestingRecord, raw)


def compute_order_id(signed: SignedOrder) -> bytes:
    """The order's name on chain: hash of the order (its signature is not malleable input)."""
    return hash_bytes(ORDER_ID_TAG, encode(signed.order))


def compute_trade_id(buy_order: bytes, sell_order: bytes, seq: int) -> bytes:
    return hash_bytes(TRADE_ID_TAG, buy_order + sell_order + seq.to_bytes(8, "big"))


def compute_evidence_id(trade_id: bytes, leg: str) -> bytes:
    return hash_bytes(EVIDENCE_ID_TAG, trade_id + leg.encode())
