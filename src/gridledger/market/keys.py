"""State keys of the ``market`` namespace, in one place.

Fixed-width big-endian integers keep ``StateView.scan`` order equal to numeric
order, so the book, the open slots and the deadlines are walked best/earliest
first::

    genesis/config                        MarketConfig
    seq                                   arrival counter (consensus order)
    b/<slot><side><price key><seq>        RestingRecord (bids: price key = 2**63 - price)
    o/<order id>                          OrderStatus
    so/<order id>                         SignedOrder (kept: it is the evidence's proof)
    slot/<slot>                           open slot (has resting orders or pieces)
    lv/<slot><side>, q/<slot><side><price>  price levels and FIFO queues (:mod:`.book`)
    closed/<slot>                         gate closed
    t/<trade id>                          Trade
    invoice/<id>                          payments Invoice (trade or pairing)
    due/<deadline>                        some obligation falls due then (one key per distinct
                                          deadline: all trades of a slot share one)
    dl/<deadline><t|p|r><id>              the obligation (t: trade, p: pairing, r: a trade's
                                          posted-payment recheck)
    att/<trade id>                        SignedAttestation (energy leg closed)
    settled/<trade id>                    both legs closed
    ev/<evidence id>                      DefaultRecord
    unredeemed/<trade id>                 payment posted, never redeemed: nobody accused
    new/<seq>                             PublicTrade of this block (dropped at its end)
    md/<height>, md-latest                BlockMarketData
    pk/<one-time key>                     one-time key already used (pieces and sells)
    pool/<slot><seq>                      open piece offer (OfferRecord)
    pr/<pairing id>                       Pairing
    pn/<nonce>                            piece request nonce used
    ofr/<offer id>                        OfferRecord (to re-pool it if its pairing is void)
    void/<pairing id>                     pairing unpaid at its deadline
    prs/<pairing id>                      SignedPieceRequest of an accountable request
"""

from __future__ import annotations

from collections.abc import Callable

from gridledger.market.units import BUY

_PRICE_FLIP = 1 << 63

CONFIG = b"genesis/config"
SEQ = b"seq"
BOOK = b"b/"
ORDER_STATUS = b"o/"
SIGNED_ORDER = b"so/"
OPEN_SLOT = b"slot/"
LEVELS = b"lv/"
QUEUE = b"q/"
CLOSED_SLOT = b"closed/"
TRADE = b"t/"
DUE = b"due/"
DUE_ITEM = b"dl/"
ATTESTED = b"att/"
SETTLED = b"settled/"
EVIDENCE = b"ev/"
NEW_TRADE = b"new/"
MARKET_DATA = b"md/"
MARKET_DATA_LATEST = b"md-latest"
USED_KEY = b"pk/"
POOL = b"pool/"
PAIRING = b"pr/"
PIECE_NONCE = b"pn/"
OFFER = b"ofr/"
VOID = b"void/"
BOUND_REQUEST = b"prs/"
UNREDEEMED = b"unredeemed/"
DUE_TRADE = b"t"
DUE_PAIRING = b"p"
DUE_RECHECK = b"r"
DUE_PIECE_RECHECK = b"q"  # an accountable pairing whose payment was posted, judged again


def u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def compute_book_prefix(slot: int, side: int) -> bytes:
    return BOOK + u64(slot) + bytes([side])


def compute_book_key(slot: int, side: int, price: int, seq: int) -> bytes:
    price_key = _PRICE_FLIP - price if side == BUY else price
    return compute_book_prefix(slot, side) + u64(price_key) + u64(seq)


def compute_due_key(deadline_ms: int, kind: bytes, ident: bytes) -> bytes:
    """An obligation to judge after ``deadline_ms`` (put its marker too: :func:`process_due`)."""
    return DUE_ITEM + u64(deadline_ms) + kind + ident


def compute_due_marker(deadline_ms: int) -> bytes:
    return DUE + u64(deadline_ms)


def process_due(
    put: Callable[[bytes, bytes], None], deadline_ms: int, kind: bytes, ident: bytes
) -> None:
    """Schedule an obligation: its item and its deadline's marker.

    The end-of-block walk reads the markers (few: one per distinct deadline) and only the
    items of deadlines that have passed, so its cost does not grow with the open trades.
    """
    put(compute_due_marker(deadline_ms), b"")
    put(compute_due_key(deadline_ms, kind, ident), b"")
