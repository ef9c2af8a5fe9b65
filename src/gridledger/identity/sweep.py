"""Sweep: find a traced identity's *other* open pseudonyms without unmasking anyone else.

A traced user may already hold pseudonym certificates for later rounds (the RM
blind-signed them, the MM published them, nobody can tell which they are). Every
tag carries a revocation handle ``(a, b) = (g^s, M_J y^s)``, a plain ElGamal
encryption of ``M_J = g^{H(J)}`` for the registered identity ``J``, checked by the
RM's cut and choose like the rest of the tag. After the trace of ``I`` is on
chain, ``t`` trustees run a plaintext-equality test (Jakobsson-Juels) of every
handle of a round against ``M_I``:

1. **blind** (:func:`on_sweep_blind`): trustee ``i`` picks a fresh ``z_i`` per
   handle and publishes ``(a^{z_i}, (b / M_I)^{z_i})`` with a DLEQ proof (same
   ``z_i`` in both), all signed under its trustee certificate;
2. the products over at least ``t`` distinct trustees give
   ``(A, B) = (a^Z, (b / M_I)^Z)`` with ``Z = Σ z_i``; ``A = 1`` (``Z = 0``) is refused;
3. **decrypt** (:func:`on_sweep_decrypt`): each trustee returns ``A^{x_i}`` with a
   Chaum-Pedersen proof; ``t`` of them give ``A^x``;
4. ``B = A^x`` iff ``(M_J / M_I)^Z = 1`` iff ``J = I`` (the group has prime order
   and ``Z ≠ 0``).

What is revealed for an honest user's handle is ``(M_J / M_I)^Z`` with ``Z``
unknown to any coalition smaller than the contributors (at least one honest
trustee among ``t``): a uniformly random element under DDH, i.e. only "not
``I``". No decryption of ``M_J`` ever happens. The contract
(:func:`compute_sweep_matches`) re-checks every signature, index binding, DLEQ
and Chaum-Pedersen proof and revokes the matching pseudonyms.
"""

from __future__ import annotations

from collections.abc import Container, Sequence

import gmpy2
from cryptography import x509

from gridledger.crypto import threshold
from gridledger.crypto.encoding import encode
from gridledger.crypto.errors import DecryptionError, EncodingError, InvalidShare, InvalidSignature
from gridledger.crypto.groups import PrimeOrderGroup
from gridledger.crypto.hashing import HashTag, hash_value, register_tag
from gridledger.crypto.rng import Rng
from gridledger.crypto.sharing import lagrange_coefficient
from gridledger.crypto.signatures import RsaPublicKey
from gridledger.crypto.threshold import DecryptionShare, ThresholdCiphertext, ThresholdPublicKey
from gridledger.identity.ca import compute_certificate_der
from gridledger.identity.errors import TracingError
from gridledger.identity.messages import (
    SWEEP_BLINDINGS_TAG,
    SWEEP_SHARES_TAG,
    PetBlinding,
    PseudonymCertificate,
    PseudonymSweep,
    SignedSweepBlindings,
    SignedSweepShares,
    SweepBlindings,
    SweepShares,
    TraceResult,
)
from gridledger.identity.tags import compute_handle_plaintext, decode_tag
from gridledger.identity.trace_center import Trustee, verify_trustee

PET_DLEQ_TAG = register_tag("gridledger/identity/pet-dleq/1")


def _handles(
    pk: ThresholdPublicKey, identity: bytes, certificates: Sequence[PseudonymCertificate]
) -> list[tuple[int, int]]:
    """``(a, b / M_I)`` for each certificate's handle."""
    grp = pk.group
    m_inv = grp.inv(compute_handle_plaintext(grp, identity))
    out = []
    for cert in certificates:
        try:
            tag = decode_tag(pk, cert.tag)
        except EncodingError:
            raise TracingError("pseudonym certificate carries a malformed tag") from None
        out.append((tag.handle_a, grp.mul(tag.handle_b, m_inv)))
    return out


