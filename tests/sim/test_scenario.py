"""Scenario files: defaults, and one clear line naming the problem for every bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridledger.errors import ConfigError
from gridledger.sim.errors import ScenarioError
from gridledger.sim.scenario import load_default_scenario, load_scenario, parse_scenario

GOOD = """
[scenario]
name = "t"
seed = 5
[households.A]
count = 2
pv_peak_w = 500
[households.B]
count = 1
pv_peak_w = 3000
battery_wh = 4000
battery_power_w = 1000
"""


def test_a_minimal_file_gets_the_defaults(synthetic_data: Path) -> None:
    scenario = parse_scenario(GOOD, data_dir=synthetic_data)
    assert scenario.household_count == 3 and scenario.seed == 5
    assert scenario.market == "fixed-piece" and scenario.channel.message_ms == 30
    assert scenario.slots == 144 and scenario.consortium.size == 4
    assert scenario.data.consumption == synthetic_data / "household_power_consumption_2007H1.zip"


def test_the_packaged_scenarios_load(real_data: Path) -> None:
    assert load_default_scenario().household_count == 10
    assert load_default_scenario("alas-sebe-table1").fixed_piece.max_pieces_per_step == 1
    with pytest.raises(ScenarioError, match="no such packaged"):
        load_default_scenario("nope")


def test_data_dir_in_the_file_is_relative_to_the_file(synthetic_data: Path) -> None:
    (synthetic_data / "scenarios").mkdir()
    path = synthetic_data / "scenarios" / "s.toml"
    path.write_text(GOOD + '[data]\ndir = ".."\n')
    assert load_scenario(path).data.pv.parent.parent.resolve() == synthetic_data.resolve()


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("[scenario]\ncolour = 1\n", "scenario.colour", "unknown key"),
        ("[households.C]\ncount = -1\n", "households.C.count", "must be in"),
        ("[households.C]\npv_peak_w = 1\n", "households.C.count", "required"),
        ("[households.C]\ncount = 1\nsolar = 2\n", "households.C.solar", "unknown key"),
        ('[data]\nconsumption = "nope.zip"\n', "data.consumption", "does not exist"),
        ('[data]\npv = "nope.csv"\n', "data.pv", "does not exist"),
        ('[data]\nmissing = "guess"\n', "data.missing", "must be one of"),
        ('[scenario]\nseed = "x"\n', "scenario.seed", "must be an integer"),
        ("[prices]\nlocal_mc_per_kwh = 99999999\n", "prices", "grid_export <= local"),
        ('[channel]\nmodel = "smoke"\n', "channel.model", "must be one of"),
        ("[channel]\nmessage_ms = 1.5\n", "channel.message_ms", "must be an integer"),
        ("[fixed_piece]\npiece_power_w = true\n", "fixed_piece.piece_power_w", "integer"),
        ("[scenario.start]\n", "scenario.start", "not a date"),
        ("[bogus]\n", "bogus", "unknown key"),
        ("[scenario]\nslot_minutes = 7\n", "scenario.slot_minutes", "divide a day"),
        ('[consortium]\nengine = "pow"\n', "consortium.engine", "must be one of"),
    ],
)
def test_a_bad_file_gets_one_line_naming_the_key(
    tmp_path: Path, synthetic_data: Path, extra: str, key: str, words: str
) -> None:
    text = GOOD.replace('[scenario]\nname = "t"\nseed = 5\n', "") + extra
    if extra.startswith("[scenario"):
        text = GOOD.replace('[scenario]\nname = "t"\nseed = 5\n', extra)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, data_dir=synthetic_data)
    error = caught.value
    assert isinstance(error, ConfigError)
    assert error.key == key, error.reason
    assert words in error.reason
    assert "\n" not in error.reason and str(path) in error.reason


def test_not_toml_and_no_households(tmp_path: Path, synthetic_data: Path) -> None:
    with pytest.raises(ScenarioError, match="not valid TOML"):
        parse_scenario("[scenario\n", data_dir=synthetic_data)
    with pytest.raises(ScenarioError, match="at least one household"):
        parse_scenario("[households.A]\ncount = 0\n", data_dir=synthetic_data)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.toml")
