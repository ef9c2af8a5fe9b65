"""The trace center (TC): t-of-n trustees who can open a reneger's tag, and nothing else.

Key setup (no dealer, preferred): the trustees run the joint-Feldman DKG of
:mod:`gridledger.crypto.sharing`; :func:`run_dkg` drives its message flow
in-process (the simulator's and the tests' path; deployed trustees exchange the
same messages over authenticated channels). A trusted dealer
(:func:`deal_trustee_keys`) is also supported, as in seed 000.

Tracing, triggered by evidence recorded on chain:

1. each trustee re-checks, against its f+1-agreed chain read, everything the
   contract checked when it recorded the evidence (an obligation signed by both
   pseudonyms of one round, accused and accuser certified, the dispute window;
   :func:`gridledger.identity.obligations.verify_obligation_evidence`), then
   returns a signed :class:`SignedTraceShare` (``c1^{x_i}`` with a
   Chaum-Pedersen proof) - :func:`on_trace_request`;
2. a combiner (anyone) verifies the shares, names any authenticated share whose
   proof fails (messages that fail authentication are reported apart, never
   as a trustee index), decrypts with ``t`` valid ones (:func:`compute_trace`)
   and posts a :class:`TraceRecord` with the X.509 certificate the tag names;
   every replica re-verifies it: the consent inside the tag must verify under
   that certificate (:func:`compute_accountable_member`), then the member is
   blacklisted (:mod:`gridledger.identity.contracts`); otherwise the trace is
   *unaccountable*: the pseudonym is revoked and nobody is blamed.

Seed 000's literal audit path - rebuild ``d_TC`` from ``t`` key shares by
Lagrange and decrypt - is :func:`trace_by_key_reconstruction`. It leaves the
whole key with whoever ran it, so it is for audits, not routine tracing.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Sequence
from dataclasses import dataclass

from cryptography import x509

from gridledger.crypto import sharing, threshold
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.errors import (
    DecryptionError,
    EncodingError,
    InvalidShare,
    InvalidSignature,
    SharingError,
)
from gridledger.crypto.groups import PrimeOrderGroup
from gridledger.crypto.hashing import hash_value
from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import RsaPrivateKey, RsaPublicKey
from gridledger.crypto.threshold import (
    DecryptionShare,
    KeyShare,
    ThresholdCiphertext,
    ThresholdPublicKey,
)
from gridledger.identity.ca import (
    HOUSEHOLD_ROLES,
    MemberAttributes,
    Permission,
    Role,
    compute_certificate_der,
    compute_certificate_hash,
    compute_member_key,
    get_rsa_key,
    load_certificate,
    verify_member,
)
from gridledger.identity.errors import (
    CertificateRejected,
    EvidenceRejected,
    InvalidTimestamp,
    TracingError,
    UnaccountableTrace,
    WrongRole,
)
from gridledger.identity.messages import (
    CONSENT_TAG,
    EVIDENCE_TAG,
    MAX_SOURCE_EVIDENCE_ID,
    TRACE_SHARE_TAG,
    ContractDefault,
    ContractEvidence,
    ContractEvidenceRecord,
    EvidenceRecord,
    ObligationEvidence,
    PseudonymCertificate,
    SignedPseudonymCertificate,
    SignedTraceShare,
    TagPlaintext,
    TraceResult,
    TraceShare,
)
from gridledger.identity.messages import (  # re-exported beside compute_evidence_id
    compute_contract_evidence_id as compute_contract_evidence_id,
)
from gridledger.identity.obligations import (
    DEFAULT_DISPUTE_WINDOW_S,
    MAX_DESCRIPTION,
    verify_obligation_evidence,
)
from gridledger.identity.tags import (
    compute_consent_message,
    compute_handle_hash,
    compute_tag_aad,
    decode_tag,
)

TRUSTEE_MEMBER_PREFIX = "tc-"


def compute_evidence_id(evidence: ObligationEvidence) -> bytes:
    return hash_value(EVIDENCE_TAG, evidence)


def check_evidence_source(evidence: ContractEvidence, sources: Collection[str]) -> None:
    """Refuse contract evidence from a namespace the identity genesis does not name.

    Only a source's own contract logic may write its ``default/`` keys; a namespace
    anyone can write (the KV contract's) must never be a source. Raises
    :class:`EvidenceRejected`.
    """
    if evidence.namespace not in sources:
        raise EvidenceRejected(
            f"namespace {evidence.namespace!r} is not an evidence source named at genesis"
        )
    if not 0 < len(evidence.evidence_id) <= MAX_SOURCE_EVIDENCE_ID:
        raise EvidenceRejected(f"source evidence id must be 1..{MAX_SOURCE_EVIDENCE_ID} bytes")


def verify_contract_evidence(
    evidence: ContractEvidence,
    default: ContractDefault | None,
    accused: SignedPseudonymCertificate | None,
    at_ms: int,
    dispute_window_s: int,
) -> None:
    """Check contract evidence at block time ``at_ms`` (the recording block's).

    ``default``: what the source namespace holds at ``default/<evidence id>``
    (``None``: nothing); ``accused``: the on-chain pseudonym certificate of
    ``default.accused``. Checks: the record exists and is stored under its own id;
    the accused is a published pseudonym certified for the record's round; the
    record was found after its deadline; ``found <= at <= found + dispute window``.
    The namespace (:func:`check_evidence_source`), revocation and "recorded once"
    are the caller's. Raises :class:`EvidenceRejected`.
    """
    if default is None:
        raise EvidenceRejected(f"no default record in namespace {evidence.namespace!r}")
    if default.evidence_id != evidence.evidence_id:
        raise EvidenceRejected("the default record is stored under another evidence id")
    if len(default.description) > MAX_DESCRIPTION:
        raise EvidenceRejected("default description too long")
    if accused is None or accused.certificate.pseudonym_key != default.accused:
        raise EvidenceRejected("the accused pseudonym has no published certificate")
    if accused.certificate.round != default.round:
        raise EvidenceRejected(f"the accused pseudonym is not certified for round {default.round}")
    if not 0 < dispute_window_s < (1 << 32):
        raise EvidenceRejected("dispute window out of range")
    if default.found_ms <= default.deadline_ms:
        raise EvidenceRejected("the default was found before its deadline")
    if at_ms < default.found_ms:
        raise EvidenceRejected("the default record is from the future")
    if at_ms > default.found_ms + dispute_window_s * 1000:
        raise EvidenceRejected("the default's dispute window has closed")


@dataclass(frozen=True)
class Trustee:
    """One TC trustee: its key share, the shared public key, its certified signing key."""

    index: int
    key_share: KeyShare
    public_key: ThresholdPublicKey
    signing_key: RsaPrivateKey
    certificate: x509.Certificate


def deal_trustee_keys(
    t: int, n: int, group: PrimeOrderGroup, rng: Rng
) -> tuple[ThresholdPublicKey, tuple[KeyShare, ...]]:
    """Trusted-dealer setup (seed 000): the dealer must erase ``x`` afterwards."""
    return threshold.deal_threshold_key(t, n, group, rng)


def run_dkg(
    t: int, n: int, group: PrimeOrderGroup, rngs: Sequence[Rng]
) -> tuple[ThresholdPublicKey, tuple[KeyShare, ...]]:
    """Joint-Feldman DKG among ``n`` honest trustees, each with its own rng.

    Returns the shared key and each trustee's share; no party ever held ``x``.
    (Complaints and disqualification are the sharing module's; with honest
    dealers there are none.)
    """
    if len(rngs) != n:
        raise ValueError("one rng per trustee")
    dealings = [sharing.dkg_deal(i, t, n, group, rngs[i - 1]) for i in range(1, n + 1)]
    commitments = {d.dealer: d.commitments for d in dealings}
    received = {j: {d.dealer: d.share_for(j) for d in dealings} for j in range(1, n + 1)}
    complaints = {
        j: sharing.dkg_complaints(j, received[j], commitments, t, n, group) for j in range(1, n + 1)
    }
    qualified = sharing.dkg_qualified(t, n, commitments, complaints, {}, group)
    keys: list[KeyShare] = []
    pk: ThresholdPublicKey | None = None
    for j in range(1, n + 1):
        result = sharing.dkg_finalize(j, qualified, received[j], commitments, {}, t, n, group)
        pk_j, share = threshold.threshold_key_from_dkg(result, t, group)
        if pk is not None and pk_j != pk:
            raise SharingError("trustees derived different public keys")
        pk = pk_j
        keys.append(share)
    assert pk is not None
    return pk, tuple(keys)


def get_tag_ciphertext(
    pk: ThresholdPublicKey, certificate: PseudonymCertificate
) -> ThresholdCiphertext:
    try:
        return decode_tag(pk, certificate.tag).ciphertext
    except EncodingError:
        raise TracingError("pseudonym certificate carries a malformed tag") from None


def get_trustee_index(attributes: MemberAttributes) -> int:
    """The trustee index a tc-trustee certificate names: its member id is ``tc-<i>``.

    Strict: decimal, no sign, no leading zero, ``i >= 1`` (the range against the
    TC key is checked by the caller). Raises :class:`CertificateRejected`.
    """
    member = attributes.member_id
    digits = member[len(TRUSTEE_MEMBER_PREFIX) :]
    if (
        not member.startswith(TRUSTEE_MEMBER_PREFIX)
        or not digits.isascii()
        or not digits.isdigit()
        or digits.startswith("0")
        or len(digits) > 4
    ):
        raise CertificateRejected(f"trustee certificate names no index ({member!r})")
    return int(digits)


def compute_trustee_member_id(index: int) -> str:
    """The member id the CA puts in trustee ``index``'s certificate."""
    return f"{TRUSTEE_MEMBER_PREFIX}{index}"


def verify_trustee(
    certificate_der: bytes,
    roots: Sequence[x509.Certificate],
    now: int,
    tc_key: ThresholdPublicKey,
    claimed_index: int,
    *,
    revoked: Container[bytes] = (),
) -> RsaPublicKey:
    """Check a trustee certificate and that it names ``claimed_index``; its signing key.

    Role tc-trustee, permission trace, chain to ``roots``, valid at ``now``, not in
    ``revoked`` (the on-chain list), member id ``tc-<claimed_index>`` with the
    index in ``[1, n]``. Raises :class:`TracingError` naming ``claimed_index``.
    """
    try:
        cert = load_certificate(certificate_der)
        attrs = verify_member(cert, roots, now, Role.TC_TRUSTEE, Permission.TRACE, revoked=revoked)
        index = get_trustee_index(attrs)
        key = get_rsa_key(cert)
    except (CertificateRejected, WrongRole) as exc:
        raise TracingError(f"not a trustee certificate: {exc.reason}", (claimed_index,)) from None
    if not 1 <= index <= tc_key.n:
        raise TracingError(f"trustee index {index} outside [1, {tc_key.n}]", (claimed_index,))
    if index != claimed_index:
        raise TracingError(
            f"certificate of trustee {index} signs for index {claimed_index}", (claimed_index,)
        )
    return key


@dataclass(frozen=True)
class TraceRequestRead:
    """What a trustee read from the chain (f+1-agreed) before answering a trace request.

    ``record``: the evidence (``None``: not on chain); ``accused`` / ``accuser``: the
    pseudonym certificates of the obligation's debtor and creditor (``None``: not
    published); ``trace``: an existing trace result for the evidence.

    Contract evidence instead: ``record`` and ``accuser`` ``None``, ``contract``: the
    identity contract's record (``cev/<id>``), ``source``: what the source namespace
    holds at ``default/<source id>`` now, ``accused``: the defaulter's certificate.
    """

    record: EvidenceRecord | None
    accused: SignedPseudonymCertificate | None
    accuser: SignedPseudonymCertificate | None
    trace: TraceResult | None = None
    contract: ContractEvidenceRecord | None = None
    source: ContractDefault | None = None


def on_trace_request(
    trustee: Trustee,
    read: TraceRequestRead,
    rng: Rng,
    dispute_window_s: int = DEFAULT_DISPUTE_WINDOW_S,
    *,
    evidence_sources: Collection[str] = (),
) -> SignedTraceShare:
    """Re-check the on-chain evidence exactly as the contract did; return a signed share.

    The trustee never decrypts on an accusation the contract would not have
    accepted: the obligation must be signed by both pseudonyms, both certified for
    its round, and the evidence recorded inside the dispute window (block time of
    the recording block, from ``read.record``). Contract evidence
    (``read.contract``): its namespace among ``evidence_sources`` (the identity
    genesis's list), the default still on chain in that namespace exactly as
    recorded, the accused certified for its round, recorded inside the window
    (:func:`verify_contract_evidence`). Raises :class:`TracingError`.
    """
    if read.trace is not None and read.trace.accountable:
        raise TracingError("evidence already traced")
    evidence_id = _check_trace_read(read, dispute_window_s, evidence_sources)
    assert read.accused is not None  # checked by _check_trace_read
    certificate = read.accused.certificate
    ct = get_tag_ciphertext(trustee.public_key, certificate)
    try:
        share = threshold.decryption_share(trustee.public_key, trustee.key_share, ct, rng)
    except DecryptionError:
        raise TracingError("tag is not decryptable") from None
    body = TraceShare(
        evidence_id,
        trustee.index,
        share.to_bytes(trustee.public_key.group),
    )
    return SignedTraceShare(
        body,
        compute_certificate_der(trustee.certificate),
        trustee.signing_key.sign(TRACE_SHARE_TAG, encode(body)),
    )


def _check_trace_read(
    read: TraceRequestRead, dispute_window_s: int, evidence_sources: Collection[str]
) -> bytes:
    """The evidence id of a read that passes the contract's checks (else TracingError)."""
    if read.record is not None:
        verify_obligation_evidence(
            read.record.evidence,
            read.accused,
            read.accuser,
            read.record.timestamp_ms // 1000,
            dispute_window_s,
        )
        return compute_evidence_id(read.record.evidence)
    contract = read.contract
    if contract is None:
        raise TracingError("no such evidence on chain")
    check_evidence_source(contract.evidence, evidence_sources)
    if read.source != contract.default:
        raise EvidenceRejected("the source's default record differs from the recorded one")
    verify_contract_evidence(
        contract.evidence, read.source, read.accused, contract.timestamp_ms, dispute_window_s
    )
    return compute_contract_evidence_id(contract.evidence)


def verify_trace_share_message(
    signed: SignedTraceShare,
    roots: Sequence[x509.Certificate],
    now: int,
    tc_key: ThresholdPublicKey,
    evidence_id: bytes,
    *,
    revoked: Container[bytes] = (),
) -> DecryptionShare:
    """Authenticate one trustee's share message; return its decryption share (proof unchecked).

    The certificate must be trustee ``i``'s (:func:`verify_trustee`) for the ``i``
    the message claims, the signature must verify under it, the message must be
    for ``evidence_id``, and the share inside must carry the same index ``i``.
    Raises :class:`TracingError` naming the claimed index.
    """
    body = signed.share
    key = verify_trustee(
        signed.trustee_certificate, roots, now, tc_key, body.trustee, revoked=revoked
    )
    try:
        key.verify(TRACE_SHARE_TAG, encode(body), signed.signature)
    except (InvalidSignature, ValueError):
        raise TracingError("trace share signature does not verify", (body.trustee,)) from None
    if body.evidence_id != evidence_id:
        raise TracingError("trace share is for other evidence", (body.trustee,))
    try:
        share = DecryptionShare.from_bytes(body.share, tc_key.group)
    except EncodingError:
        raise TracingError("trace share is malformed", (body.trustee,)) from None
    if share.index != body.trustee:
        raise TracingError(
            f"share for index {share.index} signed as trustee {body.trustee}", (body.trustee,)
        )
    return share


def compute_identity_from_record(
    pk: ThresholdPublicKey,
    certificate: PseudonymCertificate,
    evidence_id: bytes,
    entries: Sequence[bytes],
    roots: Sequence[x509.Certificate],
    now: int,
    *,
    revoked: Container[bytes] = (),
) -> tuple[TagPlaintext, tuple[int, ...]]:
    """What every replica runs on a :class:`TraceRecord`: ``(plaintext, bad trustees)``.

    Every entry must be an authenticated :class:`SignedTraceShare`
    (:func:`verify_trace_share_message`), one per trustee; any that is not
    rejects the whole record (:class:`TracingError`): nobody can be named, or
    counted, on the strength of a share nobody signed. Authenticated shares whose
    Chaum-Pedersen proof fails are named; ``t`` valid ones decrypt the tag.
    """
    shares: list[DecryptionShare] = []
    seen: set[int] = set()
    for raw in entries:
        try:
            signed = decode_as(SignedTraceShare, raw)
        except EncodingError:
            raise TracingError("trace record entry is not a signed trace share") from None
        share = verify_trace_share_message(signed, roots, now, pk, evidence_id, revoked=revoked)
        if share.index in seen:
            raise TracingError(f"two shares from trustee {share.index}", (share.index,))
        seen.add(share.index)
        shares.append(share)
    return compute_identity_from_shares(pk, certificate, shares)


def compute_identity_from_shares(
    pk: ThresholdPublicKey,
    certificate: PseudonymCertificate,
    shares: Sequence[DecryptionShare],
) -> tuple[TagPlaintext, tuple[int, ...]]:
    """Decrypt the certificate's tag from (authenticated) shares: ``(plaintext, bad trustees)``.

    Deterministic (replicas run it): shares whose proof fails are named, and any
    ``t`` valid ones suffice. Raises :class:`TracingError` otherwise.
    """
    ct = get_tag_ciphertext(pk, certificate)
    try:
        plaintext, bad = threshold.combine_robust(
            pk, ct, shares, compute_tag_aad(pk, certificate.round)
        )
    except SharingError as exc:
        invalid = tuple(s.index for s in shares if not _is_valid_share(pk, ct, s))
        raise TracingError(f"tracing failed: {exc.reason}", invalid) from None
    except DecryptionError:
        raise TracingError("tag does not decrypt under the TC key") from None
    return _parse_plaintext(plaintext, certificate.round), tuple(bad)


def _is_valid_share(pk: ThresholdPublicKey, ct: ThresholdCiphertext, s: DecryptionShare) -> bool:
    try:
        return threshold.is_valid_decryption_share(pk, ct, s)
    except (DecryptionError, InvalidShare):
        return False


def _parse_plaintext(plaintext: bytes, round_: int) -> TagPlaintext:
    try:
        inner = decode_as(TagPlaintext, plaintext)
    except EncodingError:
        raise TracingError("tag plaintext is malformed") from None
    if inner.round != round_:
        raise TracingError("tag was made for another round")
    return inner


def _when_issued(cert: x509.Certificate, moment: int) -> int:
    """``moment`` clamped into the certificate's own validity window (seconds)."""
    lo = int(cert.not_valid_before_utc.timestamp())
    hi = int(cert.not_valid_after_utc.timestamp())
    return min(max(moment, lo), hi)


def compute_accountable_member(
    pk: ThresholdPublicKey,
    certificate: PseudonymCertificate,
    plaintext: TagPlaintext,
    member_certificate: bytes,
    roots: Sequence[x509.Certificate],
) -> bytes:
    """Non-frameability: the member key to blame for ``certificate``'s decrypted tag.

    ``member_certificate`` (DER) must hash to the identity the tag names and be a
    household certificate issued by a root (its validity window and later
    revocation, e.g. by renewal, do not matter: the RM checked both at
    registration) - else :class:`TracingError` (the combiner's fault). The consent
    in the tag must then be that certificate key's RSA-PSS signature on
    ``(round, pseudonym key, H(handle))`` - else :class:`UnaccountableTrace`: the
    tag names someone who never signed for this pseudonym. An empty
    ``member_certificate`` is :class:`UnaccountableTrace` too.
    """
    if not member_certificate:
        raise UnaccountableTrace(
            "no certificate for the identity the tag names", plaintext.identity
        )
    try:
        cert = load_certificate(member_certificate)
        if compute_certificate_hash(cert) != plaintext.identity:
            raise TracingError("certificate does not hash to the identity in the tag")
        attrs = verify_member(
            cert, roots, _when_issued(cert, certificate.valid_from), HOUSEHOLD_ROLES
        )
        key = get_rsa_key(cert)
    except (CertificateRejected, WrongRole, InvalidTimestamp) as exc:
        raise TracingError(f"traced certificate refused: {exc.reason}") from None
    try:
        handle = decode_tag(pk, certificate.tag)
    except EncodingError:
        raise TracingError("pseudonym certificate carries a malformed tag") from None
    message = compute_consent_message(
        certificate.round,
        certificate.pseudonym_key,
        compute_handle_hash(pk.group, handle.handle_a, handle.handle_b),
    )
    try:
        key.verify(CONSENT_TAG, message, plaintext.consent)
    except (InvalidSignature, ValueError):
        raise UnaccountableTrace(
            "the consent in the tag does not verify under the certificate it names",
            plaintext.identity,
        ) from None
    return compute_member_key(attrs)


@dataclass(frozen=True)
class TraceOutcome:
    """The combiner's result.

    ``bad_trustees``: indices of *authenticated* shares whose proof fails (their
    signers are accountable); ``unauthenticated``: messages that failed
    authentication - their claimed index proves nothing about any trustee, so
    they are never reported as one; ``entries``: what to post in a
    :class:`TraceRecord` (``encode(SignedTraceShare)`` of valid shares).
    """

    plaintext: TagPlaintext
    bad_trustees: tuple[int, ...]
    unauthenticated: tuple[SignedTraceShare, ...]
    entries: tuple[bytes, ...]

    @property
    def identity(self) -> bytes:
        """The certificate hash the tag names (not yet shown accountable)."""
        return self.plaintext.identity


def compute_trace(
    pk: ThresholdPublicKey,
    certificate: PseudonymCertificate,
    messages: Sequence[SignedTraceShare],
    evidence_id: bytes,
    roots: Sequence[x509.Certificate],
    now: int,
) -> TraceOutcome:
    """Combiner: decrypt with authenticated, valid shares (see :class:`TraceOutcome`)."""
    unauthenticated: list[SignedTraceShare] = []
    accepted: dict[int, tuple[SignedTraceShare, DecryptionShare]] = {}
    for m in messages:
        try:
            share = verify_trace_share_message(m, roots, now, pk, evidence_id)
        except TracingError:
            unauthenticated.append(m)
            continue
        accepted.setdefault(share.index, (m, share))
    plaintext, bad_shares = compute_identity_from_shares(
        pk, certificate, [share for _, share in accepted.values()]
    )
    ct = get_tag_ciphertext(pk, certificate)
    valid = tuple(encode(m) for m, share in accepted.values() if _is_valid_share(pk, ct, share))
    return TraceOutcome(plaintext, tuple(sorted(set(bad_shares))), tuple(unauthenticated), valid)


def trace_by_key_reconstruction(
    pk: ThresholdPublicKey,
    key_shares: Sequence[KeyShare],
    certificate: PseudonymCertificate,
    rng: Rng,
) -> bytes:
    """Seed 000's audit path: rebuild ``d_TC`` by Lagrange from ``t`` shares, then decrypt."""
    try:
        x = threshold.reconstruct_private_key(key_shares, pk)
        whole = ThresholdPublicKey(pk.group, pk.y, 1, 1, (pk.y,))
        ct = get_tag_ciphertext(pk, certificate)
        share = threshold.decryption_share(whole, KeyShare(1, x), ct, rng)
        plaintext = threshold.combine(whole, ct, [share], compute_tag_aad(pk, certificate.round))
    except (SharingError, DecryptionError) as exc:
        raise TracingError(f"audit reconstruction failed: {exc.reason}") from None
    return _parse_plaintext(plaintext, certificate.round).identity