def _dleq_challenge(grp: PrimeOrderGroup, context: list[object], values: Sequence[int]) -> int:
    eb = grp.element_to_bytes
    digest = hash_value(PET_DLEQ_TAG, [grp.name, *context, *(eb(v) for v in values)])
    return int.from_bytes(digest, "big") % grp.q


def compute_blinding_context(
    trace: TraceResult, round_: int, trustee: int, position: int
) -> list[object]:
    """What a blinding's DLEQ proof is bound to: the trace, round, trustee and position."""
    return [trace.evidence_id, trace.identity, round_, trustee, position]


def compute_blinding(
    grp: PrimeOrderGroup, a: int, c: int, context: list[object], rng: Rng
) -> PetBlinding:
    """``(a^z, c^z)`` for a fresh ``z`` and a Fiat-Shamir DLEQ proof bound to ``context``."""
    return compute_blinding_with(grp, a, c, grp.random_scalar(rng), context, rng)


def compute_blinding_with(
    grp: PrimeOrderGroup, a: int, c: int, z: int, context: list[object], rng: Rng
) -> PetBlinding:
    """:func:`compute_blinding` for a given ``z`` (tests: colluding trustees)."""
    big_a, big_c = grp.exp_secret(a, z), grp.exp_secret(c, z)
    w = grp.random_scalar(rng)
    t1, t2 = grp.exp_secret(a, w), grp.exp_secret(c, w)
    e = _dleq_challenge(grp, context, (a, c, big_a, big_c, t1, t2))
    resp = int((w + e * gmpy2.mpz(z)) % grp.q)
    eb, sb = grp.element_to_bytes, grp.scalar_to_bytes
    return PetBlinding(eb(big_a), eb(big_c), sb(e), sb(resp))


def verify_blinding(
    grp: PrimeOrderGroup, a: int, c: int, blinding: PetBlinding, context: list[object]
) -> tuple[int, int]:
    """Check a blinding's DLEQ proof; return ``(a^z, c^z)``. Raises :class:`EncodingError`."""
    big_a = grp.element_from_bytes(blinding.a)
    big_c = grp.element_from_bytes(blinding.b)
    e = grp.scalar_from_bytes(blinding.challenge)
    resp = grp.scalar_from_bytes(blinding.response)
    if not (grp.is_element(big_a) and grp.is_element(big_c)):
        raise EncodingError("blinded handle is not a group element")
    t1 = grp.mul(grp.exp(a, resp), grp.inv(grp.exp(big_a, e)))
    t2 = grp.mul(grp.exp(c, resp), grp.inv(grp.exp(big_c, e)))
    if _dleq_challenge(grp, context, (a, c, big_a, big_c, t1, t2)) != e:
        raise EncodingError("blinding proof does not verify")
    return big_a, big_c


def check_sweep_target(
    trace: TraceResult | None,
    round_: int,
    certificates: Sequence[PseudonymCertificate],
    now: int,
) -> TraceResult:
    """The rule the contract and every trustee apply before a sweep of ``round_``.

    An *accountable* trace on chain (an unaccountable one names nobody: its handle
    identity may be a framed victim's); the round's published certificates; the
    round not expired at ``now`` (block time: the contract's block, or the
    trustee's f+1-agreed read). Trustees refuse exactly what the contract would,
    so an expired round's blindings and shares never exist, not even off chain.
    Raises :class:`TracingError`.
    """
    if trace is None:
        raise TracingError("no such trace on chain")
    if not trace.accountable:
        raise TracingError("the trace is unaccountable: nobody to sweep for")
    if not certificates:
        raise TracingError(f"round {round_} has no published batch")
    if any(c.round != round_ for c in certificates):
        raise TracingError("certificates are not one published round")
    if all(c.valid_until <= now for c in certificates):
        raise TracingError(f"round {round_} has expired")
    return trace


