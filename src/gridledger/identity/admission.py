"""Admitting members: a fresh key and a CA certificate, and the operator's revocations.

:func:`issue_member` is what the CA does for one applicant (a household, a role
service); :func:`create_signed_revocation` is the CA operator's signed
``identity.revoke`` payload, e.g. for a certificate superseded by a renewal
(:func:`gridledger.identity.ca.process_take_superseded`). Both are pure apart
from the injected ``rng``; posting and persisting happen at the edge
(:mod:`gridledger.identity.client`, :mod:`gridledger.identity.ca_register`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from gridledger.crypto.encoding import encode
from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import RsaPrivateKey
from gridledger.identity.ca import (
    CertificateAuthority,
    MemberAttributes,
    Permission,
    Role,
    compute_certificate_der,
    process_issue,
)
from gridledger.identity.messages import REVOCATION_TAG, Revocation, SignedRevocation

CLOCK_SKEW_S = 3600
DEFAULT_VALIDITY_S = 365 * 24 * 3600
SUPERSEDED_REASON = "superseded by renewal"


@dataclass(frozen=True)
class RoleKey:
    """A role's RSA key and its certificate."""

    key: RsaPrivateKey
    certificate: x509.Certificate


def issue_role_key(
    ca: CertificateAuthority,
    name: str,
    attributes: MemberAttributes,
    now: int,
    validity_s: int,
    rng: Rng,
    key: RsaPrivateKey | None = None,
) -> RoleKey:
    """A certificate for ``attributes`` (validity back-dated by :data:`CLOCK_SKEW_S`)."""
    key = key or RsaPrivateKey.generate(2048)
    cert = process_issue(ca, name, key.public_key, attributes, now - CLOCK_SKEW_S, validity_s, rng)
    return RoleKey(key, cert)


def issue_member(
    ca: CertificateAuthority,
    name: str,
    role: Role,
    now: int,
    rng: Rng,
    *,
    meter_id: str | None = None,
    permissions: Sequence[Permission] = (Permission.TRADE,),
    validity_s: int = DEFAULT_VALIDITY_S,
    key: RsaPrivateKey | None = None,
) -> RoleKey:
    """Admit a member (e.g. a household): a fresh RSA key and a certificate from the CA."""
    attrs = MemberAttributes(role.value, name, meter_id, tuple(p.value for p in permissions))
    return issue_role_key(ca, name, attrs, now, validity_s, rng, key)


def create_signed_revocation(
    operator: RoleKey, certificate_hash: bytes, reason: str, now: int
) -> SignedRevocation:
    """The operator's ``identity.revoke`` payload for the certificate ``certificate_hash``."""
    revocation = Revocation(certificate_hash, reason, now)
    return SignedRevocation(
        revocation,
        compute_certificate_der(operator.certificate),
        operator.key.sign(REVOCATION_TAG, encode(revocation)),
    )
