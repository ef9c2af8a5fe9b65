"""The pseudonym issuer, run by the market manager (MM): pseudonym certificates in batches.

(The module is named for what it does; the market itself is :mod:`gridledger.market`.)

The user sends a :class:`PseudonymRequest` over an *anonymous* channel: nothing
in it names the user. The MM checks

* the round is the one being collected, the pseudonym key a valid Ed25519 point;
* the tag's form: canonical bytes, ``c1`` a group element other than 1 (a
  Legendre symbol in ffdhe2048), the body size of a tag for this round;
* the RM's RFC 9474 signature on ``TAG || PseudonymMessage(round, pk, H(tag))``
  under the RM's *certified pseudonym key* (role rm, permission
  sign-pseudonyms; never the mint's key);
* a proof of possession: the pseudonym key signs (round, MM, H(RM signature));
* the RM signature and the pseudonym key were never used before (double use).

Accepted requests wait in the round's batch; :func:`process_close_batch`
shuffles them with the injected rng, signs one certificate each and returns
them together for one ``identity.pseudonym-batch`` transaction. Publication
order thus carries no information about when each user met the RM. (The MM
itself still sees arrival times: users submit at a time drawn uniformly in the
MM's batch window, :mod:`gridledger.identity.schedule`.)
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass, field

from cryptography import x509

from gridledger.crypto import blind_rsa
from gridledger.crypto.blind_rsa import Variant
from gridledger.crypto.encoding import encode
from gridledger.crypto.errors import (
    BlindSignatureError,
    EncodingError,
    InvalidSignature,
    KeyFormatError,
)
from gridledger.crypto.hashing import hash_bytes, hash_value, register_tag
from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import Ed25519PublicKey, RsaPrivateKey, RsaPublicKey
from gridledger.crypto.threshold import ThresholdPublicKey
from gridledger.identity.ca import (
    Permission,
    Role,
    compute_certificate_der,
    compute_certificate_hash,
    get_rsa_key,
    verify_member,
)
from gridledger.identity.errors import (
    CertificateRejected,
    MessageRejected,
    RegistrationRejected,
    ReplayDetected,
    check_timestamp,
)
from gridledger.identity.messages import (
    BATCH_TAG,
    POSSESSION_TAG,
    PSEUDONYM_CERT_TAG,
    BatchStatement,
    PossessionStatement,
    PseudonymBatch,
    PseudonymCertificate,
    PseudonymRequest,
    SignedPseudonymCertificate,
)
from gridledger.identity.registration import (
    DEFAULT_VARIANT,
    PseudonymCredential,
    compute_pseudonym_input,
)
from gridledger.identity.tags import parse_tag

RM_SIGNATURE_HASH_TAG = register_tag("gridledger/identity/rm-signature/1")
SERIAL_TAG = register_tag("gridledger/identity/pseudonym-serial/1")
BATCH_DIGEST_TAG = register_tag("gridledger/identity/batch-digest/1")
MAX_BATCH = 100_000
NO_REVOCATIONS: frozenset[bytes] = frozenset()  # for checks before anything is on chain


def compute_rm_signature_hash(rm_signature: bytes) -> bytes:
    return hash_bytes(RM_SIGNATURE_HASH_TAG, rm_signature)


def compute_pseudonym_request(
    credential: PseudonymCredential, mm_certificate: x509.Certificate
) -> PseudonymRequest:
    """User side: the anonymous request for a pseudonym certificate."""
    statement = PossessionStatement(
        credential.round,
        compute_certificate_hash(mm_certificate),
        compute_rm_signature_hash(credential.rm_signature),
    )
    return PseudonymRequest(
        round=credential.round,
        pseudonym_key=credential.pseudonym.public_key.raw,
        tag=credential.tag,
        msg_prefix=credential.msg_prefix,
        rm_signature=credential.rm_signature,
        possession_signature=credential.pseudonym.sign(POSSESSION_TAG, encode(statement)),
    )


def verify_rm_authorization(
    rm_blind_key: RsaPublicKey,
    variant: Variant,
    tc_key: ThresholdPublicKey,
    round_: int,
    pseudonym_key: bytes,
    tag: bytes,
    msg_prefix: bytes,
    rm_signature: bytes,
) -> None:
    """Check a pseudonym's key, tag form and RM blind signature (MM and every replica)."""
    try:
        Ed25519PublicKey(pseudonym_key).check_point()
        parse_tag(tc_key, tag, round_)
        msg = compute_pseudonym_input(round_, pseudonym_key, tag)
        input_msg = blind_rsa.prepare_with(variant, msg, msg_prefix)
        blind_rsa.verify(rm_blind_key, variant, input_msg, rm_signature)
    except (EncodingError, KeyFormatError, InvalidSignature, BlindSignatureError) as exc:
        raise MessageRejected(f"pseudonym not authorised by the RM: {exc.reason}") from None


