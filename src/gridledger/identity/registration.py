"""Registration: mutual authentication, then a fair blind signature by cut and choose.

The user (U) and the registration manager (RM) each sign every step with their
certified long-term RSA key (non-repudiation), and each step names the hash of
the previous one, so a transcript is one signed chain. ① and ② carry fresh
nonces and timestamps, checked against a bounded replay cache.

Cut and choose (K candidates, default 32). Candidate j is

    pseudonym key pk_j (fresh Ed25519),
    tag_j = (ElGamal_TC(identity, round; r_j), ElGamal(g^H(identity); s_j)),
    m_j = TAG || encode(PseudonymMessage(round, pk_j, H(tag_j))),
    B_j = RFC 9474 blind(RM blind key, prepare(m_j; prefix_j); rho_j, salt_j)

The user commits to ``H(session, j, B_j)`` for all j (③); the RM picks one index
``keep`` with its own rng (④); the user opens every other candidate (⑤) and the
RM recomputes ``B_j`` from the *authenticated* identity and the revealed values;
if all K-1 match it blind-signs ``B_keep`` (⑥). A user whose kept candidate is
bad escapes with probability exactly 1/K; a bad opened candidate raises
:class:`CheatingDetected` carrying the user's own signed messages as evidence.

One pseudonym per member per round: the member's round slots (its member id and,
for households, its meter: :func:`~gridledger.identity.ca.compute_round_slots`,
so a renewed certificate with another meter id, or another member id on the same
meter, finds the slot taken) are *consumed* as soon as the RM sends ④, whether
or not the user answers. A user who aborts after seeing ``keep`` gets nothing
this round, so aborting and retrying does not raise the escape probability above 1/K.

The household pins the RM blind key named at genesis (``rm_blind_certificate``
of :func:`start_registration`): a challenge naming any other certified
sign-pseudonyms key is refused, so a colluding RM and MM cannot single one
household out with a key of its own (signatures under it would link it).
"""

from __future__ import annotations

import enum
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from cryptography import x509

from gridledger.crypto import blind_rsa
from gridledger.crypto.blind_rsa import BlindSigner, Variant
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.errors import (
    BlindSignatureError,
    EncodingError,
    InvalidSignature,
)
from gridledger.crypto.hashing import HashTag, hash_value, tagged_message
from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    RsaPrivateKey,
    RsaPublicKey,
)
from gridledger.crypto.threshold import ThresholdPublicKey
from gridledger.errors import CryptoError
from gridledger.identity.ca import (
    HOUSEHOLD_ROLES,
    Permission,
    Role,
    compute_certificate_der,
    compute_certificate_hash,
    compute_member_key,
    compute_round_slots,
    get_attributes,
    get_rsa_key,
    load_certificate,
    verify_member,
)
from gridledger.identity.errors import (
    Blacklisted,
    CertificateRejected,
    CheatingDetected,
    ExpiredMessage,
    MessageRejected,
    RegistrationRejected,
    ReplayDetected,
    check_timestamp,
)
from gridledger.identity.freshness import ReplayCache, check_fresh, process_nonce
from gridledger.identity.messages import (
    BLIND_SIGNATURE_TAG,
    CANDIDATE_COMMITMENT_TAG,
    CHALLENGE_TAG,
    COMMITMENTS_TAG,
    CONSENT_TAG,
    HELLO_TAG,
    NONCE_SIZE,
    OPEN_REQUEST_TAG,
    OPENINGS_TAG,
    PSEUDONYM_MESSAGE_TAG,
    BlindSignatureResponse,
    CandidateCommitments,
    CandidateOpening,
    CandidateOpenings,
    CheatingEvidence,
    OpenRequest,
    PseudonymMessage,
    RegistrationChallenge,
    RegistrationHello,
    SignedBlindSignature,
    SignedChallenge,
    SignedCommitments,
    SignedHello,
    SignedOpenings,
    SignedOpenRequest,
    compute_message_hash,
)
from gridledger.identity.tags import (
    CONSENT_SIZE,
    TagVerifier,
    compute_consent_message,
    compute_handle,
    compute_handle_hash,
    compute_handle_public,
    compute_tag,
    compute_tag_exponent,
    compute_tag_hash,
    compute_tag_public,
    create_tag_verifier,
)

