"""Test helpers: a cheating user, and a ledger to run the identity contract on."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from gridledger.crypto import blind_rsa
from gridledger.crypto.encoding import encode
from gridledger.crypto.rng import DeterministicRng, Rng
from gridledger.crypto.signatures import Ed25519PrivateKey, RsaPublicKey
from gridledger.identity.ca import (
    compute_certificate_der,
    compute_certificate_hash,
)
from gridledger.identity.contracts import (
    KIND_BATCH,
    KIND_EVIDENCE,
    KIND_REVOKE,
    KIND_TRACE,
    IdentityConfig,
    IdentityContract,
    Reader,
)
from gridledger.identity.genesis import compute_identity_genesis_state
from gridledger.identity.messages import (
    BATCH_TAG,
    REVOCATION_TAG,
    Obligation,
    ObligationEvidence,
    PseudonymBatch,
    Revocation,
    SignedCommitments,
    SignedPseudonymCertificate,
    SignedRevocation,
    SignedTraceShare,
    TraceRecord,
    TracingTag,
)
from gridledger.identity.obligations import create_signed_obligation
from gridledger.identity.pseudonym_issuer import (
    compute_batch_statement,
    compute_pseudonym_request,
    on_pseudonym_request,
    process_close_batch,
    process_open_batch,
)
from gridledger.identity.registration import (
    Candidate,
    PseudonymCredential,
    RegistrationManager,
    UserRegistration,
    check_challenge,
    compute_pseudonym_input,
    create_candidate,
    on_hello,
    sign_commitments,
)
from gridledger.identity.tags import compute_handle, compute_handle_plaintext, decode_tag
from gridledger.identity.trace_center import (
    TraceRequestRead,
    compute_evidence_id,
    compute_trace,
    on_trace_request,
)
from gridledger.ledger.contracts import BlockContext, ContractRegistry
from gridledger.ledger.execution import Receipt, apply_block
from gridledger.ledger.state import WorldState, compute_state_key
from gridledger.ledger.tx import Transaction

from .conftest import NOW, Member, World, register, start


def create_handle_cheat(
    st: UserRegistration, blind_key: RsaPublicKey, index: int, rng: Rng, other: bytes
) -> Candidate:
    """A candidate whose ciphertext is honest but whose revocation handle names ``other``."""
    c = create_candidate(st, blind_key, index, rng)
    pk, grp = st.tc_key, st.tc_key.group
    ct = decode_tag(pk, c.tag).ciphertext
    ha = grp.exp_g(c.handle_r)
    hb = grp.mul(compute_handle_plaintext(grp, other), grp.exp(pk.y, c.handle_r))
    assert (ha, hb) != compute_handle(pk, st.identity, c.handle_r)
    tag = encode(TracingTag(ct.to_bytes(grp), grp.element_to_bytes(ha), grp.element_to_bytes(hb)))
    msg = compute_pseudonym_input(st.round, c.pseudonym.public_key.raw, tag)
    input_msg = blind_rsa.prepare_with(st.variant, msg, c.msg_prefix)
    blinded = blind_rsa.blind_with(blind_key, st.variant, input_msg, c.blind_r, c.salt)
    return dataclasses.replace(
        c, tag=tag, input_msg=input_msg, blinded_msg=blinded.blinded_msg, inv=blinded.inv
    )


def issue_round(
    world: World,
    rm: RegistrationManager,
    users: range,
    round_: int,
    seed: str,
    valid: tuple[int, int] = (NOW, NOW + 3600),
) -> tuple[list[PseudonymCredential], tuple[SignedPseudonymCertificate, ...]]:
    """Register ``users`` for ``round_`` with ``rm``, certify them in one MM batch."""
    rng = DeterministicRng(seed)
    mm = world.new_mm()
    creds = [register(world, rm, world.users[i], round_, rng) for i in users]
    process_open_batch(mm, round_)
    for c in creds:
        on_pseudonym_request(mm, compute_pseudonym_request(c, world.mm.cert))
    return creds, process_close_batch(mm, valid[0], valid[1], rng).certificates


def batch_payload(
    world: World, round_: int, batch: tuple[SignedPseudonymCertificate, ...]
) -> PseudonymBatch:
    """The MM's signed batch over ``batch`` (in this order)."""
    statement = compute_batch_statement(round_, batch)
    return PseudonymBatch(
        round_,
        compute_certificate_der(world.mm.cert),
        batch,
        world.mm.key.sign(BATCH_TAG, encode(statement)),
    )


