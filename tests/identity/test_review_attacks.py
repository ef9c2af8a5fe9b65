"""Regression tests for the review's proof-of-concept attacks (F1-F7): each is refused."""

from __future__ import annotations

import dataclasses

import pytest

from gridledger.crypto.encoding import encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.identity.ca import (
    MemberAttributes,
    compute_certificate_der,
    compute_certificate_hash,
    compute_member_key,
    get_attributes,
    process_issue,
    process_take_superseded,
)
from gridledger.identity.contracts import (
    KIND_BATCH,
    KIND_BLACKLIST,
    KIND_EVIDENCE,
    KIND_OBLIGATION_MET,
    KIND_TRACE,
    IdentityConfig,
    IdentityContract,
    Reader,
)
from gridledger.identity.errors import (
    Blacklisted,
    CheatingDetected,
    EvidenceRejected,
    InvalidTimestamp,
    RegistrationRejected,
    TracingError,
    check_timestamp,
)
from gridledger.identity.market_manager import (
    compute_pseudonym_request,
    on_pseudonym_request,
    process_close_batch,
    process_open_batch,
)
from gridledger.identity.messages import (
    CandidateCommitments,
    CandidateOpenings,
    CheatingEvidence,
    Obligation,
    ObligationEvidence,
    OpenRequest,
    PseudonymBatch,
    RegistrationChallenge,
    RegistrationHello,
    SignedChallenge,
    SignedCommitments,
    SignedHello,
    SignedObligation,
    SignedOpenings,
    SignedOpenRequest,
    TraceRecord,
)
from gridledger.identity.obligations import create_obligation_met, create_signed_obligation
from gridledger.identity.registration import (
    PseudonymCredential,
    check_challenge,
    create_candidate,
    on_blind_signature,
    on_commitments,
    on_hello,
    on_open_request,
    on_openings,
    sign_commitments,
    start_registration,
)
from gridledger.identity.sweep import on_sweep_blind, on_sweep_decrypt
from gridledger.identity.trace_center import (
    compute_evidence_id,
    compute_trace,
    on_trace_request,
)
from gridledger.ledger.contracts import BlockContext, StateView
from gridledger.ledger.errors import ContractRejection
from gridledger.ledger.state import Overlay
from gridledger.ledger.tx import Transaction

from .conftest import DAY, NOW, Member, World, register
from .helpers import Chain, batch_payload, issue_round, make_evidence, trace_read

K = Ed25519PrivateKey.generate(DeterministicRng("review-attacks"))


# -- F1 (finding 2): an empty / unsigned batch cannot lock a round ---------------------


def test_f1_empty_or_unsigned_batch_refused(world: World) -> None:
    rm = world.new_rm(k=4)
    _, real = issue_round(world, rm, range(3), 300, "r-f1")
    chain = Chain(world)
    household = compute_certificate_der(world.users[5].cert)
    # the PoC: an empty batch under a household certificate, no signature
    r = chain.submit(KIND_BATCH, PseudonymBatch(300, household, (), b""), K)
    assert not r.ok and "MM" in r.reason
    # the MM's own certificate but no (or a wrong) signature; or the real MM signing nothing
    mm_der = compute_certificate_der(world.mm.cert)
    assert not chain.submit(KIND_BATCH, PseudonymBatch(300, mm_der, (), b""), K).ok
    signed_empty = batch_payload(world, 300, ())
    r = chain.submit(KIND_BATCH, signed_empty, K)
    assert not r.ok and "empty batch" in r.reason
    unsigned = dataclasses.replace(batch_payload(world, 300, real), signature=bytes(256))
    r = chain.submit(KIND_BATCH, unsigned, K)
    assert not r.ok and "batch signature" in r.reason
    # reordered / truncated batches break the MM's signature over the ordered list
    good = batch_payload(world, 300, real)
    swapped = dataclasses.replace(good, certificates=good.certificates[::-1])
    assert not chain.submit(KIND_BATCH, swapped, K).ok
    assert not chain.submit(KIND_BATCH, dataclasses.replace(good, round=301), K).ok
    # the real MM still publishes its round
    assert chain.submit(KIND_BATCH, good, K).ok
    assert len(Reader(chain.get).round_keys(300)) == 3
    # the MM never produces an empty batch
    mm = world.new_mm()
    process_open_batch(mm, 302)
    with pytest.raises(RegistrationRejected):
        process_close_batch(mm, NOW, NOW + 3600, DeterministicRng("empty"))


