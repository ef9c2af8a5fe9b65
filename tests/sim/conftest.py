"""Fixtures of the simulator tests: synthetic readings and TMY files, the shared data dir."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from gridledger.sim.scenario import find_data_dir

HEADER = (
    "index,Date,Time,Global_active_power,Global_reactive_power,Voltage,"
    "Global_intensity,Sub_metering_1,Sub_metering_2,Sub_metering_3\n"
)


def write_uci_zip(path: Path, rows: list[tuple[str, str, str]], header: str = HEADER) -> Path:
    """A zip holding one UCI-style CSV with (date, time, kW) rows."""
    lines = [header]
    for index, (date, time, power) in enumerate(rows):
        lines.append(f"{index},{date},{time},{power},0.1,240.0,1.0,0,0,0.0\n")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("household_power_consumption.csv", "".join(lines))
    return path


def write_tmy(path: Path, peak_hour: int = 12) -> Path:
    """A year of hourly illuminance: a triangle around ``peak_hour`` every day."""
    values = []
    for hour in range(8760):
        h = hour % 24
        values.append(max(0, 600 - 100 * abs(h - peak_hour)))
    path.write_text("GH illum (lx)\n" + "\n".join(str(v) for v in values) + "\n")
    return path


def write_days(path: Path, days: int, start_day: int = 1) -> Path:
    """``days`` full days of minute readings from 1 June 2007: 0.5 kW at night, 2 kW 18-22 h."""
    rows = []
    for d in range(days):
        date = f"{start_day + d}/6/07" if d % 2 else f"{start_day + d}/6/2007"
        for minute in range(1440):
            power = "2.000" if 18 * 60 <= minute < 22 * 60 else "0.500"
            rows.append((date, f"{minute // 60}:{minute % 60:02d}:00", power))
    return write_uci_zip(path, rows)


@pytest.fixture
def synthetic_data(tmp_path: Path) -> Path:
    """A data dir with 9 synthetic days of readings and a synthetic TMY file."""
    write_days(tmp_path / "household_power_consumption_2007H1.zip", 9)
    (tmp_path / "pv_tmy").mkdir()
    write_tmy(tmp_path / "pv_tmy" / "Houston_722430TYA.csv")
    return tmp_path


@pytest.fixture
def real_data() -> Path:
    """The shared data directory (skips where it is absent)."""
    found = find_data_dir()
    if found is None:
        pytest.skip("../shared/data not present")
    return found
