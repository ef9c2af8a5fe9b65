"""Signcryption and accounting-node verification: one report, batches, bisection, attacks."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridledger.aggregation import verify
from gridledger.aggregation.curve import (
    ORDER,
    P1,
    Scalar,
    decode_g1,
    encode_scalar,
    get_random_scalar,
)
from gridledger.aggregation.errors import InvalidEncoding
from gridledger.aggregation.keys import compute_partial_public_key, compute_signing_key
from gridledger.aggregation.signcrypt import Report, compute_beta
from gridledger.aggregation.verify import (
    PreparedReport,
    compute_weights,
    find_invalid,
    is_valid_batch,
    is_valid_plain_sum,
    is_valid_prepared,
    prepare_report,
)
from gridledger.crypto.encoding import decode_as, encode
from tests.aggregation.helpers import World, shared_world


def signing_key(world: World, meter_id: str) -> bytes:
    keys = world.meters[meter_id]
    y_s, alpha = keys.y.to_compressed_bytes(), keys.alpha.to_compressed_bytes()
    return compute_signing_key(world.y_pub1, meter_id, y_s, alpha).to_compressed_bytes()


def prepare(world: World, report: Report) -> PreparedReport:
    keys = world.meters[report.meter_id]
    y_s, alpha = keys.y.to_compressed_bytes(), keys.alpha.to_compressed_bytes()
    pk = signing_key(world, report.meter_id)
    return prepare_report(report, y_s, alpha, pk, world.y_pub1_bytes)


def beta_of(world: World, report: Report) -> Scalar:
    keys = world.meters[report.meter_id]
    return compute_beta(
        report, keys.y.to_compressed_bytes(), keys.alpha.to_compressed_bytes(), world.y_pub1_bytes
    )


def flip(data: bytes, at: int = 5) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_an_honest_report_verifies_and_round_trips_on_the_wire() -> None:
    world = shared_world()
    report = world.report("meter-0", 3)
    assert decode_as(Report, encode(report)) == report
    assert is_valid_prepared(prepare(world, report))
    assert len(report.s_scalar) == 32 and report.w_point != report.d_point


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
        assert not is_valid_prepared(prepared), variant
        assert not is_valid_batch([prepare(world, world.report("meter-0", 4)), prepared])


def test_a_report_moved_to_another_period_or_meter_does_not_verify() -> None:
    world = shared_world()
    report = world.report("meter-0", 8)
    moved = dataclasses.replace(report, period=9, timestamp_ms=report.timestamp_ms + 540_000)
    assert not is_valid_prepared(prepare(world, moved))
    # the same bytes checked against another meter's registered key
    keys = world.meters["meter-1"]
    other = prepare_report(
        report,
        keys.y.to_compressed_bytes(),
        keys.alpha.to_compressed_bytes(),
        signing_key(world, "meter-1"),
        world.y_pub1_bytes,
    )
    assert not is_valid_prepared(other)


def test_a_non_canonical_or_short_signature_scalar_does_not_decode() -> None:
    world = shared_world()
    report = world.report("meter-2", 9)
    s = int.from_bytes(report.s_scalar, "big")
    for bad in ((s + ORDER).to_bytes(32, "big"), report.s_scalar[:-1], b""):
        with pytest.raises(InvalidEncoding):
            prepare(world, dataclasses.replace(report, s_scalar=bad))


def test_batch_of_valid_reports_over_two_periods_passes_in_one_check() -> None:
    world = shared_world()
    batch = [prepare(world, world.report(f"meter-{i}", 10 + i % 2)) for i in range(6)]
    assert is_valid_batch(batch)
    assert find_invalid(batch) == []
    assert is_valid_plain_sum(batch)


_REPORTS: list[PreparedReport] = []


def _pool() -> list[PreparedReport]:
    if not _REPORTS:
        world = shared_world()
        _REPORTS.extend(prepare(world, world.report(f"meter-{i}", 20)) for i in range(8))
    return _REPORTS


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sets(st.integers(0, 7), max_size=4))
def test_bisection_names_exactly_the_tampered_reports(bad: set[int]) -> None:
    batch = list(_pool())
    for i in bad:
        p = batch[i]
        batch[i] = dataclasses.replace(p, s_scalar=p.s_scalar + Scalar(i + 1))
    assert find_invalid(batch) == sorted(bad)
    assert is_valid_batch(batch) == (not bad)


def test_weights_depend_on_every_signature_in_the_batch() -> None:
    """A submitter cannot change one report's s or W and keep the other reports' weights."""
    world = shared_world()
    reports = [world.report(f"meter-{i}", 21) for i in range(4)]
    batch = [prepare(world, r) for r in reports]
    before = compute_weights(batch)
    assert all(0 < int(z) < 2**128 and int(z) % 2 == 1 for z in before)
    s_changed = list(batch)
    s_changed[3] = dataclasses.replace(batch[3], s_scalar=batch[3].s_scalar + Scalar(1))
    w_changed = list(batch)
    w_changed[3] = prepare(
        world, dataclasses.replace(reports[3], w_point=(P1 * Scalar(5)).to_compressed_bytes())
    )
    for changed in (s_changed, w_changed):
        after = compute_weights(changed)
        assert all(a != b for a, b in zip(before, after, strict=True))
    with pytest.raises(InvalidEncoding):
        compute_weights(batch, 12)


def test_insider_cancellation_passes_the_plain_sum_but_not_the_weighted_check() -> None:
    """Meter B (keys known) forges a report for meter A and cancels its error with its own W.

    (s_A + s_B)·P1 = W_A + β_A·PK_A + W_B + β_B·PK_B holds although neither report is valid.
    """
    world = shared_world()
    victim = world.report("meter-3", 30)
    accomplice = world.report("meter-4", 30)
    b_keys = world.meters["meter-4"]
    pk_a = decode_g1(signing_key(world, "meter-3"))
    # A's forged report: any W_A, any s_A (the attacker knows no secret of A).
    w_a = P1 * get_random_scalar(world.rng)
    forged_a = dataclasses.replace(
        victim, w_point=w_a.to_compressed_bytes(), s_scalar=encode_scalar(Scalar(77))
    )
    error_a = w_a + pk_a * beta_of(world, forged_a) - P1 * Scalar(77)  # public
    u = get_random_scalar(world.rng)
    w_b = P1 * u - error_a
    forged_b = dataclasses.replace(accomplice, w_point=w_b.to_compressed_bytes())
    s_b = u + beta_of(world, forged_b) * b_keys.signing_secret
    forged_b = dataclasses.replace(forged_b, s_scalar=encode_scalar(s_b))
    pair = [prepare(world, forged_a), prepare(world, forged_b)]
    assert not is_valid_prepared(pair[0]) and not is_valid_prepared(pair[1])
    assert is_valid_plain_sum(pair)  # seed 002's eq. (2), unweighted, accepts both
    assert not is_valid_batch(pair)
    assert find_invalid(pair) == [0, 1]
    honest = [prepare(world, world.report(f"meter-{i}", 30)) for i in (0, 1, 2)]
    assert is_valid_plain_sum([*honest, *pair])
    assert find_invalid([*honest, *pair]) == [3, 4]


def test_the_printed_forgery_recipe_fails_against_the_fixed_beta() -> None:
    """§6.11.2 against the real scheme: W must be fixed before β, so t·P − β·PK is circular."""
    world = shared_world()
    honest = world.report("meter-5", 40)
    pk = decode_g1(signing_key(world, "meter-5"))
    beta = beta_of(world, honest)
    t = get_random_scalar(world.rng)
    w = P1 * t - pk * beta  # β was computed with the honest W, not this one
    forged = dataclasses.replace(honest, w_point=w.to_compressed_bytes(), s_scalar=encode_scalar(t))
    assert decode_g1(forged.w_point) == w
    assert not is_valid_prepared(prepare(world, forged))


def test_a_thief_of_the_secret_value_alone_cannot_sign() -> None:
    """With the printed T = (β·x_S + h + w)·Q, W = w·P1 − K cancels h; here β multiplies h."""
    world = shared_world()
    honest = world.report("meter-6", 41)
    keys = world.meters["meter-6"]
    k = compute_partial_public_key(world.y_pub1, "meter-6", keys.alpha.to_compressed_bytes())
    w = get_random_scalar(world.rng)
    forged = dataclasses.replace(honest, w_point=(P1 * w - k).to_compressed_bytes())
    forged = dataclasses.replace(
        forged, s_scalar=encode_scalar(w + beta_of(world, forged) * keys.secret)
    )
    assert not is_valid_prepared(prepare(world, forged))
    # and the CC, which knows h but not x_S, fails the same way
    cc_forged = dataclasses.replace(honest, w_point=(P1 * w - keys.y).to_compressed_bytes())
    cc_forged = dataclasses.replace(
        cc_forged, s_scalar=encode_scalar(w + beta_of(world, cc_forged) * keys.h)
    )
    assert not is_valid_prepared(prepare(world, cc_forged))


def test_a_batch_of_forgeries_costs_a_bounded_amount_of_checking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Forgeries cost a sender nothing: bisection stops at its budget and the rest are
    checked one by one, so every forgery is named within a bounded amount of work."""
    batch = [dataclasses.replace(p, s_scalar=p.s_scalar + Scalar(1)) for p in _pool()]
    checked: list[int] = []
    real = verify.is_valid_batch

    def counting(sub: Sequence[PreparedReport]) -> bool:
        checked.append(len(sub))
        return real(sub)

    monkeypatch.setattr(verify, "is_valid_batch", counting)
    assert find_invalid(batch) == list(range(len(batch)))
    assert sum(checked) <= verify.BISECTION_BUDGET * len(batch)