def test_f1_mm_pinned_at_genesis(world: World) -> None:
    """With the MM pinned, even a validly certified other MM cannot publish."""
    rm = world.new_rm(k=2)
    _, real = issue_round(world, rm, range(1), 303, "r-f1b")
    chain = Chain(world)
    other_mm = process_issue(
        world.ca,
        "mm-2",
        world.mm.key.public_key,
        MemberAttributes("mm", "mm-2", None, ("issue-pseudonym-certs",)),
        NOW - DAY,
        DAY * 2,
        DeterministicRng("mm2"),
    )
    payload = dataclasses.replace(
        batch_payload(world, 303, real), mm_certificate=compute_certificate_der(other_mm)
    )
    r = chain.submit(KIND_BATCH, payload, K)
    assert not r.ok and "pinned" in r.reason


# -- F2 (finding 1): frivolous accusations --------------------------------------------


def _two_rounds(world: World, seed: str, r_att: int, r_vic: int) -> tuple[Chain, list, list]:  # type: ignore[type-arg]
    rm = world.new_rm(k=4)
    att, att_batch = issue_round(world, rm, range(7, 8), r_att, seed + "a")
    vic, vic_batch = issue_round(world, rm, range(8, 11), r_vic, seed + "v")
    chain = Chain(world)
    assert chain.publish(world, r_att, att_batch).ok
    assert chain.publish(world, r_vic, vic_batch).ok
    return chain, att, vic


def test_f2_frivolous_accusation_refused(world: World) -> None:
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


def test_f2_obligation_rules(world: World) -> None:
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


# -- F3 (finding 4): two certificates of one member ------------------------------------


def test_f3_second_certificate_gains_nothing(world: World, rsa_keys: list) -> None:  # type: ignore[type-arg]
    rng = DeterministicRng("r-f3")
    attrs = MemberAttributes("prosumer", "house-77", "meter-77", ("trade",))
    key = rsa_keys[12]
    old = Member(
        key, process_issue(world.ca, "house-77", key.public_key, attrs, NOW - DAY, 365 * DAY, rng)
    )
    new = Member(
        key, process_issue(world.ca, "house-77", key.public_key, attrs, NOW - 10, 365 * DAY, rng)
    )
    # the CA revoked the earlier certificate on renewal, for the operator to post
    assert process_take_superseded(world.ca) == (compute_certificate_hash(old.cert),)
    rm = world.new_rm(k=4)
    register(world, rm, old, 320, rng)
    with pytest.raises(RegistrationRejected, match="member already used"):
        register(world, rm, new, 320, rng)  # same member, same round: one slot
    # tracing blacklists the member key: the other certificate is refused too
    rm.blacklist = frozenset({compute_member_key(get_attributes(old.cert))})
    with pytest.raises(Blacklisted):
        register(world, rm, new, 321, rng)


# -- F4 (finding 6): attacker-chosen timestamps --------------------------------------

Z = b"\0" * 32


def _evidence(world: World, ts: int) -> CheatingEvidence:
    der = compute_certificate_der(world.users[0].cert)
    hello = SignedHello(RegistrationHello(1, der, Z, ts, Z), b"x")
    ch = SignedChallenge(RegistrationChallenge(Z, Z, 1, der, der, 2, 0, Z), b"x")
    com = SignedCommitments(CandidateCommitments(Z, Z, (Z, Z), 0), b"x")
    req = SignedOpenRequest(OpenRequest(Z, Z, 0, 0), b"x")
    op = SignedOpenings(CandidateOpenings(Z, Z, (), b"", 0), b"x")
    return CheatingEvidence(hello, ch, com, req, op)


def test_f4_timestamps_are_typed_rejections(world: World) -> None:
    chain = Chain(world)
    for ts in (2**63, 10**12, 2**40, -1, -(2**63)):
        r = chain.submit(KIND_BLACKLIST, _evidence(world, ts), K)
        assert (
            not r.ok and r.reason == "contract rejected: identity.blacklist: time is out of range"
        ) or (
            not r.ok and "out of range" in r.reason and not r.reason.startswith("contract failed")
        ), r.reason
    rm = world.new_rm(k=2)
    _, batch = issue_round(world, rm, range(1), 330, "r-f4")
    c = batch[0]
    forged = dataclasses.replace(
        c, certificate=dataclasses.replace(c.certificate, valid_from=2**62)
    )
    r = chain.submit(KIND_BATCH, batch_payload(world, 330, (forged,)), K)
    assert not r.ok and not r.reason.startswith("contract failed:"), r.reason
    # directly: only ContractRejection escapes the contract
    contract = IdentityContract(IdentityConfig(world.roots, world.rm_blind.cert, world.tc_key))
    tx = Transaction.create("test-chain", KIND_BLACKLIST, _evidence(world, 2**63), K, 99)
    with pytest.raises(ContractRejection):
        contract.process(
            StateView(Overlay(chain.state), "identity"),
            tx,
            BlockContext("test-chain", 1, NOW * 1000, 0),
        )
    # an obligation deadline out of range is a typed refusal too
    creds, batch2 = issue_round(world, rm, range(1, 3), 331, "r-f4b")
    assert chain.publish(world, 331, batch2).ok
    for deadline in (2**63, 2**40, -1):
        ev = make_evidence(creds[0], creds[1], 331, deadline=deadline)
        r = chain.submit(KIND_EVIDENCE, ev, creds[1].pseudonym)
        assert not r.ok and r.reason == "identity.evidence: deadline is out of range", r.reason
    with pytest.raises(InvalidTimestamp):
        check_timestamp("t", 10**12)