T = TypeVar("T")
DEFAULT_K = 32
MIN_K = 2
MAX_K = 1024
DEFAULT_VARIANT = Variant.PSS_RANDOMIZED
DEFAULT_SESSION_TIMEOUT_S = 60
MAX_OPEN_SESSIONS = 10_000


def parse_message(cls: type[T], data: bytes) -> T:
    """Decode a received message; anything malformed is :class:`MessageRejected`."""
    try:
        return decode_as(cls, data, max_size=1 << 20)
    except EncodingError as exc:
        raise MessageRejected(f"malformed {cls.__name__}: {exc.reason}") from None


def _verify_rsa(key: RsaPublicKey, tag: HashTag, body: object, signature: bytes) -> None:
    try:
        key.verify(tag, encode(body), signature)
    except (InvalidSignature, ValueError):
        raise MessageRejected(f"signature does not verify ({tag.name})") from None


def compute_pseudonym_input(round_: int, pseudonym_key: bytes, tag: bytes) -> bytes:
    """The message ``m`` (before RFC 9474 prepare) that the RM blindly signs."""
    body = PseudonymMessage(round_, pseudonym_key, compute_tag_hash(tag))
    return tagged_message(PSEUDONYM_MESSAGE_TAG, encode(body))


def compute_commitment(session_id: bytes, index: int, blinded_msg: bytes) -> bytes:
    return hash_value(CANDIDATE_COMMITMENT_TAG, [session_id, index, blinded_msg])


# -- the RM ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RmConfig:
    k: int = DEFAULT_K
    variant: Variant = DEFAULT_VARIANT
    session_timeout_s: int = DEFAULT_SESSION_TIMEOUT_S
    max_open_sessions: int = MAX_OPEN_SESSIONS

    def __post_init__(self) -> None:
        if not MIN_K <= self.k <= MAX_K:
            raise ValueError(f"K must lie in [{MIN_K}, {MAX_K}]")
        if not self.variant.is_randomized:
            raise ValueError("pseudonym signatures need a randomized RFC 9474 variant")


class Stage(enum.Enum):
    AWAIT_COMMITMENTS = "await-commitments"
    AWAIT_OPENINGS = "await-openings"
    DONE = "done"
    FAILED = "failed"


@dataclass
class RmSession:
    """One registration in progress at the RM (identified: this is the RM's record)."""

    session_id: bytes
    identity: bytes  # certificate hash (what the tag must name)
    member: bytes  # member key (the blacklist)
    slots: tuple[bytes, ...]  # round slots (member id, meter): one pseudonym per round
    round: int
    user_key: RsaPublicKey
    hello: SignedHello
    challenge: SignedChallenge
    started: int
    stage: Stage = Stage.AWAIT_COMMITMENTS
    commitments: SignedCommitments | None = None
    request: SignedOpenRequest | None = None
    openings: SignedOpenings | None = None
    blind_signature: bytes | None = None


@dataclass
class RegistrationManager:
    """The RM's keys and mutable state."""

    config: RmConfig
    key: RsaPrivateKey
    certificate: x509.Certificate
    blind_signer: BlindSigner
    blind_certificate: x509.Certificate
    roots: tuple[x509.Certificate, ...]
    tags: TagVerifier
    revoked: Container[bytes] = frozenset()  # on-chain revocation list (certificate hashes)
    blacklist: Container[bytes] = frozenset()  # on-chain blacklist (member keys)
    replay: ReplayCache = field(default_factory=ReplayCache)
    open_rounds: set[int] = field(default_factory=set)
    sessions: dict[bytes, RmSession] = field(default_factory=dict)
    slots: dict[tuple[bytes, int], bytes] = field(default_factory=dict)  # (slot, round) -> sid
    consumed: set[tuple[bytes, int]] = field(default_factory=set)  # (slot, round)
    evidence: list[CheatingEvidence] = field(default_factory=list)

    @property
    def rm_hash(self) -> bytes:
        return compute_certificate_hash(self.certificate)


