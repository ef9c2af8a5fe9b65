"""Seed 003's experiment as a discrete-event simulation in simulated time.

At the start of every slot (one piece time), each meter looks at its
household's balance: a surplus becomes ``surplus // piece`` Offer messages, a
deficit ``deficit // piece`` Request messages (what is left below one piece is
metered against the grid directly). All meters act at the same instant, as
seed 003's meter processes did, and race for the one shared bus; the race is
drawn from the seed. The substation pairs first-come-first-served
(:mod:`gridledger.sim.pairing`) and each pairing then runs the message
sequence of seed 003 §5.3 proc. 6 (papers_features.md §4.4-4.5), each
message waiting its turn on the bus::

    offer by a meter (7 messages after the Request)   offer by the DSO (3)
      Pairing        substation -> all                   Pairing   substation
      Payment        requester  -> all                   Payment   requester
      CoinCheck      offerer    -> substation            Receipt   substation
      CoinCheckAnswer substation -> offerer
      WithdrawRequest offerer   -> substation
      WithdrawSignature substation -> offerer
      Receipt        offerer    -> all

A pairing is concluded when the substation has the Receipt (step g); its time
is measured from the moment the meter queued its Request (Table 1, Fig. 6).
The DSO as offerer checks the coin itself and needs no new coin (seed 003 §7),
hence the shorter sequence. When the substation buys surplus past the
threshold it is the requester and pays; the meter's sequence is unchanged.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import Enum

from gridledger.crypto.rng import DeterministicRng
from gridledger.sim.accounting import Accounts, compute_price
from gridledger.sim.channel import Channel, Kind, Message
from gridledger.sim.households import Household, compute_slot_balance
from gridledger.sim.pairing import DSO, OpenOffer, PairingBook, PairingDecision
from gridledger.sim.results import (
    HouseholdInfo,
    PairingRecord,
    Progress,
    RunResult,
    freeze_accounts,
)
from gridledger.sim.scenario import Scenario

__all__ = ["DSO_FLOW", "METER_FLOW", "run_fixed_piece"]

METER_FLOW = (
    Kind.PAIRING,
    Kind.PAYMENT,
    Kind.COIN_CHECK,
    Kind.COIN_CHECK_ANSWER,
    Kind.WITHDRAW_REQUEST,
    Kind.WITHDRAW_SIGNATURE,
    Kind.RECEIPT,
)
DSO_FLOW = (Kind.PAIRING, Kind.PAYMENT, Kind.RECEIPT)

MAX_EVENTS = 50_000_000
"""Bound on events per run, so a mistaken scenario cannot loop for ever."""


class _Event(Enum):
    SLOT = 0
    SENT = 1
    DELIVER = 2
    EXPIRE = 3


@dataclass
class _Pairing:
    decision: PairingDecision
    flow: tuple[Kind, ...]
    requested_us: int
    stage: int = 0


@dataclass
class _State:
    scenario: Scenario
    households: tuple[Household, ...]
    rng: DeterministicRng
    channel: Channel
    book: PairingBook
    accounts: Accounts
    piece_mwh: int
    slot_us: int
    events: list[tuple[int, int, _Event, object]] = field(default_factory=list)
    sequence: int = 0
    offers: dict[int, OpenOffer] = field(default_factory=dict)
    requests: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    pairings: dict[int, _Pairing] = field(default_factory=dict)
    records: list[PairingRecord] = field(default_factory=list)
    next_id: int = 0
    soc: list[int] = field(default_factory=list)
    meter_offers_per_hour: list[int] = field(default_factory=list)
    dso_offers_per_hour: list[int] = field(default_factory=list)
    progress: Progress | None = None


def _schedule(state: _State, at_us: int, kind: _Event, payload: object) -> None:
    state.sequence += 1
    heapq.heappush(state.events, (at_us, state.sequence, kind, payload))


def _new_id(state: _State) -> int:
    state.next_id += 1
    return state.next_id


def _send(state: _State, kind: Kind, ref: int, now_us: int) -> None:
    started = state.channel.on_enqueue(Message(kind, ref, now_us), now_us)
    if started is not None:
        _schedule(state, now_us + state.channel.compute_airtime_us(kind), _Event.SENT, None)


def _hour(now_us: int) -> int:
    return now_us // 3_600_000_000


def _count(per_hour: list[int], now_us: int) -> None:
    hour = _hour(now_us)
    if hour >= len(per_hour):
        per_hour.extend([0] * (hour + 1 - len(per_hour)))
    per_hour[hour] += 1


def on_slot(state: _State, slot: int, now_us: int) -> None:
    """Every meter sends its offers or requests for the slot, in an order drawn from the seed."""
    cap = state.scenario.fixed_piece.max_pieces_per_step
    outgoing: list[tuple[Kind, int]] = []
    for h in state.households:
        energy = compute_slot_balance(h, slot, state.soc[h.index])
        state.soc[h.index] = energy.soc_after
        state.accounts.process_own_balance(h.index, slot, energy)
        offers, requests = energy.surplus // state.piece_mwh, energy.deficit // state.piece_mwh
        if cap:
            offers, requests = min(offers, cap), min(requests, cap)
        prices = state.scenario.prices
        rest_out = energy.surplus - offers * state.piece_mwh
        rest_in = energy.deficit - requests * state.piece_mwh
        if rest_out:
            state.accounts.process_grid(
                h.index, slot, -rest_out, compute_price(prices.grid_export, rest_out)
            )
        if rest_in:
            state.accounts.process_grid(
                h.index, slot, rest_in, compute_price(prices.grid_import, rest_in)
            )
        for _ in range(offers):
            offer_id = _new_id(state)
            state.offers[offer_id] = OpenOffer(offer_id, h.index, slot)
            outgoing.append((Kind.OFFER, offer_id))
        for _ in range(requests):
            request_id = _new_id(state)
            state.requests[request_id] = (h.index, slot, now_us)
            outgoing.append((Kind.REQUEST, request_id))
    for i in range(len(outgoing) - 1, 0, -1):  # Fisher-Yates from the seeded stream
        j = state.rng.randbelow(i + 1)
        outgoing[i], outgoing[j] = outgoing[j], outgoing[i]
    for kind, ref in outgoing:
        if kind is Kind.OFFER:
            _count(state.meter_offers_per_hour, now_us)
        _send(state, kind, ref, now_us)
    if state.progress is not None:
        state.progress(slot + 1, state.scenario.slots)
    validity_us = min(state.scenario.fixed_piece.offer_validity_s * 1_000_000, state.slot_us)
    _schedule(state, now_us + validity_us, _Event.EXPIRE, slot)


def _start_pairing(
    state: _State, decision: PairingDecision, requested_us: int, now_us: int
) -> None:
    flow = DSO_FLOW if decision.offerer == DSO else METER_FLOW
    pairing_id = _new_id(state)
    state.pairings[pairing_id] = _Pairing(decision, flow, requested_us)
    if decision.offerer == DSO:
        _count(state.dso_offers_per_hour, now_us)
    _send(state, flow[0], pairing_id, now_us)


def _settle(state: _State, decision: PairingDecision) -> None:
    prices, energy = state.scenario.prices, state.piece_mwh
    if decision.offerer == DSO:
        state.accounts.process_grid(
            decision.requester, decision.slot, energy, compute_price(prices.grid_import, energy)
        )
    elif decision.requester == DSO:
        state.accounts.process_grid(
            decision.offerer, decision.slot, -energy, compute_price(prices.grid_export, energy)
        )
    else:
        state.accounts.process_trade(
            decision.offerer,
            decision.requester,
            decision.slot,
            energy,
            compute_price(prices.local, energy),
        )


def on_deliver(state: _State, message: Message, now_us: int) -> None:
    """The substation and the meters react to a message the bus delivered."""
    if message.kind is Kind.OFFER:
        offer = state.offers.pop(message.ref)
        if now_us >= (offer.slot + 1) * state.slot_us:  # arrived after its slot: expired
            _expire(state, (offer,))
            return
        decision = state.book.process_offer(offer)
        if decision is not None:
            _start_pairing(state, decision, now_us, now_us)
        return
    if message.kind is Kind.REQUEST:
        household, slot, requested_us = state.requests.pop(message.ref)
        late = now_us >= (slot + 1) * state.slot_us
        decision = (
            PairingDecision(DSO, DSO, household, slot)
            if late
            else state.book.process_request(household, slot)
        )
        _start_pairing(state, decision, requested_us, now_us)
        return
    pairing = state.pairings[message.ref]
    pairing.stage += 1
    if pairing.stage < len(pairing.flow):
        _send(state, pairing.flow[pairing.stage], message.ref, now_us)
        return
    del state.pairings[message.ref]
    _settle(state, pairing.decision)
    if pairing.decision.requester != DSO:
        state.records.append(
            PairingRecord(
                requested_us=pairing.requested_us,
                completed_us=now_us,
                slot=pairing.decision.slot,
                by_dso=pairing.decision.offerer == DSO,
            )
        )


def _expire(state: _State, offers: tuple[OpenOffer, ...]) -> None:
    rate = state.scenario.prices.grid_export
    for offer in offers:
        state.accounts.process_grid(
            offer.household, offer.slot, -state.piece_mwh, compute_price(rate, state.piece_mwh)
        )


def _build_state(scenario: Scenario, households: tuple[Household, ...]) -> _State:
    spec = scenario.fixed_piece
    threshold = spec.surplus_threshold or 2 * len(households)
    piece_mwh = spec.piece_power * spec.piece_minutes * 1000 // 60
    return _State(
        scenario=scenario,
        households=households,
        rng=DeterministicRng(scenario.seed).fork("fixed-piece/bus"),
        channel=Channel(scenario.channel),
        book=PairingBook(threshold=threshold),
        accounts=Accounts(len(households), scenario.slots),
        piece_mwh=piece_mwh,
        slot_us=scenario.slot_minutes * 60_000_000,
        soc=[0] * len(households),
    )


def run_fixed_piece(
    scenario: Scenario, households: tuple[Household, ...], progress: Progress | None = None
) -> RunResult:
    """Simulate the whole period; the bus drains after the last slot so every pairing ends."""
    if scenario.fixed_piece.piece_minutes != scenario.slot_minutes:
        from gridledger.sim.errors import ScenarioError

        raise ScenarioError(
            scenario.name, "fixed_piece.piece_minutes", "must equal scenario.slot_minutes"
        )
    state = _build_state(scenario, households)
    state.progress = progress
    for slot in range(scenario.slots):
        _schedule(state, slot * state.slot_us, _Event.SLOT, slot)
    now_us = 0
    for _ in range(MAX_EVENTS):
        if not state.events:
            break
        now_us, _, kind, payload = heapq.heappop(state.events)
        if kind is _Event.SLOT:
            assert isinstance(payload, int)
            on_slot(state, payload, now_us)
        elif kind is _Event.SENT:
            done, following = state.channel.on_sent(now_us)
            _schedule(state, now_us + state.channel.compute_latency_us(), _Event.DELIVER, done)
            if following is not None:
                airtime = state.channel.compute_airtime_us(following.kind)
                _schedule(state, now_us + airtime, _Event.SENT, None)
        elif kind is _Event.DELIVER:
            assert isinstance(payload, Message)
            on_deliver(state, payload, now_us)
        else:
            assert isinstance(payload, int)
            _expire(state, state.book.process_expiry(payload))
    else:
        from gridledger.sim.errors import SimulationError

        raise SimulationError(f"more than {MAX_EVENTS} events: the bus never drained")
    return _freeze(state, now_us)


def _pad(values: list[int], length: int) -> tuple[int, ...]:
    return tuple(values) + (0,) * (length - len(values))


def _freeze(state: _State, end_us: int) -> RunResult:
    hours = max(len(state.meter_offers_per_hour), len(state.dso_offers_per_hour), 24)
    return RunResult(
        scenario=state.scenario.name,
        digest=state.scenario.digest,
        seed=state.scenario.seed,
        market=state.scenario.market,
        slot_minutes=state.scenario.slot_minutes,
        households=tuple(
            HouseholdInfo(h.name, h.kind, h.day_offset, h.shift_minutes) for h in state.households
        ),
        accounts=freeze_accounts(state.accounts),
        dso_paid=state.accounts.dso_paid,
        dso_received=state.accounts.dso_received,
        pairings=tuple(state.records),
        meter_offers_per_hour=_pad(state.meter_offers_per_hour, hours),
        dso_offers_per_hour=_pad(state.dso_offers_per_hour, hours),
        queue_per_second=tuple(sorted(state.channel.trace.per_second.items())),
        messages_by_kind=tuple(sorted(state.channel.trace.sent_by_kind.items())),
        end_us=end_us,
    )
