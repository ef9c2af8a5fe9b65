"""The report on disk and the ``sim`` sub-commands."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridledger.sim.cli import app
from gridledger.sim.errors import ScenarioError
from gridledger.sim.report import compute_slot_rows, write_report
from gridledger.sim.run import run_scenario
from gridledger.sim.scenario import parse_scenario

SCENARIO = """
[households.A]
count = 2
pv_peak_w = 500
[households.B]
count = 2
pv_peak_w = 3000
"""


def test_report_files_and_their_content(synthetic_data: Path, tmp_path: Path) -> None:
    scenario = parse_scenario(SCENARIO, data_dir=synthetic_data)
    result = run_scenario(scenario)
    page = write_report(result, scenario, tmp_path / "out")
    out = page.parent
    for name in ("households.csv", "slots.csv", "household_slots.csv", "summary.json"):
        assert (out / name).is_file()
    for name in ("bills", "energy_per_slot", "price_volume", "fig4_offers", "fig5_queue"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    with (out / "households.csv").open() as handle:
        households = list(csv.DictReader(handle))
    assert [h["household"] for h in households] == ["A-000", "A-001", "B-002", "B-003"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["digest"] == scenario.digest and summary["households"] == 4
    assert 0 <= summary["kpis"]["self_sufficiency"] <= 1
    text = page.read_text()
    assert "self-sufficiency" in text and "B-003" in text and "<script" not in text
    slots = compute_slot_rows(result)
    assert len(slots) == 144
    traded = [s for s in slots if s["local_volume_wh"]]
    assert traded and all(s["local_price_ct_per_kwh"] == pytest.approx(18, abs=0.1) for s in traded)


def test_cli_run_writes_a_report(synthetic_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    runner = CliRunner()
    outcome = runner.invoke(
        app, ["run", str(path), "--out", str(tmp_path / "r"), "--data-dir", str(synthetic_data)]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "self-sufficiency" in outcome.output and (tmp_path / "r" / "report.html").is_file()


def test_cli_errors_are_gridledger_errors(synthetic_data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    outcome = runner.invoke(app, ["reproduce", "nobody-2020"])
    assert isinstance(outcome.exception, ScenarioError)
    bad = tmp_path / "bad.toml"
    bad.write_text("[households.A]\ncount = -3\n")
    outcome = runner.invoke(app, ["run", str(bad), "--data-dir", str(synthetic_data)])
    assert isinstance(outcome.exception, ScenarioError)
    assert "households.A.count" in outcome.exception.reason
