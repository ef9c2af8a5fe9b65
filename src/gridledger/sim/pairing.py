"""The substation's pairing rule of seed 003, as a pure book the simulation drives.

Seed 003 §5.3 proc. 6 and §5.4.2-3 (papers_features.md §4.5-4.6), with the
gaps filled as §4.9 proposes:

* offers are paired first-come-first-served by the substation's reception
  order, and only with requests for the same market slot (an offer is valid
  until the end of its slot: parameter 26, validity = the piece time);
* a request finding no open meter offer is paired with an offer the
  substation makes itself (the DSO fallback: energy from the global grid);
* when more than ``threshold`` meter offers are open, the substation makes a
  request itself and pairs the oldest offer (it buys the surplus for the grid).

The book only decides *who pairs with whom*; messages, timing and money belong
to the simulation. The same decisions are what the ledger-backed fixed-piece
market contract makes in block order, so a later run can put the contract
behind :class:`PairingBook`'s three ``process_*`` calls.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["DSO", "OpenOffer", "PairingBook", "PairingDecision"]

DSO = -1
"""Party id of the substation (DSO) in offers, requests and pairings."""


@dataclass(frozen=True)
class OpenOffer:
    """An offer the substation has received and not yet paired or expired."""

    offer_id: int
    household: int
    slot: int


@dataclass(frozen=True)
class PairingDecision:
    """Offer ``offer_id`` (``DSO`` if the substation offers) pairs with a request."""

    offer_id: int
    offerer: int
    requester: int
    slot: int


@dataclass
class PairingBook:
    """Open meter offers per slot, oldest first."""

    threshold: int
    open_by_slot: dict[int, deque[OpenOffer]] = field(default_factory=dict)

    def get_open_count(self) -> int:
        """Open meter offers over all slots."""
        return sum(len(q) for q in self.open_by_slot.values())

    def process_offer(self, offer: OpenOffer) -> PairingDecision | None:
        """Record an offer; if that takes the pool past the threshold, the DSO buys the oldest."""
        self.open_by_slot.setdefault(offer.slot, deque()).append(offer)
        if self.threshold and self.get_open_count() > self.threshold:
            oldest = self._pop_oldest()
            return PairingDecision(oldest.offer_id, oldest.household, DSO, oldest.slot)
        return None

    def process_request(self, requester: int, slot: int) -> PairingDecision:
        """Pair a request for ``slot``: the oldest open offer of that slot, else the DSO."""
        pool = self.open_by_slot.get(slot)
        if pool:
            offer = pool.popleft()
            return PairingDecision(offer.offer_id, offer.household, requester, slot)
        return PairingDecision(DSO, DSO, requester, slot)

    def process_expiry(self, slot: int) -> tuple[OpenOffer, ...]:
        """The slot ended: its open offers expire unpaired (their energy goes to the grid)."""
        return tuple(self.open_by_slot.pop(slot, ()))

    def _pop_oldest(self) -> OpenOffer:
        slot = min(s for s, q in self.open_by_slot.items() if q)
        return self.open_by_slot[slot].popleft()
