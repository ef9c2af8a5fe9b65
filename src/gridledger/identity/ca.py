"""Certificate authority: X.509 certificates with an attribute set (seed 004's CA).

The consortium's CA issues one X.509 certificate per member: replicas, the
registration manager (RM), the market manager (MM), trace-center trustees, the
mint, and every household. Besides the subject and key, each certificate
carries an *attribute set* (seed 004: identity, user type, permissions, ...)
in a critical private extension, :data:`ATTRIBUTES_OID`, whose value is the
canonical CBOR of :class:`MemberAttributes`. A verifier that does not know
the extension must reject the certificate (it is critical); ours reads it.

Keys per role: households and the RM/MM/TC keep long-term RSA keys (as in seed
000); replicas may use Ed25519. The CA itself signs with Ed25519 or RSA.

:func:`verify_member` is the one check everybody runs: chain to a trusted
root, validity window at ``now``, revocation (a CRL signed by the CA, and/or
the on-chain revocation list of certificate hashes), and the required role or
permission. Time is always an argument (seconds since the epoch).
"""

from __future__ import annotations

import datetime
import enum
import warnings
from collections.abc import Collection, Container, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.errors import EncodingError, KeyFormatError
from gridledger.crypto.hashing import hash_bytes, hash_value, register_tag
from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    RsaPrivateKey,
    RsaPublicKey,
)
from gridledger.identity.errors import (
    CertificateRejected,
    MemberBlacklisted,
    WrongRole,
    check_timestamp,
)

CERTIFICATE_HASH_TAG = register_tag("gridledger/identity/certificate/1")
MEMBER_KEY_TAG = register_tag("gridledger/identity/member-key/1")
ROUND_SLOT_TAG = register_tag("gridledger/identity/round-slot/1")

# An OID under the ITU-T X.667 UUID arc (2.25.<uuid>): no registration needed.
ATTRIBUTES_OID = x509.ObjectIdentifier("2.25.170223592420755411964744374950497413641")
MAX_VALIDITY_S = 10 * 365 * 24 * 3600


class Role(enum.StrEnum):
    """What a certificate's holder is in the consortium."""

    PRODUCER = "producer"
    CONSUMER = "consumer"
    PROSUMER = "prosumer"
    AGGREGATOR = "aggregator"
    RM = "rm"
    MM = "mm"
    TC_TRUSTEE = "tc-trustee"
    MINT = "mint"


HOUSEHOLD_ROLES: frozenset[Role] = frozenset({Role.PRODUCER, Role.CONSUMER, Role.PROSUMER})


class Permission(enum.StrEnum):
    """What a certificate's holder may do (seed 004's "user permissions")."""

    TRADE = "trade"  # register for pseudonyms and trade under them
    SIGN_PSEUDONYMS = "sign-pseudonyms"  # the RM's blind-signing key
    ISSUE_PSEUDONYM_CERTS = "issue-pseudonym-certs"  # the MM
    TRACE = "trace"  # a TC trustee
    REVOKE = "revoke"  # may post on-chain revocations (the CA's operator)
    VALIDATE = "validate"  # a consortium replica


@wire_type("identity.member-attributes/1")
@dataclass(frozen=True)
class MemberAttributes:
    """The attribute set carried in :data:`ATTRIBUTES_OID`."""

    role: str
    member_id: str
    meter_id: str | None
    permissions: tuple[str, ...]

    def __post_init__(self) -> None:
        Role(self.role)  # ValueError on an unknown role
        for p in self.permissions:
            Permission(p)
        if not self.member_id or len(self.member_id) > 128:
            raise ValueError("member_id must be 1..128 characters")

    def has(self, permission: Permission) -> bool:
        return permission.value in self.permissions


PublicKey = Ed25519PublicKey | RsaPublicKey
PrivateKey = Ed25519PrivateKey | RsaPrivateKey


def compute_datetime(now: int) -> datetime.datetime:
    """Seconds since the epoch as an aware UTC datetime (``0 <= now < 2**40``, else
    :class:`InvalidTimestamp`: no platform-dependent OverflowError/OSError escapes)."""
    return datetime.datetime.fromtimestamp(check_timestamp("time", now), datetime.UTC)


def _crypto_public(key: PublicKey) -> ed25519.Ed25519PublicKey | rsa.RSAPublicKey:
    if isinstance(key, Ed25519PublicKey):
        return ed25519.Ed25519PublicKey.from_public_bytes(key.raw)
    return key.to_crypto()


def _crypto_private(key: PrivateKey) -> ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey:
    if isinstance(key, Ed25519PrivateKey):
        return ed25519.Ed25519PrivateKey.from_private_bytes(key.seed())
    return key.to_crypto()


