"""The read side of a node, in one place: what the JSON-lines API, the HTTP API and
the CLI all answer from, so they can never disagree.

Every method takes plain parameters, reads the node core's ledger and store,
and returns JSON-ready values (binary as lowercase hex of the canonical
encoding); a bad parameter or a missing block is a :class:`ServiceError` with a
reason a client can show.
"""

from __future__ import annotations

from typing import Any

from gridledger.crypto.encoding import encode
from gridledger.errors import NodeError
from gridledger.ledger.errors import LedgerError
from gridledger.node.core import NodeCore

MAX_HEADERS = 1_000


class ServiceError(NodeError):
    """A read request named something that does not exist or is out of range."""


class NodeService:
    """Reads over one node core."""

    def __init__(self, core: NodeCore) -> None:
        self.core = core

    def get_block(self, height: int) -> dict[str, Any]:
        ledger = self.core.ledger
        if not 0 <= height <= ledger.height:
            raise ServiceError(f"no block at height {height} (head is {ledger.height})")
        try:
            block = ledger.get_block(height)
            receipts = ledger.get_receipts(height)
        except LedgerError as exc:
            raise ServiceError(exc.reason) from None
        cert = ledger.store.get_certificate(height)
        return {
            "height": height,
            "block": encode(block).hex(),
            "header_hash": block.header.header_hash.hex(),
            "certificate": None if cert is None else encode(cert).hex(),
            "receipts": [encode(r).hex() for r in receipts],
        }

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
            raise ServiceError(f"transaction {tx_hash.hex()} is not in the chain")
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

    def get_state(self, key: bytes) -> dict[str, Any]:
        height, value, proof = self.core.ledger.get_state_proof(key)
        return {
            "height": height,
            "value": None if value is None else value.hex(),
            "proof": encode(proof).hex(),
        }

    def get_receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        return self.core.get_receipt_json(tx_hash)
