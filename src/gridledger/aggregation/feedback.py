"""The grid operator's feedback contract (seed 002 §V.B, Algorithm 1), made precise.

Algorithm 1 compares a reading with ``==`` against "abnormality" and
"normality" and leaves every threshold open (spec §6.7). Here:

* the GO decrypts a household's report off chain and computes a *class*:
  ``tampered`` (the report was refused on chain, or its part does not open,
  or it is inconsistent), else ``over_threshold`` if the interval energy is at
  or above the household's threshold, else ``normal``. Cases are tried in
  that order, as printed: a tampered report says only "tampered";
* the billing state from the prepaid balance and the arrears: ``lack`` if the
  balance is below the policy's floor, else ``serious_arrears`` / ``arrears``
  by the arrears levels, else ``paid``;
* only the class, the billing state and the price go on chain
  (:class:`FeedbackInput`, signed by the GO); the contract maps them to the
  notices of Algorithm 1. The plaintext reading never leaves the GO.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.aggregation.errors import FeedbackError
from gridledger.crypto.encoding import wire_type

TAMPERED = "tampered"
OVER_THRESHOLD = "over_threshold"
NORMAL = "normal"
CONSUMPTION_CLASSES = (TAMPERED, OVER_THRESHOLD, NORMAL)

PAID = "paid"
LACK = "lack"
ARREARS = "arrears"
SERIOUS_ARREARS = "serious_arrears"
BILLING_STATES = (PAID, LACK, ARREARS, SERIOUS_ARREARS)

ACTION_REUPLOAD = "re-upload"
ACTION_POWER_SAVING = "power-saving-mode"
ACTION_AS_USUAL = "run-as-usual"
ACTION_PAY_PREPAYMENT = "notify-insufficient-prepayment"
ACTION_PAY_FEE = "notify-pay-fee"
ACTION_FORCED_TRIP = "forced-trip"
ACTION_PRICE = "latest-price"


@wire_type("aggregation.feedback-policy/1")
@dataclass(frozen=True)
class FeedbackPolicy:
    """One household's thresholds (set by the GO per user class)."""

    threshold_wh: int
    prepaid_floor_millicent: int
    arrears_millicent: int
    serious_arrears_millicent: int


@wire_type("aggregation.feedback-input/1")
@dataclass(frozen=True)
class FeedbackInput:
    """What the GO posts for one household and period (no plaintext reading)."""

    meter_id: str
    period: int
    consumption_class: str
    billing_state: str
    price_millicent_per_kwh: int


@wire_type("aggregation.notice/1")
@dataclass(frozen=True)
class Notice:
    """One message of Algorithm 1 to the meter and the household's phone."""

    action: str
    text: str


def check_policy(policy: FeedbackPolicy) -> None:
    """Raise :class:`FeedbackError` unless thresholds are non-negative and ordered."""
    if min(policy.threshold_wh, policy.prepaid_floor_millicent) < 0:
        raise FeedbackError("thresholds must be non-negative")
    if not 0 < policy.arrears_millicent <= policy.serious_arrears_millicent:
        raise FeedbackError("need 0 < arrears <= serious arrears")


def compute_consumption_class(
    energy_wh: int | None, policy: FeedbackPolicy, *, is_tampered: bool
) -> str:
    """Case 1 tampered (or nothing readable), case 2 over threshold, case 3 normal."""
    if is_tampered or energy_wh is None or energy_wh < 0:
        return TAMPERED
    if energy_wh >= policy.threshold_wh:
        return OVER_THRESHOLD
    return NORMAL


def compute_billing_state(
    prepaid_balance_millicent: int, arrears_millicent: int, policy: FeedbackPolicy
) -> str:
    """``lack`` first (as printed), then serious arrears, arrears, paid."""
    if prepaid_balance_millicent < policy.prepaid_floor_millicent:
        return LACK
    if arrears_millicent >= policy.serious_arrears_millicent:
        return SERIOUS_ARREARS
    if arrears_millicent >= policy.arrears_millicent:
        return ARREARS
    return PAID


def compute_notices(feedback: FeedbackInput) -> tuple[Notice, ...]:
    """Algorithm 1's ``consumption()`` then ``cost()`` outputs for one input."""
    if feedback.consumption_class not in CONSUMPTION_CLASSES:
        raise FeedbackError(f"unknown consumption class {feedback.consumption_class!r}")
    if feedback.billing_state not in BILLING_STATES:
        raise FeedbackError(f"unknown billing state {feedback.billing_state!r}")
    if feedback.price_millicent_per_kwh < 0:
        raise FeedbackError("price must be non-negative")
    consumption = {
        TAMPERED: Notice(ACTION_REUPLOAD, "Data has been tampered with, please re-upload"),
        OVER_THRESHOLD: Notice(
            ACTION_POWER_SAVING, "Excessive power consumption, transfer to power saving mode"
        ),
        NORMAL: Notice(ACTION_AS_USUAL, "Smart meter runs as usual"),
    }[feedback.consumption_class]
    cost = {
        LACK: Notice(ACTION_PAY_PREPAYMENT, "Insufficient prepayment, please pay the bill"),
        ARREARS: Notice(ACTION_PAY_FEE, "Please pay the electricity fee"),
        SERIOUS_ARREARS: Notice(ACTION_FORCED_TRIP, "Serious arrears: forced trip"),
        PAID: Notice(
            ACTION_PRICE, f"Latest price: {feedback.price_millicent_per_kwh} millicent/kWh"
        ),
    }[feedback.billing_state]
    return (consumption, cost)
