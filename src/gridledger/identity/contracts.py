"""The identity contract: the on-chain bulletin board of certificates, revocations and tracing.

Kinds (every replica runs the same checks, with the block time as "now"):

* ``identity.pseudonym-batch`` - :class:`PseudonymBatch` from the MM: never empty;
  the MM certificate is always checked (the one pinned at genesis if any; role mm,
  permission issue-pseudonym-certs, chains to the roots, not revoked on chain) and
  its signature over the whole batch (round, count, hash of the ordered
  certificates) is checked *before* any other field is used; then the MM's
  signature on every certificate, the RM's blind signature on every pseudonym
  (against the RM pseudonym key fixed at genesis), tag form; one batch per round,
  every pseudonym key and RM signature at most once.
* ``identity.revoke`` - :class:`SignedRevocation` by a member with permission revoke.
* ``identity.evidence`` - :class:`ObligationEvidence`: an :class:`Obligation`
  signed by *both* pseudonyms (debtor = accused, creditor = accuser), sent by the
  creditor's pseudonym key; both certified for the obligation's round and not
  revoked; block time inside ``(deadline, deadline + dispute window]``; the
  obligation not closed; one accusation per obligation
  (:mod:`gridledger.identity.obligations`).
* ``identity.contract-evidence`` - :class:`ContractEvidence` {namespace, evidence id}:
  a pointer to a :class:`ContractDefault` that an *evidence source* (a contract
  whose namespace the identity genesis names) wrote from its own chain state at
  ``<namespace>/default/<evidence id>``; read here with ``get_in``. The accused
  must be a published, unrevoked pseudonym certified for the default's round, the
  block time inside the dispute window from when the default was found
  (:func:`verify_contract_evidence`); recorded once, under
  :func:`compute_contract_evidence_id`. Anyone may send it (it adds no word of
  its own); the trace path below then runs unchanged on it.
* ``identity.obligation-met`` - :class:`ObligationMet` signed by the creditor:
  closes the obligation (the settlement layer's hook); later evidence is refused.
* ``identity.trace-record`` - :class:`TraceRecord`: t valid decryption shares of
  the accused's tag, each signed by the trustee whose certificate (against the
  genesis roots, not revoked on chain, role tc-trustee, member id ``tc-<i>``) names
  the index the share claims; re-verified and decrypted here. If the consent
  inside verifies under the X.509 certificate the record carries (hash = the
  tag's identity, chains to the roots), the member key is blacklisted and that
  certificate and the pseudonym revoked; otherwise the trace is recorded as
  *unaccountable* (pseudonym revoked, nobody blamed; a later record with the
  right certificate may still complete it).
* ``identity.sweep`` - :class:`PseudonymSweep`: after an accountable trace, a
  plaintext-equality test of every handle of one still-valid round against the
  traced identity (:mod:`gridledger.identity.sweep`); the matches are revoked.
* ``identity.blacklist`` - :class:`CheatingEvidence` from a failed cut and choose;
  re-run here (:func:`verify_cheating_evidence`), then the member is blacklisted.

State keys (namespace ``identity``): ``pc/<pk>`` pseudonym certificate,
``round/<n>`` batch published (its size), ``rpk/<n>/<i>`` the i-th pseudonym key of
round n's batch, ``rmsig/<h>`` used RM signature, ``rev/<hash>``
revoked member certificate, ``revp/<pk>`` revoked pseudonym, ``ev/<id>``
obligation evidence, ``cev/<id>`` contract evidence (:class:`ContractEvidenceRecord`;
one id space for both kinds), ``obe/<h>`` evidence id of obligation h, ``om/<h>``
obligation h closed,
``tr/<id>`` trace result, ``bl/<member key>`` blacklist entry,
``sw/<id>/<n>`` sweep result of trace ``id`` over round ``n``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509

from gridledger.crypto.blind_rsa import Variant
from gridledger.crypto.encoding import decode, decode_as, encode
from gridledger.crypto.threshold import ThresholdPublicKey
from gridledger.errors import CryptoError, IdentityError
from gridledger.identity.ca import (
    Permission,
    Role,
    compute_certificate_der,
    get_rsa_key,
    load_certificate,
    verify_member,
)
from gridledger.identity.errors import CertificateRejected, EvidenceRejected, UnaccountableTrace
from gridledger.identity.messages import (
    REVOCATION_TAG,
    CheatingEvidence,
    ContractDefault,
    ContractEvidence,
    ContractEvidenceRecord,
    EvidenceRecord,
    ObligationEvidence,
    ObligationMet,
    PseudonymBatch,
    PseudonymCertificate,
    PseudonymSweep,
    SignedPseudonymCertificate,
    SignedRevocation,
    SweepResult,
    TraceRecord,
    TraceResult,
    compute_contract_default_key,
    compute_contract_evidence_id,
)
from gridledger.identity.obligations import (
    DEFAULT_DISPUTE_WINDOW_S,
    verify_obligation_evidence,
    verify_obligation_met,
)
from gridledger.identity.pseudonym_issuer import (
    compute_rm_signature_hash,
    verify_batch_signature,
    verify_pseudonym_certificate,
)
from gridledger.identity.registration import (
    DEFAULT_VARIANT,
    get_evidence_member,
    verify_cheating_evidence,
)
from gridledger.identity.sweep import check_sweep_target, compute_sweep_matches
from gridledger.identity.trace_center import (
    TraceRequestRead,
    check_evidence_source,
    compute_accountable_member,
    compute_evidence_id,
    compute_identity_from_record,
    verify_contract_evidence,
)
from gridledger.ledger.contracts import BlockContext, StateView
from gridledger.ledger.errors import ContractRejection
from gridledger.ledger.tx import Transaction

NAMESPACE = "identity"
KIND_BATCH = "identity.pseudonym-batch"
KIND_REVOKE = "identity.revoke"
KIND_EVIDENCE = "identity.evidence"
KIND_TRACE = "identity.trace-record"
KIND_BLACKLIST = "identity.blacklist"
KIND_SWEEP = "identity.sweep"
KIND_OBLIGATION_MET = "identity.obligation-met"
KIND_CONTRACT_EVIDENCE = "identity.contract-evidence"


@dataclass(frozen=True)
class IdentityConfig:
    """Genesis parameters: trusted roots, the RM's pseudonym-key certificate, the TC key,
    the MM's certificate (pinned: only it may publish batches; ``None`` accepts any
    valid MM certificate), the dispute window after an obligation's deadline and the
    namespaces whose ``default/`` records are evidence (:data:`KIND_CONTRACT_EVIDENCE`)."""

    roots: tuple[x509.Certificate, ...]
    rm_blind_certificate: x509.Certificate
    tc_key: ThresholdPublicKey
    mm_certificate: x509.Certificate | None = None
    dispute_window_s: int = DEFAULT_DISPUTE_WINDOW_S
    variant: Variant = DEFAULT_VARIANT
    evidence_sources: tuple[str, ...] = ()


def _key(prefix: bytes, suffix: bytes) -> bytes:
    return prefix + suffix


def _round_key(round_: int) -> bytes:
    return b"round/" + str(round_).encode()


def _round_pk_key(round_: int, i: int) -> bytes:
    return b"rpk/" + str(round_).encode() + b"/" + str(i).encode()


def _sweep_key(evidence_id: bytes, round_: int) -> bytes:
    return b"sw/" + evidence_id + b"/" + str(round_).encode()


class Reader:
    """Read-only helpers over any ``get(key) -> value`` of this contract's namespace."""

    def __init__(self, get: Callable[[bytes], bytes | None]) -> None:
        self._get = get

    def pseudonym_certificate(self, key: bytes) -> SignedPseudonymCertificate | None:
        raw = self._get(_key(b"pc/", key))
        return None if raw is None else decode_as(SignedPseudonymCertificate, raw)

    def evidence(self, evidence_id: bytes) -> EvidenceRecord | None:
        raw = self._get(_key(b"ev/", evidence_id))
        return None if raw is None else decode_as(EvidenceRecord, raw)

    def contract_evidence(self, evidence_id: bytes) -> ContractEvidenceRecord | None:
        raw = self._get(_key(b"cev/", evidence_id))
        return None if raw is None else decode_as(ContractEvidenceRecord, raw)

    def accused(self, evidence_id: bytes) -> bytes | None:
        """The pseudonym key that evidence ``evidence_id`` (either kind) accuses."""
        record = self.evidence(evidence_id)
        if record is not None:
            return record.evidence.accused
        contract = self.contract_evidence(evidence_id)
        return None if contract is None else contract.accused

    def trace(self, evidence_id: bytes) -> TraceResult | None:
        raw = self._get(_key(b"tr/", evidence_id))
        return None if raw is None else decode_as(TraceResult, raw)

    def trace_request(
        self, evidence_id: bytes, get_in: Callable[[str, bytes], bytes | None]
    ) -> TraceRequestRead:
        """Everything a trustee reads before answering a trace request for ``evidence_id``
        (obligation or contract evidence; all ``None`` if neither is on chain), from one
        state: the synchronous twin of ``IdentityChainView.get_trace_request``.
        ``get_in(namespace, key)`` reads the source contract's default."""
        trace = self.trace(evidence_id)
        record = self.evidence(evidence_id)
        if record is not None:
            ev = record.evidence
            accused = self.pseudonym_certificate(ev.accused)
            return TraceRequestRead(record, accused, self.pseudonym_certificate(ev.accuser), trace)
        contract = self.contract_evidence(evidence_id)
        if contract is None:
            return TraceRequestRead(None, None, None, trace)
        return TraceRequestRead(
            None,
            self.pseudonym_certificate(contract.accused),
            None,
            trace,
            contract,
            get_contract_default(get_in, contract.evidence),
        )

    def is_blacklisted(self, member: bytes) -> bool:
        """Whether the member key (:func:`ca.compute_member_key`) is blacklisted."""
        return self._get(_key(b"bl/", member)) is not None

    def is_obligation_met(self, obligation_hash: bytes) -> bool:
        return self._get(_key(b"om/", obligation_hash)) is not None

    def is_revoked(self, certificate_hash: bytes) -> bool:
        return self._get(_key(b"rev/", certificate_hash)) is not None

    def is_pseudonym_revoked(self, key: bytes) -> bool:
        return self._get(_key(b"revp/", key)) is not None

    def round_keys(self, round_: int) -> tuple[bytes, ...]:
        """The pseudonym keys of round ``round_``'s batch, in on-chain order."""
        raw = self._get(_round_key(round_))
        if raw is None:
            return ()
        count = decode(raw)
        assert isinstance(count, int)  # written by process_batch
        keys = []
        for i in range(count):
            key = self._get(_round_pk_key(round_, i))
            assert key is not None  # written with the batch
            keys.append(key)
        return tuple(keys)

    def round_certificates(self, round_: int) -> tuple[PseudonymCertificate, ...]:
        """Round ``round_``'s pseudonym certificates, in on-chain order (sweep input)."""
        out = []
        for key in self.round_keys(round_):
            signed = self.pseudonym_certificate(key)
            assert signed is not None
            out.append(signed.certificate)
        return tuple(out)

    def sweep(self, evidence_id: bytes, round_: int) -> SweepResult | None:
        raw = self._get(_sweep_key(evidence_id, round_))
        return None if raw is None else decode_as(SweepResult, raw)


