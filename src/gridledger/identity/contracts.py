"""The identity contract: the on-chain bulletin board of certificates, revocations and tracing.

Kinds (every replica runs the same checks, with the block time as "now"):

* ``identity.pseudonym-batch`` - :class:`PseudonymBatch` from the MM: MM certificate
  (role mm, permission issue-pseudonym-certs, not revoked on chain) and signature on
  every certificate, the RM's blind signature on every
  pseudonym (against the RM pseudonym key fixed at genesis), tag form; one batch
  per round, every pseudonym key and RM signature at most once.
* ``identity.revoke`` - :class:`SignedRevocation` by a member with permission revoke.
* ``identity.evidence`` - :class:`ObligationEvidence` sent *by the accuser's
  pseudonym key* (the transaction sender) against another published pseudonym.
* ``identity.trace-record`` - :class:`TraceRecord`: t valid decryption shares of
  the accused's tag, each signed by the trustee whose certificate (against the
  genesis roots, not revoked on chain, role tc-trustee, member id ``tc-<i>``) names
  the index the share claims; re-verified and decrypted here, then the identity is
  blacklisted, its X.509 certificate and the pseudonym certificate revoked.
* ``identity.sweep`` - :class:`PseudonymSweep`: after a trace, a plaintext-equality
  test of every handle of one still-valid round against the traced identity
  (:mod:`gridledger.identity.sweep`); the matching pseudonyms are revoked.
* ``identity.blacklist`` - :class:`CheatingEvidence` from a failed cut and choose;
  re-run here (:func:`verify_cheating_evidence`), then the identity is blacklisted.

State keys (namespace ``identity``): ``pc/<pk>`` pseudonym certificate,
``round/<n>`` batch published (its size), ``rpk/<n>/<i>`` the i-th pseudonym key of
round n's batch, ``rmsig/<h>`` used RM signature, ``rev/<hash>``
revoked member certificate, ``revp/<pk>`` revoked pseudonym, ``ev/<id>``
evidence, ``tr/<id>`` trace result, ``bl/<identity>`` blacklist entry,
``sw/<id>/<n>`` sweep result of trace ``id`` over round ``n``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509

from gridledger.crypto.blind_rsa import Variant
from gridledger.crypto.encoding import decode, decode_as, encode
from gridledger.crypto.errors import EncodingError, InvalidSignature
from gridledger.crypto.threshold import ThresholdPublicKey
from gridledger.errors import IdentityError
from gridledger.identity.ca import (
    Permission,
    get_rsa_key,
    load_certificate,
    verify_member,
)
from gridledger.identity.errors import CertificateRejected
from gridledger.identity.market_manager import (
    compute_rm_signature_hash,
    verify_pseudonym_certificate,
)
from gridledger.identity.messages import (
    REVOCATION_TAG,
    CheatingEvidence,
    EvidenceRecord,
    ObligationEvidence,
    PseudonymBatch,
    PseudonymCertificate,
    PseudonymSweep,
    SignedPseudonymCertificate,
    SignedRevocation,
    SweepResult,
    TraceRecord,
    TraceResult,
)
from gridledger.identity.registration import DEFAULT_VARIANT, verify_cheating_evidence
from gridledger.identity.sweep import compute_sweep_matches
from gridledger.identity.trace_center import compute_evidence_id, compute_identity_from_record
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
MAX_DESCRIPTION = 1024


@dataclass(frozen=True)
class IdentityConfig:
    """Genesis parameters: trusted roots, the RM's pseudonym-key certificate, the TC key."""

    roots: tuple[x509.Certificate, ...]
    rm_blind_certificate: x509.Certificate
    tc_key: ThresholdPublicKey
    variant: Variant = DEFAULT_VARIANT


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

    def trace(self, evidence_id: bytes) -> TraceResult | None:
        raw = self._get(_key(b"tr/", evidence_id))
        return None if raw is None else decode_as(TraceResult, raw)

    def is_blacklisted(self, identity: bytes) -> bool:
        return self._get(_key(b"bl/", identity)) is not None

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
            {KIND_BATCH, KIND_REVOKE, KIND_EVIDENCE, KIND_TRACE, KIND_BLACKLIST, KIND_SWEEP}
        )

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        try:
            return self._dispatch(view, tx, ctx)
        except (IdentityError, EncodingError, InvalidSignature) as exc:
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
            return process_evidence(view, evidence, tx.sender, ctx)
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
    """Publish one round's pseudonym certificates (all or nothing)."""
    if view.get(_round_key(batch.round)) is not None:
        raise ContractRejection(f"round {batch.round} already has its batch")
    mm_cert = load_certificate(batch.mm_certificate)
    revoked = get_revocations(view.get)
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
            max(now, cert.valid_from),  # may be published ahead of its round
            config.variant,
            revoked=revoked,  # the MM's or the RM blind key's certificate revoked on chain
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
    view: StateView, evidence: ObligationEvidence, sender: bytes, ctx: BlockContext
) -> bytes:
    """Record evidence against ``accused``, sent by the accuser's own pseudonym key."""
    if sender != evidence.accuser:
        raise ContractRejection("evidence must be sent by the accuser's pseudonym key")
    if evidence.accused == evidence.accuser:
        raise ContractRejection("a pseudonym cannot accuse itself")
    if len(evidence.description) > MAX_DESCRIPTION or len(evidence.obligation_id) > 64:
        raise ContractRejection("evidence fields too long")
    accused = _active_pseudonym(view, evidence.accused).certificate
    _active_pseudonym(view, evidence.accuser)
    if accused.round != evidence.round:
        raise ContractRejection("evidence names another round than the accused's certificate")
    evidence_id = compute_evidence_id(evidence)
    if view.get(_key(b"ev/", evidence_id)) is not None:
        raise ContractRejection("evidence already recorded")
    view.put(
        _key(b"ev/", evidence_id), encode(EvidenceRecord(evidence, ctx.height, ctx.timestamp_ms))
    )
    return evidence_id


