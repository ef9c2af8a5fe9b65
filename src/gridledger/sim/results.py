"""What a run produced, as frozen values, and the key figures computed from them.

A :class:`RunResult` holds only what the scenario and seed determine (no wall
clock), so two runs of one scenario compare equal; tests rely on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gridledger.sim.accounting import Accounts, SlotAccount

__all__ = [
    "HouseholdInfo",
    "HouseholdSummary",
    "PairingRecord",
    "Progress",
    "RunResult",
    "compute_household_summary",
    "compute_kpis",
    "freeze_accounts",
]


Progress = Callable[[int, int], None]
"""Called with (slots done, slots in all) as a run advances; for progress bars."""


@dataclass(frozen=True)
class HouseholdInfo:
    """Which household, of which type, drawn from which day and time shift."""

    name: str
    kind: str
    day_offset: int
    shift_minutes: int


@dataclass(frozen=True)
class PairingRecord:
    """One request served: when it completed, how long it took, who offered."""

    requested_us: int
    completed_us: int
    slot: int
    by_dso: bool

    @property
    def duration_us(self) -> int:
        """Request sent to the substation's check of the receipt (Table 1, Fig. 6)."""
        return self.completed_us - self.requested_us


@dataclass(frozen=True)
class RunResult:
    """Everything one run produced; ``accounts[h][s]`` is a frozen copy of the books."""

    scenario: str
    digest: str
    seed: int
    market: str
    slot_minutes: int
    households: tuple[HouseholdInfo, ...]
    accounts: tuple[tuple[tuple[tuple[str, int], ...], ...], ...]
    dso_paid: int
    dso_received: int
    pairings: tuple[PairingRecord, ...]
    meter_offers_per_hour: tuple[int, ...]
    dso_offers_per_hour: tuple[int, ...]
    queue_per_second: tuple[tuple[int, int], ...]
    messages_by_kind: tuple[tuple[str, int], ...]
    end_us: int

    def get_account(self, household: int, slot: int) -> SlotAccount:
        """The mutable-typed view of one row (a fresh copy)."""
        return SlotAccount(**dict(self.accounts[household][slot]))

    @property
    def slots(self) -> int:
        """Slots in the run."""
        return len(self.accounts[0]) if self.accounts else 0


def freeze_accounts(accounts: Accounts) -> tuple[tuple[tuple[tuple[str, int], ...], ...], ...]:
    """An immutable, comparable copy of the books."""
    return tuple(
        tuple(tuple(row.as_dict().items()) for row in household) for household in accounts.rows
    )


@dataclass(frozen=True)
class HouseholdSummary:
    """A household's day: energy (Wh), money (mc) and its bill against two baselines.

    ``bill`` is money paid minus money received. ``bill_without_market`` is what
    the same household (same PV and battery) would pay trading only with the
    DSO; ``bill_grid_only`` is buying all its consumption from the DSO.
    """

    name: str
    kind: str
    consumption_wh: float
    production_wh: float
    local_bought_wh: float
    local_sold_wh: float
    grid_bought_wh: float
    grid_sold_wh: float
    bill_mc: int
    bill_without_market_mc: int
    bill_grid_only_mc: int

    @property
    def savings_vs_grid_only_mc(self) -> int:
        """What the household saves against buying everything from the DSO."""
        return self.bill_grid_only_mc - self.bill_mc

    @property
    def market_gain_mc(self) -> int:
        """What the local market adds over trading the same net energy with the DSO."""
        return self.bill_without_market_mc - self.bill_mc


def compute_household_summary(
    result: RunResult, household: int, import_rate: int, export_rate: int
) -> HouseholdSummary:
    """Sum a household's slots; baselines at the grid tariffs (mc per kWh)."""
    from gridledger.sim.accounting import compute_price

    rows = [result.get_account(household, s) for s in range(result.slots)]

    def total(name: str) -> int:
        return sum(getattr(r, name) for r in rows)

    without_market = 0
    for r in rows:
        own = r.self_consumed + r.discharged
        without_market += compute_price(import_rate, r.consumption - own)
        without_market -= compute_price(export_rate, r.production - r.self_consumed - r.charged)
    info = result.households[household]
    return HouseholdSummary(
        name=info.name,
        kind=info.kind,
        consumption_wh=total("consumption") / 1000,
        production_wh=total("production") / 1000,
        local_bought_wh=total("local_bought") / 1000,
        local_sold_wh=total("local_sold") / 1000,
        grid_bought_wh=total("grid_bought") / 1000,
        grid_sold_wh=total("grid_sold") / 1000,
        bill_mc=total("paid") - total("received"),
        bill_without_market_mc=without_market,
        bill_grid_only_mc=sum(compute_price(import_rate, r.consumption) for r in rows),
    )


def compute_kpis(result: RunResult) -> dict[str, float]:
    """Microgrid figures in gsy-e's sense, plus pairing times.

    self-sufficiency = share of consumption not bought from the grid;
    self-consumption = share of production not sold to the grid.
    """
    sums: dict[str, int] = {}
    for household in result.accounts:
        for row in household:
            for name, value in row:
                sums[name] = sums.get(name, 0) + value
    consumption, production = sums.get("consumption", 0), sums.get("production", 0)
    dso = [p.duration_us for p in result.pairings if p.by_dso]
    sm = [p.duration_us for p in result.pairings if not p.by_dso]
    return {
        "consumption_kwh": consumption / 1e6,
        "production_kwh": production / 1e6,
        "local_traded_kwh": sums.get("local_bought", 0) / 1e6,
        "grid_bought_kwh": sums.get("grid_bought", 0) / 1e6,
        "grid_sold_kwh": sums.get("grid_sold", 0) / 1e6,
        "self_sufficiency": 1 - sums.get("grid_bought", 0) / consumption if consumption else 0.0,
        "self_consumption": 1 - sums.get("grid_sold", 0) / production if production else 0.0,
        "pairings_dso": float(len(dso)),
        "pairings_sm": float(len(sm)),
        "mean_pairing_s_dso": sum(dso) / len(dso) / 1e6 if dso else 0.0,
        "mean_pairing_s_sm": sum(sm) / len(sm) / 1e6 if sm else 0.0,
        "messages": float(sum(v for _, v in result.messages_by_kind)),
        "max_queue": float(max((q for _, q in result.queue_per_second), default=0)),
    }
