"""Accounting nodes: check a batch of reports with 2 pairings and one MSM per period.

One report is valid iff ``e(β·Y_S + K + W, Q_p) = e(P1, T)`` with K = α + η·Y_Pub1.
Seed 002 checks a batch by summing the reports (eq. (2)): that sum is sound
only if every report is, because an insider can choose its own W to cancel
the error of a forged report for another meter (:func:`is_valid_plain_sum`
exists to show it). So a batch is checked with weights r_i that nobody
submitting can choose (128 bits from the hash of the whole batch, so grinding
costs 2^128)::

    e(Σ_p X_p, ...) :  Π_p e(X_p, Q_p) · e(−P1, Σ_i r_i·T_i) = 1
    X_p = Σ_{i in p} (r_i·β_i)·Y_Si + r_i·(K_i + W_i)        one G1 MSM per period

that is one G2 MSM, one G1 MSM per period in the batch and (periods + 1)
pairings sharing one final exponentiation. If the batch fails,
:func:`find_invalid` bisects to name every bad report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from gridledger.aggregation.curve import (
    P1,
    G1Point,
    G2Point,
    Scalar,
    compute_msm_g1,
    compute_msm_g2,
    decode_g1,
    decode_g2,
    decode_registered_g1,
    is_pairing_product_one,
)
from gridledger.aggregation.errors import InvalidEncoding
from gridledger.aggregation.signcrypt import Report, compute_beta, compute_period_base
from gridledger.crypto.hashing import hash_bytes, register_tag

WEIGHT_TAG = register_tag("gridledger/aggregation/batch-weights/1")
WEIGHT_BITS = 128


@dataclass(frozen=True)
class PreparedReport:
    """A report with its points decoded and checked and its β computed."""

    report_hash: bytes
    period: int
    y_s: G1Point
    k_w: G1Point
    t_point: G2Point
    beta: Scalar


@lru_cache(maxsize=256)
def get_period_base(y_pub1: bytes, period: int) -> G2Point:
    """Q_p, remembered (a pure function of its arguments)."""
    return compute_period_base(y_pub1, period)


def prepare_report(
    report: Report, y_s: bytes, alpha: bytes, k_point: G1Point, y_pub1: bytes
) -> PreparedReport:
    """Decode D, W, T (subgroup-checked) and compute β; raise :class:`InvalidEncoding`.

    ``y_s`` is a registered key (checked at registration): its decoding is remembered.
    """
    decode_g1(report.d_point)
    w = decode_g1(report.w_point)
    t = decode_g2(report.t_point)
    y = decode_registered_g1(y_s)
    beta = compute_beta(report, y_s, alpha, y_pub1)
    return PreparedReport(report.report_hash, report.period, y, k_point + w, t, beta)


def is_valid_prepared(prepared: PreparedReport, y_pub1: bytes) -> bool:
    """One report alone: e(β·Y_S + K + W, Q_p) · e(−P1, T) = 1 (2 pairings)."""
    x = prepared.y_s * prepared.beta + prepared.k_w
    q = get_period_base(y_pub1, prepared.period)
    return is_pairing_product_one([x, -P1], [q, prepared.t_point])


def compute_weights(batch: Sequence[PreparedReport], bits: int = WEIGHT_BITS) -> list[Scalar]:
    """r_i: ``bits`` bits each from the hash of every report in the batch (nonzero, odd)."""
    if not 8 <= bits <= 256 or bits % 8:
        raise InvalidEncoding("weights are 8..256 bits, whole bytes")
    digest = hash_bytes(WEIGHT_TAG, b"".join(p.report_hash for p in batch))
    weights = []
    for i in range(len(batch)):
        raw = hash_bytes(WEIGHT_TAG, digest + i.to_bytes(4, "big"))
        weights.append(Scalar(int.from_bytes(raw[: bits // 8], "big") | 1))
    return weights


def is_valid_batch(
    batch: Sequence[PreparedReport], y_pub1: bytes, weight_bits: int = WEIGHT_BITS
) -> bool:
    """All reports valid (except with probability 2^-weight_bits): one weighted check.

    The contract uses the 128-bit default; shorter weights (the benchmark's 64)
    are cheaper but let a batch submitter grind the batch hash in 2^64 tries.
    """
    if not batch:
        return True
    if len(batch) == 1:
        return is_valid_prepared(batch[0], y_pub1)
    weights = compute_weights(batch, weight_bits)
    t_sum = compute_msm_g2([p.t_point for p in batch], weights)
    g1s: list[G1Point] = []
    g2s: list[G2Point] = []
    for period in sorted({p.period for p in batch}):
        idx = [i for i, p in enumerate(batch) if p.period == period]
        points = [batch[i].y_s for i in idx] + [batch[i].k_w for i in idx]
        scalars = [weights[i] * batch[i].beta for i in idx] + [weights[i] for i in idx]
        g1s.append(compute_msm_g1(points, scalars))
        g2s.append(get_period_base(y_pub1, period))
    return is_pairing_product_one([*g1s, -P1], [*g2s, t_sum])


def find_invalid(batch: Sequence[PreparedReport], y_pub1: bytes) -> list[int]:
    """Indices of the invalid reports, by bisection (O(k log n) batch checks for k bad)."""
    bad: list[int] = []
    stack = [(0, len(batch))]
    while stack:
        lo, hi = stack.pop()
        if hi <= lo or is_valid_batch(batch[lo:hi], y_pub1):
            continue
        if hi - lo == 1:
            bad.append(lo)
            continue
        mid = (lo + hi) // 2
        stack.extend([(mid, hi), (lo, mid)])
    return sorted(bad)


def is_valid_plain_sum(batch: Sequence[PreparedReport], y_pub1: bytes) -> bool:
    """Seed 002's eq. (2) with the fixed β, unweighted: NOT sound (an insider can cancel).

    Kept to measure what the paper counts and to show the cancellation in the
    tests; accounting nodes use :func:`is_valid_batch`.
    """
    periods = {p.period for p in batch}
    if len(periods) != 1:
        raise InvalidEncoding("the plain sum needs one period")
    x = compute_msm_g1([p.y_s for p in batch], [p.beta for p in batch])
    for p in batch:
        x = x + p.k_w
    t = G2Point.identity()
    for p in batch:
        t = t + p.t_point
    return is_pairing_product_one([x, -P1], [get_period_base(y_pub1, periods.pop()), t])
