"""The identity section of a genesis: what every replica needs to build the identity contract.

The genesis carries, as initial state in the ``identity`` namespace (keys under
``genesis/``, which the contract never writes):

* ``identity/genesis/roots``: the trusted CA root certificates (DER, canonical list);
* ``identity/genesis/rm-pseudonym-certificate``: the RM's blind-key certificate (DER),
  the one key households pin (:func:`get_pinned_rm_blind_certificate`);
* ``identity/genesis/tc-key``: the TC threshold public key (``ThresholdPublicKey.to_bytes``);
* ``identity/genesis/mm-certificate``: the MM's certificate (DER): only it may
  publish pseudonym batches;
* ``identity/genesis/evidence-sources`` (optional): :class:`EvidenceSources`, the
  namespaces whose contracts write ``default/<id>`` records that the identity
  contract accepts as evidence (``identity.contract-evidence``); absent: none. Only
  written when non-empty, so older genesis sections (and their hashes) stay valid.

:func:`get_identity_config` reads them back, validating everything (each root a
self-signed CA certificate, the RM key certified by a root with
``sign-pseudonyms`` and the MM certified with ``issue-pseudonym-certs`` at
genesis time, the TC key well formed and consistent) and turning any problem
into one :class:`~gridledger.errors.ConfigError`, so a replica refuses a corrupt
genesis before it starts instead of diverging later. A genesis with none of the
four keys has no identity contract (KV only); a partial one is corrupt, and so is an
evidence-source list without them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature

from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.errors import EncodingError, KeyFormatError, SharingError
from gridledger.crypto.threshold import ThresholdPublicKey
from gridledger.errors import ConfigError, CryptoError, IdentityError
from gridledger.identity.ca import (
    Permission,
    Role,
    compute_certificate_der,
    get_rsa_key,
    load_certificate,
    verify_member,
)
from gridledger.identity.contracts import NAMESPACE, IdentityConfig
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.contracts import is_valid_namespace
from gridledger.ledger.contracts_builtin import KvContract

GENESIS_ROOTS_KEY = b"identity/genesis/roots"
GENESIS_RM_PSEUDONYM_KEY = b"identity/genesis/rm-pseudonym-certificate"
GENESIS_TC_KEY = b"identity/genesis/tc-key"
GENESIS_MM_KEY = b"identity/genesis/mm-certificate"
GENESIS_EVIDENCE_SOURCES_KEY = b"identity/genesis/evidence-sources"
GENESIS_IDENTITY_KEYS = (
    GENESIS_ROOTS_KEY,
    GENESIS_RM_PSEUDONYM_KEY,
    GENESIS_TC_KEY,
    GENESIS_MM_KEY,
)
MAX_EVIDENCE_SOURCES = 16
# Namespaces that can never be evidence sources: anyone writes any key in the KV one.
_FORBIDDEN_SOURCES = frozenset({NAMESPACE, KvContract().namespace})


# The wire name predates the move out of node/; it is kept because it is hashed into
# every existing genesis (renaming it would change the genesis hash of existing chains).
@wire_type("node.identity-roots/1")
@dataclass(frozen=True)
class GenesisRoots:
    """The trusted root certificates (DER), as stored in the genesis state."""

    certificates: tuple[bytes, ...]


@wire_type("identity.evidence-sources/1")
@dataclass(frozen=True)
class EvidenceSources:
    """Namespaces whose contracts' ``default/<id>`` records are evidence for tracing."""

    namespaces: tuple[str, ...]


