"""Trace center: trustees' shares, their binding to certificates, accountable traces."""

from __future__ import annotations

import dataclasses

import pytest

from gridledger.crypto.encoding import encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.threshold import DecryptionShare
from gridledger.identity.ca import (
    MemberAttributes,
    compute_certificate_der,
    compute_certificate_hash,
    compute_member_key,
    get_attributes,
)
from gridledger.identity.contracts import (
    KIND_BATCH,
    KIND_EVIDENCE,
    KIND_TRACE,
    Reader,
)
from gridledger.identity.errors import (
    CheatingDetected,
    TracingError,
)
from gridledger.identity.messages import (
    TRACE_SHARE_TAG,
    SignedTraceShare,
    TraceRecord,
    TraceShare,
)
from gridledger.identity.pseudonym_issuer import (
    compute_pseudonym_request,
    on_pseudonym_request,
    process_close_batch,
    process_open_batch,
)
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
from gridledger.identity.sweep import (
    on_sweep_blind,
)
from gridledger.identity.trace_center import (
    Trustee,
    compute_evidence_id,
    compute_trace,
    get_trustee_index,
    on_trace_request,
)

from .conftest import NOW, Member, World, issue, register
from .helpers import (
    Chain,
    K,
    evidence_on_chain,
    issue_round,
    make_evidence,
    revoke,
    submit_trace,
    trace_read,
)


def _resign(share: SignedTraceShare, body: TraceShare, signer: Member) -> SignedTraceShare:
    return SignedTraceShare(
        body,
        compute_certificate_der(signer.cert),
        signer.key.sign(TRACE_SHARE_TAG, encode(body)),
    )


def _as_member(tr: Trustee) -> Member:
    return Member(tr.signing_key, tr.certificate)


def encode_der(member: Member) -> bytes:
    return compute_certificate_der(member.cert)


def test_trace_share_must_be_signed_by_the_trustee_its_index_names(world: World) -> None:
    t = evidence_on_chain(world, "bind", 60)
    s1, s2, s3 = t.shares[0], t.shares[1], t.shares[2]
    t2 = _as_member(world.trustees[1])
    # Trustee 2 signs (under its own valid certificate) a share claiming index 1.
    relayed = _resign(s1, s1.share, t2)
    # Trustee 2's certificate and signature, its own index in the body, index 1 inside.
    inner = dataclasses.replace(s1.share, trustee=2)
    mixed = _resign(s1, inner, t2)
    # Trustee 1's certificate, but trustee 2's signature.
    forged_sig = SignedTraceShare(
        s1.share, s1.trustee_certificate, t2.key.sign(TRACE_SHARE_TAG, encode(s1.share))
    )
    # A household (not a trustee) signs index 1's genuine share.
    by_user = _resign(s1, s1.share, world.users[0])
    # A tc-trustee certificate whose member id names no index, or a padded one.
    odd = issue(
        world.ca,
        "tc-odd",
        world.trustees[0].signing_key,
        MemberAttributes("tc-trustee", "tc-01", None, ("trace",)),
        DeterministicRng("odd"),
    )
    padded = _resign(s1, s1.share, odd)
    # An unsigned share (the old format).
    raw = s1.share.share
    rest = [encode(s2), encode(s3)]
    for bad in (relayed, mixed, forged_sig, by_user, padded):
        receipt = submit_trace(t, [encode(bad), *rest])
        assert not receipt.ok, receipt
        # The combiner sets it aside and names the claimed index; it cannot count.
        with pytest.raises(TracingError):
            cert = Reader(t.chain.get).pseudonym_certificate(t.creds[0].pseudonym.public_key.raw)
            assert cert is not None
            compute_trace(world.tc_key, cert.certificate, [bad, s2, s3], t.eid, world.roots, NOW)
    assert not submit_trace(t, [raw, *rest]).ok
    assert "not a signed trace share" in submit_trace(t, [raw, *rest]).reason
    assert not submit_trace(t, [encode(s2), encode(s2), encode(s3)]).ok  # one share per trustee
    # An authenticated share with a bad proof is named on chain (its signer signed it).
    share = DecryptionShare.from_bytes(s1.share.share, world.tc_key.group)
    wrong = dataclasses.replace(share, d=world.tc_key.group.mul(share.d, world.tc_key.group.g))
    lying = _resign(s1, dataclasses.replace(s1.share, share=wrong.to_bytes(world.tc_key.group)),
                    _as_member(world.trustees[0]))  # fmt: skip
    receipt = submit_trace(t, [encode(lying), *t.record_entries[1:]])
    assert receipt.ok, receipt.reason
    result = Reader(t.chain.get).trace(t.eid)
    assert result is not None and result.bad_trustees == (1,)
    assert result.identity == compute_certificate_hash(world.users[0].cert)


def test_trace_share_from_revoked_trustee_certificate_rejected(world: World) -> None:
    t = evidence_on_chain(world, "bind-rev", 62)
    t3 = world.trustees[2]
    revoke(world, t.chain, t3.certificate)
    assert not submit_trace(t, t.record_entries[:3]).ok  # includes trustee 3's share
    assert submit_trace(t, [t.record_entries[i] for i in (0, 1, 3)]).ok


def test_trustee_index_parsing() -> None:
    def attrs(member: str) -> MemberAttributes:
        return MemberAttributes("tc-trustee", member, None, ("trace",))

    assert get_trustee_index(attrs("tc-7")) == 7
    for bad in ("tc-0", "tc-07", "tc-", "tc-x", "tc--1", "tc-+1", "tc-١", "dc-1", "tc-12345"):
        with pytest.raises(Exception, match="names no index"):
            get_trustee_index(attrs(bad))


def test_escaped_cheater_cannot_frame_a_victim(world: World) -> None:
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
            world.rm.cert, 350, NOW, rng, rm_blind_certificate=world.rm_blind.cert,
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


def test_empty_certificate_cannot_preempt_an_accountable_trace(world: World) -> None:
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


def test_unauthenticated_message_never_names_a_trustee(world: World) -> None:
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