def create_registration_manager(
    config: RmConfig,
    key: RsaPrivateKey,
    certificate: x509.Certificate,
    blind_key: RsaPrivateKey,
    blind_certificate: x509.Certificate,
    roots: Sequence[x509.Certificate],
    tc_key: ThresholdPublicKey,
) -> RegistrationManager:
    """Build the RM; the blind key must be the one its certificate names (never the mint's)."""
    if get_rsa_key(blind_certificate) != blind_key.public_key:
        raise CertificateRejected("blind key does not match its certificate")
    if get_rsa_key(certificate) != key.public_key:
        raise CertificateRejected("identity key does not match its certificate")
    return RegistrationManager(
        config=config,
        key=key,
        certificate=certificate,
        blind_signer=BlindSigner.from_private_key(blind_key),
        blind_certificate=blind_certificate,
        roots=tuple(roots),
        tags=create_tag_verifier(tc_key),
    )


def process_open_round(rm: RegistrationManager, round_: int) -> None:
    """Accept registrations for ``round_``."""
    rm.open_rounds.add(round_)


def process_close_round(rm: RegistrationManager, round_: int) -> None:
    """Stop accepting registrations for ``round_``; drop its unfinished sessions."""
    rm.open_rounds.discard(round_)
    for sid in [s for s, sess in rm.sessions.items() if sess.round == round_]:
        _drop_session(rm, sid)


def _drop_session(rm: RegistrationManager, session_id: bytes) -> None:
    sess = rm.sessions.pop(session_id)
    for slot_key in sess.slots:
        slot = (slot_key, sess.round)
        if rm.slots.get(slot) == session_id:
            del rm.slots[slot]


def process_expire_sessions(rm: RegistrationManager, now: int) -> None:
    """Forget sessions idle past the timeout (their slot stays consumed if ④ was sent)."""
    limit = now - rm.config.session_timeout_s
    for sid in [s for s, sess in rm.sessions.items() if sess.started < limit]:
        _drop_session(rm, sid)


def _get_session(rm: RegistrationManager, session_id: bytes, stage: Stage, now: int) -> RmSession:
    sess = rm.sessions.get(session_id)
    if sess is None:
        raise MessageRejected("unknown or closed session")
    if sess.stage is not stage:
        raise ReplayDetected(session_id, f"session is at {sess.stage.value}, not {stage.value}")
    if now - sess.started > rm.config.session_timeout_s:
        raise ExpiredMessage(sess.started, now)
    return sess


def _check_timestamp(rm: RegistrationManager, timestamp: int, now: int) -> None:
    if abs(now - timestamp) > rm.replay.window_s:
        raise ExpiredMessage(timestamp, now)


def on_hello(rm: RegistrationManager, signed: SignedHello, now: int, rng: Rng) -> SignedChallenge:
    """① → ②: authenticate the user, open a session, answer with the signed challenge."""
    hello = signed.hello
    if hello.rm != rm.rm_hash:
        raise MessageRejected("hello is addressed to another RM")
    if len(hello.nonce) != NONCE_SIZE:
        raise MessageRejected("nonce has the wrong size")
    check_fresh(rm.replay, hello.timestamp, hello.nonce, now)
    if hello.round not in rm.open_rounds:
        raise RegistrationRejected(f"round {hello.round} is not open for registration")
    cert = load_certificate(hello.user_certificate)
    attrs = verify_member(
        cert, rm.roots, now, HOUSEHOLD_ROLES, Permission.TRADE, revoked=rm.revoked
    )
    user_key = get_rsa_key(cert)
    if user_key.modulus_bytes != CONSENT_SIZE:
        raise MessageRejected("household keys must be RSA-2048")
    _verify_rsa(user_key, HELLO_TAG, hello, signed.signature)
    identity = compute_certificate_hash(cert)
    member = compute_member_key(attrs)
    if member in rm.blacklist or identity in rm.blacklist:
        raise Blacklisted(member)
    slots = compute_round_slots(attrs)
    if any((slot_key, hello.round) in rm.consumed for slot_key in slots):
        raise RegistrationRejected("this member already used its registration for the round")
    active = {rm.slots[(k, hello.round)] for k in slots if (k, hello.round) in rm.slots}
    for sid in active:
        if now - rm.sessions[sid].started <= rm.config.session_timeout_s:
            raise RegistrationRejected("a registration for this member and round is in progress")
    if not active and len(rm.sessions) >= rm.config.max_open_sessions:
        raise RegistrationRejected("too many registrations in progress")
    # All checks passed: write.
    process_nonce(rm.replay, hello.timestamp, hello.nonce, now)
    for sid in sorted(active):
        _drop_session(rm, sid)
    session_id = rng.random_bytes(32)
    challenge = RegistrationChallenge(
        session_id=session_id,
        hello_hash=compute_message_hash(signed),
        round=hello.round,
        rm_certificate=compute_certificate_der(rm.certificate),
        blind_key_certificate=compute_certificate_der(rm.blind_certificate),
        k=rm.config.k,
        timestamp=now,
        nonce=rng.random_bytes(NONCE_SIZE),
    )
    signed_challenge = SignedChallenge(challenge, rm.key.sign(CHALLENGE_TAG, encode(challenge)))
    rm.sessions[session_id] = RmSession(
        session_id, identity, member, slots, hello.round, user_key, signed, signed_challenge, now
    )
    for slot_key in slots:
        rm.slots[(slot_key, hello.round)] = session_id
    return signed_challenge


