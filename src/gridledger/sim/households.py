"""Households: consumption from the UCI readings, PV from TMY or seed 003's shapes.

Seed 003 gave every meter the same consumption; we draw each household's
consumption from a different day (within ``day_spread_days`` of the scenario
start) and shift it by up to ``max_shift_minutes``, so that households differ
while keeping a real day's shape. PV shares the scenario's calendar day (one
sun over the microgrid) and is scaled to each type's peak power. A battery,
when present, absorbs surplus and covers deficit before the market sees it.

All energies are integer milliwatt-hours (``MilliWattHour``) per market slot.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from typing import NewType

from gridledger.crypto.rng import DeterministicRng
from gridledger.sim.data import (
    MINUTES_PER_DAY,
    MinuteReadings,
    TmyProfile,
    Watt,
    compute_pv_slot_energy,
    compute_slot_energy,
    load_tmy,
    load_uci,
)
from gridledger.sim.errors import SimulationError
from gridledger.sim.scenario import HouseholdType, Scenario

__all__ = [
    "Household",
    "MilliWattHour",
    "SlotEnergy",
    "build_households",
    "compute_paper_pv_shape",
    "compute_slot_balance",
]

MilliWattHour = NewType("MilliWattHour", int)

# Seed 003 Fig. 3, type B production as a fraction of peak at hour marks (per mille),
# linearly interpolated: low and growing at night, high 06-18 h, falling after 18 h.
_PAPER_B_SHAPE = ((0, 50), (6, 600), (9, 1000), (18, 1000), (21, 300), (24, 100))


@dataclass(frozen=True)
class Household:
    """One household: its type, where its data came from, and its energy per slot."""

    index: int
    kind: str
    day_offset: int
    shift_minutes: int
    consumption: tuple[MilliWattHour, ...]
    production: tuple[MilliWattHour, ...]
    battery_capacity: MilliWattHour
    battery_step: MilliWattHour

    @property
    def name(self) -> str:
        """A stable display name, e.g. ``B-007``."""
        return f"{self.kind}-{self.index:03d}"


@dataclass(frozen=True)
class SlotEnergy:
    """A household's own balance in one slot before trading (all mWh, non-negative)."""

    consumption: int
    production: int
    self_consumed: int
    charged: int
    discharged: int
    surplus: int
    deficit: int
    soc_after: int


def compute_paper_pv_shape(slots: int, slot_minutes: int, peak: Watt) -> tuple[MilliWattHour, ...]:
    """Seed 003's artificial type-B production (Fig. 3) for a plant of ``peak`` W."""
    energies = []
    for slot in range(slots):
        total = Fraction(0)  # sum over minutes of the per-mille fraction of peak
        for minute in range(slot * slot_minutes, (slot + 1) * slot_minutes):
            of_day = minute % MINUTES_PER_DAY
            for (h0, v0), (h1, v1) in itertools.pairwise(_PAPER_B_SHAPE):
                if h0 * 60 <= of_day < h1 * 60:
                    total += v0 + Fraction((v1 - v0) * (of_day - h0 * 60), (h1 - h0) * 60)
                    break
        # a minute at v per mille of peak W is peak * v / 1000 / 60 Wh = peak * v / 60 mWh
        energies.append(MilliWattHour(round(total * peak / 60)))
    return tuple(energies)


def _consumption(
    readings: MinuteReadings, scenario: Scenario, day_offset: int, shift: int
) -> tuple[MilliWattHour, ...]:
    first_minute = (scenario.start - readings.start.date()).days * MINUTES_PER_DAY
    start = first_minute + day_offset * MINUTES_PER_DAY + shift
    energies = compute_slot_energy(readings, start, scenario.slots, scenario.slot_minutes)
    return tuple(MilliWattHour(e * 1000) for e in energies)


def _production(
    kind: HouseholdType, tmy: TmyProfile, scenario: Scenario
) -> tuple[MilliWattHour, ...]:
    if kind.pv_peak == 0:
        return tuple(MilliWattHour(0) for _ in range(scenario.slots))
    if kind.pv_shape == "paper":
        return compute_paper_pv_shape(scenario.slots, scenario.slot_minutes, kind.pv_peak)
    day = scenario.start.timetuple().tm_yday - 1
    energies = compute_pv_slot_energy(tmy, day, kind.pv_peak, scenario.slots, scenario.slot_minutes)
    return tuple(MilliWattHour(e * 1000) for e in energies)


def _draw_offsets(
    rng: DeterministicRng, readings: MinuteReadings, scenario: Scenario
) -> tuple[int, int]:
    """A day offset and a time shift that keep the household's window inside the data."""
    first = (scenario.start - readings.start.date()).days
    spread, max_shift = scenario.data.day_spread_days, scenario.data.max_shift_minutes
    low_day = max(-spread, -first + (1 if max_shift else 0))
    high_day = min(spread, readings.days - first - scenario.days - (1 if max_shift else 0))
    if low_day > high_day:
        raise SimulationError(
            f"the readings ({readings.start.date()}, {readings.days} days) do not cover "
            f"{scenario.start} + {scenario.days} days with shifts of {max_shift} minutes"
        )
    day = low_day + rng.randbelow(high_day - low_day + 1)
    shift = rng.randbelow(2 * max_shift + 1) - max_shift if max_shift else 0
    return day, shift


def build_households(scenario: Scenario) -> tuple[Household, ...]:
    """Every household of the scenario, deterministic in its seed."""
    readings = load_uci(scenario.data.consumption, scenario.data.missing)
    tmy = load_tmy(scenario.data.pv)
    rng = DeterministicRng(scenario.seed).fork("households")
    households: list[Household] = []
    for kind in scenario.households:
        production = _production(kind, tmy, scenario)
        for _ in range(kind.count):
            day, shift = _draw_offsets(rng, readings, scenario)
            households.append(
                Household(
                    index=len(households),
                    kind=kind.name,
                    day_offset=day,
                    shift_minutes=shift,
                    consumption=_consumption(readings, scenario, day, shift),
                    production=production,
                    battery_capacity=MilliWattHour(kind.battery_capacity * 1000),
                    battery_step=MilliWattHour(
                        kind.battery_power * scenario.slot_minutes * 1000 // 60
                    ),
                )
            )
    return tuple(households)


def compute_slot_balance(household: Household, slot: int, soc: int) -> SlotEnergy:
    """Own use first, then the battery, then what is left for the market (seed 003 §3.1)."""
    consumption, production = household.consumption[slot], household.production[slot]
    self_consumed = min(consumption, production)
    surplus, deficit = production - self_consumed, consumption - self_consumed
    charged = min(surplus, household.battery_capacity - soc, household.battery_step)
    discharged = min(deficit, soc, household.battery_step)
    return SlotEnergy(
        consumption=consumption,
        production=production,
        self_consumed=self_consumed,
        charged=charged,
        discharged=discharged,
        surplus=surplus - charged,
        deficit=deficit - discharged,
        soc_after=soc + charged - discharged,
    )