class OnChainSet:
    """A ``Container[bytes]`` view of one key prefix (for ``verify_member(revoked=...)``)."""

    def __init__(self, get: Callable[[bytes], bytes | None], prefix: bytes) -> None:
        self._get = get
        self._prefix = prefix

    def __contains__(self, item: object) -> bool:
        return isinstance(item, bytes) and self._get(self._prefix + item) is not None


def get_revocations(get: Callable[[bytes], bytes | None]) -> OnChainSet:
    return OnChainSet(get, b"rev/")


def get_blacklist(get: Callable[[bytes], bytes | None]) -> OnChainSet:
    return OnChainSet(get, b"bl/")


class IdentityContract:
    """The identity contract (see the module docstring)."""

    def __init__(self, config: IdentityConfig) -> None:
        self.config = config

    @property
    def namespace(self) -> str:
        return NAMESPACE

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(
            {
                KIND_BATCH,
                KIND_REVOKE,
                KIND_EVIDENCE,
                KIND_CONTRACT_EVIDENCE,
                KIND_OBLIGATION_MET,
                KIND_TRACE,
                KIND_BLACKLIST,
                KIND_SWEEP,
            }
        )

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        try:
            return self._dispatch(view, tx, ctx)
        except (IdentityError, CryptoError) as exc:
            raise ContractRejection(f"{tx.kind}: {exc.reason}") from None

    def _dispatch(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        now = ctx.timestamp_ms // 1000
        if tx.kind == KIND_BATCH:
            return process_batch(self.config, view, decode_as(PseudonymBatch, tx.payload), now)
        if tx.kind == KIND_REVOKE:
            return process_revocation(
                self.config, view, decode_as(SignedRevocation, tx.payload), now
            )
        if tx.kind == KIND_EVIDENCE:
            evidence = decode_as(ObligationEvidence, tx.payload)
            return process_evidence(self.config, view, evidence, tx.sender, ctx)
        if tx.kind == KIND_CONTRACT_EVIDENCE:
            pointer = decode_as(ContractEvidence, tx.payload)
            return process_contract_evidence(self.config, view, pointer, ctx)
        if tx.kind == KIND_OBLIGATION_MET:
            met = decode_as(ObligationMet, tx.payload)
            return process_obligation_met(view, met)
        if tx.kind == KIND_TRACE:
            return process_trace(self.config, view, decode_as(TraceRecord, tx.payload), now)
        if tx.kind == KIND_SWEEP:
            return process_sweep(self.config, view, decode_as(PseudonymSweep, tx.payload), now)
        if tx.kind == KIND_BLACKLIST:
            evidence_c = decode_as(CheatingEvidence, tx.payload)
            return process_cheating(self.config, view, evidence_c)
        raise ContractRejection(f"unknown kind {tx.kind}")


def process_batch(
    config: IdentityConfig, view: StateView, batch: PseudonymBatch, now: int
) -> bytes:
    """Publish one round's pseudonym certificates (all or nothing).

    The MM certificate and the MM's signature over the whole batch are checked
    first, before any other (attacker-chosen) field is used; empty batches are
    refused, so nobody but the MM can claim a round.
    """
    mm_cert = load_certificate(batch.mm_certificate)
    if config.mm_certificate is not None and batch.mm_certificate != compute_certificate_der(
        config.mm_certificate
    ):
        raise ContractRejection("batch is not from the MM pinned at genesis")
    revoked = get_revocations(view.get)
    verify_member(
        mm_cert, config.roots, now, Role.MM, Permission.ISSUE_PSEUDONYM_CERTS, revoked=revoked
    )
    verify_batch_signature(batch, get_rsa_key(mm_cert))
    if not batch.certificates:
        raise ContractRejection("empty batch")
    if view.get(_round_key(batch.round)) is not None:
        raise ContractRejection(f"round {batch.round} already has its batch")
    seen_keys: set[bytes] = set()
    seen_sigs: set[bytes] = set()
    for signed in batch.certificates:
        cert = signed.certificate
        if cert.round != batch.round:
            raise ContractRejection("certificate for another round in the batch")
        verify_pseudonym_certificate(
            signed,
            mm_cert,
            config.rm_blind_certificate,
            config.roots,
            config.tc_key,
            now,
            config.variant,
            revoked=revoked,  # the MM's or the RM blind key's certificate revoked on chain
            revoked_pseudonyms=OnChainSet(view.get, b"revp/"),
            ahead=True,  # may be published ahead of its round
        )
        sig_hash = compute_rm_signature_hash(cert.rm_signature)
        if (
            cert.pseudonym_key in seen_keys
            or sig_hash in seen_sigs
            or view.get(_key(b"pc/", cert.pseudonym_key)) is not None
            or view.get(_key(b"rmsig/", sig_hash)) is not None
        ):
            raise ContractRejection("pseudonym key or RM signature used twice")
        seen_keys.add(cert.pseudonym_key)
        seen_sigs.add(sig_hash)
    for i, signed in enumerate(batch.certificates):
        cert = signed.certificate
        view.put(_key(b"pc/", cert.pseudonym_key), encode(signed))
        view.put(_key(b"rmsig/", compute_rm_signature_hash(cert.rm_signature)), b"\x01")
        view.put(_round_pk_key(batch.round, i), cert.pseudonym_key)
    view.put(_round_key(batch.round), encode(len(batch.certificates)))
    return encode(len(batch.certificates))


def process_revocation(
    config: IdentityConfig, view: StateView, signed: SignedRevocation, now: int
) -> bytes:
    """Record a member-certificate revocation signed by a holder of ``revoke``."""
    signer = load_certificate(signed.signer_certificate)
    verify_member(
        signer, config.roots, now, None, Permission.REVOKE, revoked=get_revocations(view.get)
    )
    get_rsa_key(signer).verify(REVOCATION_TAG, encode(signed.revocation), signed.signature)
    if len(signed.revocation.certificate_hash) != 32:
        raise ContractRejection("certificate hash must be 32 bytes")
    if view.get(_key(b"rev/", signed.revocation.certificate_hash)) is not None:
        raise ContractRejection("already revoked")
    view.put(_key(b"rev/", signed.revocation.certificate_hash), encode(signed.revocation))
    return b""


def _active_pseudonym(view: StateView, key: bytes) -> SignedPseudonymCertificate:
    raw = view.get(_key(b"pc/", key))
    if raw is None:
        raise ContractRejection("pseudonym has no published certificate")
    if view.get(_key(b"revp/", key)) is not None:
        raise ContractRejection("pseudonym certificate is revoked")
    return decode_as(SignedPseudonymCertificate, raw)


def process_evidence(
    config: IdentityConfig,
    view: StateView,
    evidence: ObligationEvidence,
    sender: bytes,
    ctx: BlockContext,
) -> bytes:
    """Record an accusation: the creditor says the debtor did not meet a signed obligation.

    Sent by the creditor's pseudonym key; both pseudonyms certified for the
    obligation's round and not revoked; both signatures; block time inside the
    dispute window after the deadline; obligation not closed; one accusation
    per obligation (:func:`verify_obligation_evidence`).
    """
    if sender != evidence.accuser:
        raise ContractRejection("evidence must be sent by the accuser's pseudonym key")
    reader = Reader(view.get)
    ob_hash = verify_obligation_evidence(
        evidence,
        reader.pseudonym_certificate(evidence.accused),
        reader.pseudonym_certificate(evidence.accuser),
        ctx.timestamp_ms // 1000,
        config.dispute_window_s,
    )
    _active_pseudonym(view, evidence.accused)
    _active_pseudonym(view, evidence.accuser)
    if view.get(_key(b"om/", ob_hash)) is not None:
        raise ContractRejection("the obligation was recorded as met")
    if view.get(_key(b"obe/", ob_hash)) is not None:
        raise ContractRejection("the obligation was already disputed")
    evidence_id = compute_evidence_id(evidence)
    if _is_evidence_recorded(view, evidence_id):  # unreachable: one per obligation
        raise ContractRejection("evidence already recorded")
    view.put(
        _key(b"ev/", evidence_id), encode(EvidenceRecord(evidence, ctx.height, ctx.timestamp_ms))
    )
    view.put(_key(b"obe/", ob_hash), evidence_id)
    return evidence_id


def _is_evidence_recorded(view: StateView, evidence_id: bytes) -> bool:
    return (
        view.get(_key(b"ev/", evidence_id)) is not None
        or view.get(_key(b"cev/", evidence_id)) is not None
    )


def get_contract_default(
    get_in: Callable[[str, bytes], bytes | None], evidence: ContractEvidence
) -> ContractDefault | None:
    """The :class:`ContractDefault` the pointer names, read in the source's namespace.

    Raises :class:`EvidenceRejected` if the value there is not a well-formed default.
    """
    raw = get_in(evidence.namespace, compute_contract_default_key(evidence.evidence_id))
    if raw is None:
        return None
    try:
        return decode_as(ContractDefault, raw)
    except CryptoError as exc:
        raise EvidenceRejected(f"malformed default record: {exc.reason}") from None


def process_contract_evidence(
    config: IdentityConfig, view: StateView, evidence: ContractEvidence, ctx: BlockContext
) -> bytes:
    """Record a default that an evidence source found from chain state (see the module doc).

    Nobody's word is taken: the namespace must be one the genesis names, the
    record is read from that namespace (which only its contract writes), the
    accused must be a published, unrevoked pseudonym of the record's round, and
    the block time inside the window (:func:`verify_contract_evidence`). Returns
    the identity evidence id, under which trustees' shares and the trace go.
    """
    check_evidence_source(evidence, config.evidence_sources)
    default = get_contract_default(view.get_in, evidence)
    accused = None if default is None else Reader(view.get).pseudonym_certificate(default.accused)
    verify_contract_evidence(evidence, default, accused, ctx.timestamp_ms, config.dispute_window_s)
    assert default is not None  # checked above
    _active_pseudonym(view, default.accused)
    evidence_id = compute_contract_evidence_id(evidence)
    if _is_evidence_recorded(view, evidence_id):
        raise ContractRejection("evidence already recorded")
    record = ContractEvidenceRecord(evidence, default, ctx.height, ctx.timestamp_ms)
    view.put(_key(b"cev/", evidence_id), encode(record))
    return evidence_id


def process_obligation_met(view: StateView, met: ObligationMet) -> bytes:
    """Close an obligation (creditor's signature): evidence against it is refused afterwards.

    The settlement layer's hook. Refused once the obligation is disputed (the
    creditor cannot erase an accusation it made) or already closed.
    """
    ob_hash = verify_obligation_met(met)
    if view.get(_key(b"obe/", ob_hash)) is not None:
        raise ContractRejection("the obligation is already disputed")
    if view.get(_key(b"om/", ob_hash)) is not None:
        raise ContractRejection("the obligation is already closed")
    view.put(_key(b"om/", ob_hash), b"\x01")
    return ob_hash


def _blacklist(view: StateView, member: bytes, certificate_hash: bytes, reason: bytes) -> None:
    """Blacklist the member key; revoke the certificate (hash) it was caught with."""
    view.put(_key(b"bl/", member), reason)
    if view.get(_key(b"rev/", certificate_hash)) is None:
        view.put(_key(b"rev/", certificate_hash), reason)


def process_trace(config: IdentityConfig, view: StateView, record: TraceRecord, now: int) -> bytes:
    """Re-verify a tracing and record it.

    Accountable (the consent in the tag verifies under the certificate the record
    carries): blacklist the member key, revoke that certificate and the pseudonym.
    Unaccountable: revoke the pseudonym only; a later record with the right
    certificate may complete it (so nobody can pre-empt a trace with an empty one).
    """
    accused = Reader(view.get).accused(record.evidence_id)  # either kind of evidence
    if accused is None:
        raise ContractRejection("no such evidence")
    previous_raw = view.get(_key(b"tr/", record.evidence_id))
    if previous_raw is not None and decode_as(TraceResult, previous_raw).accountable:
        raise ContractRejection("evidence already traced")
    cert_raw = view.get(_key(b"pc/", accused))
    if cert_raw is None:  # unreachable: evidence needs a published certificate
        raise ContractRejection("accused pseudonym certificate missing")
    cert = decode_as(SignedPseudonymCertificate, cert_raw).certificate
    plaintext, bad = compute_identity_from_record(
        config.tc_key,
        cert,
        record.evidence_id,
        record.shares,
        config.roots,
        now,
        revoked=get_revocations(view.get),
    )
    try:
        member = compute_accountable_member(
            config.tc_key, cert, plaintext, record.member_certificate, config.roots
        )
    except UnaccountableTrace as exc:
        if previous_raw is not None:
            raise ContractRejection("evidence already traced (unaccountable)") from None
        result = TraceResult(
            record.evidence_id,
            accused,
            plaintext.identity,
            b"",
            cert.round,
            bad,
            False,
            exc.reason,
        )
        view.put(_key(b"tr/", record.evidence_id), encode(result))
        view.put(_key(b"revp/", accused), record.evidence_id)
        return encode(result)
    result = TraceResult(
        record.evidence_id, accused, plaintext.identity, member, cert.round, bad, True, ""
    )
    view.put(_key(b"tr/", record.evidence_id), encode(result))
    view.put(_key(b"revp/", accused), record.evidence_id)
    _blacklist(view, member, plaintext.identity, record.evidence_id)
    return encode(result)


def process_cheating(config: IdentityConfig, view: StateView, evidence: CheatingEvidence) -> bytes:
    """Blacklist a user caught cheating in cut and choose (evidence re-run here)."""
    try:
        identity = verify_cheating_evidence(evidence, config.roots, config.tc_key)
    except CertificateRejected as exc:
        raise ContractRejection(f"cheating evidence rejected: {exc.reason}") from None
    member = get_evidence_member(evidence)
    if view.get(_key(b"bl/", member)) is not None:
        raise ContractRejection("member already blacklisted")
    _blacklist(view, member, identity, b"cut-and-choose")
    return member


def process_sweep(
    config: IdentityConfig, view: StateView, sweep: PseudonymSweep, now: int
) -> bytes:
    """Revoke the traced identity's other pseudonyms in one still-valid round (PET sweep).

    The trace must be on chain; the round's batch published and its certificates
    not yet expired at block time (a sweep finds *open* pseudonyms; expired rounds
    are not searched, so the traced user's past trades stay unlinked); one sweep
    per (trace, round). Every message and proof is re-checked
    (:func:`compute_sweep_matches`).
    """
    raw = view.get(_key(b"tr/", sweep.evidence_id))
    if raw is None:
        raise ContractRejection("no such trace")
    if view.get(_sweep_key(sweep.evidence_id, sweep.round)) is not None:
        raise ContractRejection("round already swept for this trace")
    reader = Reader(view.get)
    certificates = reader.round_certificates(sweep.round)
    trace = check_sweep_target(
        decode_as(TraceResult, raw), sweep.round, certificates, now
    )  # the trustees' rule too
    matches = compute_sweep_matches(
        config.tc_key,
        trace,
        certificates,
        sweep,
        config.roots,
        now,
        revoked=get_revocations(view.get),
    )
    revoked = tuple(k for k in matches if view.get(_key(b"revp/", k)) is None)
    for key in revoked:
        view.put(_key(b"revp/", key), sweep.evidence_id)
    result = SweepResult(sweep.evidence_id, sweep.round, trace.identity, revoked)
    view.put(_sweep_key(sweep.evidence_id, sweep.round), encode(result))
    return encode(result)