# -- F5 (finding 5): trustees refuse to sweep expired rounds --------------------------


def test_f5_expired_round_not_swept_offline(world: World) -> None:
    rm = world.new_rm(k=4)
    _, pb = issue_round(world, rm, range(12, 16), 340, "r-f5p", valid=(NOW - 7200, NOW - 3600))
    cur, cb = issue_round(world, rm, range(12, 16), 341, "r-f5c", valid=(NOW - 100, NOW + 3600))
    chain = Chain(world)
    assert chain.submit(KIND_BATCH, batch_payload(world, 340, pb), K, now=NOW - 7000).ok
    assert chain.submit(KIND_BATCH, batch_payload(world, 341, cb), K, now=NOW).ok
    ev = make_evidence(cur[0], cur[1], 341)
    assert chain.submit(KIND_EVIDENCE, ev, cur[1].pseudonym).ok
    reader, eid, rng = Reader(chain.get), compute_evidence_id(ev), DeterministicRng("r-f5tc")
    cert = reader.pseudonym_certificate(ev.accused)
    assert cert is not None
    msgs = [on_trace_request(tr, trace_read(chain, eid), rng) for tr in world.trustees[:3]]
    outcome = compute_trace(world.tc_key, cert.certificate, msgs, eid, world.roots, NOW)
    der = compute_certificate_der(world.users[12].cert)
    assert chain.submit(KIND_TRACE, TraceRecord(eid, outcome.entries, der), K).ok
    trace = reader.trace(eid)
    certs = reader.round_certificates(340)
    with pytest.raises(TracingError, match="expired"):
        on_sweep_blind(world.trustees[0], trace, 340, certs, NOW, rng)
    live = reader.round_certificates(341)
    blind = tuple(on_sweep_blind(t, trace, 341, live, NOW, rng) for t in world.trustees[:3])
    with pytest.raises(TracingError, match="expired"):  # a later read: the round expired
        on_sweep_decrypt(world.trustees[0], trace, 341, live, blind, world.roots, NOW + 3600, rng)


# -- F6 (finding 3): a cheater cannot frame a chosen victim ---------------------------


def test_f6_escaped_cheater_cannot_frame_a_victim(world: World) -> None:
    victim = world.users[21]  # users 16 and 21 hold different RSA keys (see conftest)
    victim_id = compute_certificate_hash(victim.cert)
    victim_member = compute_member_key(get_attributes(victim.cert))
    rm = world.new_rm(k=4)

    # The cheater's candidate 0 names the victim. Opened, it is caught (its consent is
    # the cheater's signature, not valid for the victim's handle) ...
    def attempt(u: int, rm_rng: DeterministicRng) -> PseudonymCredential:
        rng = DeterministicRng(f"r-f6-{u}")
        st, hello = start_registration(
            world.users[u].key, world.users[u].cert, world.roots, world.tc_key,
            world.rm.cert, 350, NOW, rng,
        )  # fmt: skip
        ch = on_hello(rm, hello, NOW, rng)
        bk = check_challenge(st, ch, NOW)
        st.challenge, st.blind_key = ch, bk
        st.candidates = [
            create_candidate(st, bk, j, rng, identity=victim_id if j == 0 else None)
            for j in range(4)
        ]
        req = on_commitments(rm, sign_commitments(st, NOW), NOW, rm_rng)
        return on_blind_signature(st, on_openings(rm, on_open_request(st, req, NOW), NOW), NOW)

    def rm_rng(keep0: bool) -> DeterministicRng:
        for i in range(100):
            if (DeterministicRng(f"rm-{i}").randbelow(4) == 0) == keep0:
                return DeterministicRng(f"rm-{i}")
        raise AssertionError("no seed")

    with pytest.raises(CheatingDetected, match="consent"):
        attempt(18, rm_rng(False))
    # ... and kept (the 1/K escape, forced here by the RM's draw) it is signed.
    cred = attempt(16, rm_rng(True))
    accomplice = register(world, rm, world.users[22], 350, DeterministicRng("acc"))
    v351 = register(world, rm, victim, 351, DeterministicRng("v351"))
    other351 = register(world, rm, world.users[23], 351, DeterministicRng("o351"))
    chain, rng = Chain(world), DeterministicRng("r-f6b")
    for rnd, creds in ((350, [cred, accomplice]), (351, [v351, other351])):
        mm = world.new_mm()
        process_open_batch(mm, rnd)
        for c in creds:
            on_pseudonym_request(mm, compute_pseudonym_request(c, world.mm.cert))
        assert chain.submit(KIND_BATCH, process_close_batch(mm, NOW, NOW + 3600, rng), K).ok
    ev = make_evidence(cred, accomplice, 350)
    assert chain.submit(KIND_EVIDENCE, ev, accomplice.pseudonym).ok
    reader, eid = Reader(chain.get), compute_evidence_id(ev)
    cert = reader.pseudonym_certificate(ev.accused)
    assert cert is not None
    msgs = [on_trace_request(t, trace_read(chain, eid), rng) for t in world.trustees[:3]]
    outcome = compute_trace(world.tc_key, cert.certificate, msgs, eid, world.roots, NOW)
    assert outcome.identity == victim_id  # the tag names the victim ...
    r = chain.submit(KIND_TRACE, TraceRecord(eid, outcome.entries, encode_der(victim)), K)
    assert r.ok, r.reason
    result = reader.trace(eid)
    # ... but the victim never signed the consent: unaccountable, nobody blamed
    assert result is not None and not result.accountable and result.member == b""
    assert not reader.is_blacklisted(victim_member) and not reader.is_revoked(victim_id)
    assert reader.is_pseudonym_revoked(ev.accused)  # the cheater's pseudonym is gone anyway
    # no sweep for an unaccountable trace: the victim's other pseudonyms are safe
    trace, certs = reader.trace(eid), reader.round_certificates(351)
    with pytest.raises(TracingError, match="unaccountable"):
        on_sweep_blind(world.trustees[0], trace, 351, certs, NOW, rng)
    assert not reader.is_pseudonym_revoked(v351.pseudonym.public_key.raw)
    # a record with a certificate that does not hash to the tag's identity is refused
    assert not chain.submit(
        KIND_TRACE, TraceRecord(eid, outcome.entries, encode_der(world.users[16])), K
    ).ok


