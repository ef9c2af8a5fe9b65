"""MM issuance (unforgeability, double use), contract, tracing (t of n, robustness), blacklist."""

from __future__ import annotations

import dataclasses

import pytest

from gridledger.crypto import blind_rsa
from gridledger.crypto.encoding import encode
from gridledger.crypto.groups import FFDHE2048
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.crypto.threshold import DecryptionShare
from gridledger.identity.ca import (
    compute_certificate_der,
    compute_certificate_hash,
    compute_member_key,
    get_attributes,
)
from gridledger.identity.contracts import (
    KIND_BATCH,
    KIND_EVIDENCE,
    KIND_REVOKE,
    KIND_TRACE,
    Reader,
    get_blacklist,
    get_revocations,
)
from gridledger.identity.errors import (
    Blacklisted,
    CertificateRejected,
    MessageRejected,
    RegistrationRejected,
    ReplayDetected,
    TracingError,
)
from gridledger.identity.messages import (
    PSEUDONYM_CERT_TAG,
    REVOCATION_TAG,
    Revocation,
    SignedPseudonymCertificate,
    SignedRevocation,
    TraceRecord,
)
from gridledger.identity.pseudonym_issuer import (
    compute_pseudonym_request,
    on_pseudonym_request,
    process_close_batch,
    process_open_batch,
    verify_pseudonym_certificate,
)
from gridledger.identity.registration import PseudonymCredential
from gridledger.identity.trace_center import (
    TraceRequestRead,
    compute_evidence_id,
    compute_trace,
    on_trace_request,
    run_dkg,
    trace_by_key_reconstruction,
)

from .conftest import NOW, World, register
from .helpers import Chain, batch_payload, make_evidence, trace_read


def _issue(
    world: World, users: range, round_: int, seed: str
) -> tuple[list[PseudonymCredential], tuple[SignedPseudonymCertificate, ...]]:
    rng = DeterministicRng(seed)
    rm, mm = world.new_rm(), world.new_mm()
    creds = [register(world, rm, world.users[i], round_, rng) for i in users]
    process_open_batch(mm, round_)
    for c in creds:
        on_pseudonym_request(mm, compute_pseudonym_request(c, world.mm.cert))
    return creds, process_close_batch(mm, NOW, NOW + 3600, rng).certificates


def _verify(world: World, signed: SignedPseudonymCertificate, roots=None) -> None:  # type: ignore[no-untyped-def]
    verify_pseudonym_certificate(
        signed,
        world.mm.cert,
        world.rm_blind.cert,
        roots or world.roots,
        world.tc_key,
        NOW,
        revoked=frozenset(),
        revoked_pseudonyms=frozenset(),
    )


def test_batch_issue_and_verify(world: World) -> None:
    creds, batch = _issue(world, range(3), 1, "batch")
    assert {c.certificate.pseudonym_key for c in batch} == {
        c.pseudonym.public_key.raw for c in creds
    }
    for signed in batch:
        _verify(world, signed)


def test_double_use_and_bad_requests_refused(world: World) -> None:
    rng = DeterministicRng("mm-bad")
    rm, mm = world.new_rm(), world.new_mm()
    cred = register(world, rm, world.users[0], 2, rng)
    process_open_batch(mm, 2)
    req = compute_pseudonym_request(cred, world.mm.cert)
    # RM signature on a different pseudonym key; forged signature; wrong round; bad tag; PoP.
    other = Ed25519PrivateKey.generate(rng)
    swapped = compute_pseudonym_request(dataclasses.replace(cred, pseudonym=other), world.mm.cert)
    forged = dataclasses.replace(req, rm_signature=bytes(len(req.rm_signature)))
    bad_tag = dataclasses.replace(req, tag=req.tag[:-1] + bytes([req.tag[-1] ^ 1]))
    bad_pop = dataclasses.replace(req, possession_signature=bytes(64))
    for bad in (swapped, forged, bad_tag, bad_pop):
        with pytest.raises(MessageRejected):
            on_pseudonym_request(mm, bad)
    with pytest.raises(RegistrationRejected):
        on_pseudonym_request(mm, dataclasses.replace(req, round=3))
    assert mm.pending == [] and not mm.used_signatures
    on_pseudonym_request(mm, req)
    with pytest.raises(ReplayDetected):
        on_pseudonym_request(mm, req)
    # A signature by the mint's blind key is not the RM's.
    mint = blind_rsa.BlindSigner.from_private_key(world.mint_blind.key)
    assert mint.public_key != mm.rm_blind_key


