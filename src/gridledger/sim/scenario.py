"""Scenario files: what to simulate, in TOML, checked key by key.

A scenario is reproducible from its file and seed: everything random in a run
(which day and time shift each household takes, the order in which meters
race for the channel) is drawn from ``DeterministicRng(seed)`` forks. Every
mistake in a file (unknown key, wrong type, negative count, missing data file)
is one :class:`ScenarioError` whose message names the file and the dotted key.

Layout (every table and key optional unless marked; defaults in brackets)::

    [scenario]  name ["scenario"], seed [7], start ["2007-06-01"], days [1],
                slot_minutes [10], market ["fixed-piece" | "double-auction"],
                pseudonym_round_hours [24: one round a day; must divide 24]
    [data]      dir [see find_data_dir], consumption [the UCI zip], pv [Houston TMY],
                missing ["fill" | "skip"], day_spread_days [30], max_shift_minutes [90]
    [households.<type>]   count (required), pv_peak_w [0], pv ["tmy" | "paper"],
                battery_wh [0], battery_power_w [0]
    [prices]    grid_import_mc_per_kwh [30000], grid_export_mc_per_kwh [8000],
                local_mc_per_kwh [18000]                  (mc = milli-cent)
    [fixed_piece]  piece_power_w [100], piece_minutes [10], offer_validity_s [600],
                   surplus_threshold [0 = 2 x meters], max_pieces_per_step [0 = no cap]
    [consortium]   size [4], engine ["pbft" | "dpos" | "ordering"]
    [channel]   model ["fixed" | "lan"], message_ms [30], latency_ms [1], bandwidth_kbps [10000]
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib.resources
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NewType, TypeVar

from gridledger.sim.data import MissingPolicy, Watt, WattHour
from gridledger.sim.errors import ScenarioError

__all__ = [
    "MARKETS",
    "ChannelSpec",
    "ConsortiumSpec",
    "DataSpec",
    "FixedPieceSpec",
    "HouseholdType",
    "MilliCent",
    "PriceSpec",
    "Scenario",
    "find_data_dir",
    "load_default_scenario",
    "load_scenario",
    "parse_scenario",
]

MilliCent = NewType("MilliCent", int)

MARKETS = ("fixed-piece", "double-auction")
ENGINES = ("pbft", "dpos", "ordering")
CHANNELS = ("fixed", "lan")
PV_SHAPES = ("tmy", "paper")
DEFAULT_CONSUMPTION = "household_power_consumption_2007H1.zip"
DEFAULT_PV = "pv_tmy/Houston_722430TYA.csv"
DATA_DIR_ENV = "GRIDLEDGER_DATA_DIR"

T = TypeVar("T")


@dataclass(frozen=True)
class HouseholdType:
    """One kind of household (seed 003's type A low producer, type B high producer)."""

    name: str
    count: int
    pv_peak: Watt
    pv_shape: str
    battery_capacity: WattHour
    battery_power: Watt


@dataclass(frozen=True)
class DataSpec:
    """Where the readings come from and how households are made to differ."""

    consumption: Path
    pv: Path
    missing: MissingPolicy
    day_spread_days: int
    max_shift_minutes: int


@dataclass(frozen=True)
class PriceSpec:
    """Grid tariffs and the local price, in milli-cents per kWh."""

    grid_import: MilliCent
    grid_export: MilliCent
    local: MilliCent


@dataclass(frozen=True)
class FixedPieceSpec:
    """Seed 003's market: one piece type (power for a time), offer validity, threshold."""

    piece_power: Watt
    piece_minutes: int
    offer_validity_s: int
    surplus_threshold: int
    max_pieces_per_step: int

    @property
    def piece_energy_mwh(self) -> int:
        """A piece's energy in milliwatt-hours (10 W x 10 min = 1,667 mWh, exactly 5000/3)."""
        return self.piece_power * self.piece_minutes * 1000 // 60


@dataclass(frozen=True)
class ConsortiumSpec:
    """The aggregators that keep the ledger (recorded; driven by the ledger-backed runs)."""

    size: int
    engine: str


@dataclass(frozen=True)
class ChannelSpec:
    """Seed 003's shared bus: fixed time per message, or latency plus bandwidth."""

    model: str
    message_ms: int
    latency_ms: int
    bandwidth_kbps: int


@dataclass(frozen=True)
class Scenario:
    """A whole simulation set-up; ``digest`` identifies it in results."""

    name: str
    seed: int
    start: dt.date
    days: int
    slot_minutes: int
    market: str
    data: DataSpec
    households: tuple[HouseholdType, ...]
    prices: PriceSpec
    fixed_piece: FixedPieceSpec
    consortium: ConsortiumSpec
    channel: ChannelSpec
    digest: str
    pseudonym_round_hours: int = 24  # the real-stack day: a new pseudonym round this often

    @property
    def household_count(self) -> int:
        """All households of every type."""
        return sum(t.count for t in self.households)

    @property
    def slots(self) -> int:
        """Market slots in the simulated period."""
        return self.days * 1440 // self.slot_minutes


class _Table:
    """A TOML table read key by key; whatever is left unread is an unknown key."""

    def __init__(self, source: str, prefix: str, raw: object) -> None:
        if not isinstance(raw, dict):
            raise ScenarioError(source, prefix, "must be a table")
        self.source, self.prefix, self.raw = source, prefix, dict(raw)

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def take(self, name: str, kind: type[T], default: T | None) -> T:
        if name not in self.raw:
            if default is None:
                raise ScenarioError(self.source, self.key(name), "is required")
            return default
        value = self.raw.pop(name)
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ScenarioError(self.source, self.key(name), f"must be an integer, got {value!r}")
        if not isinstance(value, kind):
            raise ScenarioError(
                self.source, self.key(name), f"must be a {kind.__name__}, got {value!r}"
            )
        return value

    def int_in(self, name: str, default: int | None, low: int, high: int) -> int:
        value = self.take(name, int, default)
        if not low <= value <= high:
            raise ScenarioError(
                self.source, self.key(name), f"must be in [{low}, {high}], got {value}"
            )
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.take(name, str, default)
        if value not in allowed:
            raise ScenarioError(
                self.source, self.key(name), f"must be one of {', '.join(allowed)}; got {value!r}"
            )
        return value

    def sub(self, name: str) -> _Table:
        return _Table(self.source, self.key(name), self.raw.pop(name, {}))

    def done(self) -> None:
        if self.raw:
            raise ScenarioError(self.source, self.key(sorted(self.raw)[0]), "unknown key")


def find_data_dir() -> Path | None:
    """The shared data directory: ``$GRIDLEDGER_DATA_DIR``, else ``../shared/data`` from the
    working directory or from the source checkout, else the copy shipped in the package
    (``sim/data_files``); ``None`` if none exists."""
    candidates = [Path(p) for p in [os.environ.get(DATA_DIR_ENV, "")] if p]
    candidates += [Path.cwd() / ".." / "shared" / "data"]
    candidates += [Path(__file__).resolve().parents[3] / ".." / "shared" / "data"]
    # last: the copy shipped in the package, so the default scenario runs anywhere
    candidates += [Path(__file__).resolve().parent / "data_files"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return None


_MAX = 10**9


def _parse_data(
    table: _Table, base: Path | None, data_dir: Path | None, check_files: bool
) -> DataSpec:
    directory_text = table.take("dir", str, "")
    if data_dir is None:
        if directory_text:
            data_dir = (base / directory_text) if base else Path(directory_text)
        else:
            data_dir = find_data_dir()
    files = {}
    for key, default in (("consumption", DEFAULT_CONSUMPTION), ("pv", DEFAULT_PV)):
        name = table.take(key, str, default)
        path = Path(name) if Path(name).is_absolute() or data_dir is None else data_dir / name
        if check_files and not path.is_file():
            raise ScenarioError(table.source, table.key(key), f"data file {path} does not exist")
        files[key] = path
    missing = table.choice("missing", "fill", ("fill", "skip"))
    spec = DataSpec(
        consumption=files["consumption"],
        pv=files["pv"],
        missing=MissingPolicy(missing),
        day_spread_days=table.int_in("day_spread_days", 30, 0, 180),
        max_shift_minutes=table.int_in("max_shift_minutes", 90, 0, 720),
    )
    table.done()
    return spec


def _parse_households(table: _Table) -> tuple[HouseholdType, ...]:
    kinds: list[HouseholdType] = []
    for name in sorted(table.raw):
        sub = table.sub(name)
        kinds.append(
            HouseholdType(
                name=name,
                count=sub.int_in("count", None, 0, 100_000),
                pv_peak=Watt(sub.int_in("pv_peak_w", 0, 0, 1_000_000)),
                pv_shape=sub.choice("pv", "tmy", PV_SHAPES),
                battery_capacity=WattHour(sub.int_in("battery_wh", 0, 0, 1_000_000)),
                battery_power=Watt(sub.int_in("battery_power_w", 0, 0, 1_000_000)),
            )
        )
        sub.done()
    if not kinds or sum(k.count for k in kinds) == 0:
        raise ScenarioError(table.source, table.prefix, "at least one household is needed")
    return tuple(kinds)


def _parse_section(root: _Table, name: str, build: Callable[[_Table], T]) -> T:
    table = root.sub(name)
    value = build(table)
    table.done()
    return value


def parse_scenario(
    text: str,
    source: str = "<scenario>",
    base: Path | None = None,
    data_dir: Path | None = None,
    check_files: bool = True,
) -> Scenario:
    """Parse and check a scenario; relative data paths resolve against ``data.dir``
    (itself relative to ``base``) or, without one, against ``data_dir`` or
    :func:`find_data_dir`. ``check_files=False`` is for runs on given profiles."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, "", f"not valid TOML: {exc}") from None
    root = _Table(source, "", raw)
    head = root.sub("scenario")
    name = head.take("name", str, "scenario")
    seed = head.int_in("seed", 7, 0, 2**63 - 1)
    start_value = head.take("start", object, "2007-06-01")
    try:
        start = (
            start_value
            if isinstance(start_value, dt.date)
            else dt.date.fromisoformat(str(start_value))
        )
    except ValueError:
        raise ScenarioError(source, "scenario.start", f"not a date: {start_value!r}") from None
    days = head.int_in("days", 1, 1, 366)
    slot_minutes = head.int_in("slot_minutes", 10, 1, 1440)
    if 1440 % slot_minutes:
        raise ScenarioError(source, "scenario.slot_minutes", "must divide a day (1440 minutes)")
    market = head.choice("market", "fixed-piece", MARKETS)
    round_hours = head.int_in("pseudonym_round_hours", 24, 1, 24)
    if 24 % round_hours:
        raise ScenarioError(source, "scenario.pseudonym_round_hours", "must divide 24")
    head.done()
    data = _parse_data(root.sub("data"), base, data_dir, check_files)
    households = _parse_households(root.sub("households"))
    prices = _parse_section(
        root,
        "prices",
        lambda t: PriceSpec(
            grid_import=MilliCent(t.int_in("grid_import_mc_per_kwh", 30_000, 0, _MAX)),
            grid_export=MilliCent(t.int_in("grid_export_mc_per_kwh", 8_000, 0, _MAX)),
            local=MilliCent(t.int_in("local_mc_per_kwh", 18_000, 0, _MAX)),
        ),
    )
    if not prices.grid_export <= prices.local <= prices.grid_import:
        raise ScenarioError(source, "prices", "need grid_export <= local <= grid_import")
    fixed_piece = _parse_section(
        root,
        "fixed_piece",
        lambda t: FixedPieceSpec(
            piece_power=Watt(t.int_in("piece_power_w", 100, 1, 1_000_000)),
            piece_minutes=t.int_in("piece_minutes", 10, 1, 1440),
            offer_validity_s=t.int_in("offer_validity_s", 600, 1, 86_400),
            surplus_threshold=t.int_in("surplus_threshold", 0, 0, _MAX),
            max_pieces_per_step=t.int_in("max_pieces_per_step", 0, 0, _MAX),
        ),
    )
    consortium = _parse_section(
        root,
        "consortium",
        lambda t: ConsortiumSpec(
            size=t.int_in("size", 4, 1, 1000), engine=t.choice("engine", "pbft", ENGINES)
        ),
    )
    channel = _parse_section(
        root,
        "channel",
        lambda t: ChannelSpec(
            model=t.choice("model", "fixed", CHANNELS),
            message_ms=t.int_in("message_ms", 30, 1, 60_000),
            latency_ms=t.int_in("latency_ms", 1, 0, 60_000),
            bandwidth_kbps=t.int_in("bandwidth_kbps", 10_000, 1, 10**9),
        ),
    )
    root.done()
    return Scenario(
        name=name,
        seed=seed,
        start=start,
        days=days,
        slot_minutes=slot_minutes,
        market=market,
        data=data,
        households=households,
        prices=prices,
        fixed_piece=fixed_piece,
        consortium=consortium,
        channel=channel,
        digest=hashlib.sha256(text.encode()).hexdigest()[:16],
        pseudonym_round_hours=round_hours,
    )


def load_scenario(path: Path, data_dir: Path | None = None) -> Scenario:
    """Read and check a scenario file; data paths resolve as in :func:`parse_scenario`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(path), "", f"cannot read: {exc.__class__.__name__}") from None
    return parse_scenario(text, str(path), base=path.parent, data_dir=data_dir)


def load_default_scenario(name: str = "default", data_dir: Path | None = None) -> Scenario:
    """One of the scenarios shipped in the package (``sim/scenarios/<name>.toml``)."""
    resource = importlib.resources.files("gridledger.sim") / "scenarios" / f"{name}.toml"
    if not resource.is_file():
        raise ScenarioError(f"<packaged {name}>", "", "no such packaged scenario")
    return parse_scenario(
        resource.read_text(encoding="utf-8"), f"<packaged {name}>", None, data_dir
    )


def replace_households(scenario: Scenario, counts: dict[str, int]) -> Scenario:
    """The same scenario with other household counts (for sweeps and Table 1)."""
    kinds = tuple(
        HouseholdType(
            k.name,
            counts.get(k.name, k.count),
            k.pv_peak,
            k.pv_shape,
            k.battery_capacity,
            k.battery_power,
        )
        for k in scenario.households
    )
    return dataclasses.replace(scenario, households=kinds)
