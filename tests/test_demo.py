"""The end-to-end demo: its key outcomes, on the default scenario."""

from __future__ import annotations

import io
import time

from rich.console import Console

from gridledger.sim.demo import DemoSummary, run_demo


def test_demo_outcomes() -> None:
    buffer = io.StringIO()
    start = time.monotonic()
    summary = run_demo(seed=7, console=Console(file=buffer, width=120))
    assert time.monotonic() - start < 60
    assert isinstance(summary, DemoSummary)
    assert summary.households == summary.pseudonyms_published == 6
    assert summary.k == 32 and summary.escape_probability == 1 / 32
    # seed 7: the cheater's bad candidate is opened, so it is caught and blacklisted on chain
    assert summary.cheater_caught and summary.cheater_blacklisted
    # the reneger is traced by t = 3 valid shares; the lying trustee is named on chain
    assert summary.traced_is_reneger and summary.traced_identity == summary.reneger_identity
    assert summary.trustees_used == 3
    assert summary.bad_trustees_named == (summary.bad_trustee,)
    assert summary.blacklisted and summary.revoked and summary.rm_refused
    # the primary's crash is survived by a view change; the survivors agree
    assert summary.view_after > summary.view_before
    assert summary.committed_after_crash == 5
    assert summary.killed_replica not in summary.heights and len(summary.heights) == 3
    assert summary.heights_agree
    assert summary.light_client_verified
    assert summary.light_client_height == max(summary.heights.values())
    text = buffer.getvalue()
    for phrase in ("gridledger demo", "RM learned", "MM learned", "caught", "view change"):
        assert phrase in text, phrase


def test_demo_is_deterministic_in_its_choices() -> None:
    a = run_demo(seed=11, console=Console(file=io.StringIO()), k=8, households=3)
    b = run_demo(seed=11, console=Console(file=io.StringIO()), k=8, households=3)
    assert (a.reneger, a.bad_trustee, a.cheater_caught) == (
        b.reneger,
        b.bad_trustee,
        b.cheater_caught,
    )
    assert a.traced_is_reneger and b.traced_is_reneger
