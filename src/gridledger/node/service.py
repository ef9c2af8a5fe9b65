"""The read side of a node, in one place: what the JSON-lines API, the HTTP API and
the CLI all answer from, so they can never disagree.

Every method takes plain parameters, reads the node core's ledger and store,
and returns JSON-ready values (binary as lowercase hex of the canonical
encoding; decoded records as JSON objects whose byte fields are hex); a bad
parameter or a missing block is a :class:`ServiceError` (:class:`NotFound` or
:class:`BadParameter`) with a reason a client can show.

The market, payments and identity reads decode the state those contracts keep
(layouts in :mod:`gridledger.market.keys`, :mod:`gridledger.payments.contract`,
:mod:`gridledger.identity.contracts`); a chain whose genesis does not enable a
plugin simply has no such keys, and the reads answer empty.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.errors import EncodingError
from gridledger.errors import NodeError
from gridledger.identity.contracts import NAMESPACE as IDENTITY_NS
from gridledger.identity.messages import SignedPseudonymCertificate, TraceResult
from gridledger.ledger.block import Block, BlockHeader
from gridledger.ledger.errors import LedgerError
from gridledger.ledger.state import compute_state_key
from gridledger.market import keys as market_keys
from gridledger.market.messages import BlockMarketData, OrderStatus, SignedOrder, Trade
from gridledger.node.core import NodeCore, compute_receipt_json
from gridledger.payments.contract import compute_period_key
from gridledger.payments.messages import AccountTotals, Bill

MAX_HEADERS = 1_000
MAX_PAGE = 100
MARKET_NS = "market"
PAYMENTS_NS = "payments"
MAX_CACHED = 512  # answers kept until the head moves
T = TypeVar("T")
MAX_SCAN = 10_000  # entries one read may walk: bounds the work of any request
MAX_SCAN_PAGE = 1_000  # entries one raw scan request returns


class ServiceError(NodeError):
    """A read request named something that does not exist or is out of range."""


class NotFound(ServiceError):
    """The named block, transaction, certificate or record is not on this node's chain."""

    def __init__(self, reason: str, *, what: str) -> None:
        super().__init__(reason)
        self.what = what


class BadParameter(ServiceError):
    """A parameter is malformed or out of its documented range."""

    def __init__(self, reason: str, *, parameter: str) -> None:
        super().__init__(reason)
        self.parameter = parameter


