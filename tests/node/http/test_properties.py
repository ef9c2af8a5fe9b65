"""Invariants of the rate limiter, the event encoding and id parsing, for any input."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.node.http.app import get_hex
from gridledger.node.http.limits import RateLimit
from gridledger.node.http.problems import HttpProblem, ProblemCode
from gridledger.node.http.stream import compute_sse


async def _noop(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
    pass


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 50),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_a_client_never_gets_more_than_burst_plus_rate_times_time(
    rate: float, burst: int, gaps: list[float]
) -> None:
    now = [0.0]
    limit = RateLimit(_noop, rate=rate, burst=burst, clock=lambda: now[0])
    allowed = 0
    for gap in gaps:
        now[0] += gap
        ok, wait_s = limit.is_allowed("x")
        allowed += ok
        assert ok or wait_s > 0
    assert allowed <= burst + rate * now[0] + 1e-6


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(event=st.sampled_from(["block", "trade"]), data=st.dictionaries(st.text(), json_values))
def test_any_payload_is_exactly_one_event_that_reads_back(event: str, data: dict[str, Any]) -> None:
    text = compute_sse(event, data, 1)
    assert text.endswith("\n\n") and text.count("\n\n") == 1
    lines = text[:-2].split("\n")
    assert lines[0] == f"event: {event}" and lines[1] == "id: 1"
    assert len(lines) == 3 and lines[2].startswith("data: ")
    assert json.loads(lines[2][6:]) == data


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80))
def test_ids_are_32_bytes_of_hex_or_a_typed_problem(text: str) -> None:
    try:
        raw = get_hex(text, "id")
    except HttpProblem as exc:
        assert exc.code is ProblemCode.MALFORMED_ID and exc.status == 400
        return
    assert len(raw) == 32 and raw == bytes.fromhex(text)