def cheat_commitments(
    world: World,
    rm: RegistrationManager,
    user: Member,
    round_: int,
    bad: int,
    rng: Rng,
    *,
    handle_only: bool = False,
) -> tuple[UserRegistration, SignedCommitments]:
    """Candidate ``bad`` carries a tag naming another identity; all others are honest.

    ``handle_only``: only the revocation handle names the other identity.
    """
    st, hello = start(world, user, rng, round_)
    ch = on_hello(rm, hello, NOW, rng)
    blind_key = check_challenge(st, ch, NOW)
    st.challenge, st.blind_key = ch, blind_key
    other = b"\x42" * 32
    st.candidates = [
        (
            create_handle_cheat(st, blind_key, j, rng, other)
            if j == bad and handle_only
            else create_candidate(st, blind_key, j, rng, identity=other if j == bad else None)
        )
        for j in range(ch.challenge.k)
    ]
    return st, sign_commitments(st, NOW)


class Chain:
    """One replica's state with the identity contract; blocks applied one transaction each."""

    def __init__(self, world: World, *, pin_mm: bool = True) -> None:
        # the genesis's identity section, as a real chain has it (other contracts read it)
        self.state = WorldState(
            compute_identity_genesis_state(
                world.roots, world.rm_blind.cert, world.tc_key, world.mm.cert
            ).items()
        )
        mm = world.mm.cert if pin_mm else None
        config = IdentityConfig(world.roots, world.rm_blind.cert, world.tc_key, mm)
        self.registry = ContractRegistry((IdentityContract(config),))
        self.height = 0
        self.nonce = 0

    def get(self, key: bytes) -> bytes | None:
        return self.state.get(compute_state_key("identity", key))

    def publish(
        self, world: World, round_: int, batch: tuple[SignedPseudonymCertificate, ...]
    ) -> Receipt:
        signer = Ed25519PrivateKey.generate(DeterministicRng(f"publisher-{round_}"))
        return self.submit(KIND_BATCH, batch_payload(world, round_, batch), signer)

    def submit(
        self, kind: str, payload: object, signer: Ed25519PrivateKey, now: int = NOW
    ) -> Receipt:
        self.height += 1
        self.nonce += 1
        tx = Transaction.create("test-chain", kind, payload, signer, self.nonce)
        ctx = BlockContext("test-chain", self.height, now * 1000, 0)
        return apply_block(self.state, self.registry, [tx], ctx).receipts[0]


def make_evidence(
    accused: PseudonymCredential,
    accuser: PseudonymCredential,
    round_: int,
    *,
    obligation_id: bytes = b"trade-1",
    deadline: int = NOW - 10,
    description: str = "no energy delivered",
) -> ObligationEvidence:
    """Evidence on an obligation both pseudonyms signed (accused = debtor)."""
    ob = Obligation(
        round_,
        accused.pseudonym.public_key.raw,
        accuser.pseudonym.public_key.raw,
        obligation_id,
        "1500 Wh",
        deadline,
    )
    return ObligationEvidence(
        create_signed_obligation(ob, accused.pseudonym, accuser.pseudonym), description
    )


def trace_read(chain: Chain, evidence_id: bytes) -> TraceRequestRead:
    """What a trustee reads from the chain before answering (here: one replica's state)."""
    return Reader(chain.get).trace_request(
        evidence_id, lambda namespace, key: chain.state.get(compute_state_key(namespace, key))
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


def evidence_on_chain(world: World, seed: str, round_: int) -> Traced:
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


def submit_trace(t: Traced, entries: Sequence[bytes]) -> Receipt:
    der = compute_certificate_der(t.member.cert)
    return t.chain.submit(KIND_TRACE, TraceRecord(t.eid, tuple(entries), der), SENDER)


def revoke(world: World, chain: Chain, cert: x509.Certificate) -> None:
    rev = Revocation(compute_certificate_hash(cert), "compromise", NOW)
    signed = SignedRevocation(
        rev,
        compute_certificate_der(world.revoker.cert),
        world.revoker.key.sign(REVOCATION_TAG, encode(rev)),
    )
    assert chain.submit(KIND_REVOKE, signed, SENDER).ok


K = Ed25519PrivateKey.generate(DeterministicRng("review-attacks"))


def corrupt_certificates(der: bytes, seed: str, flips: int = 80) -> list[bytes]:
    """Hostile variants of a DER certificate, each hitting a different parser error:
    version 6 (``InvalidVersion``), a negative serial (a deprecation *warning* in the
    parser), truncations, and seeded byte flips (names, extensions, the key, the
    signature algorithm: ``ValueError`` or ``UnsupportedAlgorithm`` on first use)."""
    assert der[8:13] == b"\xa0\x03\x02\x01\x02" and der[13:15] == b"\x02\x14"
    out = [der[:12] + b"\x05" + der[13:], der[:15] + b"\x80" + der[16:]]
    out += [der[:n] for n in (0, 1, 4, 40, len(der) // 2, len(der) - 1)]
    rng = DeterministicRng(seed)
    for _ in range(flips):
        b = bytearray(der)
        for at in {rng.randbelow(len(b)) for _ in range(1 + rng.randbelow(3))}:
            b[at] = (b[at] + 1 + rng.randbelow(255)) % 256  # always a different byte
        out.append(bytes(b))
    return out
