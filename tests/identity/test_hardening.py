"""Adversarial tests: trustee index binding, MM revocation on chain, CA re-admission,
the sweep of a traced user's other open pseudonyms, and the MM submission scheduler."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from cryptography import x509

from gridledger.crypto.encoding import encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.crypto.threshold import DecryptionShare
from gridledger.identity.ca import (
    MemberAttributes,
    compute_certificate_der,
    compute_certificate_hash,
    compute_member_key,
    create_authority,
    get_attributes,
    process_issue,
    process_take_superseded,
)
from gridledger.identity.contracts import (
    KIND_BATCH,
    KIND_EVIDENCE,
    KIND_REVOKE,
    KIND_SWEEP,
    KIND_TRACE,
    Reader,
    get_blacklist,
)
from gridledger.identity.errors import (
    CheatingDetected,
    MemberBlacklisted,
    TracingError,
)
from gridledger.identity.market_manager import verify_pseudonym_certificate
from gridledger.identity.messages import (
    PSEUDONYM_CERT_TAG,
    REVOCATION_TAG,
    SWEEP_BLINDINGS_TAG,
    TRACE_SHARE_TAG,
    PseudonymSweep,
    Revocation,
    SignedPseudonymCertificate,
    SignedRevocation,
    SignedSweepBlindings,
    SignedTraceShare,
    SweepBlindings,
    TraceRecord,
    TraceResult,
    TraceShare,
)
from gridledger.identity.registration import (
    PseudonymCredential,
    on_commitments,
    on_open_request,
    on_openings,
)
from gridledger.identity.schedule import BatchWindow, compute_submission_time
from gridledger.identity.sweep import (
    compute_blinding_context,
    compute_blinding_with,
    on_sweep_blind,
    on_sweep_decrypt,
)
from gridledger.identity.tags import compute_handle_plaintext, decode_tag
from gridledger.identity.trace_center import (
    Trustee,
    compute_evidence_id,
    compute_trace,
    get_trustee_index,
    on_trace_request,
)
from gridledger.ledger.execution import Receipt

from .conftest import DAY, NOW, Member, World, issue
from .helpers import (
    Chain,
    batch_payload,
    cheat_commitments,
    issue_round,
    make_evidence,
    trace_read,
)

SENDER = Ed25519PrivateKey.generate(DeterministicRng("hardening-sender"))


@dataclass
class Traced:
    chain: Chain
    creds: list[PseudonymCredential]  # round r, users 0..3 (user 0 reneges)
    later: list[PseudonymCredential]  # round r + 1, same users, issued before the trace
    eid: bytes
    record_entries: tuple[bytes, ...]
    shares: list[SignedTraceShare]
    member: Member  # user 0, whose certificate the tag names


def _evidence_on_chain(world: World, seed: str, round_: int) -> Traced:
    rm = world.new_rm(k=4)
    users = range(4)
    creds, batch = issue_round(world, rm, users, round_, seed)
    later, batch2 = issue_round(world, rm, users, round_ + 1, seed + "-next")
    chain = Chain(world)
    assert chain.publish(world, round_, batch).ok
    assert chain.publish(world, round_ + 1, batch2).ok
    evidence = make_evidence(creds[0], creds[1], round_, obligation_id=b"trade-9")
    assert chain.submit(KIND_EVIDENCE, evidence, creds[1].pseudonym).ok
    eid = compute_evidence_id(evidence)
    reader = Reader(chain.get)
    record, cert = reader.evidence(eid), reader.pseudonym_certificate(evidence.accused)
    assert record is not None and cert is not None
    rng = DeterministicRng(seed + "-tc")
    shares = [on_trace_request(tr, trace_read(chain, eid), rng) for tr in world.trustees]
    outcome = compute_trace(world.tc_key, cert.certificate, shares, eid, world.roots, NOW)
    assert outcome.bad_trustees == () and outcome.unauthenticated == ()
    return Traced(chain, creds, later, eid, outcome.entries, shares, world.users[0])


def _resign(share: SignedTraceShare, body: TraceShare, signer: Member) -> SignedTraceShare:
    return SignedTraceShare(
        body,
        compute_certificate_der(signer.cert),
        signer.key.sign(TRACE_SHARE_TAG, encode(body)),
    )


def _as_member(tr: Trustee) -> Member:
    return Member(tr.signing_key, tr.certificate)


def _trace(t: Traced, entries: Sequence[bytes]) -> Receipt:
    der = compute_certificate_der(t.member.cert)
    return t.chain.submit(KIND_TRACE, TraceRecord(t.eid, tuple(entries), der), SENDER)


# -- 1. trustee index <-> certificate binding ----------------------------------------


def test_trace_share_must_be_signed_by_the_trustee_its_index_names(world: World) -> None:
    t = _evidence_on_chain(world, "bind", 60)
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
        receipt = _trace(t, [encode(bad), *rest])
        assert not receipt.ok, receipt
        # The combiner sets it aside and names the claimed index; it cannot count.
        with pytest.raises(TracingError):
            cert = Reader(t.chain.get).pseudonym_certificate(t.creds[0].pseudonym.public_key.raw)
            assert cert is not None
            compute_trace(world.tc_key, cert.certificate, [bad, s2, s3], t.eid, world.roots, NOW)
    assert not _trace(t, [raw, *rest]).ok
    assert "not a signed trace share" in _trace(t, [raw, *rest]).reason
    assert not _trace(t, [encode(s2), encode(s2), encode(s3)]).ok  # one share per trustee
    # An authenticated share with a bad proof is named on chain (its signer signed it).
    share = DecryptionShare.from_bytes(s1.share.share, world.tc_key.group)
    wrong = dataclasses.replace(share, d=world.tc_key.group.mul(share.d, world.tc_key.group.g))
    lying = _resign(s1, dataclasses.replace(s1.share, share=wrong.to_bytes(world.tc_key.group)),
                    _as_member(world.trustees[0]))  # fmt: skip
    receipt = _trace(t, [encode(lying), *t.record_entries[1:]])
    assert receipt.ok, receipt.reason
    result = Reader(t.chain.get).trace(t.eid)
    assert result is not None and result.bad_trustees == (1,)
    assert result.identity == compute_certificate_hash(world.users[0].cert)


def test_trace_share_from_revoked_trustee_certificate_rejected(world: World) -> None:
    t = _evidence_on_chain(world, "bind-rev", 62)
    t3 = world.trustees[2]
    _revoke(world, t.chain, t3.certificate)
    assert not _trace(t, t.record_entries[:3]).ok  # includes trustee 3's share
    assert _trace(t, [t.record_entries[i] for i in (0, 1, 3)]).ok


def test_trustee_index_parsing() -> None:
    def attrs(member: str) -> MemberAttributes:
        return MemberAttributes("tc-trustee", member, None, ("trace",))

    assert get_trustee_index(attrs("tc-7")) == 7
    for bad in ("tc-0", "tc-07", "tc-", "tc-x", "tc--1", "tc-+1", "tc-١", "dc-1", "tc-12345"):
        with pytest.raises(Exception, match="names no index"):
            get_trustee_index(attrs(bad))


# -- 2. the MM's certificate: revocation and permission, in the contract ------------------


def _revoke(world: World, chain: Chain, cert: x509.Certificate) -> None:
    rev = Revocation(compute_certificate_hash(cert), "compromise", NOW)
    signed = SignedRevocation(
        rev,
        compute_certificate_der(world.revoker.cert),
        world.revoker.key.sign(REVOCATION_TAG, encode(rev)),
    )
    assert chain.submit(KIND_REVOKE, signed, SENDER).ok


def test_batch_from_revoked_mm_rejected(world: World) -> None:
    _, batch = issue_round(world, world.new_rm(k=4), range(2), 70, "mm-rev")
    chain = Chain(world)
    _revoke(world, chain, world.mm.cert)
    receipt = chain.publish(world, 70, batch)
    assert not receipt.ok and "revoked" in receipt.reason
    # Off chain, the same check with the on-chain list.
    with pytest.raises(Exception, match="revoked"):
        verify_pseudonym_certificate(
            batch[0], world.mm.cert, world.rm_blind.cert, world.roots, world.tc_key, NOW,
            revoked={compute_certificate_hash(world.mm.cert)},
        )  # fmt: skip
    fresh = Chain(world)
    assert fresh.publish(world, 70, batch).ok


def test_batch_from_revoked_rm_blind_key_rejected(world: World) -> None:
    _, batch = issue_round(world, world.new_rm(k=4), range(1), 71, "rm-rev")
    chain = Chain(world)
    _revoke(world, chain, world.rm_blind.cert)
    assert not chain.publish(world, 71, batch).ok


def test_batch_from_mm_without_issue_permission_rejected(world: World) -> None:
    _, batch = issue_round(world, world.new_rm(k=4), range(2), 72, "mm-perm")
    rng = DeterministicRng("mm-perm")
    weak = issue(world.ca, "mm-2", world.mm.key, MemberAttributes("mm", "mm-2", None, ()), rng)
    wrong_role = issue(
        world.ca, "mm-3", world.mm.key,
        MemberAttributes("aggregator", "mm-3", None, ("issue-pseudonym-certs",)), rng,
    )  # fmt: skip
    for mm in (weak, wrong_role):
        resigned = []
        for signed in batch:
            cert = dataclasses.replace(signed.certificate, mm=compute_certificate_hash(mm.cert))
            resigned.append(
                SignedPseudonymCertificate(cert, mm.key.sign(PSEUDONYM_CERT_TAG, encode(cert)))
            )
        payload = dataclasses.replace(
            batch_payload(world, 72, tuple(resigned)),
            mm_certificate=compute_certificate_der(mm.cert),
        )
        receipt = Chain(world, pin_mm=False).submit(KIND_BATCH, payload, SENDER)
        assert not receipt.ok and "required" in receipt.reason, receipt.reason
        pinned = Chain(world).submit(KIND_BATCH, payload, SENDER)
        assert not pinned.ok and "pinned" in pinned.reason


# -- 3. the CA refuses to re-admit a blacklisted member -------------------------------


def test_ca_refuses_blacklisted_member_id_and_meter() -> None:
    rng = DeterministicRng("ca-bl")
    ca = create_authority("CA-bl", Ed25519PrivateKey.generate(rng), NOW - DAY, 9 * DAY, rng)
    key = Ed25519PrivateKey.generate(rng).public_key
    attrs = MemberAttributes("consumer", "house-x", "meter-x", ("trade",))
    first = process_issue(ca, "house-x", key, attrs, NOW, DAY, rng)
    process_issue(ca, "house-x", key, attrs, NOW, DAY, rng)  # not blacklisted: renewal is fine
    assert process_take_superseded(ca) == (compute_certificate_hash(first),)  # renewal revokes
    ca.blacklist = {compute_member_key(get_attributes(first))}
    before = dict(ca.issued)
    with pytest.raises(MemberBlacklisted) as info:
        process_issue(ca, "house-x", key, attrs, NOW, DAY, rng)
    assert info.value.identity == compute_member_key(attrs)
    assert info.value.subject == "member:house-x"
    renamed = MemberAttributes("consumer", "house-y", "meter-x", ("trade",))
    with pytest.raises(MemberBlacklisted, match="meter:meter-x"):
        process_issue(ca, "house-y", key, renamed, NOW, DAY, rng)
    assert ca.issued == before  # nothing issued on refusal
    other = MemberAttributes("consumer", "house-z", "meter-z", ("trade",))
    process_issue(ca, "house-z", key, other, NOW, DAY, rng)


def test_ca_reads_the_on_chain_blacklist_after_a_trace(world: World) -> None:
    t = _evidence_on_chain(world, "ca-chain", 64)
    # A CA that certified house-0 (here: a fresh CA certifying the same member id).
    rng = DeterministicRng("ca-chain")
    ca = create_authority("CA-chain", Ed25519PrivateKey.generate(rng), NOW - DAY, 9 * DAY, rng)
    attrs = MemberAttributes("producer", "house-0", "meter-0", ("trade",))
    ca.admitted["member:house-0"] = [compute_member_key(get_attributes(world.users[0].cert))]
    ca.blacklist = get_blacklist(t.chain.get)
    key = world.users[0].key.public_key
    process_issue(ca, "house-0", key, attrs, NOW, DAY, rng)  # not yet traced
    assert _trace(t, t.record_entries).ok
    with pytest.raises(MemberBlacklisted):
        process_issue(ca, "house-0", key, attrs, NOW, DAY, rng)


# -- 4. the sweep: the traced user's other open pseudonyms ----------------------------


def _sweep(
    world: World, t: Traced, round_: int, blind_by: Sequence[int], share_by: Sequence[int]
) -> tuple[PseudonymSweep, TraceResult]:
    reader = Reader(t.chain.get)
    trace = reader.trace(t.eid)
    assert trace is not None
    certs = reader.round_certificates(round_)
    rng = DeterministicRng(f"sweep-{round_}")
    tr = {x.index: x for x in world.trustees}
    blindings = tuple(on_sweep_blind(tr[i], trace, round_, certs, NOW, rng) for i in blind_by)
    shares = tuple(
        on_sweep_decrypt(tr[i], trace, round_, certs, blindings, world.roots, NOW, rng)
        for i in share_by
    )
    return PseudonymSweep(t.eid, round_, blindings, shares), trace


def test_sweep_revokes_only_the_traced_users_later_pseudonym(world: World) -> None:
    t = _evidence_on_chain(world, "sweep", 80)
    reader = Reader(t.chain.get)
    later_keys = [c.pseudonym.public_key.raw for c in t.later]
    # Before any trace there is nothing to sweep.
    with pytest.raises(TracingError):
        certs = reader.round_certificates(81)
        on_sweep_blind(world.trustees[0], None, 81, certs, NOW, DeterministicRng("x"))
    assert _trace(t, t.record_entries).ok
    sweep, trace = _sweep(world, t, 81, (1, 2, 3), (2, 4, 5))
    receipt = t.chain.submit(KIND_SWEEP, sweep, SENDER)
    assert receipt.ok, receipt.reason
    assert reader.is_pseudonym_revoked(later_keys[0])
    assert not any(reader.is_pseudonym_revoked(k) for k in later_keys[1:])
    result = reader.sweep(t.eid, 81)
    assert result is not None and result.revoked == (later_keys[0],)
    assert result.identity == compute_certificate_hash(world.users[0].cert)
    assert not t.chain.submit(KIND_SWEEP, sweep, SENDER).ok  # once per (trace, round)
    # Honest users' handles: the transcript gives (M_J / M_I)^Z, never M_J / M_I, so a
    # dictionary over every member identity matches nothing.
    grp = world.tc_key.group
    m_i = compute_handle_plaintext(grp, trace.identity)
    ratios = {
        grp.mul(compute_handle_plaintext(grp, compute_certificate_hash(u.cert)), grp.inv(m_i))
        for u in world.users
    }
    certs = reader.round_certificates(81)
    for k, cert in enumerate(certs):
        a_k = grp.identity
        b_k = grp.identity
        for m in sweep.blindings:
            bl = m.body.blindings[k]
            a_k = grp.mul(a_k, grp.element_from_bytes(bl.a))
            b_k = grp.mul(b_k, grp.element_from_bytes(bl.b))
        assert a_k != decode_tag(world.tc_key, cert.tag).handle_a
        assert b_k not in ratios


def test_sweep_needs_t_contributors_valid_proofs_and_a_nontrivial_blinding(world: World) -> None:
    t = _evidence_on_chain(world, "sweep-bad", 84)
    assert _trace(t, t.record_entries).ok
    reader = Reader(t.chain.get)
    certs = reader.round_certificates(85)
    trace = reader.trace(t.eid)
    assert trace is not None
    sweep, _ = _sweep(world, t, 85, (1, 2, 3), (1, 2, 3))
    rng = DeterministicRng("colluders")
    # Only t - 1 blinding contributors: they could unblind together.
    short = dataclasses.replace(sweep, blindings=sweep.blindings[:2])
    assert "needed" in t.chain.submit(KIND_SWEEP, short, SENDER).reason
    # Only t - 1 decryption share sets.
    assert not t.chain.submit(
        KIND_SWEEP, dataclasses.replace(sweep, shares=sweep.shares[:2]), SENDER
    ).ok
    # A trustee re-signs another's blindings under its own certificate.
    b1 = sweep.blindings[0]
    t4 = world.trustees[3]
    relayed = SignedSweepBlindings(
        b1.body, compute_certificate_der(t4.certificate),
        t4.signing_key.sign(SWEEP_BLINDINGS_TAG, encode(b1.body)),
    )  # fmt: skip
    bad = dataclasses.replace(sweep, blindings=(relayed, *sweep.blindings[1:]))
    assert not t.chain.submit(KIND_SWEEP, bad, SENDER).ok
    # A blinding with a broken DLEQ proof (a^z and c^z' with z != z').
    grp = world.tc_key.group
    bl0 = b1.body.blindings[0]
    broken = dataclasses.replace(
        bl0, b=grp.element_to_bytes(grp.mul(grp.element_from_bytes(bl0.b), grp.g))
    )
    body = dataclasses.replace(b1.body, blindings=(broken, *b1.body.blindings[1:]))
    t1 = world.trustees[0]
    resigned = SignedSweepBlindings(
        body, b1.trustee_certificate, t1.signing_key.sign(SWEEP_BLINDINGS_TAG, encode(body))
    )
    assert not t.chain.submit(
        KIND_SWEEP, dataclasses.replace(sweep, blindings=(resigned, *sweep.blindings[1:])), SENDER
    ).ok
    # Colluding trustees pick z_1 + z_2 + z_3 = 0: every handle would "match". Refused.
    cols = [world.trustees[i] for i in range(3)]
    zs = [grp.random_scalar(DeterministicRng(f"z{i}")) for i in range(2)]
    zs.append((-zs[0] - zs[1]) % grp.q)
    m_inv = grp.inv(compute_handle_plaintext(grp, trace.identity))
    colluding = []
    for tr, z in zip(cols, zs, strict=True):
        blindings = []
        for k, cert in enumerate(certs):
            tag = decode_tag(world.tc_key, cert.tag)
            ctx = compute_blinding_context(trace, 85, tr.index, k)
            c = grp.mul(tag.handle_b, m_inv)
            blindings.append(compute_blinding_with(grp, tag.handle_a, c, z, ctx, rng))
        body = SweepBlindings(t.eid, 85, tr.index, tuple(blindings))
        colluding.append(
            SignedSweepBlindings(
                body,
                compute_certificate_der(tr.certificate),
                tr.signing_key.sign(SWEEP_BLINDINGS_TAG, encode(body)),
            )
        )
    trivial = dataclasses.replace(sweep, blindings=tuple(colluding))
    assert "trivial" in t.chain.submit(KIND_SWEEP, trivial, SENDER).reason
    # A round without a batch; an expired round.
    assert not t.chain.submit(KIND_SWEEP, dataclasses.replace(sweep, round=99), SENDER).ok
    assert "expired" in t.chain.submit(KIND_SWEEP, sweep, SENDER, now=NOW + 7200).reason
    # The honest sweep still goes through.
    assert t.chain.submit(KIND_SWEEP, sweep, SENDER).ok


def test_rm_cut_and_choose_checks_the_revocation_handle(world: World) -> None:
    rng = DeterministicRng("handle-cheat")
    rm = world.new_rm(k=4)
    st, com = cheat_commitments(world, rm, world.users[13], 5, bad=0, rng=rng, handle_only=True)
    req = on_commitments(rm, com, NOW, rng)
    assert req.request.keep != 0  # this seed opens the bad candidate
    with pytest.raises(CheatingDetected) as info:
        on_openings(rm, on_open_request(st, req, NOW), NOW)
    assert info.value.index == 0
    # The evidence convicts on chain like a bad ciphertext does.
    from gridledger.identity.registration import verify_cheating_evidence

    identity = verify_cheating_evidence(info.value.evidence, world.roots, world.tc_key)
    assert identity == compute_certificate_hash(world.users[13].cert)


# -- 5. submission times inside the MM batch window ---------------------------------


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


def test_client_registers_then_submits_at_its_scheduled_time(world: World) -> None:
    from gridledger.identity.market_manager import process_close_batch, process_open_batch
    from gridledger.node.identity_client import deliver_due_requests, register_and_schedule

    rm, mm = world.new_rm(k=4), world.new_mm()
    window = BatchWindow(90, NOW + 60, NOW + 660)
    scheduled = []
    for i in range(4):
        user = world.users[i]
        _, item = register_and_schedule(
            rm, user.key, user.cert, world.roots, world.tc_key, world.mm.cert, window, NOW,
            DeterministicRng(f"user-{i}"), DeterministicRng(f"rm-{i}"),
        )  # fmt: skip
        scheduled.append(item)
    process_open_batch(mm, 90)
    left = deliver_due_requests(mm, scheduled, window.opens - 1)
    assert len(left) == 4 and mm.pending == []
    middle = sorted(s.at for s in scheduled)[1]
    left = deliver_due_requests(mm, left, middle)
    assert len(mm.pending) == 2 and len(left) == 2
    assert [r.pseudonym_key for r in mm.pending] == [
        s.request.pseudonym_key for s in sorted(scheduled, key=lambda s: s.at)[:2]
    ]
    assert deliver_due_requests(mm, left, window.closes) == []
    assert len(process_close_batch(mm, NOW, NOW + 3600, DeterministicRng("mm")).certificates) == 4
