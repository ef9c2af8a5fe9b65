"""When a user sends its pseudonym request to the MM: uniformly inside the batch window.

The RM knows when each identity finished registering; the MM sees when each
pseudonym request arrives. If a user sent its request right after ⑥, the two
together would link identity and pseudonym by timing (``test_anonymity.py``
shows it). So the client draws its submission time uniformly from the round's
MM batch window with its *own* rng, independently of when it registered.

A :class:`BatchWindow` is the interval in which the MM collects round ``r``'s
requests: it should open only after the RM's registration for ``r`` has closed,
so that every registrant can draw from the whole window. A credential obtained
after the window opened (a late registrant) can only draw from what is left,
``[now, closes)``: its arrival is bounded below by its registration time, which
the RM knows. See ``docs/protocols/identity.md``, "What timing still reveals".
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.crypto.rng import Rng


@dataclass(frozen=True)
class BatchWindow:
    """The MM collects round ``round``'s requests during ``[opens, closes)`` (seconds)."""

    round: int
    opens: int
    closes: int

    def __post_init__(self) -> None:
        if self.closes <= self.opens:
            raise ValueError("batch window must be non-empty")


def compute_submission_time(window: BatchWindow, now: int, rng: Rng) -> int:
    """A submission time uniform in ``[max(opens, now), closes)``, from the user's own rng.

    Raises :class:`ValueError` if the window has already closed at ``now``.
    """
    start = max(window.opens, now)
    if start >= window.closes:
        raise ValueError(f"the batch window for round {window.round} has closed")
    return start + rng.randbelow(window.closes - start)


def is_due(at: int, now: int) -> bool:
    """Whether a request scheduled for ``at`` should be sent at ``now``."""
    return at <= now
