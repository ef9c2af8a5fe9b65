"""The equipment supplier's device states and fault reports (seed 002 §V.C, Fig. 4).

The five states are the paper's; its figure's transitions are not in the
text, so these are ours (spec §6.7)::

    normal ──threshold crossed──▶ alarm ──escalation──▶ emergency ──trip──▶ outage
      ▲  ◀──────cleared─────────┘                                         │  ▲
      │                       normal ──unplanned outage───────────────────┘  │
      └──────repair verified──── repair ◀──work order opened──── outage ─────┘

Every change is an :class:`EquipmentEvent` posted by the ES, carrying the
paper's fault-report fields (equipment ID, fault location, fault type, event
number, fault time); event numbers run 1, 2, 3, ... per device so an event can
be neither replayed nor lost silently. :func:`process_equipment_event` is
pure; the contract stores the :class:`EquipmentRecord` it returns, whose
counters give the supplier's statistics (alarms, outage frequency and time,
failure percentage).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gridledger.aggregation.errors import EventRejected, TransitionRefused
from gridledger.crypto.encoding import wire_type

NORMAL = "normal"
ALARM = "alarm"
EMERGENCY = "emergency"
OUTAGE = "outage"
REPAIR = "repair"
STATES = (NORMAL, ALARM, EMERGENCY, OUTAGE, REPAIR)
STATE_CODES = {name: code for code, name in enumerate(STATES)}

ALLOWED_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (NORMAL, ALARM),
        (ALARM, NORMAL),
        (ALARM, EMERGENCY),
        (EMERGENCY, OUTAGE),
        (NORMAL, OUTAGE),
        (OUTAGE, REPAIR),
        (REPAIR, NORMAL),
    }
)
MAX_FIELD = 128


@wire_type("aggregation.equipment-event/1")
@dataclass(frozen=True)
class EquipmentEvent:
    """A state change of one device with its fault report."""

    equipment_id: str
    event_number: int
    new_state: str
    fault_location: str
    fault_type: str
    fault_time_ms: int


@wire_type("aggregation.equipment-record/1")
@dataclass(frozen=True)
class EquipmentRecord:
    """A device's state and counters since it was first seen (``since_ms``)."""

    equipment_id: str
    state: str
    last_event: int
    since_ms: int
    state_since_ms: int
    alarms: int
    outages: int
    outage_ms: int
    last_fault_location: str
    last_fault_type: str


def is_allowed_transition(current: str, requested: str) -> bool:
    return (current, requested) in ALLOWED_TRANSITIONS


def create_record(equipment_id: str, since_ms: int) -> EquipmentRecord:
    """A new device, in state ``normal``."""
    return EquipmentRecord(equipment_id, NORMAL, 0, since_ms, since_ms, 0, 0, 0, "", "")


def check_event(event: EquipmentEvent) -> None:
    """Raise :class:`EventRejected` unless the event's fields are well formed."""
    if not event.equipment_id or len(event.equipment_id) > MAX_FIELD or "/" in event.equipment_id:
        raise EventRejected("equipment id must be 1..128 characters, no '/'")
    if len(event.fault_location) > MAX_FIELD or len(event.fault_type) > MAX_FIELD:
        raise EventRejected("fault fields are at most 128 characters")
    if event.new_state not in STATES:
        raise EventRejected(f"unknown state {event.new_state!r}")
    if event.fault_time_ms < 0:
        raise EventRejected("fault time must be non-negative")


def process_equipment_event(record: EquipmentRecord, event: EquipmentEvent) -> EquipmentRecord:
    """The record after ``event``; raise :class:`TransitionRefused` or :class:`EventRejected`."""
    check_event(event)
    if event.equipment_id != record.equipment_id:
        raise EventRejected("event for another device")
    if event.event_number != record.last_event + 1:
        raise EventRejected(f"expected event number {record.last_event + 1}")
    if event.fault_time_ms < record.state_since_ms:
        raise EventRejected("fault time before the current state began")
    if not is_allowed_transition(record.state, event.new_state):
        raise TransitionRefused(record.equipment_id, record.state, event.new_state)
    outage_ms = record.outage_ms
    if record.state in (OUTAGE, REPAIR):  # out of service until repaired
        outage_ms += event.fault_time_ms - record.state_since_ms
    return replace(
        record,
        state=event.new_state,
        last_event=event.event_number,
        state_since_ms=event.fault_time_ms,
        alarms=record.alarms + (event.new_state == ALARM),
        outages=record.outages + (event.new_state == OUTAGE),
        outage_ms=outage_ms,
        last_fault_location=event.fault_location or record.last_fault_location,
        last_fault_type=event.fault_type or record.last_fault_type,
    )


@dataclass(frozen=True)
class FailureStats:
    """The supplier's summary of one device at ``now_ms``."""

    alarms: int
    outages: int
    outage_ms: int
    failure_ppm: int


def compute_failure_stats(record: EquipmentRecord, now_ms: int) -> FailureStats:
    """Alarms, outage count and time, and the share of time out of service (ppm)."""
    outage_ms = record.outage_ms
    if record.state in (OUTAGE, REPAIR):
        outage_ms += max(0, now_ms - record.state_since_ms)
    observed = max(1, now_ms - record.since_ms)
    return FailureStats(record.alarms, record.outages, outage_ms, outage_ms * 1_000_000 // observed)
