"""Per household and slot: where energy came from and went, and what money moved.

Both markets write into one :class:`Accounts`; the results and the report read
it. Energy is in milliwatt-hours, money in milli-cents, both integers. Every
transfer is written on both sides with the same integer (``process_trade``,
``process_grid``), so money is conserved by construction and a test checks
that energy balances per household and slot:

    consumption = self_consumed + discharged + local_bought + grid_bought
    production  = self_consumed + charged    + local_sold   + grid_sold
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from gridledger.sim.households import SlotEnergy
from gridledger.sim.scenario import MilliCent

__all__ = ["Accounts", "SlotAccount", "compute_price"]


@dataclass
class SlotAccount:
    """One household in one slot (mWh; money in mc, ``paid`` out and ``received`` in;
    ``local_paid`` is the part of ``paid`` that went to other households)."""

    consumption: int = 0
    production: int = 0
    self_consumed: int = 0
    charged: int = 0
    discharged: int = 0
    local_bought: int = 0
    local_sold: int = 0
    grid_bought: int = 0
    grid_sold: int = 0
    paid: int = 0
    received: int = 0
    local_paid: int = 0

    def is_balanced(self) -> bool:
        """Both energy identities of the module docstring hold."""
        supply = self.self_consumed + self.discharged + self.local_bought + self.grid_bought
        use = self.self_consumed + self.charged + self.local_sold + self.grid_sold
        return supply == self.consumption and use == self.production

    def as_dict(self) -> dict[str, int]:
        """Field name to value, for CSV and JSON."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def compute_price(rate_mc_per_kwh: int, energy_mwh: int) -> MilliCent:
    """Money for ``energy_mwh`` at a rate per kWh, rounded half up to a milli-cent."""
    return MilliCent((2 * rate_mc_per_kwh * energy_mwh + 1_000_000) // 2_000_000)


class Accounts:
    """The mutable books of one run: ``rows[household][slot]``."""

    def __init__(self, households: int, slots: int) -> None:
        self.rows = [[SlotAccount() for _ in range(slots)] for _ in range(households)]
        self.dso_paid = 0
        self.dso_received = 0

    def process_own_balance(self, household: int, slot: int, energy: SlotEnergy) -> None:
        """Record what the household covered itself (own PV, battery)."""
        row = self.rows[household][slot]
        row.consumption += energy.consumption
        row.production += energy.production
        row.self_consumed += energy.self_consumed
        row.charged += energy.charged
        row.discharged += energy.discharged

    def process_trade(
        self, seller: int, buyer: int, slot: int, energy: int, price: MilliCent
    ) -> None:
        """A local trade between two households."""
        self.rows[seller][slot].local_sold += energy
        self.rows[seller][slot].received += price
        self.rows[buyer][slot].local_bought += energy
        self.rows[buyer][slot].paid += price
        self.rows[buyer][slot].local_paid += price

    def process_grid(self, household: int, slot: int, energy: int, price: MilliCent) -> None:
        """Energy from (``energy`` > 0) or to (< 0) the DSO at ``price`` (always >= 0)."""
        row = self.rows[household][slot]
        if energy >= 0:
            row.grid_bought += energy
            row.paid += price
            self.dso_received += price
        else:
            row.grid_sold -= energy
            row.received += price
            self.dso_paid += price
