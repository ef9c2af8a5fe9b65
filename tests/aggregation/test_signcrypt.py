"""Signcryption and accounting-node verification: one report, batches, bisection, attacks."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridledger.aggregation.curve import (
    P1,
    G1Point,
    Scalar,
    decode_g1,
    decode_g2,
    get_random_scalar,
)
from gridledger.aggregation.keys import compute_partial_public_key
from gridledger.aggregation.signcrypt import Report, compute_beta, compute_period_base
from gridledger.aggregation.verify import (
    PreparedReport,
    find_invalid,
    is_valid_batch,
    is_valid_plain_sum,
    is_valid_prepared,
    prepare_report,
)
from gridledger.crypto.encoding import decode_as, encode
from tests.aggregation.helpers import World, shared_world


def prepare(world: World, report: Report) -> PreparedReport:
    keys = world.meters[report.meter_id]
    y_s, alpha = keys.y.to_compressed_bytes(), keys.alpha.to_compressed_bytes()
    k = compute_partial_public_key(world.y_pub1, report.meter_id, alpha)
    return prepare_report(report, y_s, alpha, k, world.y_pub1_bytes)


def flip(data: bytes, at: int = 5) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_an_honest_report_verifies_and_round_trips_on_the_wire() -> None:
    world = shared_world()
    report = world.report("meter-0", 3)
    assert decode_as(Report, encode(report)) == report
    assert is_valid_prepared(prepare(world, report), world.y_pub1_bytes)


def test_every_field_is_covered_by_the_signature() -> None:
    world = shared_world()
    report = world.report("meter-1", 4)
    part = report.parts[1]
    variants = [
        dataclasses.replace(report, timestamp_ms=report.timestamp_ms + 1),
        dataclasses.replace(report, period=5),
        dataclasses.replace(report, d_point=world.report("meter-1", 4).d_point),
        dataclasses.replace(report, w_point=(P1 * Scalar(3)).to_compressed_bytes()),
        dataclasses.replace(
            report,
            parts=(
                report.parts[0],
                dataclasses.replace(part, ciphertext=flip(part.ciphertext)),
                *report.parts[2:],
            ),
        ),
        dataclasses.replace(report, parts=report.parts[:2]),
        dataclasses.replace(report, meter_id="meter-2"),
    ]
    for variant in variants:
        prepared = prepare(world, variant)
        assert not is_valid_prepared(prepared, world.y_pub1_bytes), variant


def test_a_signature_for_one_period_does_not_verify_under_another_base() -> None:
    world = shared_world()
    report = world.report("meter-0", 8)
    assert compute_period_base(world.y_pub1_bytes, 8) != compute_period_base(world.y_pub1_bytes, 9)
    moved = dataclasses.replace(report, period=9, timestamp_ms=report.timestamp_ms + 540_000)
    assert not is_valid_prepared(prepare(world, moved), world.y_pub1_bytes)


def test_batch_of_valid_reports_over_two_periods_passes_in_one_check() -> None:
    world = shared_world()
    batch = [prepare(world, world.report(f"meter-{i}", 10 + i % 2)) for i in range(6)]
    assert is_valid_batch(batch, world.y_pub1_bytes)
    assert find_invalid(batch, world.y_pub1_bytes) == []


_REPORTS: list[PreparedReport] = []


def _pool() -> list[PreparedReport]:
    if not _REPORTS:
        world = shared_world()
        _REPORTS.extend(prepare(world, world.report(f"meter-{i}", 20)) for i in range(8))
    return _REPORTS


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sets(st.integers(0, 7), max_size=4))
def test_bisection_names_exactly_the_tampered_reports(bad: set[int]) -> None:
    world = shared_world()
    batch = list(_pool())
    for i in bad:
        p = batch[i]
        batch[i] = dataclasses.replace(p, t_point=p.t_point + p.t_point)
    assert find_invalid(batch, world.y_pub1_bytes) == sorted(bad)
    assert is_valid_batch(batch, world.y_pub1_bytes) == (not bad)


def test_insider_cancellation_passes_the_plain_sum_but_not_the_weighted_check() -> None:
    """Meter B (keys known) forges a report for meter A and cancels its error with its own W.

    e(P1, T_A + T_B) = e(X_A + W_A + X_B + W_B, Q) holds although neither report is valid.
    """
    world = shared_world()
    y_pub1 = world.y_pub1_bytes
    victim = world.report("meter-3", 30)
    accomplice = world.report("meter-4", 30)
    q = compute_period_base(y_pub1, 30)
    a_keys, b_keys = world.meters["meter-3"], world.meters["meter-4"]
    # A's forged report: any W_A, any T_A (attacker knows no secret of A).
    w_a = P1 * get_random_scalar(world.rng)
    forged_a = dataclasses.replace(
        victim, w_point=w_a.to_compressed_bytes(), t_point=(q * Scalar(77)).to_compressed_bytes()
    )
    prep_a = prepare(world, forged_a)
    x_a_plus_w = a_keys.y * prep_a.beta + prep_a.k_w  # β_A·Y_A + K_A + W_A, all public
    u = get_random_scalar(world.rng)
    w_b = P1 * u - x_a_plus_w
    forged_b = dataclasses.replace(accomplice, w_point=w_b.to_compressed_bytes())
    beta_b = compute_beta(
        forged_b, b_keys.y.to_compressed_bytes(), b_keys.alpha.to_compressed_bytes(), y_pub1
    )
    s_b = beta_b * b_keys.secret + b_keys.h
    t_b = q * (u + s_b) - decode_g2(forged_a.t_point)
    forged_b = dataclasses.replace(forged_b, t_point=t_b.to_compressed_bytes())
    pair = [prep_a, prepare(world, forged_b)]
    assert is_valid_plain_sum(pair, y_pub1)  # seed 002's eq. (2) accepts both
    assert not is_valid_batch(pair, y_pub1)
    assert find_invalid(pair, y_pub1) == [0, 1]


def test_the_printed_forgery_recipe_fails_against_the_fixed_beta() -> None:
    """§6.11.2 against the real scheme: W must be fixed before β, so t·P − X(β) is circular."""
    world = shared_world()
    y_pub1 = world.y_pub1_bytes
    honest = world.report("meter-5", 40)
    keys = world.meters["meter-5"]
    k: G1Point = compute_partial_public_key(
        world.y_pub1, "meter-5", keys.alpha.to_compressed_bytes()
    )
    beta = compute_beta(
        honest, keys.y.to_compressed_bytes(), keys.alpha.to_compressed_bytes(), y_pub1
    )
    t = get_random_scalar(world.rng)
    w = P1 * t - (keys.y * beta + k)  # β was computed with the honest W, not this one
    q = compute_period_base(y_pub1, 40)
    forged = dataclasses.replace(
        honest, w_point=w.to_compressed_bytes(), t_point=(q * t).to_compressed_bytes()
    )
    assert decode_g1(forged.w_point) == w
    assert not is_valid_prepared(prepare(world, forged), y_pub1)
