"""Receivers recover their dimensions (seed 002 §IV.E, with the ECDH KEM).

A receiver R_j reads, per report, the entry the contract recorded in its
inbox (D, ω_j and the header fields), computes Z_j = x_Rj·D = d·Y_Rj, derives
K_j and opens ω_j. One scalar multiplication in G1 per report (the paper's
pairing KEM needs one pairing per report, not the constant 3C_p of its Table 2).
Any failure, whatever its cause, is the same :class:`DecryptionFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from gridledger.aggregation.curve import decode_g1
from gridledger.aggregation.errors import AggregationError, DecryptionFailed
from gridledger.aggregation.keys import ParticipantKeys
from gridledger.aggregation.schema import ReceiverSchema
from gridledger.aggregation.signcrypt import (
    NONCE,
    PartHeader,
    PartPlaintext,
    Report,
    compute_kem_key,
)
from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.errors import CryptoError


@wire_type("aggregation.inbox-entry/1")
@dataclass(frozen=True)
class InboxEntry:
    """What the contract records for one receiver of one accepted report."""

    meter_id: str
    period: int
    timestamp_ms: int
    index: int
    d_point: bytes
    ciphertext: bytes
    report_hash: bytes


def get_inbox_entry(report: Report, receiver_id: str) -> InboxEntry:
    """The entry of ``receiver_id`` in ``report`` (raise :class:`DecryptionFailed` if none)."""
    for index, part in enumerate(report.parts):
        if part.receiver_id == receiver_id:
            return InboxEntry(
                report.meter_id,
                report.period,
                report.timestamp_ms,
                index,
                report.d_point,
                part.ciphertext,
                report.report_hash,
            )
    raise DecryptionFailed


def decrypt_entry(
    receiver: ParticipantKeys, schema: ReceiverSchema, entry: InboxEntry
) -> dict[str, int]:
    """The receiver's dimensions of one report, by name."""
    try:
        dims = schema.get_dimensions(receiver.identity)
        d_point = decode_g1(entry.d_point)
        key = compute_kem_key(
            d_point * receiver.secret, entry.d_point, receiver.identity, entry.index
        )
        header = PartHeader(
            entry.meter_id,
            entry.period,
            entry.timestamp_ms,
            receiver.identity,
            entry.index,
            entry.d_point,
        )
        raw = ChaCha20Poly1305(key).decrypt(NONCE, entry.ciphertext, encode(header))
        values = decode_as(PartPlaintext, raw).values
    except (InvalidTag, AggregationError, CryptoError, ValueError):
        raise DecryptionFailed from None
    if len(values) != len(dims):
        raise DecryptionFailed
    return dict(zip(dims, values, strict=True))


def decrypt_report(
    receiver: ParticipantKeys, schema: ReceiverSchema, report: Report
) -> dict[str, int]:
    """:func:`decrypt_entry` straight from a report (before or without the chain)."""
    return decrypt_entry(receiver, schema, get_inbox_entry(report, receiver.identity))