@dataclass
class MarketManager:
    """The MM's keys, the RM's certified blind key, and the round being collected."""

    key: RsaPrivateKey
    certificate: x509.Certificate
    rm_blind_key: RsaPublicKey
    tc_key: ThresholdPublicKey
    variant: Variant = DEFAULT_VARIANT
    round: int | None = None
    pending: list[PseudonymRequest] = field(default_factory=list)
    used_signatures: set[bytes] = field(default_factory=set)
    used_keys: set[bytes] = field(default_factory=set)
    issued: list[SignedPseudonymCertificate] = field(default_factory=list)

    @property
    def mm_hash(self) -> bytes:
        return compute_certificate_hash(self.certificate)


def create_market_manager(
    key: RsaPrivateKey,
    certificate: x509.Certificate,
    rm_blind_certificate: x509.Certificate,
    roots: Sequence[x509.Certificate],
    tc_key: ThresholdPublicKey,
    now: int,
) -> MarketManager:
    """Check the certificates (MM's own and the RM's pseudonym key) and build the MM."""
    verify_member(certificate, roots, now, Role.MM, Permission.ISSUE_PSEUDONYM_CERTS)
    if get_rsa_key(certificate) != key.public_key:
        raise CertificateRejected("MM key does not match its certificate")
    verify_member(rm_blind_certificate, roots, now, Role.RM, Permission.SIGN_PSEUDONYMS)
    return MarketManager(key, certificate, get_rsa_key(rm_blind_certificate), tc_key)


def process_open_batch(mm: MarketManager, round_: int) -> None:
    """Start collecting requests for ``round_`` (the previous batch must be closed)."""
    if mm.pending:
        raise RegistrationRejected("close the pending batch first")
    mm.round = round_


def on_pseudonym_request(mm: MarketManager, request: PseudonymRequest) -> None:
    """Check a request and queue it for the round's batch (no state change on failure)."""
    if mm.round is None or request.round != mm.round:
        raise RegistrationRejected(f"round {request.round} is not being collected")
    if len(mm.pending) >= MAX_BATCH:
        raise RegistrationRejected("batch is full")
    sig_hash = compute_rm_signature_hash(request.rm_signature)
    if sig_hash in mm.used_signatures or request.pseudonym_key in mm.used_keys:
        raise ReplayDetected(sig_hash, "RM signature or pseudonym key already used")
    verify_rm_authorization(
        mm.rm_blind_key,
        mm.variant,
        mm.tc_key,
        request.round,
        request.pseudonym_key,
        request.tag,
        request.msg_prefix,
        request.rm_signature,
    )
    statement = PossessionStatement(request.round, mm.mm_hash, sig_hash)
    try:
        Ed25519PublicKey(request.pseudonym_key).verify(
            POSSESSION_TAG, encode(statement), request.possession_signature
        )
    except InvalidSignature:
        raise MessageRejected("proof of possession does not verify") from None
    mm.used_signatures.add(sig_hash)
    mm.used_keys.add(request.pseudonym_key)
    mm.pending.append(request)


def compute_serial(round_: int, pseudonym_key: bytes) -> bytes:
    return hash_bytes(SERIAL_TAG, encode([round_, pseudonym_key]))


def compute_batch_statement(
    round_: int, certificates: Sequence[SignedPseudonymCertificate]
) -> BatchStatement:
    """What the MM signs for a batch: round, count and the hash of the ordered certificates."""
    digest = hash_value(BATCH_DIGEST_TAG, [encode(c) for c in certificates])
    return BatchStatement(round_, len(certificates), digest)


def process_close_batch(
    mm: MarketManager, valid_from: int, valid_until: int, rng: Rng
) -> PseudonymBatch:
    """Shuffle the round's requests (Fisher-Yates with ``rng``), certify them together and
    sign the whole batch (round, count, hash of the ordered certificates).

    An empty round has no batch: :class:`RegistrationRejected` (the batch stays open).
    """
    if mm.round is None:
        raise RegistrationRejected("no batch is open")
    if not mm.pending:
        raise RegistrationRejected("no requests to certify: an empty batch is never published")
    check_timestamp("valid_from", valid_from)
    check_timestamp("valid_until", valid_until)
    if valid_until <= valid_from:
        raise ValueError("empty validity window")
    order = list(mm.pending)
    for i in range(len(order) - 1, 0, -1):
        j = rng.randbelow(i + 1)
        order[i], order[j] = order[j], order[i]
    certs = tuple(_certify(mm, req, valid_from, valid_until) for req in order)
    statement = compute_batch_statement(mm.round, certs)
    batch = PseudonymBatch(
        mm.round,
        compute_certificate_der(mm.certificate),
        certs,
        mm.key.sign(BATCH_TAG, encode(statement)),
    )
    mm.issued.extend(certs)
    mm.pending = []
    mm.round = None
    return batch