def on_sweep_blind(
    trustee: Trustee,
    trace: TraceResult | None,
    round_: int,
    certificates: Sequence[PseudonymCertificate],
    now: int,
    rng: Rng,
) -> SignedSweepBlindings:
    """Step 1: blind every handle of ``round_`` (certificates in on-chain order) against ``I``.

    ``trace``, ``certificates`` and ``now`` (block time) are what the trustee read
    from the chain, agreed by f+1 replicas (``None``: no trace, and the trustee
    refuses); :func:`check_sweep_target` must pass.
    """
    trace = check_sweep_target(trace, round_, certificates, now)
    grp = trustee.public_key.group
    handles = _handles(trustee.public_key, trace.identity, certificates)
    body = SweepBlindings(
        trace.evidence_id,
        round_,
        trustee.index,
        tuple(
            compute_blinding(
                grp, a, c, compute_blinding_context(trace, round_, trustee.index, k), rng
            )
            for k, (a, c) in enumerate(handles)
        ),
    )
    return SignedSweepBlindings(
        body,
        compute_certificate_der(trustee.certificate),
        trustee.signing_key.sign(SWEEP_BLINDINGS_TAG, encode(body)),
    )


def compute_combined_blindings(
    pk: ThresholdPublicKey,
    trace: TraceResult,
    round_: int,
    certificates: Sequence[PseudonymCertificate],
    messages: Sequence[SignedSweepBlindings],
    roots: Sequence[x509.Certificate],
    now: int,
    *,
    revoked: Container[bytes] = (),
) -> list[tuple[int, int]]:
    """Step 2: ``(A_k, B_k)`` per certificate from at least ``t`` distinct trustees' blindings.

    Every message must be authenticated (trustee certificate naming its index,
    signature), for this trace and round, with one valid DLEQ proof per handle;
    ``A_k = 1`` is refused. Raises :class:`TracingError`.
    """
    grp = pk.group
    handles = _handles(pk, trace.identity, certificates)
    combined = [(grp.identity, grp.identity) for _ in handles]
    seen: set[int] = set()
    for m in messages:
        body = m.body
        key = verify_trustee(m.trustee_certificate, roots, now, pk, body.trustee, revoked=revoked)
        _verify_signature(key, SWEEP_BLINDINGS_TAG, body, m.signature, body.trustee)
        if (body.evidence_id, body.round) != (trace.evidence_id, round_):
            raise TracingError("blindings are for another trace or round", (body.trustee,))
        if body.trustee in seen:
            raise TracingError(f"two blindings from trustee {body.trustee}", (body.trustee,))
        if len(body.blindings) != len(handles):
            raise TracingError("blindings do not cover the round", (body.trustee,))
        seen.add(body.trustee)
        for k, ((a, c), blinding) in enumerate(zip(handles, body.blindings, strict=True)):
            try:
                ai, ci = verify_blinding(
                    grp, a, c, blinding, compute_blinding_context(trace, round_, body.trustee, k)
                )
            except (EncodingError, ValueError):
                raise TracingError(f"blinding {k} is invalid", (body.trustee,)) from None
            combined[k] = (grp.mul(combined[k][0], ai), grp.mul(combined[k][1], ci))
    if len(seen) < pk.t:
        raise TracingError(f"blindings from {len(seen)} trustees, {pk.t} needed")
    if any(big_a == grp.identity for big_a, _ in combined):
        raise TracingError("combined blinding is trivial")
    return combined


def _verify_signature(
    key: RsaPublicKey, tag: HashTag, body: object, signature: bytes, who: int
) -> None:
    try:
        key.verify(tag, encode(body), signature)
    except (InvalidSignature, ValueError):
        raise TracingError("sweep message signature does not verify", (who,)) from None


