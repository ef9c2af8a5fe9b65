"""The GO's feedback contract (Algorithm 1): thresholds fire on the right readings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridledger.aggregation.errors import FeedbackError
from gridledger.aggregation.feedback import (
    ACTION_AS_USUAL,
    ACTION_FORCED_TRIP,
    ACTION_PAY_FEE,
    ACTION_PAY_PREPAYMENT,
    ACTION_POWER_SAVING,
    ACTION_PRICE,
    ACTION_REUPLOAD,
    ARREARS,
    LACK,
    NORMAL,
    OVER_THRESHOLD,
    PAID,
    SERIOUS_ARREARS,
    TAMPERED,
    FeedbackInput,
    FeedbackPolicy,
    check_policy,
    compute_billing_state,
    compute_consumption_class,
    compute_notices,
)

POLICY = FeedbackPolicy(
    threshold_wh=500,
    prepaid_floor_millicent=1_000,
    arrears_millicent=5_000,
    serious_arrears_millicent=50_000,
)


def test_consumption_threshold_fires_at_and_above_the_threshold() -> None:
    assert compute_consumption_class(499, POLICY, is_tampered=False) == NORMAL
    assert compute_consumption_class(500, POLICY, is_tampered=False) == OVER_THRESHOLD
    assert compute_consumption_class(10_000, POLICY, is_tampered=False) == OVER_THRESHOLD


def test_tampering_is_case_one_even_above_the_threshold() -> None:
    assert compute_consumption_class(10_000, POLICY, is_tampered=True) == TAMPERED
    assert compute_consumption_class(None, POLICY, is_tampered=False) == TAMPERED
    assert compute_consumption_class(-1, POLICY, is_tampered=False) == TAMPERED


def test_billing_levels() -> None:
    assert compute_billing_state(999, 0, POLICY) == LACK
    assert compute_billing_state(999, 60_000, POLICY) == LACK  # printed order: lack first
    assert compute_billing_state(1_000, 4_999, POLICY) == PAID
    assert compute_billing_state(1_000, 5_000, POLICY) == ARREARS
    assert compute_billing_state(1_000, 50_000, POLICY) == SERIOUS_ARREARS


@pytest.mark.parametrize(
    ("klass", "billing", "actions"),
    [
        (TAMPERED, PAID, (ACTION_REUPLOAD, ACTION_PRICE)),
        (OVER_THRESHOLD, LACK, (ACTION_POWER_SAVING, ACTION_PAY_PREPAYMENT)),
        (NORMAL, ARREARS, (ACTION_AS_USUAL, ACTION_PAY_FEE)),
        (NORMAL, SERIOUS_ARREARS, (ACTION_AS_USUAL, ACTION_FORCED_TRIP)),
    ],
)
def test_notices_follow_algorithm_1(klass: str, billing: str, actions: tuple[str, str]) -> None:
    notices = compute_notices(FeedbackInput("meter-0", 1, klass, billing, 23_000))
    assert tuple(n.action for n in notices) == actions
    if billing == PAID:
        assert "23000" in notices[1].text


def test_bad_inputs_are_typed_errors() -> None:
    with pytest.raises(FeedbackError):
        compute_notices(FeedbackInput("m", 1, "weird", PAID, 1))
    with pytest.raises(FeedbackError):
        compute_notices(FeedbackInput("m", 1, NORMAL, "rich", 1))
    with pytest.raises(FeedbackError):
        compute_notices(FeedbackInput("m", 1, NORMAL, PAID, -1))
    with pytest.raises(FeedbackError):
        check_policy(FeedbackPolicy(1, 1, 10, 5))
    check_policy(POLICY)


@given(st.integers(0, 100_000), st.integers(0, 100_000), st.integers(0, 100_000))
def test_exactly_one_consumption_and_one_cost_notice(
    energy: int, balance: int, arrears: int
) -> None:
    klass = compute_consumption_class(energy, POLICY, is_tampered=False)
    billing = compute_billing_state(balance, arrears, POLICY)
    notices = compute_notices(FeedbackInput("m", 0, klass, billing, 100))
    assert len(notices) == 2
    assert (notices[0].action == ACTION_POWER_SAVING) == (energy >= POLICY.threshold_wh)
    assert (notices[1].action == ACTION_FORCED_TRIP) == (
        balance >= POLICY.prepaid_floor_millicent and arrears >= POLICY.serious_arrears_millicent
    )