def _sign_hash(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, Ed25519PrivateKey) else hashes.SHA256()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gridledger consortium"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def compute_serial(rng: Rng) -> int:
    """A positive 159-bit serial number (RFC 5280: at most 20 octets)."""
    return int.from_bytes(rng.random_bytes(20), "big") >> 1 | 1


@dataclass
class CertificateAuthority:
    """The CA's mutable state: its key, its self-signed root, its revocations.

    ``blacklist`` is the CA's read view of the on-chain blacklist (member keys,
    :func:`compute_member_key`; ``contracts.get_blacklist`` or a set read through
    ``IdentityChainView``), like the RM's. ``admitted`` is the CA's register of
    what it certified: ``"member:<id>"`` / ``"meter:<id>"`` -> member keys, and
    ``holders`` the same keys -> certificate serials. :func:`process_issue` refuses
    anyone whose member key, or an earlier member key of the same member id or
    meter, is blacklisted, and revokes a household's earlier certificates on
    renewal (``superseded``: their hashes, for the operator to post on chain with
    ``identity.revoke``; ``identity.client.post_superseded_revocations``). The
    register outlives the process (:mod:`gridledger.identity.ca_register`, written
    after every admission): a CA that lost it could not recognise a returning member.
    """

    key: PrivateKey
    certificate: x509.Certificate
    revoked: dict[int, int]  # serial -> revocation time (s)
    issued: dict[int, x509.Certificate]
    blacklist: Container[bytes] = frozenset()
    admitted: dict[str, list[bytes]] = field(default_factory=dict)
    holders: dict[str, list[int]] = field(default_factory=dict)
    superseded: list[bytes] = field(default_factory=list)


def compute_member_key(attributes: MemberAttributes) -> bytes:
    """A member's stable key across certificate renewals: ``H(member id, meter id)``.

    The RM's one-pseudonym-per-round slot and the on-chain blacklist use it (not the
    certificate hash), so a second certificate of the same member gains nothing.
    """
    return hash_value(MEMBER_KEY_TAG, [attributes.member_id, attributes.meter_id or ""])


def compute_round_slots(attributes: MemberAttributes) -> tuple[bytes, ...]:
    """The RM's one-pseudonym-per-round slots of a member: its member id and, for
    households, its meter, each hashed on its own. A renewal that changes the meter
    id keeps the member-id slot; one that changes the member id keeps the meter slot;
    so no renewal yields a second pseudonym in a round (the CA's renewal rule treats
    the same member id or the same meter as one household too)."""
    slots = [hash_value(ROUND_SLOT_TAG, ["member", attributes.member_id])]
    if attributes.meter_id is not None:
        slots.append(hash_value(ROUND_SLOT_TAG, ["meter", attributes.meter_id]))
    return tuple(slots)


def compute_admission_keys(attributes: MemberAttributes) -> tuple[str, ...]:
    """The register keys of a member: its member id and, for households, its meter."""
    keys = [f"member:{attributes.member_id}"]
    if attributes.meter_id is not None:
        keys.append(f"meter:{attributes.meter_id}")
    return tuple(keys)


def get_admitted_identities(
    ca: CertificateAuthority, attributes: MemberAttributes
) -> tuple[bytes, ...]:
    """The member keys to look up on the blacklist before admitting ``attributes``: its
    own and those of every certificate the CA issued to this member id or meter."""
    out: list[bytes] = [compute_member_key(attributes)]
    for key in compute_admission_keys(attributes):
        out.extend(k for k in ca.admitted.get(key, ()) if k not in out)
    return tuple(out)


def check_admissible(ca: CertificateAuthority, attributes: MemberAttributes) -> None:
    """Raise :class:`MemberBlacklisted` if this member key, or that of an earlier
    certificate of this member id or meter, is on ``ca.blacklist``; changes nothing."""
    own = compute_member_key(attributes)
    if own in ca.blacklist:
        raise MemberBlacklisted(own, f"member:{attributes.member_id}")
    for key in compute_admission_keys(attributes):
        for member in ca.admitted.get(key, ()):
            if member in ca.blacklist:
                raise MemberBlacklisted(member, key)


def process_take_superseded(ca: CertificateAuthority) -> tuple[bytes, ...]:
    """Hashes of the certificates revoked by renewals since the last call (to post on
    chain as ``identity.revoke`` so the RM refuses them); clears the queue."""
    out = tuple(ca.superseded)
    ca.superseded.clear()
    return out