def compute_json(value: Any) -> Any:
    """A decoded record as JSON: dataclasses become objects, bytes hex, tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: compute_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [compute_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): compute_json(v) for k, v in value.items()}
    return value


def compute_block_summary(block: Block | BlockHeader, certified: bool) -> dict[str, Any]:
    """What a block list shows: header fields, size, and whether its finality proof is stored."""
    header = block.header if isinstance(block, Block) else block
    return {
        "height": header.height,
        "hash": header.header_hash.hex(),
        "prev_hash": header.prev_hash.hex(),
        "timestamp_ms": header.timestamp_ms,
        "proposer": header.proposer,
        "view": header.view,
        "tx_count": header.tx_count,
        "state_root": header.state_root.hex(),
        "final": certified,
    }


def _check_page(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise BadParameter(f"limit must be in 1..{MAX_PAGE}, got {limit}", parameter="limit")
    return limit


class NodeService:
    """Reads over one node core."""

    def __init__(self, core: NodeCore) -> None:
        self.core = core
        self._answers: OrderedDict[tuple[Any, ...], tuple[int, Any]] = OrderedDict()

    def get_cached(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """``compute()``, remembered until the head moves (every read here is a function of
        the chain at its head; a committed block never changes). Bounded, LRU."""
        height = self.core.ledger.height
        hit = self._answers.get(key)
        if hit is not None and hit[0] == height:
            self._answers.move_to_end(key)
            value: T = hit[1]
            return value
        value = compute()
        self._answers[key] = (height, value)
        self._answers.move_to_end(key)
        while len(self._answers) > MAX_CACHED:
            self._answers.popitem(last=False)
        return value

    # -- chain ------------------------------------------------------------------------

    def get_status(self) -> dict[str, Any]:
        return self.core.get_status()

    def get_replicas(self, connected: list[int]) -> list[dict[str, Any]]:
        """Every replica's health as this node sees it: connected, last height it gossiped."""
        heights: dict[int, int] = dict(self.core._gossip.heights)
        me = self.core.replica_id
        return [
            {
                "replica_id": v.replica_id,
                "self": v.replica_id == me,
                "connected": v.replica_id == me or v.replica_id in connected,
                "height": self.core.ledger.height
                if v.replica_id == me
                else heights.get(v.replica_id),
                "primary": v.replica_id == self.core.leader,
            }
            for v in self.core.genesis.validators
        ]

    def _check_height(self, height: int) -> int:
        head = self.core.ledger.height
        if not 0 <= height <= head:
            raise NotFound(f"no block at height {height} (head is {head})", what="block")
        return height

    def get_block(self, height: int) -> dict[str, Any]:
        ledger = self.core.ledger
        if not 0 <= height <= ledger.height:
            raise NotFound(f"no block at height {height} (head is {ledger.height})", what="block")
        try:
            block = ledger.get_block(height)
            receipts = ledger.get_receipts(height)
        except LedgerError as exc:
            raise NotFound(exc.reason, what="block") from None
        cert = ledger.store.get_certificate(height)
        return {
            "height": height,
            "block": encode(block).hex(),
            "header_hash": block.header.header_hash.hex(),
            "certificate": None if cert is None else encode(cert).hex(),
            "receipts": [encode(r).hex() for r in receipts],
        }

    def get_block_view(self, height: int) -> dict[str, Any]:
        """One block decoded: summary, transactions with their receipts, finality proof."""
        self._check_height(height)
        ledger = self.core.ledger
        try:
            block = ledger.get_block(height)
            receipts = ledger.get_receipts(height)
        except LedgerError as exc:
            raise NotFound(exc.reason, what="block") from None
        cert = ledger.store.get_certificate(height)
        block_hash = block.header.header_hash
        txs = []
        for index, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=False)):
            answer = compute_receipt_json(receipt, height, index, block_hash)
            answer.update({"kind": tx.kind, "sender": tx.sender.hex(), "nonce": tx.nonce})
            txs.append(answer)
        summary = compute_block_summary(block, cert is not None)
        summary.update(
            {
                "header": encode(block.header).hex(),
                "certificate": None if cert is None else encode(cert).hex(),
                "transactions": txs,
            }
        )
        return summary

    def get_blocks(self, limit: int = 20, before: int | None = None) -> dict[str, Any]:
        """The newest ``limit`` blocks below ``before`` (default: up to the head), newest first."""
        _check_page(limit)
        head = self.core.ledger.height
        top = head if before is None else min(before - 1, head)
        if before is not None and before < 0:
            raise BadParameter("before must be >= 0", parameter="before")
        store = self.core.store
        blocks = []
        for height in range(top, max(top - limit, -1), -1):
            header = store.get_header(height)
            if header is None:
                break
            certified = height == 0 or store.get_certificate(height) is not None
            blocks.append(compute_block_summary(header, certified))
        return {"head": head, "blocks": blocks}

    def get_commit_event(self, block: Block) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """What the event stream sends for a just-committed block: its summary and its trades."""
        height = block.header.height
        summary = compute_block_summary(block, self.core.store.get_certificate(height) is not None)
        data = self._get_market_data(height)
        trades = [] if data is None else self._compute_trades(data)
        return summary, trades

    def get_headers(self, start: int, end: int) -> dict[str, Any]:
        """Headers ``start..end`` (inclusive, at most 1,000, clipped to the head) with proofs."""
        store = self.core.store
        end = min(end, start + MAX_HEADERS - 1, self.core.ledger.height)
        headers = []
        for height in range(max(start, 0), end + 1):
            header = store.get_header(height)
            if header is None:
                break
            cert = store.get_certificate(height)
            headers.append(
                {
                    "header": encode(header).hex(),
                    "certificate": None if cert is None else encode(cert).hex(),
                }
            )
        return {"headers": headers}

    def get_tx_proof(self, tx_hash: bytes) -> dict[str, Any]:
        found = self.core.store.find_tx(tx_hash)
        if found is None:
            raise NotFound(f"transaction {tx_hash.hex()} is not in the chain", what="transaction")
        height, _ = found
        ledger = self.core.ledger
        proof = ledger.get_tx_proof(height, tx_hash)
        receipt, receipt_proof = ledger.get_receipt_proof(height, tx_hash)
        return {
            "height": height,
            "proof": encode(proof).hex(),
            "receipt": encode(receipt).hex(),
            "receipt_proof": encode(receipt_proof).hex(),
        }

    def get_transaction(self, tx_hash: bytes) -> dict[str, Any]:
        """A committed transaction: its fields, receipt and inclusion proofs."""
        found = self.core.store.find_tx(tx_hash)
        if found is None:
            raise NotFound(f"transaction {tx_hash.hex()} is not in the chain", what="transaction")
        height, index = found
        block = self.core.store.get_block(height)
        receipt = self.core.get_receipt_json(tx_hash)
        if block is None or receipt is None or index >= len(block.transactions):
            raise NotFound(f"transaction {tx_hash.hex()} is not in the chain", what="transaction")
        tx = block.transactions[index]
        proofs = self.get_tx_proof(tx_hash)
        return {
            "tx_hash": tx_hash.hex(),
            "kind": tx.kind,
            "sender": tx.sender.hex(),
            "nonce": tx.nonce,
            "tx": encode(tx).hex(),
            "receipt": receipt,
            "height": height,
            "index": index,
            "proof": proofs["proof"],
            "receipt_encoded": proofs["receipt"],
            "receipt_proof": proofs["receipt_proof"],
        }

    def get_state(self, key: bytes) -> dict[str, Any]:
        height, value, proof = self.core.ledger.get_state_proof(key)
        return {
            "height": height,
            "value": None if value is None else value.hex(),
            "proof": encode(proof).hex(),
        }

    def get_scan(self, prefix: bytes, after: bytes | None, limit: int) -> dict[str, Any]:
        """State entries (full keys) under ``prefix``, ascending, after the key ``after``.

        A page of at most ``limit`` (1..:data:`MAX_SCAN_PAGE`) entries with the height and
        head it was read at, so that a client can ask f+1 replicas and require equal
        pages; no proofs (a sparse Merkle tree cannot prove that nothing lies between two
        keys). A page seeks to ``after`` and reads ``limit`` + 1 keys, whatever the size
        of the prefix; ``resume_after`` (or ``None`` at the end) is where the next starts.
        """
        if not 1 <= limit <= MAX_SCAN_PAGE:
            raise BadParameter(f"limit must be in 1..{MAX_SCAN_PAGE}", parameter="limit")
        if after is not None and not after.startswith(prefix):
            raise BadParameter("'after' must start with 'prefix'", parameter="after")
        found = self.core.ledger.state.scan_page(prefix, after, limit + 1)
        resume = found[limit - 1][0].hex() if len(found) > limit else None
        entries = [[key.hex(), value.hex()] for key, value in found[:limit]]
        head = self.core.ledger.head
        return {
            "height": head.height,
            "head_hash": head.header_hash.hex(),
            "entries": entries,
            "resume_after": resume,
        }

    def get_receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        return self.core.get_receipt_json(tx_hash)

    # -- state helpers ----------------------------------------------------------------

    def _get(self, namespace: str, key: bytes) -> bytes | None:
        return self.core.ledger.state.get(compute_state_key(namespace, key))

    def _scan(self, namespace: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key after ``prefix``, value), ascending, at most :data:`MAX_SCAN` entries."""
        full = compute_state_key(namespace, prefix)
        skip = len(full)
        for count, (key, value) in enumerate(self.core.ledger.state.scan(full)):
            if count >= MAX_SCAN:
                return
            yield key[skip:], value

    # -- market -----------------------------------------------------------------------

    def _get_market_data(self, height: int) -> BlockMarketData | None:
        raw = self._get(MARKET_NS, market_keys.MARKET_DATA + market_keys.u64(height))
        if raw is None:
            return None
        try:
            return decode_as(BlockMarketData, raw)
        except EncodingError:
            return None

    def _get_latest_market_data(self) -> BlockMarketData | None:
        raw = self._get(MARKET_NS, market_keys.MARKET_DATA_LATEST)
        if raw is None:
            return None
        try:
            return decode_as(BlockMarketData, raw)
        except EncodingError:
            return None

    def get_order_book(self) -> dict[str, Any]:
        """The public book after the newest block: per open slot, price levels, no identities."""
        data = self._get_latest_market_data()
        if data is None:
            return {"height": None, "slots": []}
        return {
            "height": data.height,
            "timestamp_ms": data.timestamp_ms,
            "open_pieces": data.open_pieces,
            "slots": [
                {
                    "slot": d.slot,
                    "bids": [{"price": p, "quantity": q} for p, q in d.bids],
                    "asks": [{"price": p, "quantity": q} for p, q in d.asks],
                }
                for d in data.depth
            ],
        }

    def _iter_market_data(self, limit_blocks: int) -> Iterator[BlockMarketData]:
        head = self.core.ledger.height
        for height in range(head, max(head - limit_blocks, 0), -1):
            data = self._get_market_data(height)
            if data is not None:
                yield data

    def get_trades(self, limit: int = 50, slot: int | None = None) -> dict[str, Any]:
        """The newest public trades (slot, price, quantity, block), newest block first."""
        _check_page(limit)
        trades: list[dict[str, Any]] = []
        for data in self._iter_market_data(MAX_HEADERS):
            trades.extend(t for t in self._compute_trades(data) if slot in (None, t["slot"]))
            if len(trades) >= limit:
                break
        return {"trades": trades[:limit]}

    @staticmethod
    def _compute_trades(data: BlockMarketData) -> list[dict[str, Any]]:
        return [
            {
                "height": data.height,
                "timestamp_ms": data.timestamp_ms,
                "slot": t.slot,
                "price": t.price,
                "quantity": t.quantity,
            }
            for t in data.trades
        ]

    def get_slots(self, limit: int = 24) -> dict[str, Any]:
        """Price and volume per delivery slot over the recent blocks' trades, newest slot first."""
        _check_page(limit)
        per_slot: dict[int, dict[str, int]] = {}
        for data in self._iter_market_data(MAX_HEADERS):
            for t in data.trades:
                row = per_slot.setdefault(
                    t.slot,
                    {"trades": 0, "volume": 0, "value": 0, "low": t.price, "high": t.price},
                )
                row["trades"] += 1
                row["volume"] += t.quantity
                row["value"] += t.price * t.quantity
                row["low"] = min(row["low"], t.price)
                row["high"] = max(row["high"], t.price)
        slots = []
        for slot in sorted(per_slot, reverse=True)[:limit]:
            row = per_slot[slot]
            # the volume-weighted average price, rounded down (integers on the wire)
            slots.append({"slot": slot, **row, "vwap": row["value"] // max(row["volume"], 1)})
        return {"slots": slots}

    def get_market_trade(self, trade_id: bytes) -> dict[str, Any]:
        raw = self._get(MARKET_NS, market_keys.TRADE + trade_id)
        if raw is None:
            raise NotFound(f"no trade {trade_id.hex()}", what="trade")
        trade = decode_as(Trade, raw)
        answer: dict[str, Any] = compute_json(trade)
        answer["settled"] = self._get(MARKET_NS, market_keys.SETTLED + trade_id) is not None
        return answer

    def get_orders_of(self, pseudonym: bytes, limit: int = MAX_PAGE) -> dict[str, Any]:
        """Orders signed by ``pseudonym`` with their fill status (the household's own view)."""
        _check_page(limit)
        orders = []
        for order_id, raw in self._scan(MARKET_NS, market_keys.SIGNED_ORDER):
            try:
                signed = decode_as(SignedOrder, raw)
            except EncodingError:
                continue
            if signed.order.pseudonym != pseudonym:
                continue
            row: dict[str, Any] = {"order_id": order_id.hex(), **compute_json(signed.order)}
            status_raw = self._get(MARKET_NS, market_keys.ORDER_STATUS + order_id)
            if status_raw is not None:
                status = decode_as(OrderStatus, status_raw)
                row.update(
                    {
                        "filled": status.filled,
                        "cancelled": status.cancelled,
                        "open": status.submitted - status.filled - status.cancelled,
                    }
                )
            orders.append(row)
            if len(orders) >= limit:
                break
        return {"orders": orders}

    # -- payments ---------------------------------------------------------------------

    def get_bill(self, account: str, period: int) -> dict[str, Any]:
        """``account``'s bill and running totals for ``period`` (bill ``None`` while open)."""
        if not 0 <= period < 2**63:
            raise BadParameter("period must be in 0..2**63-1", parameter="period")
        if not account or len(account) > 128 or not account.isprintable():
            raise BadParameter("account must be 1..128 printable characters", parameter="account")

        def totals(table: str) -> dict[str, int]:
            raw = self._get(PAYMENTS_NS, compute_period_key(table, period, account))
            if raw is None:
                return {"count": 0, "value": 0}
            t = decode_as(AccountTotals, raw)
            return {"count": t.count, "value": int(t.value)}

        raw_bill = self._get(PAYMENTS_NS, compute_period_key("bill", period, account))
        bill = None if raw_bill is None else compute_json(decode_as(Bill, raw_bill))
        return {
            "account": account,
            "period": period,
            "withdrawn": totals("wd"),
            "deposited": totals("dep"),
            "bill": bill,
        }

    def get_credit(self, key: bytes) -> dict[str, Any]:
        raw = self._get(PAYMENTS_NS, b"credit/" + key)
        return {"key": key.hex(), "open_credit": None if raw is None else raw.hex()}

    # -- identity ---------------------------------------------------------------------

    def get_pseudonym(self, key: bytes) -> dict[str, Any]:
        raw = self._get(IDENTITY_NS, b"pc/" + key)
        if raw is None:
            raise NotFound(f"no pseudonym certificate for key {key.hex()}", what="pseudonym")
        signed = decode_as(SignedPseudonymCertificate, raw)
        revoked = self._get(IDENTITY_NS, b"revp/" + key)
        return {
            "certificate": compute_json(signed.certificate),
            "signature": signed.signature.hex(),
            "revoked": revoked is not None,
            "revoked_by": None if revoked is None else revoked.hex(),
        }

    def get_revocations(self, limit: int = MAX_PAGE) -> dict[str, Any]:
        """Revoked member certificates (by hash) and revoked pseudonyms."""
        _check_page(limit)
        members = [k.hex() for k, _ in self._scan(IDENTITY_NS, b"rev/")][:limit]
        pseudonyms = [
            {"pseudonym_key": k.hex(), "evidence_id": v.hex()}
            for k, v in self._scan(IDENTITY_NS, b"revp/")
        ][:limit]
        return {"certificates": members, "pseudonyms": pseudonyms}

    def get_traces(self, limit: int = MAX_PAGE) -> dict[str, Any]:
        """Tracing records: which pseudonym was opened, and whether someone was blamed."""
        _check_page(limit)
        traces = []
        for _, raw in self._scan(IDENTITY_NS, b"tr/"):
            try:
                traces.append(compute_json(decode_as(TraceResult, raw)))
            except EncodingError:
                continue
            if len(traces) >= limit:
                break
        return {"traces": traces}

    def get_identity_events(self, limit: int = 50) -> dict[str, Any]:
        """The newest identity transactions (batches, revocations, evidence, traces) first."""
        _check_page(limit)
        events: list[dict[str, Any]] = []
        store = self.core.store
        head = self.core.ledger.height
        for height in range(head, max(head - MAX_HEADERS, 0), -1):
            block = store.get_block(height)
            receipts = store.get_receipts(height)
            if block is None or receipts is None:
                break
            for tx, receipt in zip(block.transactions, receipts, strict=False):
                if tx.kind.startswith(IDENTITY_NS + "."):
                    events.append(
                        {
                            "height": height,
                            "timestamp_ms": block.header.timestamp_ms,
                            "kind": tx.kind,
                            "tx_hash": receipt.tx_hash.hex(),
                            "ok": receipt.ok,
                            "reason": receipt.reason,
                        }
                    )
            if len(events) >= limit:
                break
        return {"events": events[:limit]}
