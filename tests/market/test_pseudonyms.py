"""The market's cached pseudonym check agrees with the identity layer's definition."""

from __future__ import annotations

from gridledger.crypto.encoding import encode
from gridledger.identity.ca import compute_certificate_hash
from gridledger.identity.errors import PseudonymRefused
from gridledger.identity.verification import check_pseudonym_key_for_round, get_identity_reader
from gridledger.ledger.contracts import StateView
from gridledger.ledger.state import Overlay, compute_state_key
from gridledger.market.errors import CertificateRefused
from gridledger.market.pseudonyms import check_pseudonym

from .helpers import DAY, NOW_MS, ROUND, World, make_chain


def outcome_identity(view: StateView, key: bytes, round_: int, now_ms: int) -> str:
    try:
        check_pseudonym_key_for_round(get_identity_reader(view), key, round_, now_ms)
    except PseudonymRefused as exc:
        return exc.reason
    return "ok"


def outcome_market(view: StateView, key: bytes, round_: int, now_ms: int) -> str:
    try:
        check_pseudonym(get_identity_reader(view), key, round_, now_ms)
    except CertificateRefused as exc:
        return exc.reason.split(": ", 1)[1]
    return "ok"


def test_same_verdict_and_reason_on_every_kind_of_pseudonym(world: World) -> None:
    chain = make_chain(world)
    overlay = Overlay(chain.ledger.state)
    view = StateView(overlay, "market")
    cases = [
        (p.raw, ROUND)
        for p in (*world.pseudonyms[:2], world.expired, world.revoked, world.other_round)
    ]
    cases += [(world.pseudonyms[0].raw, ROUND + 1), (b"\x09" * 32, ROUND)]
    moments = [NOW_MS, NOW_MS + 3 * DAY * 1000, NOW_MS + 400 * DAY * 1000]
    verdicts = set()
    for key, round_ in cases:
        for now in moments:
            a, b = outcome_identity(view, key, round_, now), outcome_market(view, key, round_, now)
            assert a == b, (key.hex()[:8], round_, now, a, b)
            verdicts.add(a)
    assert len(verdicts) >= 5  # ok, window, revoked, round, unpublished, issuer expired
    # An MM certificate revoked on chain stops every pseudonym it issued.
    mm_hash = compute_certificate_hash(world.identity_config.mm_certificate)  # type: ignore[arg-type]
    overlay.put(compute_state_key("identity", b"rev/" + mm_hash), encode("revoked"))
    key = world.pseudonyms[0].raw
    a, b = outcome_identity(view, key, ROUND, NOW_MS), outcome_market(view, key, ROUND, NOW_MS)
    assert a == b and "revoked" in a