def verify_batch_signature(batch: PseudonymBatch, mm_key: RsaPublicKey) -> None:
    """Check the MM's signature over the whole batch (raises :class:`CertificateRejected`)."""
    statement = compute_batch_statement(batch.round, batch.certificates)
    try:
        mm_key.verify(BATCH_TAG, encode(statement), batch.signature)
    except (InvalidSignature, ValueError):
        raise CertificateRejected("batch signature does not verify") from None


def _certify(
    mm: MarketManager, req: PseudonymRequest, valid_from: int, valid_until: int
) -> SignedPseudonymCertificate:
    cert = PseudonymCertificate(
        round=req.round,
        serial=compute_serial(req.round, req.pseudonym_key),
        pseudonym_key=req.pseudonym_key,
        tag=req.tag,
        msg_prefix=req.msg_prefix,
        rm_signature=req.rm_signature,
        valid_from=valid_from,
        valid_until=valid_until,
        mm=mm.mm_hash,
    )
    return SignedPseudonymCertificate(cert, mm.key.sign(PSEUDONYM_CERT_TAG, encode(cert)))


def verify_pseudonym_certificate(
    signed: SignedPseudonymCertificate,
    mm_certificate: x509.Certificate,
    rm_blind_certificate: x509.Certificate,
    roots: Sequence[x509.Certificate],
    tc_key: ThresholdPublicKey,
    now: int,
    variant: Variant = DEFAULT_VARIANT,
    *,
    revoked: Container[bytes],
    revoked_pseudonyms: Container[bytes],
    ahead: bool = False,
) -> PseudonymCertificate:
    """Anyone's check of a pseudonym certificate at time ``now``.

    The pseudonym is not in ``revoked_pseudonyms`` (the chain's ``revp/`` list:
    revoked by a trace or a sweep); MM certificate (role mm, permission
    issue-pseudonym-certs, not in ``revoked``) and signature; RM blind key
    certificate (role rm, sign-pseudonyms, not in ``revoked``) and the RM's
    signature; tag form; serial; validity window (``ahead``: publication, the
    window may lie in the future but must not have ended). Every certificate is
    checked at ``now``; the window's times are bound-checked only after the MM
    signature verified. ``revoked`` is the on-chain list of revoked certificate
    hashes. Both lists are required: a caller that forgets them would accept a
    traced pseudonym (:mod:`gridledger.identity.verification` reads both from
    chain state). Raises :class:`CertificateRejected` or :class:`WrongRole`.
    """
    cert = signed.certificate
    if cert.pseudonym_key in revoked_pseudonyms:
        raise CertificateRejected("pseudonym certificate is revoked")
    try:
        verify_member(
            mm_certificate, roots, now, Role.MM, Permission.ISSUE_PSEUDONYM_CERTS, revoked=revoked
        )
        verify_member(
            rm_blind_certificate, roots, now, Role.RM, Permission.SIGN_PSEUDONYMS, revoked=revoked
        )
        if cert.mm != compute_certificate_hash(mm_certificate):
            raise CertificateRejected("certificate names another MM")
        get_rsa_key(mm_certificate).verify(PSEUDONYM_CERT_TAG, encode(cert), signed.signature)
        verify_rm_authorization(
            get_rsa_key(rm_blind_certificate),
            variant,
            tc_key,
            cert.round,
            cert.pseudonym_key,
            cert.tag,
            cert.msg_prefix,
            cert.rm_signature,
        )
    except (InvalidSignature, MessageRejected) as exc:
        raise CertificateRejected(f"pseudonym certificate rejected: {exc.reason}") from None
    if cert.serial != compute_serial(cert.round, cert.pseudonym_key):
        raise CertificateRejected("serial does not match the pseudonym")
    check_timestamp("valid_from", cert.valid_from)
    check_timestamp("valid_until", cert.valid_until)
    if cert.valid_until <= cert.valid_from:
        raise CertificateRejected("pseudonym certificate has an empty validity window")
    start = cert.valid_from if not ahead else min(cert.valid_from, now)
    if not start <= now < cert.valid_until:
        raise CertificateRejected("pseudonym certificate is outside its validity window")
    return cert
