"""Errors of the aggregation layer::

    AggregationError
    ├── InvalidEncoding        a point, scalar or message does not decode (not on the curve,
    │                          not in the subgroup, the identity, wrong length)
    ├── InvalidPartialKey      a partial private key fails h·P1 = α + η·Y_Pub1
    ├── SchemaError            a schema or a reading does not fit (unknown dimension, ...)
    ├── SigncryptionError      a report cannot be built (receiver missing from the schema, ...)
    ├── DecryptionFailed       a receiver's part does not open under its key (wrong key,
    │                          tampered ciphertext or header): one opaque reason
    ├── ReportRejected         a report is refused by an accounting node; carries the meter,
    │                          the period and the reason
    ├── FeedbackError          a feedback input or policy is unusable
    ├── EventRejected          an equipment event is malformed or out of order
    └── TransitionRefused      an equipment event asks for a transition the state machine forbids

Every error carries ``reason``; subclasses add typed fields.
"""

from __future__ import annotations

from gridledger.errors import AggregationError

__all__ = [
    "AggregationError",
    "DecryptionFailed",
    "EventRejected",
    "FeedbackError",
    "InvalidEncoding",
    "InvalidPartialKey",
    "ReportRejected",
    "SchemaError",
    "SigncryptionError",
    "TransitionRefused",
]


class InvalidEncoding(AggregationError):
    """Bytes that should be a group element, scalar or message are not a valid one."""


class InvalidPartialKey(AggregationError):
    """The control center's partial private key does not match its public part."""


class SchemaError(AggregationError):
    """A receiver schema or a reading is inconsistent (unknown or repeated dimension)."""


class SigncryptionError(AggregationError):
    """A meter cannot build a report from what it was given."""


class DecryptionFailed(AggregationError):
    """A receiver's ciphertext does not open: wrong key, wrong header, or tampering.

    One reason for every cause, so that failures are no oracle.
    """

    def __init__(self) -> None:
        super().__init__("ciphertext does not open under this receiver's key")


class ReportRejected(AggregationError):
    """An accounting node refuses one report; the rest of its batch goes on."""

    def __init__(self, meter_id: str, period: int, reason: str) -> None:
        super().__init__(f"report of {meter_id!r} for period {period}: {reason}")
        self.meter_id = meter_id
        self.period = period
        self.why = reason


class FeedbackError(AggregationError):
    """A feedback policy or input is inconsistent (negative threshold, unknown class)."""


class EventRejected(AggregationError):
    """An equipment event repeats or skips an event number, or has a bad field."""


class TransitionRefused(AggregationError):
    """An equipment event asks for a state change outside the allowed transitions."""

    def __init__(self, equipment_id: str, current: str, requested: str) -> None:
        super().__init__(f"equipment {equipment_id!r}: {current} -> {requested} is not allowed")
        self.equipment_id = equipment_id
        self.current = current
        self.requested = requested
