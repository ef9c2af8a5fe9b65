"""Real household data for the simulator: UCI minute readings and TMY PV profiles.

Two sources (``../shared/data/README.md``):

* the UCI "Individual household electric power consumption" minute readings,
  as a zip holding one CSV (read in place with :mod:`zipfile`, never
  extracted) or as a plain CSV. The real file mixes two date forms
  (``1/1/07`` and ``30/6/2007``, day first) and has rows whose readings are
  ``?`` or empty. Missing minutes are either *filled* (linear interpolation
  between the neighbouring readings) or *skipped* (left out; a slot's energy
  is then its mean power over the minutes that are present). Either way the
  :class:`LoadReport` says how many rows were missing, filled or skipped.
* NREL TMY3 hourly illuminance (units of 100 lux), scaled to a PV plant:
  ``P(t) = P_peak * v(t) / max(v)``, linearly interpolated to the minute.

Everything leaves this module as integers in named units (``Watt``,
``WattHour``); floats exist only while parsing the CSV's kW column.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import itertools
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import NewType

from gridledger.sim.errors import DataError

__all__ = [
    "MINUTES_PER_DAY",
    "MISSING",
    "LoadReport",
    "MinuteReadings",
    "MissingPolicy",
    "TmyProfile",
    "Watt",
    "WattHour",
    "compute_pv_slot_energy",
    "compute_slot_energy",
    "load_tmy",
    "load_uci",
    "parse_uci_date",
]

Watt = NewType("Watt", int)
WattHour = NewType("WattHour", int)

MINUTES_PER_DAY = 1440
HOURS_PER_YEAR = 8760
MISSING = -1
"""Marker in :attr:`MinuteReadings.watts` for a minute without a reading (skip policy)."""

_POWER_COLUMN = "global_active_power"
_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_HMS = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


class MissingPolicy(Enum):
    """What to do with a minute whose reading is missing (``?``, empty or absent)."""

    FILL = "fill"
    SKIP = "skip"


@dataclass(frozen=True)
class LoadReport:
    """What loading a readings file found: counts a user can check against the source."""

    source: str
    rows: int
    missing: int
    filled: int
    skipped: int
    date_forms: tuple[str, ...]


@dataclass(frozen=True)
class MinuteReadings:
    """Active power per minute from ``start`` on; ``MISSING`` where a minute was skipped."""

    start: dt.datetime
    watts: tuple[int, ...]
    report: LoadReport

    @property
    def days(self) -> int:
        """Whole days covered from ``start``."""
        return len(self.watts) // MINUTES_PER_DAY


@dataclass(frozen=True)
class TmyProfile:
    """A year of hourly global horizontal illuminance (units of 100 lux), 8,760 values."""

    source: str
    hourly: tuple[int, ...]

    @property
    def peak(self) -> int:
        """The year's largest value, the one that maps to a plant's peak power."""
        return max(self.hourly)


def parse_uci_date(text: str) -> tuple[dt.date, str]:
    """Parse a UCI date (``d/m/yy``, ``d/m/yyyy`` or ISO) and name the form it had.

    Raises ``ValueError`` for anything else (the loader turns it into a ``DataError``).
    """
    match = _DMY.match(text)
    if match:
        day, month, year_text = match.groups()
        year = int(year_text) + (2000 if len(year_text) == 2 else 0)
        form = "d/m/yy" if len(year_text) == 2 else "d/m/yyyy"
        return dt.date(year, int(month), int(day)), form
    match = _ISO.match(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
        return dt.date(year, month, day), "yyyy-mm-dd"
    raise ValueError(f"unrecognised date {text!r}")


def _parse_time(text: str) -> int:
    match = _HMS.match(text)
    if not match:
        raise ValueError(f"unrecognised time {text!r}")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours > 23 or minutes > 59:
        raise ValueError(f"time out of range {text!r}")
    return hours * 60 + minutes


def _parse_watts(text: str) -> int | None:
    """kW with up to 3 decimals -> W; ``None`` for a missing reading."""
    text = text.strip()
    if text in ("", "?"):
        return None
    kilowatts = float(text)
    if not kilowatts >= 0 or kilowatts > 1_000:
        raise ValueError(f"implausible power {text!r} kW")
    return round(kilowatts * 1000)


def _open_text(path: Path) -> Iterator[str]:
    """Lines of the CSV, from inside a zip (its one ``.csv`` member) or a plain file."""
    if not path.is_file():
        raise DataError(str(path), "no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.lower().endswith((".csv", ".txt"))]
            if len(members) != 1:
                raise DataError(str(path), f"expected one .csv in the zip, found {len(members)}")
            with (
                archive.open(members[0]) as raw,
                io.TextIOWrapper(raw, encoding="utf-8", newline="") as text,
            ):
                yield from text
        return
    with path.open(encoding="utf-8", newline="") as text:
        yield from text


def _header_columns(header: str) -> tuple[str, int, int, int]:
    """Delimiter and the indices of the Date, Time and active-power columns."""
    delimiter = ";" if header.count(";") > header.count(",") else ","
    names = [c.strip().lower().split(" (")[0] for c in header.strip().split(delimiter)]
    try:
        return delimiter, names.index("date"), names.index("time"), names.index(_POWER_COLUMN)
    except ValueError:
        raise ValueError("header lacks Date, Time or Global_active_power") from None


def _read_rows(
    path: Path,
) -> tuple[dict[tuple[dt.date, int], int | None], int, set[str]]:
    lines = _open_text(path)
    header = next(lines, None)
    if header is None:
        raise DataError(str(path), "file is empty")
    try:
        delimiter, i_date, i_time, i_power = _header_columns(header)
    except ValueError as exc:
        raise DataError(str(path), str(exc), line=1) from None
    date_cache: dict[str, tuple[dt.date, str]] = {}
    time_cache: dict[str, int] = {}
    rows: dict[tuple[dt.date, int], int | None] = {}
    forms: set[str] = set()
    count = 0
    for number, fields in enumerate(csv.reader(lines, delimiter=delimiter), start=2):
        if not fields:
            continue
        count += 1
        try:
            date_text, time_text = fields[i_date].strip(), fields[i_time].strip()
            if date_text not in date_cache:
                date_cache[date_text] = parse_uci_date(date_text)
            if time_text not in time_cache:
                time_cache[time_text] = _parse_time(time_text)
            date, form = date_cache[date_text]
            key = (date, time_cache[time_text])
            watts = _parse_watts(fields[i_power]) if i_power < len(fields) else None
        except (ValueError, IndexError) as exc:
            raise DataError(str(path), str(exc) or "malformed row", line=number) from None
        if key in rows:
            raise DataError(str(path), f"duplicate reading for {date} minute {key[1]}", number)
        rows[key] = watts
        forms.add(form)
    if not rows:
        raise DataError(str(path), "no readings")
    return rows, count, forms


def _fill_gaps(values: list[int]) -> int:
    """Linear interpolation over runs of ``MISSING``, in place; returns how many were filled.

    Leading and trailing runs copy the nearest reading; a series with no reading stays empty.
    """
    present = [i for i, v in enumerate(values) if v != MISSING]
    if not present:
        return 0
    filled = present[0] + (len(values) - 1 - present[-1])
    values[: present[0]] = [values[present[0]]] * present[0]
    values[present[-1] + 1 :] = [values[present[-1]]] * (len(values) - 1 - present[-1])
    for left, right in itertools.pairwise(present):
        step = right - left
        for k in range(1, step):
            values[left + k] = round(values[left] + (values[right] - values[left]) * k / step)
        filled += step - 1
    return filled


def load_uci(path: Path, policy: MissingPolicy = MissingPolicy.FILL) -> MinuteReadings:
    """Load UCI minute readings from a zip or CSV (cached per file, size and mtime)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "no such file")
    stat = path.stat()
    return _load_uci_cached(path.resolve(), stat.st_size, stat.st_mtime_ns, policy)