def test_forged_pseudonym_certificates_rejected(world: World) -> None:
    rng = DeterministicRng("forge")
    _, batch = _issue(world, range(2), 4, "forge")
    signed = batch[0]
    # Forged MM signature (signed by a user key instead).
    forged = SignedPseudonymCertificate(
        signed.certificate,
        world.users[0].key.sign(
            PSEUDONYM_CERT_TAG,
            encode(signed.certificate),
        ),
    )
    with pytest.raises(CertificateRejected):
        _verify(world, forged)
    # Certificate body altered: someone else's pseudonym key, a key the RM never signed.
    other_key = Ed25519PrivateKey.generate(rng).public_key.raw
    altered = dataclasses.replace(signed.certificate, pseudonym_key=other_key)
    mm_signed = SignedPseudonymCertificate(
        altered,
        world.mm.key.sign(
            PSEUDONYM_CERT_TAG,
            encode(altered),
        ),
    )
    with pytest.raises(CertificateRejected):
        _verify(world, mm_signed)  # even the MM cannot certify a pseudonym the RM did not sign
    # Wrong CA roots; expired.
    from gridledger.identity.ca import create_authority

    rogue = create_authority("rogue", Ed25519PrivateKey.generate(rng), NOW - 10, 100, rng)
    with pytest.raises(CertificateRejected):
        _verify(world, signed, roots=(rogue.certificate,))
    with pytest.raises(CertificateRejected):
        verify_pseudonym_certificate(
            signed,
            world.mm.cert,
            world.rm_blind.cert,
            world.roots,
            world.tc_key,
            NOW + 7200,
            revoked=frozenset(),
            revoked_pseudonyms=frozenset(),
        )


def _full_chain(world: World, seed: str, round_: int):  # type: ignore[no-untyped-def]
    creds, batch = _issue(world, range(4), round_, seed)
    chain = Chain(world)
    sender = Ed25519PrivateKey.generate(DeterministicRng(seed + "tx"))
    payload = batch_payload(world, round_, batch)
    assert chain.submit(KIND_BATCH, payload, sender).ok
    assert not chain.submit(KIND_BATCH, payload, sender).ok  # one batch per round
    accused, accuser = creds[0], creds[1]
    evidence = make_evidence(accused, accuser, round_)
    assert not chain.submit(KIND_EVIDENCE, evidence, sender).ok  # not sent by the accuser
    assert chain.submit(KIND_EVIDENCE, evidence, accuser.pseudonym).ok
    return creds, chain, evidence


