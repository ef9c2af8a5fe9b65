"""Equipment states move only along the allowed transitions; events are numbered."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridledger.aggregation.equipment import (
    ALARM,
    ALLOWED_TRANSITIONS,
    EMERGENCY,
    NORMAL,
    OUTAGE,
    REPAIR,
    STATES,
    EquipmentEvent,
    compute_failure_stats,
    create_record,
    is_allowed_transition,
    process_equipment_event,
)
from gridledger.aggregation.errors import EventRejected, TransitionRefused


def event(n: int, state: str, at: int) -> EquipmentEvent:
    return EquipmentEvent("tx-9", n, state, "feeder 3", "overcurrent", at)


def test_a_full_fault_cycle_and_its_statistics() -> None:
    record = create_record("tx-9", 0)
    for n, (state, at) in enumerate(
        [(ALARM, 10), (EMERGENCY, 20), (OUTAGE, 30), (REPAIR, 80), (NORMAL, 130)], start=1
    ):
        record = process_equipment_event(record, event(n, state, at))
    stats = compute_failure_stats(record, 1_000)
    assert record.state == NORMAL
    assert (stats.alarms, stats.outages, stats.outage_ms) == (1, 1, 100)
    assert stats.failure_ppm == 100_000


def test_forbidden_transitions_are_refused_with_their_names() -> None:
    record = create_record("tx-9", 0)
    with pytest.raises(TransitionRefused) as info:
        process_equipment_event(record, event(1, REPAIR, 5))
    assert (info.value.current, info.value.requested) == (NORMAL, REPAIR)
    with pytest.raises(TransitionRefused):
        process_equipment_event(record, event(1, NORMAL, 5))


def test_event_numbers_cannot_repeat_or_skip() -> None:
    record = process_equipment_event(create_record("tx-9", 0), event(1, ALARM, 1))
    for bad in (event(1, NORMAL, 2), event(3, NORMAL, 2)):
        with pytest.raises(EventRejected):
            process_equipment_event(record, bad)
    with pytest.raises(EventRejected):
        process_equipment_event(record, dataclasses.replace(event(2, NORMAL, 0)))
    with pytest.raises(EventRejected):
        process_equipment_event(record, dataclasses.replace(event(2, "exploded", 2)))


@given(st.lists(st.sampled_from(STATES), max_size=30))
def test_states_only_ever_move_along_allowed_edges(requests: list[str]) -> None:
    record = create_record("tx-9", 0)
    for i, requested in enumerate(requests):
        before = record.state
        try:
            record = process_equipment_event(record, event(record.last_event + 1, requested, i))
        except TransitionRefused:
            assert not is_allowed_transition(before, requested)
            continue
        assert (before, record.state) in ALLOWED_TRANSITIONS
    assert record.state in STATES
