"""When a household sends its MM request: uniform in the batch window."""

from __future__ import annotations

import pytest

from gridledger.crypto.rng import DeterministicRng
from gridledger.identity.schedule import BatchWindow, compute_submission_time

from .conftest import NOW


def test_submission_time_is_uniform_in_the_window_and_ignores_registration_time() -> None:
    window = BatchWindow(3, NOW + 600, NOW + 1200)
    times = [compute_submission_time(window, NOW, DeterministicRng(f"u{i}")) for i in range(600)]
    assert all(window.opens <= x < window.closes for x in times)
    # Independent of when the credential was obtained (any time before the window).
    again = [
        compute_submission_time(window, NOW + 599, DeterministicRng(f"u{i}")) for i in range(600)
    ]
    assert again == times
    # Roughly uniform: each sixth of the window gets 100 +- 4 sigma.
    counts = [0] * 6
    for x in times:
        counts[(x - window.opens) * 6 // 600] += 1
    assert all(abs(c - 100) < 4 * (600 * (1 / 6) * (5 / 6)) ** 0.5 for c in counts), counts
    # A late registrant draws from what is left; a closed window is refused.
    assert compute_submission_time(window, NOW + 1100, DeterministicRng("l")) >= NOW + 1100
    with pytest.raises(ValueError):
        compute_submission_time(window, NOW + 1200, DeterministicRng("l"))
    with pytest.raises(ValueError):
        BatchWindow(3, NOW, NOW)