def on_commitments(
    rm: RegistrationManager, signed: SignedCommitments, now: int, rng: Rng
) -> SignedOpenRequest:
    """③ → ④: record the K commitments, pick the candidate that stays closed."""
    msg = signed.commitments
    sess = _get_session(rm, msg.session_id, Stage.AWAIT_COMMITMENTS, now)
    _check_timestamp(rm, msg.timestamp, now)
    if msg.challenge_hash != compute_message_hash(sess.challenge):
        raise MessageRejected("commitments do not answer this session's challenge")
    if len(msg.commitments) != rm.config.k or any(len(c) != 32 for c in msg.commitments):
        raise MessageRejected(f"expected {rm.config.k} commitments of 32 bytes")
    _verify_rsa(sess.user_key, COMMITMENTS_TAG, msg, signed.signature)
    request = OpenRequest(
        session_id=sess.session_id,
        commitments_hash=compute_message_hash(signed),
        keep=rng.randbelow(rm.config.k),
        timestamp=now,
    )
    signed_request = SignedOpenRequest(request, rm.key.sign(OPEN_REQUEST_TAG, encode(request)))
    sess.commitments = signed
    sess.request = signed_request
    sess.stage = Stage.AWAIT_OPENINGS
    rm.consumed.update((slot_key, sess.round) for slot_key in sess.slots)
    return signed_request


def compute_opened_blinded_msg(
    tags: TagVerifier,
    blind_key: RsaPublicKey,
    variant: Variant,
    identity: bytes,
    user_key: RsaPublicKey,
    round_: int,
    opening: CandidateOpening,
    *,
    fast: bool = True,
) -> bytes:
    """Recompute ``B_j`` from the identity and an opening (raises on malformed values).

    The consent sealed in the tag must be the user's own signature (``user_key``)
    on ``(round, pk_j, H(handle_j))``: raises :class:`InvalidSignature` otherwise.
    """
    Ed25519PublicKey(opening.pseudonym_key).check_point()
    r = int.from_bytes(opening.tag_randomness, "big")
    s = int.from_bytes(opening.handle_randomness, "big")
    size = tags.pk.group.scalar_size
    if len(opening.tag_randomness) != size or len(opening.handle_randomness) != size:
        raise EncodingError("tag exponent has the wrong length")
    if len(opening.consent) != CONSENT_SIZE:
        raise EncodingError("consent signature has the wrong length")
    grp = tags.pk.group
    handle = (
        compute_handle_public(tags, identity, s) if fast else compute_handle(tags.pk, identity, s)
    )
    consent_msg = compute_consent_message(
        round_, opening.pseudonym_key, compute_handle_hash(grp, *handle)
    )
    user_key.verify(CONSENT_TAG, consent_msg, opening.consent)
    if fast:
        tag = compute_tag_public(
            tags, identity, round_, r, opening.tag_nonce, handle, opening.consent
        )
    else:
        tag = compute_tag(tags.pk, identity, round_, r, opening.tag_nonce, handle, opening.consent)
    msg = compute_pseudonym_input(round_, opening.pseudonym_key, tag)
    input_msg = blind_rsa.prepare_with(variant, msg, opening.msg_prefix)
    if len(opening.blinding_factor) != blind_key.modulus_bytes:
        raise EncodingError("blinding factor has the wrong length")
    rho = int.from_bytes(opening.blinding_factor, "big")
    return blind_rsa.compute_blinded_msg(blind_key, variant, input_msg, rho, opening.salt)