def _blacklist(view: StateView, identity: bytes, reason: bytes) -> None:
    view.put(_key(b"bl/", identity), reason)
    view.put(_key(b"rev/", identity), reason)  # the identity is its certificate's hash


def process_trace(config: IdentityConfig, view: StateView, record: TraceRecord, now: int) -> bytes:
    """Re-verify a tracing, record it, blacklist the identity, revoke the pseudonym."""
    raw = view.get(_key(b"ev/", record.evidence_id))
    if raw is None:
        raise ContractRejection("no such evidence")
    if view.get(_key(b"tr/", record.evidence_id)) is not None:
        raise ContractRejection("evidence already traced")
    evidence = decode_as(EvidenceRecord, raw).evidence
    cert_raw = view.get(_key(b"pc/", evidence.accused))
    if cert_raw is None:  # unreachable: evidence needs a published certificate
        raise ContractRejection("accused pseudonym certificate missing")
    cert = decode_as(SignedPseudonymCertificate, cert_raw).certificate
    identity, bad = compute_identity_from_record(
        config.tc_key,
        cert,
        record.evidence_id,
        record.shares,
        config.roots,
        now,
        revoked=get_revocations(view.get),
    )
    result = TraceResult(record.evidence_id, evidence.accused, identity, cert.round, bad)
    view.put(_key(b"tr/", record.evidence_id), encode(result))
    view.put(_key(b"revp/", evidence.accused), record.evidence_id)
    _blacklist(view, identity, record.evidence_id)
    return encode(result)


def process_cheating(config: IdentityConfig, view: StateView, evidence: CheatingEvidence) -> bytes:
    """Blacklist a user caught cheating in cut and choose (evidence re-run here)."""
    try:
        identity = verify_cheating_evidence(evidence, config.roots, config.tc_key)
    except CertificateRejected as exc:
        raise ContractRejection(f"cheating evidence rejected: {exc.reason}") from None
    if view.get(_key(b"bl/", identity)) is not None:
        raise ContractRejection("identity already blacklisted")
    _blacklist(view, identity, b"cut-and-choose")
    return identity


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
    trace = decode_as(TraceResult, raw)
    if view.get(_sweep_key(sweep.evidence_id, sweep.round)) is not None:
        raise ContractRejection("round already swept for this trace")
    reader = Reader(view.get)
    certificates = reader.round_certificates(sweep.round)
    if not certificates:
        raise ContractRejection(f"round {sweep.round} has no published batch")
    if all(c.valid_until <= now for c in certificates):
        raise ContractRejection(f"round {sweep.round} has expired")
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