def test_tracing_with_t_trustees_blacklists_and_revokes(world: World) -> None:
    rng = DeterministicRng("trace")
    _, chain, evidence = _full_chain(world, "trace", 20)
    reader = Reader(chain.get)
    eid = compute_evidence_id(evidence)
    record = reader.evidence(eid)
    cert = reader.pseudonym_certificate(evidence.accused)
    assert record is not None and cert is not None
    msgs = [on_trace_request(tr, trace_read(chain, eid), rng) for tr in world.trustees]
    # One trustee lies: its share is named, tracing succeeds with t honest ones.
    bad = msgs[0]
    share = DecryptionShare.from_bytes(bad.share.share, world.tc_key.group)
    wrong = dataclasses.replace(share, d=world.tc_key.group.mul(share.d, 4))
    from gridledger.identity.messages import TRACE_SHARE_TAG, SignedTraceShare, TraceShare

    body = TraceShare(bad.share.evidence_id, bad.share.trustee, wrong.to_bytes(world.tc_key.group))
    lying = SignedTraceShare(
        body,
        bad.trustee_certificate,
        world.trustees[0].signing_key.sign(TRACE_SHARE_TAG, encode(body)),
    )
    outcome = compute_trace(
        world.tc_key, cert.certificate, [lying, *msgs[1:4]], eid, world.roots, NOW
    )
    identity, bad_ids, valid = outcome.identity, outcome.bad_trustees, outcome.entries
    user0 = compute_certificate_hash(world.users[0].cert)
    member0 = compute_member_key(get_attributes(world.users[0].cert))
    der0 = compute_certificate_der(world.users[0].cert)
    assert identity == user0 and bad_ids == (1,) and outcome.unauthenticated == ()
    # t - 1 valid shares do not decrypt.
    with pytest.raises(TracingError):
        compute_trace(world.tc_key, cert.certificate, [lying, *msgs[1:3]], eid, world.roots, NOW)
    # On chain: replicas re-verify, record, blacklist, revoke.
    sender = Ed25519PrivateKey.generate(rng)
    assert not chain.submit(KIND_TRACE, TraceRecord(eid, valid[:2], der0), sender).ok
    receipt = chain.submit(KIND_TRACE, TraceRecord(eid, (encode(lying), *valid), der0), sender)
    assert receipt.ok, receipt.reason
    result = reader.trace(eid)
    assert result is not None and result.identity == user0 and result.bad_trustees == (1,)
    assert result.accountable and result.member == member0
    assert reader.is_blacklisted(member0) and reader.is_pseudonym_revoked(evidence.accused)
    assert reader.is_revoked(user0)
    assert not chain.submit(KIND_TRACE, TraceRecord(eid, valid, der0), sender).ok  # traced once
    # The RM, reading the chain, refuses the traced user further pseudonyms.
    rm = world.new_rm()
    rm.blacklist = get_blacklist(chain.get)
    with pytest.raises(Blacklisted):
        register(world, rm, world.users[0], 21, rng)
    rm.blacklist = frozenset()
    rm.revoked = get_revocations(chain.get)
    with pytest.raises(CertificateRejected):
        register(world, rm, world.users[0], 21, rng)
    # Audit path of seed 000: rebuild d_TC from t key shares.
    assert (
        trace_by_key_reconstruction(world.tc_key, world.key_shares[:3], cert.certificate, rng)
        == user0
    )
    with pytest.raises(TracingError):
        trace_by_key_reconstruction(world.tc_key, world.key_shares[:2], cert.certificate, rng)


def test_trustee_refuses_without_evidence(world: World) -> None:
    rng = DeterministicRng("noev")
    _, batch = _issue(world, range(1), 30, "noev")
    with pytest.raises(TracingError):
        on_trace_request(world.trustees[0], TraceRequestRead(None, batch[0], None), rng)


def test_revocation_requires_revoke_permission(world: World) -> None:
    chain = Chain(world)
    sender = Ed25519PrivateKey.generate(DeterministicRng("rev"))
    rev = Revocation(compute_certificate_hash(world.users[5].cert), "key compromise", NOW)
    by_user = SignedRevocation(
        rev,
        compute_certificate_der(world.users[1].cert),
        world.users[1].key.sign(REVOCATION_TAG, encode(rev)),
    )
    assert not chain.submit(KIND_REVOKE, by_user, sender).ok
    ok = SignedRevocation(
        rev,
        compute_certificate_der(world.revoker.cert),
        world.revoker.key.sign(REVOCATION_TAG, encode(rev)),
    )
    assert chain.submit(KIND_REVOKE, ok, sender).ok
    assert Reader(chain.get).is_revoked(rev.certificate_hash)
    assert not chain.submit(KIND_REVOKE, ok, sender).ok


def test_dkg_key_traces_like_a_dealt_key() -> None:
    rngs = [DeterministicRng(f"dkg-{i}") for i in range(5)]
    pk, shares = run_dkg(3, 5, FFDHE2048, rngs)
    from gridledger.crypto import threshold

    ct = threshold.encrypt(pk, b"who", b"aad", rngs[0])
    ds = [threshold.decryption_share(pk, s, ct, rngs[1]) for s in shares[2:5]]
    assert threshold.combine(pk, ct, ds, b"aad") == b"who"
