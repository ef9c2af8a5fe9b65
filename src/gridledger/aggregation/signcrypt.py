"""A meter signcrypts one report per period to m receivers (seed 002 §IV.C, fixed).

::

    d random, D = d·P1
    for each receiver R_j of the schema (index J = j):
        Z_j = d·Y_Rj                                   ECDH in G1: no pairing, no escrow
        K_j = H4(Z_j ‖ D ‖ ID_Rj ‖ J)
        ω_j = ChaCha20-Poly1305(K_j, M_j, aad = meter ‖ period ‖ T_t ‖ ID_Rj ‖ J ‖ D)
    w random, W = w·P1
    β  = H2(ω ‖ ID_S ‖ Y_S ‖ α ‖ Y_Pub1 ‖ D ‖ W ‖ T_t ‖ period ‖ receivers)   W and T_t signed
    s  = w + β·(x_S + h)   mod q                                             a scalar, 32 bytes
    report = ⟨ID_S, period, T_t, D, W, s, (ID_Rj, ω_j)_j⟩

The signature (W, s) is a Schnorr signature under the certificateless
signing key PK = Y_S + K = (x_S + h)·P1 (:func:`.keys.compute_signing_key`);
it verifies iff s·P1 = W + β·PK. Seed 002 prints T = (β·x_S + h + w)·Q in
the pairing group, which costs its verifier a multi-scalar multiplication in
G2; revealing the same kind of exponent as a scalar makes a batch one G1
multi-scalar multiplication with no pairing (``docs/protocols/aggregation.md``
gives the soundness argument and the measurements). Deviations from the
printed scheme (spec §6.11): β hashes W and the timestamp (the printed β does
not, which makes the signature universally forgeable), one report per meter
per period is enforced on chain, the KEM is ECDH so the control center's
master key opens nothing, and h is multiplied by β (printed, h is added
alone, so W can cancel it and x_S alone suffices to sign). Each K_j is used
once (d is fresh), so a zero nonce is safe; w must be fresh too (two
signatures with one w give away a). :func:`signcrypt_with` is the
deterministic twin taking d and w.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from gridledger.aggregation.curve import (
    P1,
    G1Point,
    Scalar,
    compute_hash_to_scalar,
    encode_scalar,
    get_random_scalar,
)
from gridledger.aggregation.errors import SigncryptionError
from gridledger.aggregation.keys import ParticipantKeys, check_identity
from gridledger.aggregation.schema import ReceiverSchema, compute_projection
from gridledger.crypto.encoding import encode, wire_type
from gridledger.crypto.hashing import hash_bytes, register_tag
from gridledger.crypto.rng import Rng

H2_TAG = register_tag("gridledger/aggregation/h2-report/2")
H4_TAG = register_tag("gridledger/aggregation/h4-ecdh-kem/1")
REPORT_TAG = register_tag("gridledger/aggregation/report/1")
NONCE = bytes(12)
MAX_PERIOD = 2**48
MAX_TIMESTAMP_MS = 2**62


@wire_type("aggregation.part/1")
@dataclass(frozen=True)
class ReceiverPart:
    """ω_j: the ciphertext of receiver ``receiver_id``'s dimensions."""

    receiver_id: str
    ciphertext: bytes


@wire_type("aggregation.report/2")
@dataclass(frozen=True)
class Report:
    """δ = ⟨ID_S, period, T_t, D, W, s, ω⟩ (D, W compressed G1 points; s 32 bytes, below q)."""

    meter_id: str
    period: int
    timestamp_ms: int
    d_point: bytes
    w_point: bytes
    s_scalar: bytes
    parts: tuple[ReceiverPart, ...]

    @property
    def report_hash(self) -> bytes:
        return hash_bytes(REPORT_TAG, encode(self))


@wire_type("aggregation.plaintext/1")
@dataclass(frozen=True)
class PartPlaintext:
    """M_j: the receiver's dimensions, in the schema's order."""

    values: tuple[int, ...]


@wire_type("aggregation.part-header/1")
@dataclass(frozen=True)
class PartHeader:
    """The associated data of ω_j: a ciphertext cannot be moved to another report or receiver."""

    meter_id: str
    period: int
    timestamp_ms: int
    receiver_id: str
    index: int
    d_point: bytes


