"""Obligations and evidence: only live, signed obligations can be disputed."""

from __future__ import annotations

import dataclasses

import pytest

from gridledger.crypto.rng import DeterministicRng
from gridledger.identity.contracts import (
    KIND_EVIDENCE,
    KIND_OBLIGATION_MET,
)
from gridledger.identity.errors import (
    EvidenceRejected,
    TracingError,
)
from gridledger.identity.messages import (
    Obligation,
    ObligationEvidence,
    SignedObligation,
)
from gridledger.identity.obligations import create_obligation_met, create_signed_obligation
from gridledger.identity.trace_center import (
    compute_evidence_id,
    on_trace_request,
)

from .conftest import NOW, World
from .helpers import Chain, issue_round, make_evidence, trace_read


def _two_rounds(world: World, seed: str, r_att: int, r_vic: int) -> tuple[Chain, list, list]:  # type: ignore[type-arg]
    rm = world.new_rm(k=4)
    att, att_batch = issue_round(world, rm, range(7, 8), r_att, seed + "a")
    vic, vic_batch = issue_round(world, rm, range(8, 11), r_vic, seed + "v")
    chain = Chain(world)
    assert chain.publish(world, r_att, att_batch).ok
    assert chain.publish(world, r_vic, vic_batch).ok
    return chain, att, vic


def test_frivolous_accusation_refused(world: World) -> None:
    chain, att, vic = _two_rounds(world, "r-f2", 310, 311)
    attacker, victim = att[0], vic[1]
    # The attacker forges the victim's side of an obligation: victim never signed it.
    ob = Obligation(
        311, victim.pseudonym.public_key.raw, attacker.pseudonym.public_key.raw, b"x", "y", NOW - 5
    )
    body = create_signed_obligation(ob, attacker.pseudonym, attacker.pseudonym)
    forged = ObligationEvidence(body, "I just want to know who this is")
    r = chain.submit(KIND_EVIDENCE, forged, attacker.pseudonym)
    assert not r.ok
    # same round, but the debtor never signed: refused on the debtor's signature
    same = make_evidence(vic[1], vic[0], 311)
    forged_same = dataclasses.replace(
        same,
        obligation=create_signed_obligation(
            same.obligation.obligation, vic[0].pseudonym, vic[0].pseudonym
        ),
    )
    r = chain.submit(KIND_EVIDENCE, forged_same, vic[0].pseudonym)
    assert not r.ok and "debtor's signature" in r.reason
    # Even with both signatures, the attacker's pseudonym is of another round.
    real = make_evidence(victim, attacker, 311)
    r = chain.submit(KIND_EVIDENCE, real, attacker.pseudonym)
    assert not r.ok and "another round" in r.reason
    # No evidence is on chain, so no trustee answers.
    eid = compute_evidence_id(real)
    with pytest.raises(TracingError):
        on_trace_request(world.trustees[0], trace_read(chain, eid), DeterministicRng("t"))


def test_obligation_rules(world: World) -> None:
    rm = world.new_rm(k=2)
    creds, batch = issue_round(world, rm, range(4), 312, "r-f2b")
    chain = Chain(world)
    assert chain.publish(world, 312, batch).ok
    debtor, creditor, third = creds[0], creds[1], creds[2]
    ev = make_evidence(debtor, creditor, 312, deadline=NOW + 100)
    # only the creditor sends it; not before the deadline; not after the window
    assert not chain.submit(KIND_EVIDENCE, ev, third.pseudonym).ok
    r = chain.submit(KIND_EVIDENCE, ev, creditor.pseudonym)
    assert not r.ok and "deadline has not passed" in r.reason
    r = chain.submit(KIND_EVIDENCE, ev, creditor.pseudonym, now=NOW + 100 + 3601)
    assert not r.ok and "window has closed" in r.reason
    # a trustee handed a record outside the window refuses, exactly like the contract
    late = make_evidence(debtor, creditor, 312, obligation_id=b"late", deadline=NOW - 4000)
    assert not chain.submit(KIND_EVIDENCE, late, creditor.pseudonym).ok
    # self-dealing: the same pseudonym on both sides
    selfish = make_evidence(debtor, debtor, 312, obligation_id=b"self")
    assert not chain.submit(KIND_EVIDENCE, selfish, debtor.pseudonym).ok
    # a closed obligation cannot be disputed; an obligation is disputed once
    closed = make_evidence(debtor, creditor, 312, obligation_id=b"closed")
    met = create_obligation_met(closed.obligation.obligation, creditor.pseudonym)
    forged_met = create_obligation_met(closed.obligation.obligation, debtor.pseudonym)
    assert not chain.submit(KIND_OBLIGATION_MET, forged_met, debtor.pseudonym).ok
    assert chain.submit(KIND_OBLIGATION_MET, met, creditor.pseudonym).ok
    r = chain.submit(KIND_EVIDENCE, closed, creditor.pseudonym)
    assert not r.ok and "met" in r.reason
    ok = make_evidence(debtor, creditor, 312, obligation_id=b"open")
    assert chain.submit(KIND_EVIDENCE, ok, creditor.pseudonym).ok
    again = dataclasses.replace(ok, description="once more")
    r = chain.submit(KIND_EVIDENCE, again, creditor.pseudonym)
    assert not r.ok and "already disputed" in r.reason
    late_met = create_obligation_met(ok.obligation.obligation, creditor.pseudonym)
    assert not chain.submit(KIND_OBLIGATION_MET, late_met, creditor.pseudonym).ok
    # the trustee re-checks the evidence from its own read: a tampered record is refused
    read = trace_read(chain, compute_evidence_id(ok))
    assert read.record is not None
    bad_sig = dataclasses.replace(
        read.record,
        evidence=ObligationEvidence(
            SignedObligation(ok.obligation.obligation, bytes(64), ok.obligation.creditor_signature),
            ok.description,
        ),
    )
    with pytest.raises(EvidenceRejected):
        on_trace_request(
            world.trustees[0], dataclasses.replace(read, record=bad_sig), DeterministicRng("t")
        )
    outside = dataclasses.replace(read.record, timestamp_ms=(NOW + 7200) * 1000)
    with pytest.raises(EvidenceRejected):
        on_trace_request(
            world.trustees[0], dataclasses.replace(read, record=outside), DeterministicRng("t")
        )
    assert on_trace_request(world.trustees[0], read, DeterministicRng("t")).share.trustee == 1