def compute_failed_opening(
    tags: TagVerifier,
    blind_key: RsaPublicKey,
    variant: Variant,
    identity: bytes,
    user_key: RsaPublicKey,
    round_: int,
    commitments: CandidateCommitments,
    openings: CandidateOpenings,
    *,
    fast: bool = True,
) -> tuple[int, str] | None:
    """The first opening that does not reproduce its commitment, or ``None`` if all do."""
    for opening in openings.openings:
        try:
            blinded = compute_opened_blinded_msg(
                tags, blind_key, variant, identity, user_key, round_, opening, fast=fast
            )
        except InvalidSignature:
            return opening.index, "consent signature does not verify"
        except (CryptoError, ValueError) as exc:
            return opening.index, f"opening is malformed ({exc})"
        expected = commitments.commitments[opening.index]
        if compute_commitment(commitments.session_id, opening.index, blinded) != expected:
            return opening.index, "opening does not match its commitment"
    return None


def _check_openings_shape(rm: RegistrationManager, sess: RmSession, msg: CandidateOpenings) -> None:
    assert sess.request is not None and sess.commitments is not None
    keep = sess.request.request.keep
    if msg.request_hash != compute_message_hash(sess.request):
        raise MessageRejected("openings do not answer this session's request")
    expected = [j for j in range(rm.config.k) if j != keep]
    if [o.index for o in msg.openings] != expected:
        raise MessageRejected("openings must cover every index but the kept one, in order")
    kept = msg.kept_blinded_msg
    if len(kept) != rm.blind_signer.public_key.modulus_bytes:
        raise MessageRejected("kept blinded message has the wrong length")
    want = sess.commitments.commitments.commitments[keep]
    if compute_commitment(sess.session_id, keep, kept) != want:
        raise MessageRejected("kept blinded message does not match its commitment")


def on_openings(rm: RegistrationManager, signed: SignedOpenings, now: int) -> SignedBlindSignature:
    """⑤ → ⑥: check every opening against the authenticated identity; sign the kept one.

    A failed opening (under a valid user signature) closes the session, keeps the
    evidence in ``rm.evidence`` and raises :class:`CheatingDetected`.
    """
    msg = signed.openings
    sess = _get_session(rm, msg.session_id, Stage.AWAIT_OPENINGS, now)
    _check_timestamp(rm, msg.timestamp, now)
    _check_openings_shape(rm, sess, msg)
    _verify_rsa(sess.user_key, OPENINGS_TAG, msg, signed.signature)
    assert sess.commitments is not None and sess.request is not None
    failure = compute_failed_opening(
        rm.tags,
        rm.blind_signer.public_key,
        rm.config.variant,
        sess.identity,
        sess.user_key,
        sess.round,
        sess.commitments.commitments,
        msg,
    )
    sess.openings = signed
    if failure is not None:
        evidence = CheatingEvidence(
            sess.hello, sess.challenge, sess.commitments, sess.request, signed
        )
        sess.stage = Stage.FAILED
        rm.evidence.append(evidence)
        raise CheatingDetected(evidence, failure[0], failure[1])
    try:
        blind_sig = blind_rsa.blind_sign(rm.blind_signer, msg.kept_blinded_msg)
    except BlindSignatureError as exc:
        raise MessageRejected(f"kept blinded message refused: {exc.reason}") from None
    response = BlindSignatureResponse(
        session_id=sess.session_id,
        openings_hash=compute_message_hash(signed),
        blind_signature=blind_sig,
        timestamp=now,
    )
    sess.blind_signature = blind_sig
    sess.stage = Stage.DONE
    return SignedBlindSignature(response, rm.key.sign(BLIND_SIGNATURE_TAG, encode(response)))


