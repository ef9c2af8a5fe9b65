"""Seed 002's equations as printed, ported to BLS12-381: for measuring cost only.

Nothing in gridledger accepts a report with this module (the contract never
imports it). It exists so the benchmark can time exactly what the paper
counts, and so a test can show that the printed signature is universally
forgeable (spec §6.11.2) while the real one (:mod:`.verify`) is not. Its
reports are :class:`PaperReport` (T in G2), a type the contract cannot decode::

    β = H2(ω ‖ ID_S ‖ Y_S ‖ α ‖ Y_Pub ‖ D)      no W, no timestamp
    Q = H3(Y_Pub)                               one point for everybody, forever
    T = (β·x_S + h + w)·Q,  W = w·P1
    U_j = e(d·Y_Rj, Y_Pub2),  K_j = H4(U_j, D)    pairing KEM: one pairing per receiver
    accept a batch iff e(P1, ΣT_i) = e(Σ(β_i·Y_Si + α_i + η_i·Y_Pub) + ΣW_i, Q)

On a Type-3 curve the pairing KEM loses the paper's key escrow (the CC would
need e(P1, P2)^{d·x_R} from D and Y_R alone); on the paper's symmetric curve
U_j = e(D, Y_Rj)^x, so the CC reads every receiver's data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from gridledger.aggregation.curve import (
    GT,
    P1,
    G1Point,
    G2Point,
    Scalar,
    compute_gt_bytes,
    compute_hash_to_g2,
    compute_hash_to_scalar,
    decode_g1,
    decode_g2,
    is_pairing_product_one,
)
from gridledger.aggregation.keys import ParticipantKeys, compute_eta
from gridledger.aggregation.schema import ReceiverSchema, compute_projection
from gridledger.aggregation.signcrypt import NONCE, PartPlaintext, ReceiverPart
from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.hashing import hash_bytes, register_tag

PAPER_H2_TAG = register_tag("gridledger/aggregation/paper-h2/1")
PAPER_H4_TAG = register_tag("gridledger/aggregation/paper-h4/1")
PAPER_H3_DST = b"GRIDLEDGER-AGGREGATION-V01-PAPER-H3-BLS12381G2_XMD:SHA-256_SSWU_RO_"


@wire_type("aggregation.paper-report/1")
@dataclass(frozen=True)
class PaperReport:
    """The printed δ = ⟨ID_S, T_t, D, W, T, ω⟩ (D, W in G1, T in G2, compressed)."""

    meter_id: str
    timestamp_ms: int
    d_point: bytes
    w_point: bytes
    t_point: bytes
    parts: tuple[ReceiverPart, ...]


@wire_type("aggregation.paper-beta-input/1")
@dataclass(frozen=True)
class PaperBetaInput:
    """The printed β's input: ω ‖ ID_S ‖ Y_S ‖ α ‖ Y_Pub ‖ D (no W, no timestamp)."""

    parts: tuple[ReceiverPart, ...]
    meter_id: str
    y_s: bytes
    alpha: bytes
    y_pub1: bytes
    d_point: bytes


@dataclass(frozen=True)
class PaperKey:
    """A meter's public key as the paper's verifier uses it."""

    meter_id: str
    y_s: bytes
    alpha: bytes


def compute_paper_beta(report: PaperReport, key: PaperKey, y_pub1: bytes) -> Scalar:
    """The printed β = H2(ω ‖ ID_S ‖ Y_S ‖ α ‖ Y_Pub ‖ D)."""
    data = PaperBetaInput(report.parts, key.meter_id, key.y_s, key.alpha, y_pub1, report.d_point)
    return compute_hash_to_scalar(PAPER_H2_TAG, encode(data))


def compute_paper_base(y_pub1: bytes) -> G2Point:
    """The printed Q = H3(Y_Pub), one fixed point."""
    return compute_hash_to_g2(PAPER_H3_DST, y_pub1)


def compute_paper_kem_key(u: GT, d_point: bytes) -> bytes:
    """K_j = H4(U_j, D)."""
    return hash_bytes(PAPER_H4_TAG, compute_gt_bytes(u) + d_point)


def signcrypt_paper(
    meter: ParticipantKeys,
    y_pub1: bytes,
    y_pub2: G2Point,
    schema: ReceiverSchema,
    receiver_keys: Mapping[str, G1Point],
    reading: Mapping[str, int],
    timestamp_ms: int,
    d: Scalar,
    w: Scalar,
) -> PaperReport:
    """The printed signcryption: m pairings for the KEM, 4 multiplications, 1 hash-to-G2."""
    d_point = (P1 * d).to_compressed_bytes()
    d_y_pub2 = y_pub2 * d
    parts = []
    for entry in schema.entries:
        u = GT.pairing(receiver_keys[entry.receiver_id], d_y_pub2)
        key = compute_paper_kem_key(u, d_point)
        plain = encode(PartPlaintext(compute_projection(reading, entry.dimensions)))
        parts.append(
            ReceiverPart(entry.receiver_id, ChaCha20Poly1305(key).encrypt(NONCE, plain, b""))
        )
    unsigned = PaperReport(
        meter.identity, timestamp_ms, d_point, (P1 * w).to_compressed_bytes(), b"", tuple(parts)
    )
    pk = PaperKey(meter.identity, meter.y.to_compressed_bytes(), meter.alpha.to_compressed_bytes())
    beta = compute_paper_beta(unsigned, pk, y_pub1)
    t_point = compute_paper_base(y_pub1) * (beta * meter.secret + meter.h + w)
    return PaperReport(
        meter.identity,
        timestamp_ms,
        d_point,
        unsigned.w_point,
        t_point.to_compressed_bytes(),
        unsigned.parts,
    )


def decrypt_paper(
    receiver: ParticipantKeys, y_pub2: G2Point, schema: ReceiverSchema, report: PaperReport
) -> tuple[int, ...]:
    """U = e(x_R·D, Y_Pub2): one pairing per report (Table 2 counts none per report)."""
    index = schema.get_index(receiver.identity)
    u = GT.pairing(decode_g1(report.d_point) * receiver.secret, y_pub2)
    key = compute_paper_kem_key(u, report.d_point)
    raw = ChaCha20Poly1305(key).decrypt(NONCE, report.parts[index].ciphertext, b"")
    return decode_as(PartPlaintext, raw).values


def is_valid_paper_aggregate(
    reports: Sequence[PaperReport], keys: Mapping[str, PaperKey], y_pub1: bytes
) -> bool:
    """Eq. (2): e(P1, ΣT_i) = e(Σ(β_i·Y_Si + α_i + η_i·Y_Pub) + ΣW_i, Q)."""
    y_pub = decode_g1(y_pub1)
    x = G1Point.identity()
    t = G2Point.identity()
    eta_sum = Scalar(0)
    for report in reports:
        key = keys[report.meter_id]
        beta = compute_paper_beta(report, key, y_pub1)
        x = x + decode_g1(key.y_s) * beta + decode_g1(key.alpha) + decode_g1(report.w_point)
        eta_sum = eta_sum + compute_eta(key.meter_id, key.alpha)
        t = t + decode_g2(report.t_point)
    x = x + y_pub * eta_sum
    return is_pairing_product_one([x, -P1], [compute_paper_base(y_pub1), t])
