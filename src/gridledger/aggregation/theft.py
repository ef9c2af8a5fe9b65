"""The control center's theft detection on real UCI readings (seed 002 §V.A, made concrete).

Seed 002 draws voltage/current scatter plots of three-phase data and "adds
suspects to a list" with no rule (spec §6.7). The UCI household is
single-phase, so the CC checks a physical consistency instead: a meter's
apparent power from voltage and current must match the one from active and
reactive power, ``r = V·I − √(P² + Q²)`` (VA). A meter whose register
under-reports P (tampered firmware or register) shows a positive residual;
one-minute averaging makes honest residuals noisy (|r| ≤ 283 VA for 99 % of
minutes), so the threshold is calibrated on clean data and a *day* is
flagged when its share of suspect minutes is abnormal.

Limitation, stated: a bypass that lowers the current the meter sees too is
consistent and invisible to this check; it needs a feeder-level balance.
Readings are integers: centivolts, deciamps, watts, vars, watt-hours,
converted from the CSV's decimal strings without floats.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from math import isqrt
from pathlib import Path

from gridledger.aggregation.errors import SchemaError
from gridledger.crypto.rng import Rng

MINUTES_PER_DAY = 1440
PPM = 1_000_000


@dataclass(frozen=True)
class UciReading:
    """One minute of the UCI household, in integer units."""

    minute: int
    voltage_cv: int
    current_da: int
    active_power_w: int
    reactive_power_var: int
    sub_metering_1_wh: int
    sub_metering_2_wh: int
    sub_metering_3_wh: int


def _scaled(text: str, scale: int) -> int:
    value = Decimal(text.strip()) * scale
    if value != value.to_integral_value():
        raise InvalidOperation
    return int(value)


def parse_uci_row(row: Sequence[str]) -> UciReading | None:
    """One CSV row (index, date, time, P kW, Q kW, V, I A, sub1..3 Wh); ``None`` if missing."""
    try:
        return UciReading(
            int(row[0]),
            _scaled(row[5], 100),
            _scaled(row[6], 10),
            _scaled(row[3], 1000),
            _scaled(row[4], 1000),
            _scaled(row[7], 1),
            _scaled(row[8], 1),
            _scaled(row[9], 1),
        )
    except (InvalidOperation, ValueError, IndexError):
        return None


def iter_uci_readings(path: Path, start: int = 0, limit: int | None = None) -> Iterator[UciReading]:
    """Complete readings from the zipped CSV (rows with ``?`` or blanks are skipped)."""
    if not zipfile.is_zipfile(path):
        raise SchemaError(f"{path} is not a zip file")
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(".csv")]
        if not names:
            raise SchemaError(f"{path} holds no CSV")
        with archive.open(names[0]) as raw:
            rows = csv.reader(io.TextIOWrapper(raw, encoding="utf-8"))
            next(rows, None)
            produced = 0
            for number, row in enumerate(rows):
                if number < start:
                    continue
                if limit is not None and produced >= limit:
                    return
                reading = parse_uci_row(row)
                if reading is not None:
                    produced += 1
                    yield reading


def compute_residual_va(reading: UciReading) -> int:
    """r = V·I − √(P² + Q²) in VA (positive when P or Q is under-reported)."""
    apparent_vi = reading.voltage_cv * reading.current_da // 1000
    apparent_pq = isqrt(reading.active_power_w**2 + reading.reactive_power_var**2)
    return apparent_vi - apparent_pq


def compute_quantile(values: Sequence[int], quantile_ppm: int) -> int:
    """The ``quantile_ppm``/10^6 quantile of ``values`` (nearest rank)."""
    if not values:
        raise SchemaError("no values to calibrate on")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, len(ordered) * quantile_ppm // PPM)
    return ordered[rank]


@dataclass(frozen=True)
class TheftDetector:
    """A minute is suspect above ``threshold_va``; a day above ``day_share_ppm`` suspect minutes."""

    threshold_va: int
    day_share_ppm: int

    def is_suspect(self, reading: UciReading) -> bool:
        return compute_residual_va(reading) > self.threshold_va

    def compute_suspect_share_ppm(self, day: Sequence[UciReading]) -> int:
        if not day:
            return 0
        return sum(self.is_suspect(r) for r in day) * PPM // len(day)

    def is_suspect_day(self, day: Sequence[UciReading]) -> bool:
        return self.compute_suspect_share_ppm(day) > self.day_share_ppm


def calibrate_detector(
    clean: Sequence[UciReading], minute_quantile_ppm: int = 995_000, day_margin_ppm: int = 20_000
) -> TheftDetector:
    """Threshold at a quantile of clean residuals; day share = worst clean day + a margin."""
    threshold = compute_quantile([compute_residual_va(r) for r in clean], minute_quantile_ppm)
    probe = TheftDetector(threshold, 0)
    shares = [probe.compute_suspect_share_ppm(day) for day in split_days(clean)]
    return TheftDetector(threshold, max(shares, default=0) + day_margin_ppm)


def split_days(readings: Sequence[UciReading]) -> list[list[UciReading]]:
    """Readings grouped by calendar day of the data set (minute index // 1440)."""
    days: dict[int, list[UciReading]] = {}
    for reading in readings:
        days.setdefault(reading.minute // MINUTES_PER_DAY, []).append(reading)
    return [days[k] for k in sorted(days)]


def compute_tampered(reading: UciReading, keep_percent: int) -> UciReading:
    """The reading with active power under-reported to ``keep_percent`` % (V, I, Q unchanged)."""
    return replace(reading, active_power_w=reading.active_power_w * keep_percent // 100)


def inject_day_tampering(
    days: Sequence[Sequence[UciReading]],
    rng: Rng,
    share_ppm: int,
    keep_percent: tuple[int, int] = (30, 80),
) -> list[tuple[list[UciReading], bool]]:
    """Tamper whole days (a thief tampers all day long), each with a random keep factor."""
    low, high = keep_percent
    out = []
    for day in days:
        if rng.randbelow(PPM) < share_ppm:
            keep = low + rng.randbelow(high - low + 1)
            out.append(([compute_tampered(r, keep) for r in day], True))
        else:
            out.append((list(day), False))
    return out


@dataclass(frozen=True)
class DetectionCounts:
    """Confusion counts; the rates are for printing."""

    true_positives: int
    false_negatives: int
    false_positives: int
    true_negatives: int

    @property
    def detection_rate(self) -> float:
        positives = self.true_positives + self.false_negatives
        return self.true_positives / positives if positives else 0.0

    @property
    def false_positive_rate(self) -> float:
        negatives = self.false_positives + self.true_negatives
        return self.false_positives / negatives if negatives else 0.0


def compute_counts(labels: Sequence[bool], flags: Sequence[bool]) -> DetectionCounts:
    """Confusion counts of ``flags`` against ``labels`` (True = tampered)."""
    tp = sum(1 for t, f in zip(labels, flags, strict=True) if t and f)
    fn = sum(1 for t, f in zip(labels, flags, strict=True) if t and not f)
    fp = sum(1 for t, f in zip(labels, flags, strict=True) if not t and f)
    return DetectionCounts(tp, fn, fp, len(labels) - tp - fn - fp)


def evaluate_days(
    detector: TheftDetector, labelled: Sequence[tuple[Sequence[UciReading], bool]]
) -> DetectionCounts:
    """Day-level detection and false-positive counts."""
    return compute_counts(
        [t for _, t in labelled], [detector.is_suspect_day(d) for d, _ in labelled]
    )


def evaluate_minutes(
    detector: TheftDetector, labelled: Sequence[tuple[Sequence[UciReading], bool]]
) -> DetectionCounts:
    """Minute-level counts (every minute of a tampered day is a positive)."""
    labels: list[bool] = []
    flags: list[bool] = []
    for day, tampered in labelled:
        labels += [tampered] * len(day)
        flags += [detector.is_suspect(r) for r in day]
    return compute_counts(labels, flags)


def compute_meter_reading(
    reading: UciReading, prepaid_balance_millicent: int, equipment_state: int
) -> dict[str, int]:
    """The ten schema dimensions of one minute (energy of the minute in Wh, rounded down)."""
    return {
        "voltage_cv": reading.voltage_cv,
        "current_da": reading.current_da,
        "active_power_w": reading.active_power_w,
        "reactive_power_var": reading.reactive_power_var,
        "energy_wh": reading.active_power_w // 60,
        "prepaid_balance_millicent": prepaid_balance_millicent,
        "sub_metering_1_wh": reading.sub_metering_1_wh,
        "sub_metering_2_wh": reading.sub_metering_2_wh,
        "sub_metering_3_wh": reading.sub_metering_3_wh,
        "equipment_state": equipment_state,
    }


def check_decrypted_consistency(values: dict[str, int], detector: TheftDetector) -> bool:
    """The CC's check on its decrypted dimensions (True when consistent)."""
    reading = UciReading(
        0,
        values["voltage_cv"],
        values["current_da"],
        values["active_power_w"],
        values["reactive_power_var"],
        0,
        0,
        0,
    )
    return not detector.is_suspect(reading)