def verify_cheating_evidence(
    evidence: CheatingEvidence, roots: Sequence[x509.Certificate], tc_key: ThresholdPublicKey
) -> bytes:
    """Re-run a failed cut-and-choose from its signed transcript; return the cheater's identity.

    Anyone can run it (a replica, an auditor): every message carries its
    signer's certificate or is signed by a key named in one. Raises
    :class:`MessageRejected` / :class:`CertificateRejected` if the transcript
    is not a consistent, signed one or if every opening is in fact correct.
    """
    hello, challenge = evidence.hello.hello, evidence.challenge.challenge
    when = check_timestamp("hello timestamp", hello.timestamp)
    user_cert = load_certificate(hello.user_certificate)
    verify_member(user_cert, roots, when, HOUSEHOLD_ROLES)
    user_key = get_rsa_key(user_cert)
    rm_cert = load_certificate(challenge.rm_certificate)
    verify_member(rm_cert, roots, when, Role.RM)
    blind_cert = load_certificate(challenge.blind_key_certificate)
    verify_member(blind_cert, roots, when, Role.RM, Permission.SIGN_PSEUDONYMS)
    rm_key = get_rsa_key(rm_cert)
    commitments, request = evidence.commitments.commitments, evidence.request.request
    openings = evidence.openings.openings
    _verify_rsa(user_key, HELLO_TAG, hello, evidence.hello.signature)
    _verify_rsa(rm_key, CHALLENGE_TAG, challenge, evidence.challenge.signature)
    _verify_rsa(user_key, COMMITMENTS_TAG, commitments, evidence.commitments.signature)
    _verify_rsa(rm_key, OPEN_REQUEST_TAG, request, evidence.request.signature)
    _verify_rsa(user_key, OPENINGS_TAG, openings, evidence.openings.signature)
    linked = (
        challenge.hello_hash == compute_message_hash(evidence.hello)
        and commitments.challenge_hash == compute_message_hash(evidence.challenge)
        and request.commitments_hash == compute_message_hash(evidence.commitments)
        and openings.request_hash == compute_message_hash(evidence.request)
        and commitments.session_id == challenge.session_id == request.session_id
        and openings.session_id == challenge.session_id
        and hello.rm == compute_certificate_hash(rm_cert)
        and len(commitments.commitments) == challenge.k
        and all(0 <= o.index < challenge.k and o.index != request.keep for o in openings.openings)
    )
    if not linked:
        raise MessageRejected("evidence transcript is not one linked session")
    failure = compute_failed_opening(
        create_tag_verifier(tc_key),
        get_rsa_key(blind_cert),
        DEFAULT_VARIANT,
        compute_certificate_hash(user_cert),
        user_key,
        hello.round,
        commitments,
        openings,
    )
    if failure is None:
        raise MessageRejected("every opening in the evidence is correct")
    return compute_certificate_hash(user_cert)


def get_evidence_member(evidence: CheatingEvidence) -> bytes:
    """The member key of the user in (verified) cheating evidence: what gets blacklisted."""
    return compute_member_key(
        get_attributes(load_certificate(evidence.hello.hello.user_certificate))
    )


# -- the user --------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One cut-and-choose candidate with its secrets (user side only)."""

    index: int
    pseudonym: Ed25519PrivateKey
    tag: bytes
    tag_r: int
    tag_nonce: bytes
    input_msg: bytes
    msg_prefix: bytes
    blind_r: int
    salt: bytes
    blinded_msg: bytes
    inv: bytes
    handle_r: int
    consent: bytes

    def opening(self, scalar_size: int, modulus_bytes: int) -> CandidateOpening:
        return CandidateOpening(
            index=self.index,
            pseudonym_key=self.pseudonym.public_key.raw,
            tag_randomness=self.tag_r.to_bytes(scalar_size, "big"),
            tag_nonce=self.tag_nonce,
            msg_prefix=self.msg_prefix,
            blinding_factor=self.blind_r.to_bytes(modulus_bytes, "big"),
            salt=self.salt,
            handle_randomness=self.handle_r.to_bytes(scalar_size, "big"),
            consent=self.consent,
        )


@dataclass(frozen=True)
class PseudonymCredential:
    """What the user walks away with: a pseudonym key and the RM's signature binding it."""

    round: int
    pseudonym: Ed25519PrivateKey
    tag: bytes
    msg_prefix: bytes
    rm_signature: bytes