def on_sweep_decrypt(
    trustee: Trustee,
    trace: TraceResult | None,
    round_: int,
    certificates: Sequence[PseudonymCertificate],
    blindings: Sequence[SignedSweepBlindings],
    roots: Sequence[x509.Certificate],
    now: int,
    rng: Rng,
) -> SignedSweepShares:
    """Step 3: check the blindings, then a decryption share of every combined ``A_k``.

    ``now`` is the block time of the trustee's f+1-agreed read (the same rule as
    step 1: :func:`check_sweep_target`).
    """
    trace = check_sweep_target(trace, round_, certificates, now)
    pk = trustee.public_key
    combined = compute_combined_blindings(pk, trace, round_, certificates, blindings, roots, now)
    shares = tuple(
        threshold.decryption_share(
            pk, trustee.key_share, ThresholdCiphertext(big_a, b"", b""), rng
        ).to_bytes(pk.group)
        for big_a, _ in combined
    )
    body = SweepShares(trace.evidence_id, round_, trustee.index, shares)
    return SignedSweepShares(
        body,
        compute_certificate_der(trustee.certificate),
        trustee.signing_key.sign(SWEEP_SHARES_TAG, encode(body)),
    )


def compute_sweep_matches(
    pk: ThresholdPublicKey,
    trace: TraceResult,
    certificates: Sequence[PseudonymCertificate],
    sweep: PseudonymSweep,
    roots: Sequence[x509.Certificate],
    now: int,
    *,
    revoked: Container[bytes] = (),
) -> tuple[bytes, ...]:
    """Step 4, as every replica runs it: the pseudonym keys whose handle encrypts ``M_I``.

    Strict: every blinding and share message must authenticate and verify, from
    distinct trustees, at least ``t`` of each; otherwise :class:`TracingError`.
    """
    if sweep.evidence_id != trace.evidence_id:
        raise TracingError("sweep names another trace")
    grp = pk.group
    combined = compute_combined_blindings(
        pk, trace, sweep.round, certificates, sweep.blindings, roots, now, revoked=revoked
    )
    per_cert: list[list[DecryptionShare]] = [[] for _ in combined]
    seen: set[int] = set()
    for m in sweep.shares:
        body = m.body
        key = verify_trustee(m.trustee_certificate, roots, now, pk, body.trustee, revoked=revoked)
        _verify_signature(key, SWEEP_SHARES_TAG, body, m.signature, body.trustee)
        if (body.evidence_id, body.round) != (trace.evidence_id, sweep.round):
            raise TracingError("shares are for another trace or round", (body.trustee,))
        if body.trustee in seen:
            raise TracingError(f"two share sets from trustee {body.trustee}", (body.trustee,))
        if len(body.shares) != len(combined):
            raise TracingError("shares do not cover the round", (body.trustee,))
        seen.add(body.trustee)
        for k, raw in enumerate(body.shares):
            try:
                share = DecryptionShare.from_bytes(raw, grp)
                if share.index != body.trustee:
                    raise InvalidShare(share.index, "share index differs from its signer")
                ct = ThresholdCiphertext(combined[k][0], b"", b"")
                threshold.verify_decryption_share(pk, ct, share)
            except (EncodingError, InvalidShare, DecryptionError, ValueError):
                raise TracingError(f"sweep share {k} is invalid", (body.trustee,)) from None
            per_cert[k].append(share)
    if len(seen) < pk.t:
        raise TracingError(f"shares from {len(seen)} trustees, {pk.t} needed")
    matches = []
    for cert, (_, big_b), shares in zip(certificates, combined, per_cert, strict=True):
        chosen = shares[: pk.t]
        indices = [s.index for s in chosen]
        ax = grp.identity
        for s in chosen:
            ax = grp.mul(ax, grp.exp(s.d, lagrange_coefficient(s.index, indices, grp.q)))
        if ax == big_b:
            matches.append(cert.pseudonym_key)
    return tuple(matches)