def compute_identity_genesis_state(
    roots: Sequence[x509.Certificate],
    rm_pseudonym_certificate: x509.Certificate,
    tc_key: ThresholdPublicKey,
    mm_certificate: x509.Certificate,
    evidence_sources: Sequence[str] = (),
) -> dict[bytes, bytes]:
    """The genesis state entries (full keys) from which replicas build the identity contract.

    ``evidence_sources``: e.g. ``("market",)``; checked here as replicas will check it
    (:class:`ConfigError`), and written only if non-empty.
    """
    state = {
        GENESIS_ROOTS_KEY: encode(GenesisRoots(tuple(compute_certificate_der(c) for c in roots))),
        GENESIS_RM_PSEUDONYM_KEY: compute_certificate_der(rm_pseudonym_certificate),
        GENESIS_TC_KEY: tc_key.to_bytes(),
        GENESIS_MM_KEY: compute_certificate_der(mm_certificate),
    }
    state.update(compute_evidence_sources_state(evidence_sources))
    return state


def compute_evidence_sources_state(evidence_sources: Sequence[str]) -> dict[bytes, bytes]:
    """The optional genesis entry naming evidence sources (``{}`` for none), to add to an
    identity section built elsewhere. Raises :class:`ConfigError` as replicas would."""
    if not evidence_sources:
        return {}
    raw = encode(EvidenceSources(tuple(evidence_sources)))
    compute_evidence_sources(raw)
    return {GENESIS_EVIDENCE_SOURCES_KEY: raw}


def compute_evidence_sources(raw: bytes | None) -> tuple[str, ...]:
    """Parse the evidence-source entry (``None``: absent, no sources).

    Each a valid namespace, not identity's own nor the KV contract's (anyone writes
    there), no duplicates, at most :data:`MAX_EVIDENCE_SOURCES`, and not an empty
    list (absent is the one spelling of "none"). Raises :class:`ConfigError`.
    """
    if raw is None:
        return ()
    try:
        namespaces = decode_as(EvidenceSources, raw).namespaces
    except EncodingError as exc:
        raise ConfigError(f"genesis: malformed evidence sources ({exc.reason})") from None
    if not 0 < len(namespaces) <= MAX_EVIDENCE_SOURCES:
        raise ConfigError(f"genesis: evidence sources must name 1..{MAX_EVIDENCE_SOURCES}")
    if len(set(namespaces)) != len(namespaces):
        raise ConfigError("genesis: an evidence source is named twice")
    for ns in namespaces:
        if not is_valid_namespace(ns) or ns in _FORBIDDEN_SOURCES:
            raise ConfigError(f"genesis: {ns!r} cannot be an evidence source")
    return namespaces