def encode_der(member: Member) -> bytes:
    return compute_certificate_der(member.cert)


def test_f6_empty_certificate_cannot_preempt_an_accountable_trace(world: World) -> None:
    rm = world.new_rm(k=2)
    creds, batch = issue_round(world, rm, range(2), 352, "r-f6c")
    chain = Chain(world)
    assert chain.publish(world, 352, batch).ok
    ev = make_evidence(creds[0], creds[1], 352)
    assert chain.submit(KIND_EVIDENCE, ev, creds[1].pseudonym).ok
    reader, eid, rng = Reader(chain.get), compute_evidence_id(ev), DeterministicRng("r-f6d")
    cert = reader.pseudonym_certificate(ev.accused)
    assert cert is not None
    msgs = [on_trace_request(t, trace_read(chain, eid), rng) for t in world.trustees[:3]]
    outcome = compute_trace(world.tc_key, cert.certificate, msgs, eid, world.roots, NOW)
    assert chain.submit(KIND_TRACE, TraceRecord(eid, outcome.entries, b""), K).ok
    trace = reader.trace(eid)
    assert trace is not None and not trace.accountable
    assert not chain.submit(KIND_TRACE, TraceRecord(eid, outcome.entries, b""), K).ok
    der = compute_certificate_der(world.users[0].cert)
    assert chain.submit(KIND_TRACE, TraceRecord(eid, outcome.entries, der), K).ok
    trace = reader.trace(eid)
    assert trace is not None and trace.accountable
    assert reader.is_blacklisted(compute_member_key(get_attributes(world.users[0].cert)))


# -- F7 (finding 7): the combiner never blames a trustee for an unauthenticated message ----


def test_f7_unauthenticated_message_never_names_a_trustee(world: World) -> None:
    rm = world.new_rm(k=2)
    creds, batch = issue_round(world, rm, range(2), 360, "r-f7")
    chain = Chain(world)
    assert chain.publish(world, 360, batch).ok
    ev = make_evidence(creds[0], creds[1], 360)
    assert chain.submit(KIND_EVIDENCE, ev, creds[1].pseudonym).ok
    reader, eid, rng = Reader(chain.get), compute_evidence_id(ev), DeterministicRng("r-f7")
    cert = reader.pseudonym_certificate(ev.accused)
    assert cert is not None
    read = trace_read(chain, eid)
    msgs = [on_trace_request(t, read, rng) for t in world.trustees[:3]]
    honest5 = on_trace_request(world.trustees[4], read, rng)
    spoof = dataclasses.replace(honest5, signature=b"\0" * 256)
    outcome = compute_trace(world.tc_key, cert.certificate, [*msgs, spoof], eid, world.roots, NOW)
    assert outcome.bad_trustees == ()
    assert outcome.unauthenticated == (spoof,)
    assert len(outcome.entries) == 3 and encode(spoof) not in outcome.entries