@dataclass
class UserRegistration:
    """The user's side of one registration."""

    key: RsaPrivateKey
    certificate: x509.Certificate
    roots: tuple[x509.Certificate, ...]
    tc_key: ThresholdPublicKey
    round: int
    rm_certificate: x509.Certificate
    rm_blind_certificate: x509.Certificate  # pinned at genesis: the only key accepted
    variant: Variant = DEFAULT_VARIANT
    hello: SignedHello | None = None
    challenge: SignedChallenge | None = None
    blind_key: RsaPublicKey | None = None
    candidates: list[Candidate] = field(default_factory=list)
    commitments: SignedCommitments | None = None
    request: SignedOpenRequest | None = None
    openings: SignedOpenings | None = None

    @property
    def identity(self) -> bytes:
        return compute_certificate_hash(self.certificate)


def start_registration(
    key: RsaPrivateKey,
    certificate: x509.Certificate,
    roots: Sequence[x509.Certificate],
    tc_key: ThresholdPublicKey,
    rm_certificate: x509.Certificate,
    round_: int,
    now: int,
    rng: Rng,
    *,
    rm_blind_certificate: x509.Certificate,
) -> tuple[UserRegistration, SignedHello]:
    """① Build the signed hello.

    ``rm_blind_certificate`` is the RM blind-key certificate named at genesis
    (:func:`gridledger.identity.genesis.get_pinned_rm_blind_certificate`): the
    household accepts a challenge only if it names exactly this key.
    """
    verify_member(rm_certificate, roots, now, Role.RM)
    hello = RegistrationHello(
        round=round_,
        user_certificate=compute_certificate_der(certificate),
        rm=compute_certificate_hash(rm_certificate),
        timestamp=now,
        nonce=rng.random_bytes(NONCE_SIZE),
    )
    signed = SignedHello(hello, key.sign(HELLO_TAG, encode(hello)))
    state = UserRegistration(
        key, certificate, tuple(roots), tc_key, round_, rm_certificate, rm_blind_certificate
    )
    state.hello = signed
    return state, signed


def check_challenge(state: UserRegistration, signed: SignedChallenge, now: int) -> RsaPublicKey:
    """Authenticate the RM (②) and return the pinned blind-signing key it names."""
    assert state.hello is not None
    ch = signed.challenge
    if ch.hello_hash != compute_message_hash(state.hello) or ch.round != state.round:
        raise MessageRejected("challenge does not answer our hello")
    if abs(now - ch.timestamp) > ReplayCache().window_s:
        raise ExpiredMessage(ch.timestamp, now)
    if not MIN_K <= ch.k <= MAX_K:
        raise MessageRejected("K out of range")
    rm_cert = load_certificate(ch.rm_certificate)
    if rm_cert != state.rm_certificate:
        raise MessageRejected("challenge signed by another RM certificate")
    rm_attrs = verify_member(rm_cert, state.roots, now, Role.RM)
    blind_cert = load_certificate(ch.blind_key_certificate)
    attrs = verify_member(blind_cert, state.roots, now, Role.RM, Permission.SIGN_PSEUDONYMS)
    if attrs.member_id != rm_attrs.member_id:
        raise MessageRejected("blind key belongs to another member")
    if ch.blind_key_certificate != compute_certificate_der(state.rm_blind_certificate):
        raise MessageRejected("blind key is not the one pinned at genesis")
    _verify_rsa(get_rsa_key(rm_cert), CHALLENGE_TAG, ch, signed.signature)
    return get_rsa_key(blind_cert)