def create_authority(
    name: str, key: PrivateKey, now: int, validity_s: int, rng: Rng
) -> CertificateAuthority:
    """A new root CA with a self-signed certificate valid for ``validity_s`` seconds."""
    if not 0 < validity_s <= MAX_VALIDITY_S:
        raise ValueError("validity must be positive and at most ten years")
    subject = _name(name)
    public = _crypto_public(key.public_key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(compute_serial(rng))
        .not_valid_before(compute_datetime(now))
        .not_valid_after(compute_datetime(now + validity_s))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(_crypto_private(key), _sign_hash(key))
    )
    return CertificateAuthority(key=key, certificate=cert, revoked={}, issued={})


def process_issue(
    ca: CertificateAuthority,
    common_name: str,
    public_key: PublicKey,
    attributes: MemberAttributes,
    now: int,
    validity_s: int,
    rng: Rng,
) -> x509.Certificate:
    """Issue a member certificate carrying ``attributes``; records it in ``ca.issued``.

    Refuses (:class:`MemberBlacklisted`) a member whose member key, or whose member
    id's or meter's earlier member key, is blacklisted (:func:`check_admissible`);
    refresh ``ca.blacklist`` from the chain first (``identity.client.admit_member``
    does). Renewal: a household certificate revokes (``ca.revoked``) every earlier
    household certificate of the same member id or meter and queues its hash in
    ``ca.superseded`` for the operator to post (:func:`process_take_superseded`).
    """
    if not 0 < validity_s <= MAX_VALIDITY_S:
        raise ValueError("validity must be positive and at most ten years")
    check_admissible(ca, attributes)
    public = _crypto_public(public_key)
    serial = compute_serial(rng)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(compute_datetime(now))
        .not_valid_after(compute_datetime(now + validity_s))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.UnrecognizedExtension(ATTRIBUTES_OID, encode(attributes)), critical=True
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(_crypto_public(ca.key.public_key)),
            critical=False,
        )
        .sign(_crypto_private(ca.key), _sign_hash(ca.key))
    )
    household = attributes.role in {r.value for r in HOUSEHOLD_ROLES}
    member = compute_member_key(attributes)
    for key in compute_admission_keys(attributes):
        members = ca.admitted.setdefault(key, [])
        if member not in members:
            members.append(member)
        serials = ca.holders.setdefault(key, [])
        if household:  # renewal: one valid household certificate per member id and meter
            for old in serials:
                earlier = ca.issued[old]
                if old not in ca.revoked and _is_household(earlier):
                    ca.revoked[old] = now
                    ca.superseded.append(compute_certificate_hash(earlier))
        serials.append(serial)
    ca.issued[serial] = cert
    return cert


def _is_household(cert: x509.Certificate) -> bool:
    try:
        return get_attributes(cert).role in {r.value for r in HOUSEHOLD_ROLES}
    except CertificateRejected:
        return False


def process_revoke(ca: CertificateAuthority, serial: int, now: int) -> None:
    """Mark ``serial`` revoked at ``now`` (idempotent: the first time is kept)."""
    if serial not in ca.issued:
        raise CertificateRejected(f"serial {serial:x} was not issued by this CA")
    ca.revoked.setdefault(serial, now)


def compute_crl(
    ca: CertificateAuthority, now: int, next_update_s: int
) -> x509.CertificateRevocationList:
    """A CRL signed by the CA listing every revoked serial."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(compute_datetime(now))
        .next_update(compute_datetime(now + next_update_s))
    )
    for serial, when in sorted(ca.revoked.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(compute_datetime(when))
            .build()
        )
    return builder.sign(_crypto_private(ca.key), _sign_hash(ca.key))


# -- reading certificates --------------------------------------------------------


def compute_certificate_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def compute_certificate_hash(cert: x509.Certificate | bytes) -> bytes:
    """The member's identity as used everywhere else: tagged SHA-256 of the DER bytes."""
    der = cert if isinstance(cert, bytes) else compute_certificate_der(cert)
    return hash_bytes(CERTIFICATE_HASH_TAG, der)


# What the X.509 parser raises on bad input (it parses lazily: an accessor can raise
# long after loading), and the deprecation warning it emits for a non-positive serial.
_PARSE_ERRORS = (
    ValueError,
    TypeError,
    x509.InvalidVersion,
    UnsupportedAlgorithm,
    CryptographyDeprecationWarning,
)