def check_root(cert: x509.Certificate, i: int) -> None:
    """Raise :class:`ConfigError` unless ``cert`` is a self-signed CA certificate."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        bc = None
    if bc is None or not bc.ca:
        raise ConfigError(f"genesis: root certificate {i} is not a CA certificate")
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, _CryptoInvalidSignature):
        raise ConfigError(f"genesis: root certificate {i} is not self-signed") from None


def is_identity_genesis(genesis: GenesisConfig) -> bool:
    """Whether the genesis carries any identity material (complete or not)."""
    return any(
        key in GENESIS_IDENTITY_KEYS or key == GENESIS_EVIDENCE_SOURCES_KEY
        for key, _ in genesis.state
    )


def get_identity_config(genesis: GenesisConfig) -> IdentityConfig | None:
    """The identity contract's configuration from the genesis state (``None``: no identity).

    Raises :class:`ConfigError` if the material is partial, malformed or inconsistent,
    or if the RM's blind key or the MM is not certified for its role at genesis time.
    """
    state = dict(genesis.state)
    config = compute_identity_config(
        state.get(GENESIS_ROOTS_KEY),
        state.get(GENESIS_RM_PSEUDONYM_KEY),
        state.get(GENESIS_TC_KEY),
        state.get(GENESIS_MM_KEY),
        state.get(GENESIS_EVIDENCE_SOURCES_KEY),
    )
    if config is None:
        return None
    when = genesis.timestamp_ms // 1000
    assert config.mm_certificate is not None  # always set from a genesis
    _check_role(config.rm_blind_certificate, config.roots, when, Role.RM,
                Permission.SIGN_PSEUDONYMS, "RM pseudonym-key certificate")  # fmt: skip
    _check_role(config.mm_certificate, config.roots, when, Role.MM,
                Permission.ISSUE_PSEUDONYM_CERTS, "MM certificate")  # fmt: skip
    return config


def read_identity_config(read: Callable[[bytes], bytes | None]) -> IdentityConfig | None:
    """The identity configuration from chain state (``read``: a key of the ``identity``
    namespace -> value), ``None`` if the chain has no identity section.

    For contracts of other packages (the market) that must check pseudonyms against
    the genesis's roots and keys. Parsed once per distinct section (cached: the
    section never changes after genesis). Raises :class:`ConfigError` if corrupt.
    """
    n = len(NAMESPACE) + 1
    keys = (*GENESIS_IDENTITY_KEYS, GENESIS_EVIDENCE_SOURCES_KEY)
    return compute_identity_config(*(read(key[n:]) for key in keys))


@functools.lru_cache(maxsize=16)
def compute_identity_config(
    roots_raw: bytes | None,
    rm_raw: bytes | None,
    tc_raw: bytes | None,
    mm_raw: bytes | None,
    sources_raw: bytes | None = None,
) -> IdentityConfig | None:
    """Parse the four genesis entries (``None`` where absent) and the optional evidence
    sources; roots must be self-signed CA certificates, the TC key consistent. ``None``
    if all are absent."""
    raw = dict(zip(GENESIS_IDENTITY_KEYS, (roots_raw, rm_raw, tc_raw, mm_raw), strict=True))
    missing = [k.decode() for k, v in raw.items() if v is None]
    if len(missing) == len(raw) and sources_raw is None:
        return None
    if missing:
        raise ConfigError(f"genesis: identity material incomplete (missing {', '.join(missing)})")
    assert roots_raw is not None and rm_raw is not None and tc_raw is not None
    assert mm_raw is not None
    try:
        wire = decode_as(GenesisRoots, roots_raw)
        roots = tuple(load_certificate(der) for der in wire.certificates)
    except (EncodingError, IdentityError) as exc:
        raise ConfigError(f"genesis: malformed root certificates ({exc.reason})") from None
    if not roots:
        raise ConfigError("genesis: identity material names no root certificate")
    for i, root in enumerate(roots):
        check_root(root, i)
    rm_cert = _load_role_certificate(rm_raw, "RM pseudonym-key certificate")
    try:
        tc_key = ThresholdPublicKey.from_bytes(tc_raw)
        tc_key.check_consistency()
    except (EncodingError, KeyFormatError, SharingError) as exc:
        raise ConfigError(f"genesis: malformed TC key ({exc.reason})") from None
    mm_cert = _load_role_certificate(mm_raw, "MM certificate")
    sources = compute_evidence_sources(sources_raw)
    return IdentityConfig(roots, rm_cert, tc_key, mm_cert, evidence_sources=sources)


def _load_role_certificate(der: bytes, what: str) -> x509.Certificate:
    try:
        cert = load_certificate(der)
        get_rsa_key(cert)
    except IdentityError as exc:
        raise ConfigError(f"genesis: {what} refused ({exc.reason})") from None
    return cert


def _check_role(
    cert: x509.Certificate,
    roots: Sequence[x509.Certificate],
    when: int,
    role: Role,
    permission: Permission,
    what: str,
) -> None:
    try:
        verify_member(cert, roots, when, role, permission)
    except IdentityError as exc:
        raise ConfigError(f"genesis: {what} refused ({exc.reason})") from None
    except CryptoError as exc:
        raise ConfigError(f"genesis: {what} unusable ({exc.reason})") from None


def get_pinned_rm_blind_certificate(genesis: GenesisConfig) -> x509.Certificate:
    """The RM blind-key certificate named at genesis: the only one a household accepts.

    Raises :class:`ConfigError` if the genesis has no (or corrupt) identity material.
    """
    config = get_identity_config(genesis)
    if config is None:
        raise ConfigError("genesis: no identity material (no RM blind key to pin)")
    return config.rm_blind_certificate
