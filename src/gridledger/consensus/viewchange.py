"""Pure pieces of the PBFT view change: validating proofs and computing the O set.

Follows the signature-based protocol of Castro & Liskov (OSDI'99, §4.4): a
VIEW-CHANGE carries the sender's stable checkpoint (here a commit certificate)
and, for every sequence number above it that prepared at the sender, the
prepared certificate of the highest view (the signed pre-prepare and 2f signed
matching prepares). The new primary collects 2f+1 of them and computes

    min-s = the highest stable checkpoint among them,
    max-s = the highest prepared seq among them,
    O     = for each seq in (min-s, max-s]: a pre-prepare for the batch of the
            highest-view prepared certificate at seq, or a null request.

Backups recompute O from the same view changes and accept the NEW-VIEW only if
it matches exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gridledger.consensus.errors import BadEnvelope
from gridledger.consensus.messages import (
    Authenticator,
    Prepare,
    PreparedProof,
    PrePrepare,
    ViewChange,
    compute_batch_digest,
    decode_message,
)
from gridledger.consensus.quorum import compute_f, compute_prepared_quorum
from gridledger.ledger.certificate import (
    CertificateError,
    CommitCertificate,
    Validator,
    verify_certificate,
)

NULL_TIMESTAMP_MS = 0


@dataclass(frozen=True)
class ProofContext:
    """What validating a view change needs: the consortium and its parameters."""

    chain_id: str
    validators: tuple[Validator, ...]
    watermark_window: int

    @property
    def n(self) -> int:
        return len(self.validators)

    @property
    def f(self) -> int:
        return compute_f(self.n)

    def get_primary(self, view: int) -> int:
        return self.validators[view % self.n].replica_id


def compute_null_pre_prepare(view: int, seq: int) -> PrePrepare:
    """The null request a new primary assigns to a gap in the O set."""
    return PrePrepare(view, seq, compute_batch_digest(NULL_TIMESTAMP_MS, ()), (), NULL_TIMESTAMP_MS)


def get_proof_pre_prepare(auth: Authenticator, proof: PreparedProof) -> PrePrepare:
    """Open the pre-prepare of a proof (signature checked); raises ``BadEnvelope``."""
    msg = auth.open(proof.pre_prepare)
    if not isinstance(msg, PrePrepare):
        raise BadEnvelope("malformed")
    return msg


def get_checked_pre_prepare(proof: PreparedProof) -> PrePrepare:
    """Decode the pre-prepare of a proof that was already validated (no signature check)."""
    msg = decode_message(proof.pre_prepare.body)
    if not isinstance(msg, PrePrepare):
        raise BadEnvelope("malformed")
    return msg


def get_valid_proof_pre_prepare(
    ctx: ProofContext, auth: Authenticator, proof: PreparedProof, new_view: int, low: int
) -> PrePrepare | None:
    """The proof's pre-prepare if the proof holds: signed by the primary of its view, with
    2f matching prepares signed by distinct backups; otherwise ``None``."""
    try:
        pp = get_proof_pre_prepare(auth, proof)
    except BadEnvelope:
        return None
    primary = ctx.get_primary(pp.view)
    if proof.pre_prepare.sender != primary or pp.view >= new_view:
        return None
    if not low < pp.seq <= low + ctx.watermark_window:
        return None
    if compute_batch_digest(pp.timestamp_ms, pp.batch) != pp.batch_digest:
        return None
    senders: set[int] = set()
    for env in proof.prepares:
        if env.sender == primary or env.sender in senders:
            return None
        try:
            p = auth.open(env)
        except BadEnvelope:
            return None
        if p != Prepare(pp.view, pp.seq, pp.batch_digest):
            return None
        senders.add(env.sender)
    return pp if len(senders) >= compute_prepared_quorum(ctx.n) else None


def is_valid_checkpoint_proof(ctx: ProofContext, auth: Authenticator, vc: ViewChange) -> bool:
    """The stable checkpoint claimed by a view change is backed by a certificate."""
    if vc.stable_seq == 0:
        return vc.checkpoint_proof is None
    cert = vc.checkpoint_proof
    if cert is None or cert.height != vc.stable_seq:
        return False
    auth.verifications += len(cert.signatures)
    try:
        verify_certificate(cert, ctx.validators, chain_id=ctx.chain_id)
    except CertificateError:
        return False
    return True


def is_valid_view_change(ctx: ProofContext, auth: Authenticator, vc: ViewChange) -> bool:
    """Check a VIEW-CHANGE's checkpoint certificate and every prepared proof in it."""
    if vc.new_view < 1 or vc.stable_seq < 0:
        return False
    if not is_valid_checkpoint_proof(ctx, auth, vc):
        return False
    seqs: set[int] = set()
    for proof in vc.prepared_proofs:
        pp = get_valid_proof_pre_prepare(ctx, auth, proof, vc.new_view, vc.stable_seq)
        if pp is None or pp.seq in seqs:
            return False
        seqs.add(pp.seq)
    return True


def get_min_s(view_changes: Sequence[ViewChange]) -> tuple[int, CommitCertificate | None]:
    """The highest stable checkpoint among the view changes, with its certificate."""
    best = max(view_changes, key=lambda vc: vc.stable_seq)
    return best.stable_seq, best.checkpoint_proof


def compute_new_view_pre_prepares(
    view: int, view_changes: Sequence[ViewChange]
) -> list[PrePrepare]:
    """The O set for ``view`` (proofs must already be valid): one pre-prepare per seq."""
    min_s, _ = get_min_s(view_changes)
    chosen: dict[int, PrePrepare] = {}
    for vc in view_changes:
        for proof in vc.prepared_proofs:
            cand = get_checked_pre_prepare(proof)
            if cand.seq <= min_s:
                continue
            best = chosen.get(cand.seq)
            if best is None or cand.view > best.view:
                chosen[cand.seq] = cand
    max_s = max(chosen, default=min_s)
    out: list[PrePrepare] = []
    for seq in range(min_s + 1, max_s + 1):
        pp = chosen.get(seq)
        if pp is None:
            out.append(compute_null_pre_prepare(view, seq))
        else:
            out.append(PrePrepare(view, seq, pp.batch_digest, pp.batch, pp.timestamp_ms))
    return out
