"""Wire messages of registration (user ↔ RM), pseudonym issuance (user → MM) and tracing.

Every message is a frozen dataclass registered with :func:`wire_type`; what is
signed is always ``encode(body)`` under a per-step domain tag, so a signature
for one step can never be replayed as another (see ``docs/protocols/identity.md``).

Registration, numbered as seed 000's steps ①-⑥::

    ① U  → RM  SignedHello        (identified, RSA-PSS by the user's certified key)
    ② RM → U   SignedChallenge    (RSA-PSS by the RM's certified key; binds ①)
    ③ U  → RM  SignedCommitments  (K hash commitments to blinded candidates; binds ②)
    ④ RM → U   SignedOpenRequest  (which candidate stays closed; binds ③)
    ⑤ U  → RM  SignedOpenings     (K-1 openings + the kept blinded message; binds ④)
    ⑥ RM → U   SignedBlindSignature (the blind signature; binds ⑤)
    then, over an anonymous channel:
       U  → MM  PseudonymRequest   (pseudonym key, tag, RM signature, proof of possession)
       MM → chain  SignedPseudonymCertificate (in a shuffled per-round batch)
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.crypto.encoding import encode, wire_type
from gridledger.crypto.hashing import hash_value, register_tag

HELLO_TAG = register_tag("gridledger/identity/reg-hello/1")
CHALLENGE_TAG = register_tag("gridledger/identity/reg-challenge/1")
COMMITMENTS_TAG = register_tag("gridledger/identity/reg-commitments/1")
OPEN_REQUEST_TAG = register_tag("gridledger/identity/reg-open-request/1")
OPENINGS_TAG = register_tag("gridledger/identity/reg-openings/1")
BLIND_SIGNATURE_TAG = register_tag("gridledger/identity/reg-blind-signature/1")
CANDIDATE_COMMITMENT_TAG = register_tag("gridledger/identity/candidate-commitment/1")
PSEUDONYM_MESSAGE_TAG = register_tag("gridledger/identity/pseudonym-message/1")
POSSESSION_TAG = register_tag("gridledger/identity/pseudonym-possession/1")
PSEUDONYM_CERT_TAG = register_tag("gridledger/identity/pseudonym-certificate/1")
MESSAGE_HASH_TAG = register_tag("gridledger/identity/message/1")
TAG_HASH_TAG = register_tag("gridledger/identity/tracing-tag/1")
EVIDENCE_TAG = register_tag("gridledger/identity/obligation-evidence/1")
TRACE_SHARE_TAG = register_tag("gridledger/identity/trace-share/1")
REVOCATION_TAG = register_tag("gridledger/identity/revocation/1")
CHEATING_REPORT_TAG = register_tag("gridledger/identity/cheating-report/1")
SWEEP_BLINDINGS_TAG = register_tag("gridledger/identity/sweep-blindings/1")
SWEEP_SHARES_TAG = register_tag("gridledger/identity/sweep-shares/1")
CONSENT_TAG = register_tag("gridledger/identity/pseudonym-consent/1")
OBLIGATION_TAG = register_tag("gridledger/identity/obligation/1")
OBLIGATION_MET_TAG = register_tag("gridledger/identity/obligation-met/1")
BATCH_TAG = register_tag("gridledger/identity/pseudonym-batch/1")
CONTRACT_EVIDENCE_ID_TAG = register_tag("gridledger/identity/contract-evidence-id/1")

# Where an evidence source contract writes a ContractDefault, inside its own namespace.
CONTRACT_DEFAULT_PREFIX = b"default/"
MAX_SOURCE_EVIDENCE_ID = 64

NONCE_SIZE = 32


def compute_message_hash(obj: object) -> bytes:
    """The tagged hash by which a later message names an earlier one."""
    return hash_value(MESSAGE_HASH_TAG, obj)


# -- ① ② mutual authentication ----------------------------------------------------


@wire_type("identity.reg-hello/1")
@dataclass(frozen=True)
class RegistrationHello:
    """① The user asks ``rm`` (hash of the RM's certificate) for a pseudonym in ``round``."""

    round: int
    user_certificate: bytes  # DER
    rm: bytes
    timestamp: int
    nonce: bytes


@wire_type("identity.reg-hello-signed/1")
@dataclass(frozen=True)
class SignedHello:
    hello: RegistrationHello
    signature: bytes


@wire_type("identity.reg-challenge/1")
@dataclass(frozen=True)
class RegistrationChallenge:
    """② The RM accepts: names the session, the candidates ``k`` and its keys."""

    session_id: bytes
    hello_hash: bytes
    round: int
    rm_certificate: bytes  # DER, long-term RSA identity key (role rm)
    blind_key_certificate: bytes  # DER, dedicated RSA pseudonym-signing key
    k: int
    timestamp: int
    nonce: bytes


@wire_type("identity.reg-challenge-signed/1")
@dataclass(frozen=True)
class SignedChallenge:
    challenge: RegistrationChallenge
    signature: bytes


# -- ③ ④ ⑤ cut and choose ---------------------------------------------------------


@wire_type("identity.reg-commitments/1")
@dataclass(frozen=True)
class CandidateCommitments:
    """③ One hash commitment per candidate: ``H(index, blinded_msg)``."""

    session_id: bytes
    challenge_hash: bytes
    commitments: tuple[bytes, ...]
    timestamp: int


@wire_type("identity.reg-commitments-signed/1")
@dataclass(frozen=True)
class SignedCommitments:
    commitments: CandidateCommitments
    signature: bytes


@wire_type("identity.reg-open-request/1")
@dataclass(frozen=True)
class OpenRequest:
    """④ The RM keeps candidate ``keep`` closed and asks to open all others."""

    session_id: bytes
    commitments_hash: bytes
    keep: int
    timestamp: int


@wire_type("identity.reg-open-request-signed/1")
@dataclass(frozen=True)
class SignedOpenRequest:
    request: OpenRequest
    signature: bytes


@wire_type("identity.candidate-opening/3")
@dataclass(frozen=True)
class CandidateOpening:
    """Everything the RM needs to recompute candidate ``index`` from the user's identity."""

    index: int
    pseudonym_key: bytes  # Ed25519 public key
    tag_randomness: bytes  # the ElGamal exponent r, fixed-length big-endian
    tag_nonce: bytes  # the tag's AES-GCM nonce
    msg_prefix: bytes  # RFC 9474 prepare() prefix
    blinding_factor: bytes  # RFC 9474 blind() r, modulus-length big-endian
    salt: bytes  # RFC 9474 PSS salt
    handle_randomness: bytes  # the revocation handle's ElGamal exponent s, fixed-length
    consent: bytes  # the user's RSA-PSS signature on PseudonymConsent (inside the tag)


@wire_type("identity.reg-openings/1")
@dataclass(frozen=True)
class CandidateOpenings:
    """⑤ The K-1 openings (ascending index) and the kept candidate's blinded message."""

    session_id: bytes
    request_hash: bytes
    openings: tuple[CandidateOpening, ...]
    kept_blinded_msg: bytes
    timestamp: int


@wire_type("identity.reg-openings-signed/1")
@dataclass(frozen=True)
class SignedOpenings:
    openings: CandidateOpenings
    signature: bytes


@wire_type("identity.reg-blind-signature/1")
@dataclass(frozen=True)
class BlindSignatureResponse:
    """⑥ The RM's blind signature on the kept candidate."""

    session_id: bytes
    openings_hash: bytes
    blind_signature: bytes
    timestamp: int


@wire_type("identity.reg-blind-signature-signed/1")
@dataclass(frozen=True)
class SignedBlindSignature:
    response: BlindSignatureResponse
    signature: bytes


@wire_type("identity.cheating-evidence/1")
@dataclass(frozen=True)
class CheatingEvidence:
    """A failed opening, checkable by anyone: the user's own signed ③ and ⑤ plus ① ②, ④."""

    hello: SignedHello
    challenge: SignedChallenge
    commitments: SignedCommitments
    request: SignedOpenRequest
    openings: SignedOpenings


# -- what the RM signs blindly and the MM certifies --------------------------------


@wire_type("identity.pseudonym-message/1")
@dataclass(frozen=True)
class PseudonymMessage:
    """The message under the RM's blind signature (after the domain tag)."""

    round: int
    pseudonym_key: bytes
    tag_hash: bytes


@wire_type("identity.pseudonym-consent/1")
@dataclass(frozen=True)
class PseudonymConsent:
    """Signed by the user's long-term certified RSA key and sealed inside the tag:
    "``pseudonym_key`` (whose handle hashes to ``handle_hash``) is mine for ``round``".

    At a trace the decrypted signature must verify under the certificate whose
    hash the tag names: a tag naming someone who never signed is unaccountable,
    never that someone's liability (non-frameability).
    """

    round: int
    pseudonym_key: bytes
    handle_hash: bytes


@wire_type("identity.tag-plaintext/2")
@dataclass(frozen=True)
class TagPlaintext:
    """What the tracing tag encrypts: the identity (certificate hash), round and consent."""

    identity: bytes
    round: int
    consent: bytes  # RSA-PSS (CONSENT_TAG) over encode(PseudonymConsent)


@wire_type("identity.tracing-tag/1")
@dataclass(frozen=True)
class TracingTag:
    """A pseudonym's tag: the hybrid ciphertext of :class:`TagPlaintext` and the handle.

    ``ciphertext`` is ``ThresholdCiphertext.to_bytes`` (decrypted by t trustees to
    trace *this* pseudonym). ``handle_a, handle_b`` = ``(g^s, M_I y^s)`` is a plain
    ElGamal encryption of ``M_I = g^{H(identity)}``: after a trace, t trustees run a
    plaintext-equality test on it to find the traced identity's *other* open
    pseudonyms without decrypting anyone's (:mod:`gridledger.identity.sweep`).
    """

    ciphertext: bytes
    handle_a: bytes
    handle_b: bytes


@wire_type("identity.tag-context/1")
@dataclass(frozen=True)
class TagContext:
    """The tag's associated data: the round and the TC key it is encrypted to."""

    round: int
    tc_key_hash: bytes


@wire_type("identity.possession/1")
@dataclass(frozen=True)
class PossessionStatement:
    """Signed by the pseudonym key: "I hold this key and ask ``mm`` to certify it"."""

    round: int
    mm: bytes
    rm_signature_hash: bytes


@wire_type("identity.pseudonym-request/1")
@dataclass(frozen=True)
class PseudonymRequest:
    """User → MM over an anonymous channel; nothing in it names the user."""

    round: int
    pseudonym_key: bytes
    tag: bytes  # encode(TracingTag)
    msg_prefix: bytes
    rm_signature: bytes
    possession_signature: bytes


@wire_type("identity.pseudonym-certificate/1")
@dataclass(frozen=True)
class PseudonymCertificate:
    """The MM's certificate: valid for one round, publicly re-checkable (carries the RM sig)."""

    round: int
    serial: bytes
    pseudonym_key: bytes
    tag: bytes
    msg_prefix: bytes
    rm_signature: bytes
    valid_from: int
    valid_until: int
    mm: bytes  # hash of the MM's X.509 certificate


@wire_type("identity.pseudonym-certificate-signed/1")
@dataclass(frozen=True)
class SignedPseudonymCertificate:
    certificate: PseudonymCertificate
    signature: bytes  # RSA-PSS by the MM's certified key


def compute_signing_bytes(obj: object) -> bytes:
    """The bytes a step's signature covers (the tag is added by the signer)."""
    return encode(obj)


# -- evidence, tracing, revocation (on chain) ---------------------------------------


@wire_type("identity.obligation/1")
@dataclass(frozen=True)
class Obligation:
    """A trade agreement between two pseudonyms of one round: ``debtor`` owes ``owed``
    to ``creditor`` by ``deadline`` (seconds since the epoch)."""

    round: int
    debtor: bytes  # pseudonym key (the one who may be accused)
    creditor: bytes  # pseudonym key (the one who may accuse)
    obligation_id: bytes
    owed: str
    deadline: int


@wire_type("identity.obligation-signed/1")
@dataclass(frozen=True)
class SignedObligation:
    """The obligation signed (Ed25519, ``OBLIGATION_TAG``) by *both* pseudonym keys."""

    obligation: Obligation
    debtor_signature: bytes
    creditor_signature: bytes


@wire_type("identity.obligation-met/1")
@dataclass(frozen=True)
class ObligationMet:
    """Closes an obligation (the settlement layer's hook): signed by its creditor
    (Ed25519, ``OBLIGATION_MET_TAG`` over ``encode(obligation)``); evidence against a
    closed obligation is refused."""

    obligation: Obligation
    creditor_signature: bytes


@wire_type("identity.obligation-evidence/2")
@dataclass(frozen=True)
class ObligationEvidence:
    """The creditor (the transaction's sender) says the debtor did not meet ``obligation``."""

    obligation: SignedObligation
    description: str

    @property
    def accused(self) -> bytes:
        return self.obligation.obligation.debtor

    @property
    def accuser(self) -> bytes:
        return self.obligation.obligation.creditor

    @property
    def round(self) -> int:
        return self.obligation.obligation.round


@wire_type("identity.evidence-record/1")
@dataclass(frozen=True)
class EvidenceRecord:
    """Evidence as stored on chain, with the block that recorded it."""

    evidence: ObligationEvidence
    height: int
    timestamp_ms: int


@wire_type("identity.contract-default/1")
@dataclass(frozen=True)
class ContractDefault:
    """A default that a contract found from its own chain state (no party's word).

    An *evidence source* (a contract whose namespace the identity genesis names)
    writes it at ``CONTRACT_DEFAULT_PREFIX + evidence_id`` in its own namespace
    (:func:`compute_contract_default_key`) when ``accused``, a pseudonym of
    ``round``, left an obligation open past ``deadline_ms``; ``height`` and
    ``found_ms`` are the block (and its time) that found it: the dispute window
    runs from then. Defined here, not by the source, so identity can read it
    without importing the source's package.
    """

    evidence_id: bytes
    accused: bytes
    round: int
    deadline_ms: int
    description: str
    height: int
    found_ms: int


@wire_type("identity.contract-evidence/1")
@dataclass(frozen=True)
class ContractEvidence:
    """A pointer to a :class:`ContractDefault` on chain: anyone may post it."""

    namespace: str
    evidence_id: bytes


@wire_type("identity.contract-evidence-record/1")
@dataclass(frozen=True)
class ContractEvidenceRecord:
    """Contract evidence as the identity contract recorded it (a copy of the default it
    read, and the block that recorded it)."""

    evidence: ContractEvidence
    default: ContractDefault
    height: int
    timestamp_ms: int

    @property
    def accused(self) -> bytes:
        return self.default.accused


def compute_contract_default_key(evidence_id: bytes) -> bytes:
    """The key (inside the source's namespace) of the :class:`ContractDefault` ``evidence_id``."""
    return CONTRACT_DEFAULT_PREFIX + evidence_id


def compute_contract_evidence_id(evidence: ContractEvidence) -> bytes:
    """The identity evidence id of contract evidence: binds the source namespace, so two
    sources' ids never collide, nor with obligation evidence ids (another tag)."""
    return hash_value(CONTRACT_EVIDENCE_ID_TAG, evidence)


@wire_type("identity.trace-share/1")
@dataclass(frozen=True)
class TraceShare:
    """Trustee ``trustee``'s decryption share for the tag named by ``evidence_id``."""

    evidence_id: bytes
    trustee: int
    share: bytes  # DecryptionShare.to_bytes(group), with its Chaum-Pedersen proof


@wire_type("identity.trace-share-signed/1")
@dataclass(frozen=True)
class SignedTraceShare:
    share: TraceShare
    trustee_certificate: bytes  # DER, role tc-trustee
    signature: bytes


@wire_type("identity.trace-record/3")
@dataclass(frozen=True)
class TraceRecord:
    """A completed tracing: at least t authenticated decryption shares for the accused's tag.

    Each entry of ``shares`` is ``encode(SignedTraceShare)``: the share, signed by
    the trustee whose certificate (role tc-trustee, permission trace, member id
    ``tc-<i>``) names the index ``i`` the share claims. ``member_certificate`` is
    the DER of the X.509 certificate whose hash the tag names (empty if the
    combiner has none: the trace is then recorded as unaccountable, and a later
    record carrying the certificate may complete it).
    """

    evidence_id: bytes
    shares: tuple[bytes, ...]
    member_certificate: bytes


@wire_type("identity.trace-result/2")
@dataclass(frozen=True)
class TraceResult:
    """What the chain records for a tracing (receipt data).

    ``accountable``: the decrypted consent verifies under ``identity``'s certificate
    (then ``member`` is its member key, blacklisted); otherwise the pseudonym is
    revoked but nobody is blamed (``member`` empty, ``reason`` says why).
    """

    evidence_id: bytes
    pseudonym_key: bytes
    identity: bytes
    member: bytes
    round: int
    bad_trustees: tuple[int, ...]
    accountable: bool
    reason: str


# -- sweep: the traced identity's other open pseudonyms (plaintext-equality tests) ----


@wire_type("identity.pet-blinding/1")
@dataclass(frozen=True)
class PetBlinding:
    """Trustee i's blinding of one handle ``(a, b)``: ``(a^z, (b / M_I)^z)`` and a DLEQ proof."""

    a: bytes
    b: bytes
    challenge: bytes
    response: bytes


@wire_type("identity.sweep-blindings/1")
@dataclass(frozen=True)
class SweepBlindings:
    """Trustee ``trustee``'s blindings, one per certificate of ``round`` in on-chain order."""

    evidence_id: bytes
    round: int
    trustee: int
    blindings: tuple[PetBlinding, ...]


@wire_type("identity.sweep-blindings-signed/1")
@dataclass(frozen=True)
class SignedSweepBlindings:
    body: SweepBlindings
    trustee_certificate: bytes
    signature: bytes


@wire_type("identity.sweep-shares/1")
@dataclass(frozen=True)
class SweepShares:
    """Trustee ``trustee``'s decryption shares of the combined blinded handles (on-chain order)."""

    evidence_id: bytes
    round: int
    trustee: int
    shares: tuple[bytes, ...]  # DecryptionShare.to_bytes on c1 = A_k


@wire_type("identity.sweep-shares-signed/1")
@dataclass(frozen=True)
class SignedSweepShares:
    body: SweepShares
    trustee_certificate: bytes
    signature: bytes


@wire_type("identity.pseudonym-sweep/1")
@dataclass(frozen=True)
class PseudonymSweep:
    """A plaintext-equality sweep of one round's certificates for a traced identity."""

    evidence_id: bytes
    round: int
    blindings: tuple[SignedSweepBlindings, ...]
    shares: tuple[SignedSweepShares, ...]


@wire_type("identity.sweep-result/1")
@dataclass(frozen=True)
class SweepResult:
    """What the chain records for a sweep: the pseudonyms found (and revoked)."""

    evidence_id: bytes
    round: int
    identity: bytes
    revoked: tuple[bytes, ...]


@wire_type("identity.revocation/1")
@dataclass(frozen=True)
class Revocation:
    """Revoke a member certificate (by its hash); signed by a holder of ``revoke``."""

    certificate_hash: bytes
    reason: str
    timestamp: int


@wire_type("identity.revocation-signed/1")
@dataclass(frozen=True)
class SignedRevocation:
    revocation: Revocation
    signer_certificate: bytes
    signature: bytes


@wire_type("identity.batch-statement/1")
@dataclass(frozen=True)
class BatchStatement:
    """What the MM signs for a whole batch: round, count, hash of the ordered certificates."""

    round: int
    count: int
    digest: bytes


@wire_type("identity.pseudonym-batch/2")
@dataclass(frozen=True)
class PseudonymBatch:
    """One round's pseudonym certificates, published together and signed by the MM."""

    round: int
    mm_certificate: bytes
    certificates: tuple[SignedPseudonymCertificate, ...]
    signature: bytes  # RSA-PSS (BATCH_TAG) by the MM over encode(BatchStatement)
