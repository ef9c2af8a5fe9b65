"""The identity contract: batches, revocations, typed rejections of hostile input."""

from __future__ import annotations

import dataclasses

import pytest

from gridledger.crypto.encoding import encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.identity.admission import RoleKey, create_signed_revocation
from gridledger.identity.ca import (
    MemberAttributes,
    compute_certificate_der,
    compute_certificate_hash,
    process_issue,
)
from gridledger.identity.contracts import (
    KIND_BATCH,
    KIND_BLACKLIST,
    KIND_EVIDENCE,
    KIND_REVOKE,
    KIND_TRACE,
    IdentityConfig,
    IdentityContract,
    Reader,
)
from gridledger.identity.errors import (
    InvalidTimestamp,
    RegistrationRejected,
    check_timestamp,
)
from gridledger.identity.messages import (
    PSEUDONYM_CERT_TAG,
    CandidateCommitments,
    CandidateOpenings,
    CheatingEvidence,
    OpenRequest,
    PseudonymBatch,
    RegistrationChallenge,
    RegistrationHello,
    SignedChallenge,
    SignedCommitments,
    SignedHello,
    SignedOpenings,
    SignedOpenRequest,
    SignedPseudonymCertificate,
    TraceRecord,
)
from gridledger.identity.pseudonym_issuer import (
    process_close_batch,
    process_open_batch,
    verify_pseudonym_certificate,
)
from gridledger.ledger.contracts import BlockContext, StateView
from gridledger.ledger.errors import ContractRejection
from gridledger.ledger.state import Overlay
from gridledger.ledger.tx import Transaction

from .conftest import DAY, NOW, World, issue
from .helpers import (
    SENDER,
    Chain,
    K,
    batch_payload,
    corrupt_certificates,
    evidence_on_chain,
    issue_round,
    make_evidence,
    revoke,
)

Z = b"\0" * 32


def _evidence(world: World, ts: int) -> CheatingEvidence:
    der = compute_certificate_der(world.users[0].cert)
    hello = SignedHello(RegistrationHello(1, der, Z, ts, Z), b"x")
    ch = SignedChallenge(RegistrationChallenge(Z, Z, 1, der, der, 2, 0, Z), b"x")
    com = SignedCommitments(CandidateCommitments(Z, Z, (Z, Z), 0), b"x")
    req = SignedOpenRequest(OpenRequest(Z, Z, 0, 0), b"x")
    op = SignedOpenings(CandidateOpenings(Z, Z, (), b"", 0), b"x")
    return CheatingEvidence(hello, ch, com, req, op)


def test_batch_from_revoked_mm_rejected(world: World) -> None:
    _, batch = issue_round(world, world.new_rm(k=4), range(2), 70, "mm-rev")
    chain = Chain(world)
    revoke(world, chain, world.mm.cert)
    receipt = chain.publish(world, 70, batch)
    assert not receipt.ok and "revoked" in receipt.reason
    # Off chain, the same check with the on-chain list.
    with pytest.raises(Exception, match="revoked"):
        verify_pseudonym_certificate(
            batch[0], world.mm.cert, world.rm_blind.cert, world.roots, world.tc_key, NOW,
            revoked={compute_certificate_hash(world.mm.cert)}, revoked_pseudonyms=frozenset(),
        )  # fmt: skip
    fresh = Chain(world)
    assert fresh.publish(world, 70, batch).ok


def test_batch_from_revoked_rm_blind_key_rejected(world: World) -> None:
    _, batch = issue_round(world, world.new_rm(k=4), range(1), 71, "rm-rev")
    chain = Chain(world)
    revoke(world, chain, world.rm_blind.cert)
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


def test_empty_or_unsigned_batch_refused(world: World) -> None:
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


def test_mm_pinned_at_genesis(world: World) -> None:
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


def test_timestamps_are_typed_rejections(world: World) -> None:
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


# -- a corrupted certificate inside a transaction: a typed rejection, never a crash --------


def test_corrupted_certificates_in_transactions_are_typed_rejections(world: World) -> None:
    """Every kind that carries a certificate gets corrupted ones (bad version, negative
    serial, broken name, extension or key): the contract raises only ContractRejection,
    and the ledger records a rejection with a reason, not a "contract failed" crash."""
    chain = Chain(world)
    _, batch = issue_round(world, world.new_rm(k=2), range(1), 340, "corrupt-batch")
    payload = batch_payload(world, 340, batch)
    revoker = RoleKey(world.revoker.key, world.revoker.cert)
    revocation = create_signed_revocation(revoker, b"\x01" * 32, "test", NOW)
    cheat = _evidence(world, NOW)
    cases: list[tuple[str, object]] = []
    mm_der, op_der = compute_certificate_der(world.mm.cert), revocation.signer_certificate
    for bad in corrupt_certificates(mm_der, "c-mm", flips=20):
        cases.append((KIND_BATCH, dataclasses.replace(payload, mm_certificate=bad)))
    for bad in corrupt_certificates(op_der, "c-op", flips=20):
        cases.append((KIND_REVOKE, dataclasses.replace(revocation, signer_certificate=bad)))
    user_der = cheat.hello.hello.user_certificate
    for bad in corrupt_certificates(user_der, "c-cheat", flips=20):
        hello = dataclasses.replace(cheat.hello.hello, user_certificate=bad)
        cases.append((KIND_BLACKLIST, dataclasses.replace(cheat, hello=SignedHello(hello, b"x"))))
        challenge = dataclasses.replace(cheat.challenge.challenge, rm_certificate=bad)
        cases.append(
            (KIND_BLACKLIST, dataclasses.replace(cheat, challenge=SignedChallenge(challenge, b"x")))
        )
    contract = IdentityContract(
        IdentityConfig(world.roots, world.rm_blind.cert, world.tc_key, world.mm.cert)
    )
    view = StateView(Overlay(chain.state), "identity")
    ctx = BlockContext("test-chain", 1, NOW * 1000, 0)
    for i, (kind, body) in enumerate(cases):
        tx = Transaction.create("test-chain", kind, body, K, 1000 + i)
        with pytest.raises(ContractRejection):
            contract.process(view, tx, ctx)
    for kind, body in cases[::5]:
        receipt = chain.submit(kind, body, K)
        assert not receipt.ok and not receipt.reason.startswith("contract failed"), receipt.reason
    # A trace record naming a corrupted member certificate: typed too.
    t = evidence_on_chain(world, "corrupt-trace", 96)
    for bad in corrupt_certificates(compute_certificate_der(t.member.cert), "c-tr", flips=10):
        record = TraceRecord(t.eid, t.record_entries, bad)
        receipt = t.chain.submit(KIND_TRACE, record, SENDER)
        assert not receipt.reason.startswith("contract failed"), receipt.reason