def load_certificate(der: bytes) -> x509.Certificate:
    """Parse DER bytes *completely*; anything malformed is :class:`CertificateRejected`.

    The parser is lazy (names, extensions and the key are decoded on first use,
    each with its own exception type), so every field anyone reads later is read
    here once: a certificate this returns never raises an untyped error from
    :func:`verify_member`, :func:`get_attributes` or :func:`get_rsa_key`.
    """
    if not isinstance(der, bytes):
        raise CertificateRejected("a certificate must be DER bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            cert = x509.load_der_x509_certificate(der)
            _parse_fully(cert)
    except _PARSE_ERRORS:
        raise CertificateRejected("not a well-formed DER X.509 certificate") from None
    return cert


def _parse_fully(cert: x509.Certificate) -> None:
    if cert.serial_number <= 0:  # RFC 5280 §4.1.2.2
        raise ValueError("serial number must be positive")
    _ = (cert.version, cert.subject, cert.issuer, cert.signature_algorithm_oid)
    _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.signature_hash_algorithm)
    for ext in cert.extensions:
        _ = ext.value
    cert.public_key()


def get_attributes(cert: x509.Certificate) -> MemberAttributes:
    """The attribute set of a member certificate."""
    try:
        ext = cert.extensions.get_extension_for_oid(ATTRIBUTES_OID)
    except (x509.ExtensionNotFound, ValueError):
        raise CertificateRejected("certificate carries no attribute set") from None
    value = ext.value
    if not ext.critical or not isinstance(value, x509.UnrecognizedExtension):
        raise CertificateRejected("attribute extension must be critical")
    try:
        return decode_as(MemberAttributes, value.value)
    except EncodingError as exc:
        raise CertificateRejected(f"bad attribute set: {exc.reason}") from None


def get_rsa_key(cert: x509.Certificate) -> RsaPublicKey:
    """The certificate's RSA public key (households, RM, MM, TC trustees)."""
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateRejected("certificate does not hold an RSA key")
    nums = key.public_numbers()
    try:
        return RsaPublicKey(nums.n, nums.e)
    except KeyFormatError as exc:
        raise CertificateRejected(f"certificate holds an unusable RSA key: {exc.reason}") from None


def get_ed25519_key(cert: x509.Certificate) -> Ed25519PublicKey:
    """The certificate's Ed25519 public key (replicas)."""
    key = cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise CertificateRejected("certificate does not hold an Ed25519 key")
    return Ed25519PublicKey(key.public_bytes_raw())


def _find_issuer(cert: x509.Certificate, roots: Sequence[x509.Certificate]) -> x509.Certificate:
    for root in roots:
        if root.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(root)
        except (ValueError, TypeError, _CryptoInvalidSignature):
            continue
        return root
    raise CertificateRejected("certificate is not signed by a trusted CA")


def _check_window(cert: x509.Certificate, moment: datetime.datetime, what: str) -> None:
    if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        raise CertificateRejected(f"{what} is not valid at {moment.isoformat()}")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return bc.ca


def is_revoked_by_crl(
    cert: x509.Certificate, root: x509.Certificate, crls: Sequence[x509.CertificateRevocationList]
) -> bool:
    """Whether a CRL signed by ``root`` lists ``cert`` (CRLs by other signers are ignored)."""
    for crl in crls:
        if crl.issuer != root.subject or not crl.is_signature_valid(root.public_key()):  # type: ignore[arg-type]
            continue
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            return True
    return False


def verify_member(
    cert: x509.Certificate,
    roots: Sequence[x509.Certificate],
    now: int,
    required_role: Role | Collection[Role] | None = None,
    required_permission: Permission | None = None,
    *,
    revoked: Container[bytes] = (),
    crls: Sequence[x509.CertificateRevocationList] = (),
) -> MemberAttributes:
    """Check ``cert`` fully and return its attributes.

    Raises :class:`CertificateRejected` (unknown CA, bad signature, outside its
    validity window, revoked by CRL or by the on-chain list ``revoked`` of
    certificate hashes, a CA certificate presented as a member) or
    :class:`WrongRole` (role or permission missing).
    """
    moment = compute_datetime(now)
    root = _find_issuer(cert, roots)
    if not _is_ca(root):
        raise CertificateRejected("issuer is not a CA certificate")
    _check_window(root, moment, "CA certificate")
    _check_window(cert, moment, "certificate")
    if _is_ca(cert):
        raise CertificateRejected("a CA certificate is not a member certificate")
    if compute_certificate_hash(cert) in revoked or is_revoked_by_crl(cert, root, crls):
        raise CertificateRejected("certificate is revoked")
    attributes = get_attributes(cert)
    if required_role is not None:
        allowed = {required_role} if isinstance(required_role, Role) else set(required_role)
        if Role(attributes.role) not in allowed:
            raise WrongRole("|".join(sorted(r.value for r in allowed)), attributes.role)
    if required_permission is not None and not attributes.has(required_permission):
        raise WrongRole(required_permission.value, ",".join(attributes.permissions))
    return attributes
