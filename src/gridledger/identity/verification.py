"""Checking a pseudonym against chain state: what the market runs on every order.

Other packages' contracts read the identity namespace through a *reader*, a
function from a key of the ``identity`` namespace to its value
(:func:`get_identity_reader` makes one from any contract's ``StateView``). Two
checks, both deterministic functions of (state, arguments):

* :func:`check_pseudonym_for_round` - may this pseudonym act in ``round_`` at
  ``now_ms`` (block time)? In order: the chain has an identity section; the
  certificate is for ``round_``; it is *exactly* the one published on chain at
  ``pc/<key>`` (so the MM's and the RM's signatures, the tag's form, the serial
  and the key's uniqueness were all verified by the identity contract at
  publication; no RSA verification per order); the pseudonym is not revoked
  (``revp/``: a trace or a sweep); the MM that issued it is the one pinned at
  genesis and its certificate is still valid and not revoked, and so is the RM's
  blind-key certificate; block time lies in the certificate's window.
  Any failure is one :class:`~gridledger.identity.errors.PseudonymRefused` with a
  reason and the pseudonym key.
* :func:`verify_pseudonym_on_chain` - the full cryptographic check of a
  certificate that need not be published yet (as
  :func:`~gridledger.identity.pseudonym_issuer.verify_pseudonym_certificate`),
  with the genesis's roots and keys and the chain's revocation lists.

Both honour pseudonym revocations: a pseudonym revoked after a trace is refused
by every path, not only by the identity contract's own evidence checks.
"""

from __future__ import annotations

from collections.abc import Callable

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.errors import EncodingError
from gridledger.errors import ConfigError, CryptoError, IdentityError
from gridledger.identity.ca import (
    Permission,
    Role,
    compute_certificate_hash,
    verify_member,
)
from gridledger.identity.contracts import NAMESPACE, IdentityConfig, OnChainSet
from gridledger.identity.errors import PseudonymRefused
from gridledger.identity.genesis import read_identity_config
from gridledger.identity.messages import PseudonymCertificate, SignedPseudonymCertificate
from gridledger.identity.pseudonym_issuer import verify_pseudonym_certificate
from gridledger.ledger.contracts import StateView

IdentityReader = Callable[[bytes], bytes | None]
"""A read of the identity namespace: relative key (``b"pc/..."``) -> value or ``None``."""


def get_identity_reader(view: StateView) -> IdentityReader:
    """A reader of the identity namespace from any contract's view (read-only)."""
    if view.namespace == NAMESPACE:
        return view.get
    return lambda key: view.get_in(NAMESPACE, key)


def get_revoked_certificates(read: IdentityReader) -> OnChainSet:
    """The chain's revoked member certificates (hashes), as a container."""
    return OnChainSet(read, b"rev/")


def get_revoked_pseudonyms(read: IdentityReader) -> OnChainSet:
    """The chain's revoked pseudonyms (keys: traced, swept), as a container."""
    return OnChainSet(read, b"revp/")


def is_pseudonym_revoked(read: IdentityReader, pseudonym_key: bytes) -> bool:
    return read(b"revp/" + pseudonym_key) is not None


def _get_config(read: IdentityReader, key: bytes, round_: int) -> IdentityConfig:
    try:
        config = read_identity_config(read)
    except ConfigError as exc:
        raise PseudonymRefused(f"identity section unusable: {exc.reason}", key, round_) from None
    if config is None:
        raise PseudonymRefused("this chain has no identity section", key, round_)
    return config


def check_pseudonym_for_round(
    read: IdentityReader,
    certificate: SignedPseudonymCertificate,
    round_: int,
    now_ms: int,
) -> PseudonymCertificate:
    """The certificate, if its pseudonym may act in ``round_`` at block time ``now_ms``.

    See the module docstring for the checks; raises :class:`PseudonymRefused`.
    """
    cert = certificate.certificate
    key = cert.pseudonym_key
    config = _get_config(read, key, round_)
    if cert.round != round_:
        raise PseudonymRefused(f"certificate is for round {cert.round}, not {round_}", key, round_)
    if read(b"pc/" + key) != encode(certificate):
        raise PseudonymRefused("certificate is not the one published on chain", key, round_)
    if is_pseudonym_revoked(read, key):
        raise PseudonymRefused("pseudonym is revoked", key, round_)
    now = now_ms // 1000
    revoked = get_revoked_certificates(read)
    assert config.mm_certificate is not None  # always set from a genesis
    if cert.mm != compute_certificate_hash(config.mm_certificate):
        raise PseudonymRefused("certificate names another MM", key, round_)
    try:
        verify_member(
            config.mm_certificate, config.roots, now, Role.MM,
            Permission.ISSUE_PSEUDONYM_CERTS, revoked=revoked,
        )  # fmt: skip
        verify_member(
            config.rm_blind_certificate, config.roots, now, Role.RM,
            Permission.SIGN_PSEUDONYMS, revoked=revoked,
        )  # fmt: skip
    except IdentityError as exc:
        raise PseudonymRefused(f"issuer no longer valid: {exc.reason}", key, round_) from None
    if not cert.valid_from <= now < cert.valid_until:
        raise PseudonymRefused("outside the certificate's validity window", key, round_)
    return cert


def check_pseudonym_key_for_round(
    read: IdentityReader, pseudonym_key: bytes, round_: int, now_ms: int
) -> PseudonymCertificate:
    """Like :func:`check_pseudonym_for_round` for the certificate published for a key
    (an order that carries only its pseudonym key, e.g. as the transaction's sender)."""
    raw = read(b"pc/" + pseudonym_key)
    if raw is None:
        raise PseudonymRefused("pseudonym has no published certificate", pseudonym_key, round_)
    try:
        signed = decode_as(SignedPseudonymCertificate, raw)
    except EncodingError:  # unreachable: written by the identity contract
        raise PseudonymRefused("published certificate unreadable", pseudonym_key, round_) from None
    return check_pseudonym_for_round(read, signed, round_, now_ms)


def verify_pseudonym_on_chain(
    read: IdentityReader,
    certificate: SignedPseudonymCertificate,
    now: int,
    *,
    ahead: bool = False,
) -> PseudonymCertificate:
    """The full check of a pseudonym certificate (signatures, tag, serial, window at ``now``
    seconds) against the genesis's roots and keys and the chain's revocations (member
    certificates and pseudonyms). Raises :class:`PseudonymRefused`."""
    cert = certificate.certificate
    config = _get_config(read, cert.pseudonym_key, cert.round)
    assert config.mm_certificate is not None
    try:
        return verify_pseudonym_certificate(
            certificate,
            config.mm_certificate,
            config.rm_blind_certificate,
            config.roots,
            config.tc_key,
            now,
            config.variant,
            revoked=get_revoked_certificates(read),
            revoked_pseudonyms=get_revoked_pseudonyms(read),
            ahead=ahead,
        )
    except (IdentityError, CryptoError) as exc:
        raise PseudonymRefused(exc.reason, cert.pseudonym_key, cert.round) from None
