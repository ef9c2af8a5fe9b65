"""Obligations: what an accusation must carry before anyone is traced.

Until the market and settlement layers exist, the identity layer accepts evidence
only against a *real* obligation: a trade agreement (:class:`Obligation`: round,
debtor and creditor pseudonym keys, obligation id, what is owed, deadline)
signed by **both** pseudonym keys. The creditor (and only the creditor) may
accuse the debtor, and only inside the dispute window ``(deadline, deadline +
window]``; one accusation per obligation. An obligation closed by
``identity.obligation-met`` (signed by its creditor; the settlement layer's hook)
can no longer be disputed.

What this does *not* prevent: a creditor lying about non-fulfilment of a real
obligation the debtor signed. Only the settlement layer, recording fulfilment on
chain (``identity.obligation-met``), removes that; until then the accused is a
pseudonym that did sign an obligation with its accuser.

The same checks run in the contract (at the recording block) and at every
trustee before it releases a decryption share (:func:`verify_obligation_evidence`).
"""

from __future__ import annotations

from gridledger.crypto.encoding import encode
from gridledger.crypto.errors import InvalidSignature, KeyFormatError
from gridledger.crypto.hashing import HashTag, hash_value, register_tag
from gridledger.crypto.signatures import Ed25519PrivateKey, Ed25519PublicKey
from gridledger.identity.errors import EvidenceRejected, InvalidTimestamp, check_timestamp
from gridledger.identity.messages import (
    OBLIGATION_MET_TAG,
    OBLIGATION_TAG,
    Obligation,
    ObligationEvidence,
    ObligationMet,
    SignedObligation,
    SignedPseudonymCertificate,
)

OBLIGATION_HASH_TAG = register_tag("gridledger/identity/obligation-hash/1")
DEFAULT_DISPUTE_WINDOW_S = 3600
MAX_DESCRIPTION = 1024
MAX_OBLIGATION_ID = 64


def compute_obligation_hash(obligation: Obligation) -> bytes:
    """The obligation's identity on chain (one accusation, one closure per hash)."""
    return hash_value(OBLIGATION_HASH_TAG, obligation)


def create_signed_obligation(
    obligation: Obligation, debtor: Ed25519PrivateKey, creditor: Ed25519PrivateKey
) -> SignedObligation:
    """Both parties sign the agreement with their pseudonym keys (tests, demo, market)."""
    body = encode(obligation)
    return SignedObligation(
        obligation, debtor.sign(OBLIGATION_TAG, body), creditor.sign(OBLIGATION_TAG, body)
    )


def create_obligation_met(obligation: Obligation, creditor: Ed25519PrivateKey) -> ObligationMet:
    """The creditor's statement that ``obligation`` was met (closes it)."""
    return ObligationMet(obligation, creditor.sign(OBLIGATION_MET_TAG, encode(obligation)))


def _verify_ed25519(key: bytes, tag: HashTag, body: bytes, signature: bytes, who: str) -> None:
    try:
        Ed25519PublicKey(key).verify(tag, body, signature)
    except (InvalidSignature, KeyFormatError, ValueError):
        raise EvidenceRejected(f"the {who}'s signature on the obligation does not verify") from None


def verify_obligation_form(obligation: Obligation) -> None:
    """Field sizes, deadline range, two distinct parties."""
    if len(obligation.obligation_id) > MAX_OBLIGATION_ID or len(obligation.owed) > MAX_DESCRIPTION:
        raise EvidenceRejected("obligation fields too long")
    if len(obligation.debtor) != 32 or len(obligation.creditor) != 32:
        raise EvidenceRejected("obligation parties must be 32-byte pseudonym keys")
    if obligation.debtor == obligation.creditor:
        raise EvidenceRejected("a pseudonym cannot owe itself")
    try:
        check_timestamp("deadline", obligation.deadline)
    except InvalidTimestamp as exc:
        raise EvidenceRejected(exc.reason) from None


def verify_obligation_met(met: ObligationMet) -> bytes:
    """Check a closure (creditor's signature); return the obligation hash."""
    verify_obligation_form(met.obligation)
    _verify_ed25519(
        met.obligation.creditor,
        OBLIGATION_MET_TAG,
        encode(met.obligation),
        met.creditor_signature,
        "creditor",
    )
    return compute_obligation_hash(met.obligation)


def verify_obligation_evidence(
    evidence: ObligationEvidence,
    accused: SignedPseudonymCertificate | None,
    accuser: SignedPseudonymCertificate | None,
    at: int,
    dispute_window_s: int,
) -> bytes:
    """Check an accusation at time ``at`` (the recording block's); return the obligation hash.

    ``accused`` / ``accuser``: the on-chain pseudonym certificates of the debtor and
    creditor keys (``None``: not published). Checks: form; both pseudonyms certified
    for the obligation's round; both signatures on the obligation; ``deadline < at
    <= deadline + dispute_window_s``. Revocation, closure and "one accusation per
    obligation" are state checks of the caller. Raises :class:`EvidenceRejected`.
    """
    signed = evidence.obligation
    ob = signed.obligation
    verify_obligation_form(ob)
    if len(evidence.description) > MAX_DESCRIPTION:
        raise EvidenceRejected("evidence description too long")
    for cert, key, who in ((accused, ob.debtor, "debtor"), (accuser, ob.creditor, "creditor")):
        if cert is None or cert.certificate.pseudonym_key != key:
            raise EvidenceRejected(f"the {who} pseudonym has no published certificate")
        if cert.certificate.round != ob.round:
            raise EvidenceRejected(f"the {who} pseudonym is certified for another round")
    body = encode(ob)
    _verify_ed25519(ob.debtor, OBLIGATION_TAG, body, signed.debtor_signature, "debtor")
    _verify_ed25519(ob.creditor, OBLIGATION_TAG, body, signed.creditor_signature, "creditor")
    if not 0 < dispute_window_s < (1 << 32):
        raise EvidenceRejected("dispute window out of range")
    if at <= ob.deadline:
        raise EvidenceRejected("the obligation's deadline has not passed")
    if at > ob.deadline + dispute_window_s:
        raise EvidenceRejected("the obligation's dispute window has closed")
    return compute_obligation_hash(ob)