def create_candidate(
    state: UserRegistration,
    blind_key: RsaPublicKey,
    index: int,
    rng: Rng,
    identity: bytes | None = None,
) -> Candidate:
    """A fresh candidate; ``identity`` defaults to ours (tests pass another to cheat).

    The consent sealed in the tag is always signed with *our* key: nobody can sign
    for someone else, which is what makes a tag naming another identity unaccountable.
    """
    pseudonym = Ed25519PrivateKey.generate(rng)
    group = state.tc_key.group
    tag_r = compute_tag_exponent(group, rng)
    tag_nonce = rng.random_bytes(12)
    handle_r = compute_tag_exponent(group, rng)
    who = state.identity if identity is None else identity
    handle = compute_handle(state.tc_key, who, handle_r)
    consent = state.key.sign(
        CONSENT_TAG,
        compute_consent_message(
            state.round, pseudonym.public_key.raw, compute_handle_hash(group, *handle)
        ),
    )
    tag = compute_tag(state.tc_key, who, state.round, tag_r, tag_nonce, handle, consent)
    msg = compute_pseudonym_input(state.round, pseudonym.public_key.raw, tag)
    prefix = rng.random_bytes(blind_rsa.MSG_PREFIX_SIZE)
    input_msg = blind_rsa.prepare_with(state.variant, msg, prefix)
    salt = rng.random_bytes(state.variant.salt_length)
    while True:
        blind_r = rng.randbelow(blind_key.n - 1) + 1
        try:
            result = blind_rsa.blind_with(blind_key, state.variant, input_msg, blind_r, salt)
            break
        except BlindSignatureError:  # r not a unit: probability ~2^-1000
            continue
    return Candidate(
        index, pseudonym, tag, tag_r, tag_nonce, input_msg, prefix, blind_r, salt,
        result.blinded_msg, result.inv, handle_r, consent,
    )  # fmt: skip


def sign_commitments(state: UserRegistration, now: int) -> SignedCommitments:
    """③ Commit to the candidates in ``state.candidates``."""
    assert state.challenge is not None
    ch = state.challenge.challenge
    msg = CandidateCommitments(
        session_id=ch.session_id,
        challenge_hash=compute_message_hash(state.challenge),
        commitments=tuple(
            compute_commitment(ch.session_id, c.index, c.blinded_msg) for c in state.candidates
        ),
        timestamp=now,
    )
    state.commitments = SignedCommitments(msg, state.key.sign(COMMITMENTS_TAG, encode(msg)))
    return state.commitments


def on_challenge(
    state: UserRegistration, signed: SignedChallenge, now: int, rng: Rng
) -> SignedCommitments:
    """② → ③: authenticate the RM, prepare K candidates, commit to them."""
    blind_key = check_challenge(state, signed, now)
    state.challenge = signed
    state.blind_key = blind_key
    state.candidates = [
        create_candidate(state, blind_key, j, rng) for j in range(signed.challenge.k)
    ]
    return sign_commitments(state, now)


def on_open_request(state: UserRegistration, signed: SignedOpenRequest, now: int) -> SignedOpenings:
    """④ → ⑤: open every candidate but the kept one."""
    assert state.challenge is not None and state.commitments is not None
    assert state.blind_key is not None
    req = signed.request
    if req.commitments_hash != compute_message_hash(state.commitments):
        raise MessageRejected("request does not answer our commitments")
    if not 0 <= req.keep < len(state.candidates):
        raise MessageRejected("kept index out of range")
    rm_key = get_rsa_key(state.rm_certificate)
    _verify_rsa(rm_key, OPEN_REQUEST_TAG, req, signed.signature)
    scalar_size = state.tc_key.group.scalar_size
    k = state.blind_key.modulus_bytes
    msg = CandidateOpenings(
        session_id=req.session_id,
        request_hash=compute_message_hash(signed),
        openings=tuple(c.opening(scalar_size, k) for c in state.candidates if c.index != req.keep),
        kept_blinded_msg=state.candidates[req.keep].blinded_msg,
        timestamp=now,
    )
    state.request = signed
    state.openings = SignedOpenings(msg, state.key.sign(OPENINGS_TAG, encode(msg)))
    return state.openings


def on_blind_signature(
    state: UserRegistration, signed: SignedBlindSignature, now: int
) -> PseudonymCredential:
    """⑥: check the RM's response, unblind, and keep the credential."""
    assert state.openings is not None and state.request is not None
    assert state.blind_key is not None
    resp = signed.response
    if resp.openings_hash != compute_message_hash(state.openings):
        raise MessageRejected("response does not answer our openings")
    _verify_rsa(get_rsa_key(state.rm_certificate), BLIND_SIGNATURE_TAG, resp, signed.signature)
    kept = state.candidates[state.request.request.keep]
    try:
        sig = blind_rsa.finalize(
            state.blind_key, state.variant, kept.input_msg, resp.blind_signature, kept.inv
        )
    except (BlindSignatureError, InvalidSignature) as exc:
        raise MessageRejected(f"blind signature does not finalize: {exc.reason}") from None
    return PseudonymCredential(state.round, kept.pseudonym, kept.tag, kept.msg_prefix, sig)