@functools.lru_cache(maxsize=8)
def _load_uci_cached(path: Path, _size: int, _mtime: int, policy: MissingPolicy) -> MinuteReadings:
    try:
        rows, count, forms = _read_rows(path)
    except (UnicodeDecodeError, zipfile.BadZipFile, csv.Error, OSError, EOFError) as exc:
        raise DataError(str(path), f"unreadable: {exc.__class__.__name__}") from None
    first_date, first_minute = min(rows)
    last_date, last_minute = max(rows)
    start = dt.datetime.combine(first_date, dt.time()) + dt.timedelta(minutes=first_minute)
    length = (last_date - first_date).days * MINUTES_PER_DAY + last_minute - first_minute + 1
    values = [MISSING] * length
    for (date, minute), watts in rows.items():
        if watts is not None:
            offset = (date - first_date).days * MINUTES_PER_DAY + minute - first_minute
            values[offset] = watts
    missing = values.count(MISSING)
    filled = _fill_gaps(values) if policy is MissingPolicy.FILL else 0
    report = LoadReport(
        source=str(path),
        rows=count,
        missing=missing,
        filled=filled,
        skipped=missing - filled,
        date_forms=tuple(sorted(forms)),
    )
    return MinuteReadings(start=start, watts=tuple(values), report=report)


