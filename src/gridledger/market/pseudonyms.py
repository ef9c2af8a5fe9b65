"""The per-order pseudonym check, with the certificate-chain work cached.

Semantically this is :func:`gridledger.identity.verification.check_pseudonym_key_for_round`
(the identity layer's definition; a test runs both on every kind of pseudonym
and compares): the certificate published at ``pc/<key>`` is for the order's
round, valid at block time and not revoked (``revp/``); it names the MM pinned
at genesis; the MM's and the RM blind key's X.509 certificates chain to the
genesis roots, hold their role and permission at block time, and are not
revoked on chain (``rev/``).

The one difference is cost. Verifying the two X.509 chains is pure: it depends
only on the certificates, the roots and the second of block time, so its
result is memoised on exactly those (:func:`_get_issuers`); the revocation
lists are state, so they are read for every order. Without the cache the two
chain verifications dominate an order (about 1 ms of the ~1.5 ms an order
costs); with it a block of orders pays them once per second of block time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from gridledger.crypto.encoding import decode_as
from gridledger.crypto.errors import EncodingError
from gridledger.errors import ConfigError, CryptoError, IdentityError
from gridledger.identity.ca import Permission, Role, compute_certificate_hash, verify_member
from gridledger.identity.contracts import IdentityConfig
from gridledger.identity.genesis import read_identity_config
from gridledger.identity.messages import PseudonymCertificate, SignedPseudonymCertificate
from gridledger.identity.verification import IdentityReader
from gridledger.market.errors import CertificateRefused


@dataclass(frozen=True)
class _Issuers:
    """What one identity section and one second of block time say about the issuers."""

    config: IdentityConfig  # held so that its id() is not reused while cached
    mm_hash: bytes
    rm_hash: bytes
    reason: str  # "" if both chain to the roots and hold their roles at that second


_ISSUERS: dict[tuple[int, int], _Issuers] = {}
_MAX_CACHED = 64


def _get_issuers(config: IdentityConfig, now: int) -> _Issuers:
    """The pure part of the issuer check, memoised on (the parsed section, second).

    ``read_identity_config`` returns one object per distinct section, so its
    identity names the section; the entry keeps the object alive.
    """
    cached = _ISSUERS.get((id(config), now))
    if cached is not None and cached.config is config:
        return cached
    mm, rm = config.mm_certificate, config.rm_blind_certificate
    assert mm is not None  # checked by the caller
    try:
        verify_member(mm, config.roots, now, Role.MM, Permission.ISSUE_PSEUDONYM_CERTS)
        verify_member(rm, config.roots, now, Role.RM, Permission.SIGN_PSEUDONYMS)
        reason = ""
    except (IdentityError, CryptoError) as exc:
        reason = f"issuer no longer valid: {exc.reason}"
    entry = _Issuers(config, compute_certificate_hash(mm), compute_certificate_hash(rm), reason)
    if len(_ISSUERS) >= _MAX_CACHED:
        _ISSUERS.clear()
    _ISSUERS[(id(config), now)] = entry
    return entry


@functools.lru_cache(maxsize=4096)
def _decode_certificate(raw: bytes) -> PseudonymCertificate:
    return decode_as(SignedPseudonymCertificate, raw).certificate


def check_pseudonym(
    read: IdentityReader, pseudonym: bytes, round_: int, now_ms: int
) -> PseudonymCertificate:
    """The pseudonym's certificate if it may trade in ``round_`` at ``now_ms``; else
    :class:`CertificateRefused` with the reason."""
    try:
        config = read_identity_config(read)
    except ConfigError as exc:
        raise CertificateRefused(pseudonym, f"identity section unusable: {exc.reason}") from None
    if config is None or config.mm_certificate is None:
        raise CertificateRefused(pseudonym, "this chain has no identity section")
    raw = read(b"pc/" + pseudonym)
    if raw is None:
        raise CertificateRefused(pseudonym, "pseudonym has no published certificate")
    try:
        cert = _decode_certificate(raw)
    except EncodingError:  # unreachable: written by the identity contract
        raise CertificateRefused(pseudonym, "published certificate unreadable") from None
    if cert.round != round_:
        raise CertificateRefused(pseudonym, f"certificate is for round {cert.round}, not {round_}")
    if read(b"revp/" + pseudonym) is not None:
        raise CertificateRefused(pseudonym, "pseudonym is revoked")
    now = now_ms // 1000
    issuers = _get_issuers(config, now)
    if cert.mm != issuers.mm_hash:
        raise CertificateRefused(pseudonym, "certificate names another MM")
    reason = issuers.reason
    if not reason:
        for issuer_hash in (issuers.mm_hash, issuers.rm_hash):
            if read(b"rev/" + issuer_hash) is not None:
                reason = "issuer no longer valid: certificate is revoked"
    if reason:
        raise CertificateRefused(pseudonym, reason)
    if not cert.valid_from <= now < cert.valid_until:
        raise CertificateRefused(pseudonym, "outside the certificate's validity window")
    return cert
