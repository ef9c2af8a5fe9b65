"""Loading the UCI readings and TMY profiles: both date forms, missing values, bad files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from gridledger.sim.data import (
    MISSING,
    MissingPolicy,
    Watt,
    compute_pv_slot_energy,
    compute_slot_energy,
    load_tmy,
    load_uci,
    parse_uci_date,
)
from gridledger.sim.errors import DataError
from tests.sim.conftest import write_tmy, write_uci_zip


def test_both_date_forms_and_iso_parse_to_the_same_day() -> None:
    assert parse_uci_date("1/6/07")[0] == parse_uci_date("1/6/2007")[0]
    assert parse_uci_date("2007-06-01")[0] == parse_uci_date("1/6/07")[0]
    assert parse_uci_date("30/6/2007") == (parse_uci_date("2007-06-30")[0], "d/m/yyyy")
    with pytest.raises(ValueError):
        parse_uci_date("6-1-07")


def _rows() -> list[tuple[str, str, str]]:
    return [
        ("16/12/06", "23:58:00", "1.000"),
        ("16/12/2006", "23:59:00", "?"),
        ("17/12/06", "0:00:00", ""),
        ("17/12/2006", "00:01:00", "2.200"),
    ]


def test_missing_readings_are_filled_by_interpolation_and_counted(tmp_path: Path) -> None:
    readings = load_uci(write_uci_zip(tmp_path / "r.zip", _rows()))
    assert readings.watts == (1000, 1400, 1800, 2200)
    assert (readings.report.rows, readings.report.missing, readings.report.filled) == (4, 2, 2)
    assert readings.report.skipped == 0
    assert readings.report.date_forms == ("d/m/yy", "d/m/yyyy")


def test_missing_readings_skipped_do_not_count_as_zero(tmp_path: Path) -> None:
    readings = load_uci(write_uci_zip(tmp_path / "r.zip", _rows()), MissingPolicy.SKIP)
    assert readings.watts == (1000, MISSING, MISSING, 2200)
    assert readings.report.skipped == 2
    # mean of the two present minutes (1.6 kW) over 4 minutes = 106.67 Wh -> 107
    assert compute_slot_energy(readings, 0, 1, 4) == (107,)


def test_absent_minutes_are_missing_too(tmp_path: Path) -> None:
    rows = [("1/6/07", "0:00:00", "0.600"), ("1/6/07", "0:03:00", "0.900")]
    readings = load_uci(write_uci_zip(tmp_path / "r.zip", rows))
    assert readings.watts == (600, 700, 800, 900)
    assert readings.report.missing == 2


def test_semicolon_csv_without_zip_and_with_units_in_header(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_text(
        "Date;Time;Global_active_power (kW);Voltage\n1/6/2007;10:00:00;1.2;240\n"
        "1/6/2007;10:01:00;1.8;240\n"
    )
    readings = load_uci(path)
    assert readings.watts == (1200, 1800)
    assert readings.start.hour == 10


@pytest.mark.parametrize(
    ("rows", "line", "words"),
    [
        ([("1/6/07", "0:00:00", "1"), ("31/2/07", "0:01:00", "1")], 3, "day is out of range"),
        ([("1/6/07", "0:00:00", "x")], 2, "could not convert"),
        ([("1/6/07", "25:00:00", "1")], 2, "out of range"),
        ([("1/6/07", "0:00:00", "-1")], 2, "implausible"),
        ([("1/6/07", "0:00:00", "1"), ("1/6/2007", "0:00:00", "1")], 3, "duplicate"),
    ],
)
def test_bad_rows_name_their_line(
    tmp_path: Path, rows: list[tuple[str, str, str]], line: int, words: str
) -> None:
    with pytest.raises(DataError) as caught:
        load_uci(write_uci_zip(tmp_path / f"bad{line}{len(rows)}.zip", rows))
    assert caught.value.line == line
    assert words in caught.value.reason
    assert "\n" not in caught.value.reason


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_uci(tmp_path / "absent.zip")
    with pytest.raises(DataError, match="lacks Date"):
        load_uci(write_uci_zip(tmp_path / "h.zip", [], header="a,b,c\n"))
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_uci(empty)


def test_the_real_readings(real_data: Path) -> None:
    readings = load_uci(real_data / "household_power_consumption_2007H1.zip")
    report = readings.report
    assert (report.rows, report.missing, report.filled) == (260_640, 3_771, 3_771)
    assert report.date_forms == ("d/m/yy", "d/m/yyyy")
    assert readings.days == 181 and readings.start.isoformat() == "2007-01-01T00:00:00"
    assert MISSING not in readings.watts
    skipped = load_uci(real_data / "household_power_consumption_2007H1.zip", MissingPolicy.SKIP)
    assert skipped.watts.count(MISSING) == 3_771


def test_tmy_scaling_hits_peak_at_the_brightest_hour(tmp_path: Path) -> None:
    profile = load_tmy(write_tmy(tmp_path / "t.csv"))
    hourly = compute_pv_slot_energy(profile, 0, Watt(1000), 24, 60)
    assert (hourly[0] == 0 and max(hourly) == hourly[12]) or max(hourly) == hourly[11]
    assert max(hourly) <= 1000
    assert sum(compute_pv_slot_energy(profile, 0, Watt(1000), 144, 10)) == pytest.approx(
        sum(hourly), abs=24
    )


def test_the_real_tmy(real_data: Path) -> None:
    profile = load_tmy(real_data / "pv_tmy" / "Houston_722430TYA.csv")
    june = compute_pv_slot_energy(profile, 151, Watt(4000), 24, 60)
    assert june[2] == 0 and june[12] > 2000 and 0 < sum(june) < 4000 * 24


def test_bad_tmy_files(tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    short.write_text("GH illum (lx)\n1\n2\n")
    with pytest.raises(DataError, match="8760"):
        load_tmy(short)
    bad = tmp_path / "bad.csv"
    bad.write_text("GH illum (lx)\n1\nx\n")
    with pytest.raises(DataError) as caught:
        load_tmy(bad)
    assert caught.value.line == 3
    headless = tmp_path / "headless.csv"
    headless.write_text("1\n2\n")
    with pytest.raises(DataError, match="header"):
        load_tmy(headless)


def test_hostile_files_get_a_typed_error(tmp_path: Path) -> None:
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"Date,Time,Global_active_power\n\xff\xfe\x00\x81garbage\n")
    with pytest.raises(DataError, match="unreadable"):
        load_uci(binary)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("a.csv", "x")
        archive.writestr("b.csv", "y")
    with pytest.raises(DataError, match=r"one \.csv"):
        load_uci(two)
    corrupt = tmp_path / "corrupt.zip"
    good = write_uci_zip(tmp_path / "good.zip", [("1/6/07", "0:00:00", "1")] * 1).read_bytes()
    index = good.index(b"1/6/07")
    corrupt.write_bytes(good[:index] + b"X" + good[index + 1 :])  # breaks the CRC
    with pytest.raises(DataError, match="unreadable"):
        load_uci(corrupt)
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"Date,Time,Global_active_power\n1/6/07,0:00:00,1\x00\n")
    with pytest.raises(DataError):
        load_uci(nul)
    tmy = tmp_path / "tmy.csv"
    tmy.write_bytes(b"GH illum\n\xff\xff\n")
    with pytest.raises(DataError, match="unreadable"):
        load_tmy(tmy)
