"""Theft detection on real UCI readings (a 14-day slice) with injected under-reporting."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from gridledger.aggregation.errors import SchemaError
from gridledger.aggregation.theft import (
    UciReading,
    calibrate_detector,
    check_decrypted_consistency,
    compute_meter_reading,
    compute_residual_va,
    compute_tampered,
    evaluate_days,
    evaluate_minutes,
    inject_day_tampering,
    iter_uci_readings,
    parse_uci_row,
    split_days,
)
from gridledger.crypto.rng import DeterministicRng

SLICE = Path(__file__).parent / "data" / "uci_2007_14days.zip"


@cache
def readings() -> tuple[UciReading, ...]:
    return tuple(iter_uci_readings(SLICE))


def test_loader_handles_both_date_forms_and_missing_values() -> None:
    rows = readings()
    assert len(rows) == 14 * 1440 - 1  # one row of the slice has '?' values
    assert parse_uci_row(["1", "1/1/07", "0:00:00", "?", "", "", "", "", "", ""]) is None
    first = parse_uci_row(
        ["0", "30/6/2007", "0:00:00", "2.58", "0.136", "241.97", "10.6", "0", "1", "17"]
    )
    assert first == UciReading(0, 24197, 106, 2580, 136, 0, 1, 17)


def test_loader_refuses_a_file_that_is_not_a_zip(tmp_path: Path) -> None:
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SchemaError):
        list(iter_uci_readings(bad))


def test_honest_residuals_are_small_and_under_reporting_raises_them() -> None:
    r = readings()[0]
    assert abs(compute_residual_va(r)) < 100
    assert compute_residual_va(compute_tampered(r, 50)) > 1000


def test_detection_and_false_positive_rates_on_real_days() -> None:
    days = split_days(list(readings()))
    detector = calibrate_detector([r for day in days[:7] for r in day])
    labelled = inject_day_tampering(days[7:], DeterministicRng("theft"), 500_000)
    assert any(t for _, t in labelled) and not all(t for _, t in labelled)
    per_day = evaluate_days(detector, labelled)
    per_minute = evaluate_minutes(detector, labelled)
    day_rates = (per_day.detection_rate, per_day.false_positive_rate)
    minute_rates = (per_minute.detection_rate, per_minute.false_positive_rate)
    print(f"\nday (detection, FP): {day_rates}; minute: {minute_rates}")
    assert per_day.detection_rate >= 0.75
    assert per_day.false_positive_rate <= 0.25
    assert per_minute.false_positive_rate <= 0.05  # one week of calibration only
    assert per_minute.detection_rate >= 0.3


def test_cc_flags_a_decrypted_tampered_reading() -> None:
    days = split_days(list(readings()))
    detector = calibrate_detector([r for day in days[:7] for r in day])
    heavy = max(readings()[:600], key=lambda r: r.active_power_w)
    assert check_decrypted_consistency(compute_meter_reading(heavy, 0, 0), detector)
    tampered = compute_tampered(heavy, 40)
    assert not check_decrypted_consistency(compute_meter_reading(tampered, 0, 0), detector)