def _round_div(numerator: int, denominator: int) -> int:
    """Round half up, for non-negative integers."""
    return (2 * numerator + denominator) // (2 * denominator)


def compute_slot_energy(
    readings: MinuteReadings, start_minute: int, slots: int, slot_minutes: int
) -> tuple[WattHour, ...]:
    """Energy per slot (Wh) from minute ``start_minute`` of the readings on.

    A slot's energy is its mean power over the minutes present times its length,
    so skipped minutes do not count as zero consumption; a slot with no minute
    present gives 0 Wh.
    """
    end = start_minute + slots * slot_minutes
    if start_minute < 0 or end > len(readings.watts):
        raise DataError(
            readings.report.source,
            f"minutes {start_minute}..{end} lie outside the data ({len(readings.watts)} minutes)",
        )
    energies: list[WattHour] = []
    for slot in range(slots):
        first = start_minute + slot * slot_minutes
        window = readings.watts[first : first + slot_minutes]
        present = [w for w in window if w != MISSING]
        if not present:
            energies.append(WattHour(0))
            continue
        energies.append(WattHour(_round_div(sum(present) * slot_minutes, len(present) * 60)))
    return tuple(energies)


def load_tmy(path: Path) -> TmyProfile:
    """Load a TMY illuminance CSV: a one-line header, then 8,760 non-negative integers."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "no such file")
    return _load_tmy_cached(path.resolve())


@functools.lru_cache(maxsize=8)
def _load_tmy_cached(path: Path) -> TmyProfile:
    try:
        return _read_tmy(path)
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(str(path), f"unreadable: {exc.__class__.__name__}") from None


def _read_tmy(path: Path) -> TmyProfile:
    values: list[int] = []
    with path.open(encoding="utf-8") as lines:
        header = lines.readline()
        if not header.strip() or header.strip()[0].isdigit():
            raise DataError(str(path), "missing header line", line=1)
        for number, line in enumerate(lines, start=2):
            text = line.strip()
            try:
                value = int(float(text))
            except ValueError:
                raise DataError(str(path), f"not a number: {text!r}", line=number) from None
            if value < 0:
                raise DataError(str(path), f"negative illuminance {value}", line=number)
            values.append(value)
    if len(values) != HOURS_PER_YEAR:
        raise DataError(str(path), f"expected {HOURS_PER_YEAR} hourly values, got {len(values)}")
    if max(values) == 0:
        raise DataError(str(path), "all values are zero")
    return TmyProfile(source=str(path), hourly=tuple(values))


def _hour_values(profile: TmyProfile, hour: int) -> tuple[int, int]:
    return profile.hourly[hour % HOURS_PER_YEAR], profile.hourly[(hour + 1) % HOURS_PER_YEAR]


def compute_pv_slot_energy(
    profile: TmyProfile,
    day_of_year: int,
    peak: Watt,
    slots: int,
    slot_minutes: int,
    start_minute: int = 0,
) -> tuple[WattHour, ...]:
    """PV energy per slot (Wh) of a plant of ``peak`` W on ``day_of_year`` (0-based).

    Each hourly value is taken at the middle of its hour and interpolated
    linearly in between, so the day has a smooth rise and fall with the TMY's
    real clouds. Pure integer arithmetic: one rounding per slot.
    """
    if peak < 0:
        raise DataError(profile.source, f"negative PV peak {peak} W")
    origin = day_of_year * MINUTES_PER_DAY + start_minute - 30  # minute 0 = middle of hour 0
    scale = profile.peak * 60 * 60  # per-minute weights are out of 60, energy W*min/60
    energies: list[WattHour] = []
    for slot in range(slots):
        numerator = 0
        for minute in range(origin + slot * slot_minutes, origin + (slot + 1) * slot_minutes):
            hour, fraction = divmod(minute, 60)
            left, right = _hour_values(profile, hour)
            numerator += left * (60 - fraction) + right * fraction
        energies.append(WattHour(_round_div(peak * numerator, scale)))
    return tuple(energies)


def iter_days(readings: MinuteReadings) -> Iterable[dt.date]:
    """The calendar days the readings cover in full."""
    first = readings.start.date()
    return (first + dt.timedelta(days=d) for d in range(readings.days))