@wire_type("aggregation.beta-input/1")
@dataclass(frozen=True)
class BetaInput:
    """What β hashes: everything in the report except s, plus the meter's keys and Y_Pub1."""

    meter_id: str
    y_s: bytes
    alpha: bytes
    y_pub1: bytes
    period: int
    timestamp_ms: int
    d_point: bytes
    w_point: bytes
    parts: tuple[ReceiverPart, ...]


def compute_beta(report: Report, y_s: bytes, alpha: bytes, y_pub1: bytes) -> Scalar:
    """β = H2(ω ‖ ID_S ‖ Y_S ‖ α ‖ Y_Pub1 ‖ D ‖ W ‖ T_t ‖ period ‖ receivers)."""
    data = BetaInput(
        report.meter_id,
        y_s,
        alpha,
        y_pub1,
        report.period,
        report.timestamp_ms,
        report.d_point,
        report.w_point,
        report.parts,
    )
    return compute_hash_to_scalar(H2_TAG, encode(data))


def compute_kem_key(shared: G1Point, d_point: bytes, receiver_id: str, index: int) -> bytes:
    """K_j = H4(Z_j ‖ D ‖ ID_Rj ‖ J): 32 bytes for ChaCha20-Poly1305."""
    return hash_bytes(H4_TAG, encode([shared.to_compressed_bytes(), d_point, receiver_id, index]))


def signcrypt(
    meter: ParticipantKeys,
    y_pub1: bytes,
    schema: ReceiverSchema,
    receiver_keys: Mapping[str, G1Point],
    reading: Mapping[str, int],
    period: int,
    timestamp_ms: int,
    rng: Rng,
) -> Report:
    """The meter's report for ``period``: each receiver's dimensions to its key, signed."""
    return signcrypt_with(
        meter,
        y_pub1,
        schema,
        receiver_keys,
        reading,
        period,
        timestamp_ms,
        get_random_scalar(rng),
        get_random_scalar(rng),
    )


def signcrypt_with(
    meter: ParticipantKeys,
    y_pub1: bytes,
    schema: ReceiverSchema,
    receiver_keys: Mapping[str, G1Point],
    reading: Mapping[str, int],
    period: int,
    timestamp_ms: int,
    d: Scalar,
    w: Scalar,
) -> Report:
    """:func:`signcrypt` with the ephemeral scalars d and w given (tests, vectors)."""
    check_identity(meter.identity)
    if not 0 <= period < MAX_PERIOD or not 0 <= timestamp_ms < MAX_TIMESTAMP_MS:
        raise SigncryptionError("period or timestamp out of range")
    d_point = (P1 * d).to_compressed_bytes()
    parts = compute_parts(
        meter.identity, schema, receiver_keys, reading, period, timestamp_ms, d, d_point
    )
    unsigned = Report(
        meter.identity, period, timestamp_ms, d_point, (P1 * w).to_compressed_bytes(), b"", parts
    )
    beta = compute_beta(
        unsigned, meter.y.to_compressed_bytes(), meter.alpha.to_compressed_bytes(), y_pub1
    )
    s_scalar = w + beta * meter.signing_secret
    return Report(
        unsigned.meter_id,
        period,
        timestamp_ms,
        d_point,
        unsigned.w_point,
        encode_scalar(s_scalar),
        parts,
    )


def compute_parts(
    meter_id: str,
    schema: ReceiverSchema,
    receiver_keys: Mapping[str, G1Point],
    reading: Mapping[str, int],
    period: int,
    timestamp_ms: int,
    d: Scalar,
    d_point: bytes,
) -> tuple[ReceiverPart, ...]:
    """ω: one AEAD ciphertext per receiver of the schema, in schema order."""
    parts = []
    for index, entry in enumerate(schema.entries):
        key = receiver_keys.get(entry.receiver_id)
        if key is None:
            raise SigncryptionError(f"no public key for receiver {entry.receiver_id!r}")
        values = compute_projection(reading, entry.dimensions)
        k = compute_kem_key(key * d, d_point, entry.receiver_id, index)
        header = PartHeader(meter_id, period, timestamp_ms, entry.receiver_id, index, d_point)
        ct = ChaCha20Poly1305(k).encrypt(NONCE, encode(PartPlaintext(values)), encode(header))
        parts.append(ReceiverPart(entry.receiver_id, ct))
    return tuple(parts)


def get_receiver_ids(report: Report) -> Sequence[str]:
    """The receivers a report is addressed to, in order."""
    return [p.receiver_id for p in report.parts]
