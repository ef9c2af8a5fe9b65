"""Accounting nodes: check a batch of reports with one G1 multi-scalar multiplication.

One report is valid iff ``s·P1 = W + β·PK`` with PK = Y_S + K the meter's
registered signing key (:mod:`.signcrypt`). Seed 002 checks a batch by
summing the reports (eq. (2)); an unweighted sum is sound only if every
report is, because an insider can choose its own W to cancel the error of a
report it forged for another meter (:func:`is_valid_plain_sum` exists to show
it). So a batch is checked with weights z_i that nobody submitting can
choose, 128 bits each from the hash of the whole batch (every report and its
β, so s, W and the keys are fixed before the weights are known)::

    Σ_i z_i·W_i + Σ_i (z_i·β_i)·PK_i  =  (Σ_i z_i·s_i)·P1

one MSM of 2n points (n with 128-bit and n with 255-bit scalars), one G1
multiplication, no pairing, whatever the periods in the batch. If a batch
holds an invalid report j, the check passes only if Σ z_i·e_i ≡ 0 (mod q) for
the errors e_i = s_i − log(W_i + β_i·PK_i), e_j ≠ 0: for each batch hash that
is one value of z_j in 2^127, so an attacker who tries Q batches wins with
probability at most Q·2^-127 (the small-exponents test of Bellare, Garay and
Rabin, with Fiat-Shamir weights). If the batch fails, :func:`find_invalid`
bisects to name every bad report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gridledger.aggregation.curve import (
    P1,
    G1Point,
    Scalar,
    compute_msm_g1,
    decode_g1,
    decode_registered_g1,
    decode_scalar,
    encode_scalar,
)
from gridledger.aggregation.errors import InvalidEncoding
from gridledger.aggregation.signcrypt import Report, compute_beta
from gridledger.crypto.hashing import hash_bytes, register_tag

WEIGHT_TAG = register_tag("gridledger/aggregation/batch-weights/2")
WEIGHT_BITS = 128


@dataclass(frozen=True)
class PreparedReport:
    """A report with its points and scalar decoded and checked and its β computed."""

    report_hash: bytes
    period: int
    signing_key: G1Point
    w_point: G1Point
    s_scalar: Scalar
    beta: Scalar


def prepare_report(
    report: Report, y_s: bytes, alpha: bytes, signing_key: bytes, y_pub1: bytes
) -> PreparedReport:
    """Decode D, W (subgroup-checked) and s (below q), compute β; raise :class:`InvalidEncoding`.

    ``signing_key`` is the meter's registered PK = Y_S + K (checked at
    registration): its decoding is remembered.
    """
    decode_g1(report.d_point)
    w = decode_g1(report.w_point)
    s = decode_scalar(report.s_scalar)
    pk = decode_registered_g1(signing_key)
    beta = compute_beta(report, y_s, alpha, y_pub1)
    return PreparedReport(report.report_hash, report.period, pk, w, s, beta)


def is_valid_prepared(prepared: PreparedReport) -> bool:
    """One report alone: s·P1 = W + β·PK (two G1 multiplications)."""
    return P1 * prepared.s_scalar == prepared.w_point + prepared.signing_key * prepared.beta


def compute_weights(batch: Sequence[PreparedReport], bits: int = WEIGHT_BITS) -> list[Scalar]:
    """z_i: ``bits`` bits each (odd, so nonzero) from the hash of the whole batch.

    Per report the hash takes the report's hash (W, s and everything signed),
    β (which binds the registered keys) and s again (so a prepared report
    whose s was changed after decoding gets other weights too).
    """
    if not 8 <= bits <= 248 or bits % 8:
        raise InvalidEncoding("weights are 8..248 bits, whole bytes")
    digest = hash_bytes(
        WEIGHT_TAG,
        b"".join(p.report_hash + encode_scalar(p.beta) + encode_scalar(p.s_scalar) for p in batch),
    )
    weights = []
    for i in range(len(batch)):
        raw = bytearray(hash_bytes(WEIGHT_TAG, digest + i.to_bytes(4, "big"))[: bits // 8])
        raw[-1] |= 1
        weights.append(Scalar.from_be_bytes_mod_order(bytes(raw)))  # below 2^248 < q: exact
    return weights


def is_valid_batch(batch: Sequence[PreparedReport], weight_bits: int = WEIGHT_BITS) -> bool:
    """All reports valid (except with probability Q·2^-(weight_bits - 1)): one weighted check.

    The contract uses the 128-bit default. Shorter weights (the benchmark's 64)
    are a little cheaper but let a batch submitter grind the batch hash in 2^63 tries.
    """
    if not batch:
        return True
    if len(batch) == 1:
        return is_valid_prepared(batch[0])
    weights = compute_weights(batch, weight_bits)
    s_sum = Scalar(0)
    for z, p in zip(weights, batch, strict=True):
        s_sum = s_sum + z * p.s_scalar
    points = [p.w_point for p in batch] + [p.signing_key for p in batch]
    scalars = weights + [z * p.beta for z, p in zip(weights, batch, strict=True)]
    return compute_msm_g1(points, scalars) == P1 * s_sum


# Bisection checks sub-batches whose sizes add up to about 3n to find one bad report
# in n; past BISECTION_BUDGET·n (several bad ones, or a batch of forgeries, which cost
# a sender nothing to make), the reports left are checked one by one, so a failed
# batch never costs more than about twice n single checks.
BISECTION_BUDGET = 4


def find_invalid(batch: Sequence[PreparedReport]) -> list[int]:
    """Indices of the invalid reports: bisection (O(k log n) batch checks for k bad),
    then single checks once bisection has spent its budget."""
    bad: list[int] = []
    stack = [(0, len(batch))]
    budget = BISECTION_BUDGET * len(batch)
    while stack:
        lo, hi = stack.pop()
        if hi <= lo:
            continue
        if budget <= 0 or hi - lo == 1:
            bad.extend(i for i in range(lo, hi) if not is_valid_prepared(batch[i]))
            continue
        budget -= hi - lo
        if is_valid_batch(batch[lo:hi]):
            continue
        mid = (lo + hi) // 2
        stack.extend([(mid, hi), (lo, mid)])
    return sorted(bad)


def is_valid_plain_sum(batch: Sequence[PreparedReport]) -> bool:
    """Seed 002's eq. (2) with the fixed β, unweighted: NOT sound (an insider can cancel).

    (Σ s_i)·P1 = Σ W_i + Σ β_i·PK_i. Kept to measure what the paper counts and
    to show the cancellation in the tests; accounting nodes use :func:`is_valid_batch`.
    """
    s_sum = Scalar(0)
    w_sum = G1Point.identity()
    for p in batch:
        s_sum = s_sum + p.s_scalar
        w_sum = w_sum + p.w_point
    x = compute_msm_g1([p.signing_key for p in batch], [p.beta for p in batch])
    return x + w_sum == P1 * s_sum
