"""The consortium's identity material: CA, replica certificates, RM, MM, TC trustees.

:func:`create_identity_material` (called by
:func:`~gridledger.node.consortium.init_consortium`) writes, under ``DIR/identity/``::

    ca/ca.key, ca/ca.crt                 the root CA (Ed25519) and its self-signed certificate
    ca/operator.key, ca/operator.crt     the CA operator (RSA, permission ``revoke``)
    rm/identity.key, rm/identity.crt     the RM's identity key (RSA, role ``rm``)
    rm/pseudonym.key, rm/pseudonym.crt   the RM's separate blind-signing key (``sign-pseudonyms``)
    mm/mm.key, mm/mm.crt                 the MM (RSA, ``issue-pseudonym-certs``)
    tc/tc-public.bin                     the t-of-n threshold ElGamal key (from the DKG)
    tc/trustee-<i>/trustee.key, .crt     trustee i's signing key and certificate (``trace``,
                                         member id ``tc-<i>``: the index its shares claim)
    tc/trustee-<i>/share.bin             trustee i's DKG key share
    ca/register.bin                      the CA's register of what it issued (0600)

and ``DIR/node-<i>/replica.crt``: replica i's Ed25519 key certified with role
``aggregator`` and permission ``validate``. Every private file is created with
``O_EXCL`` and mode 0600 inside a 0700 directory per role; certificates are PEM.
The register (:mod:`gridledger.identity.ca_register`) is rewritten crash-safely
after each admission, so a restarted CA still recognises returning and
blacklisted members; :func:`load_identity_material` refuses a directory without it.

The genesis's identity section (roots, the RM blind key households pin, the TC
key, the MM) and its parsing live in :mod:`gridledger.identity.genesis`; this
module only creates and reads the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.errors import EncodingError, KeyFormatError
from gridledger.crypto.groups import EDWARDS25519, PrimeOrderGroup
from gridledger.crypto.rng import SYSTEM_RNG, Rng
from gridledger.crypto.signatures import Ed25519PrivateKey, Ed25519PublicKey, RsaPrivateKey
from gridledger.crypto.threshold import KeyShare, ThresholdPublicKey, verify_key_share
from gridledger.errors import ConfigError, CryptoError, IdentityError
from gridledger.identity.admission import (
    CLOCK_SKEW_S,
    DEFAULT_VALIDITY_S,
    RoleKey,
    issue_member,
    issue_role_key,
)
from gridledger.identity.ca import (
    CertificateAuthority,
    MemberAttributes,
    Permission,
    Role,
    create_authority,
    get_ed25519_key,
    get_rsa_key,
    process_issue,
)
from gridledger.identity.ca_register import REGISTER_FILE, read_ca_register, write_ca_register
from gridledger.identity.client import CaService, TransactionSubmitter
from gridledger.identity.contracts import IdentityConfig
from gridledger.identity.genesis import (
    GENESIS_IDENTITY_KEYS,
    GENESIS_MM_KEY,
    GENESIS_RM_PSEUDONYM_KEY,
    GENESIS_ROOTS_KEY,
    GENESIS_TC_KEY,
    check_root,
    compute_identity_genesis_state,
    get_identity_config,
)
from gridledger.identity.pseudonym_issuer import MarketManager, create_market_manager
from gridledger.identity.registration import (
    RegistrationManager,
    RmConfig,
    create_registration_manager,
)
from gridledger.identity.trace_center import Trustee, compute_trustee_member_id, run_dkg
from gridledger.node.keys import read_key, read_private_file, write_key, write_private_file

__all__ = [  # the genesis names are re-exported for node tooling that used them from here
    "GENESIS_IDENTITY_KEYS",
    "GENESIS_MM_KEY",
    "GENESIS_RM_PSEUDONYM_KEY",
    "GENESIS_ROOTS_KEY",
    "GENESIS_TC_KEY",
    "ConsortiumIdentity",
    "IdentitySetup",
    "RoleKey",
    "TrusteeShareFile",
    "compute_identity_genesis_state",
    "create_identity_material",
    "get_identity_config",
    "has_identity_material",
    "issue_member",
    "load_identity_material",
    "read_certificate",
    "write_certificate",
]

IDENTITY_DIR = "identity"
REPLICA_CERT_FILE = "replica.crt"
CA_VALIDITY_S = 10 * 365 * 24 * 3600 - CLOCK_SKEW_S


@dataclass(frozen=True)
class IdentitySetup:
    """Parameters of the identity material: the TC threshold (t of n) and its group."""

    tc_threshold: int = 3
    tc_trustees: int = 5
    group: PrimeOrderGroup = EDWARDS25519
    validity_s: int = DEFAULT_VALIDITY_S

    def check(self) -> None:
        if not 1 <= self.tc_threshold <= self.tc_trustees <= 64:
            raise ConfigError(
                f"TC threshold must satisfy 1 <= t <= n <= 64 "
                f"(got t={self.tc_threshold}, n={self.tc_trustees})"
            )
        if not 0 < self.validity_s <= CA_VALIDITY_S:
            raise ConfigError("certificate validity must be positive and under ten years")


@wire_type("node.trustee-share/1")
@dataclass(frozen=True)
class TrusteeShareFile:
    """A trustee's key share on disk (``share.bin``, mode 0600)."""

    index: int
    x: bytes


@dataclass
class ConsortiumIdentity:
    """Every role's material, as written by :func:`create_identity_material`."""

    ca: CertificateAuthority
    operator: RoleKey
    rm: RoleKey
    rm_pseudonym: RoleKey
    mm: RoleKey
    tc_key: ThresholdPublicKey
    trustees: tuple[Trustee, ...]
    replica_certificates: tuple[x509.Certificate, ...]
    register_path: Path | None = None  # the CA's register file (identity/ca/register.bin)

    @property
    def roots(self) -> tuple[x509.Certificate, ...]:
        return (self.ca.certificate,)

    def save_register(self) -> None:
        """Persist the CA's register (after issuing or revoking by hand)."""
        if self.register_path is not None:
            write_ca_register(self.register_path, self.ca)

    def ca_service(self, submitter: TransactionSubmitter, chain_id: str) -> CaService:
        """The CA as a service on a running chain: admissions persist the register and
        post the revocations of superseded certificates signed by the operator."""
        return CaService(self.ca, self.register_path, self.operator, submitter, chain_id)

    def identity_config(self) -> IdentityConfig:
        return IdentityConfig(
            self.roots, self.rm_pseudonym.certificate, self.tc_key, self.mm.certificate
        )

    def genesis_state(self) -> dict[bytes, bytes]:
        return compute_identity_genesis_state(
            self.roots, self.rm_pseudonym.certificate, self.tc_key, self.mm.certificate
        )

    def create_rm(self, k: int = 32) -> RegistrationManager:
        """A registration manager with the RM's two keys (no round open yet)."""
        return create_registration_manager(
            RmConfig(k=k),
            self.rm.key,
            self.rm.certificate,
            self.rm_pseudonym.key,
            self.rm_pseudonym.certificate,
            self.roots,
            self.tc_key,
        )

    def create_mm(self, now: int) -> MarketManager:
        return create_market_manager(
            self.mm.key, self.mm.certificate, self.rm_pseudonym.certificate, self.roots,
            self.tc_key, now,
        )  # fmt: skip


# -- files -----------------------------------------------------------------------------


def _make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def read_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read certificate ({exc.strerror})") from None
    except ValueError:
        raise ConfigError(f"{path}: not a PEM X.509 certificate") from None


def _write_role(directory: Path, name: str, role: RoleKey) -> None:
    write_private_file(directory / f"{name}.key", role.key.to_pem())
    write_certificate(directory / f"{name}.crt", role.certificate)


def _read_role(directory: Path, name: str) -> RoleKey:
    path = directory / f"{name}.key"
    try:
        key = RsaPrivateKey.from_pem(read_private_file(path))
    except KeyFormatError as exc:
        raise ConfigError(f"{path}: {exc.reason}") from None
    cert = read_certificate(directory / f"{name}.crt")
    try:
        if get_rsa_key(cert) != key.public_key:
            raise ConfigError(f"{directory / name}.crt does not certify {path}")
    except IdentityError as exc:
        raise ConfigError(f"{directory / name}.crt: {exc.reason}") from None
    return RoleKey(key, cert)


# -- creation --------------------------------------------------------------------------


def create_identity_material(
    root: Path,
    replica_keys: Sequence[Ed25519PublicKey],
    now: int,
    setup: IdentitySetup,
    rng: Rng = SYSTEM_RNG,
) -> ConsortiumIdentity:
    """Create and write every role's material under ``root`` (see the module docstring).

    ``root`` is the consortium directory; replica ``i``'s certificate goes to
    ``root/node-<i>/replica.crt``. ``now`` (seconds) starts the validity windows
    (back-dated by an hour for clock skew).
    """
    setup.check()
    base = root / IDENTITY_DIR
    ca = create_authority(
        "gridledger consortium CA",
        Ed25519PrivateKey.generate(rng),
        now - CLOCK_SKEW_S,
        CA_VALIDITY_S,
        rng,
    )
    replica_certs = []
    for i, pk in enumerate(replica_keys):
        attrs = MemberAttributes(
            Role.AGGREGATOR.value, f"replica-{i}", None, (Permission.VALIDATE.value,)
        )
        cert = process_issue(
            ca, f"replica-{i}", pk, attrs, now - CLOCK_SKEW_S, setup.validity_s, rng
        )
        replica_certs.append(cert)
    v = setup.validity_s
    operator = issue_member(
        ca, "ca-operator", Role.AGGREGATOR, now, rng, permissions=(Permission.REVOKE,),
        validity_s=v,
    )  # fmt: skip
    rm_key = RsaPrivateKey.generate(2048)
    rm = issue_member(ca, "rm-1", Role.RM, now, rng, permissions=(), validity_s=v, key=rm_key)
    rm_pseudonym = issue_role_key(
        ca,
        "rm-1-pseudonyms",
        MemberAttributes(Role.RM.value, "rm-1", None, (Permission.SIGN_PSEUDONYMS.value,)),
        now,
        v,
        rng,
    )
    mm = issue_member(
        ca, "mm-1", Role.MM, now, rng, permissions=(Permission.ISSUE_PSEUDONYM_CERTS,),
        validity_s=v,
    )  # fmt: skip
    t, n = setup.tc_threshold, setup.tc_trustees
    dkg_rngs = [_fork(rng, f"dkg-{i}") for i in range(1, n + 1)]
    tc_key, shares = run_dkg(t, n, setup.group, dkg_rngs)
    trustees = []
    for share in shares:
        member = issue_member(  # the member id names the index the contract binds shares to
            ca, compute_trustee_member_id(share.index), Role.TC_TRUSTEE, now, rng,
            permissions=(Permission.TRACE,), validity_s=v,
        )  # fmt: skip
        trustees.append(Trustee(share.index, share, tc_key, member.key, member.certificate))
    material = ConsortiumIdentity(
        ca, operator, rm, rm_pseudonym, mm, tc_key, tuple(trustees), tuple(replica_certs)
    )
    material.register_path = base / "ca" / REGISTER_FILE
    _write_material(root, base, material)
    return material


def _fork(rng: Rng, label: str) -> Rng:
    fork = getattr(rng, "fork", None)
    return fork(label) if callable(fork) else rng


def _write_material(root: Path, base: Path, m: ConsortiumIdentity) -> None:
    base.mkdir(parents=True, exist_ok=True)
    ca_dir = base / "ca"
    _make_private_dir(ca_dir)
    assert isinstance(m.ca.key, Ed25519PrivateKey)
    write_key(ca_dir / "ca.key", m.ca.key)
    write_certificate(ca_dir / "ca.crt", m.ca.certificate)
    write_ca_register(ca_dir / REGISTER_FILE, m.ca)
    _write_role(ca_dir, "operator", m.operator)
    rm_dir = base / "rm"
    _make_private_dir(rm_dir)
    _write_role(rm_dir, "identity", m.rm)
    _write_role(rm_dir, "pseudonym", m.rm_pseudonym)
    mm_dir = base / "mm"
    _make_private_dir(mm_dir)
    _write_role(mm_dir, "mm", m.mm)
    tc_dir = base / "tc"
    tc_dir.mkdir(exist_ok=True)
    (tc_dir / "tc-public.bin").write_bytes(m.tc_key.to_bytes())
    scalar_size = m.tc_key.group.scalar_size
    for tr in m.trustees:
        d = tc_dir / f"trustee-{tr.index}"
        _make_private_dir(d)
        _write_role(d, "trustee", RoleKey(tr.signing_key, tr.certificate))
        share = TrusteeShareFile(tr.index, tr.key_share.x.to_bytes(scalar_size, "big"))
        write_private_file(d / "share.bin", encode(share))
    for i, cert in enumerate(m.replica_certificates):
        node_dir = root / f"node-{i}"
        node_dir.mkdir(exist_ok=True)
        write_certificate(node_dir / REPLICA_CERT_FILE, cert)


# -- loading ---------------------------------------------------------------------------


def has_identity_material(root: Path) -> bool:
    return (root / IDENTITY_DIR / "ca" / "ca.crt").is_file()


def load_identity_material(root: Path, n_replicas: int | None = None) -> ConsortiumIdentity:
    """Read back what :func:`create_identity_material` wrote (checking keys against certs)."""
    base = root / IDENTITY_DIR
    if not base.is_dir():
        raise ConfigError(f"{root}: no identity material (no {IDENTITY_DIR}/ directory)")
    ca_dir = base / "ca"
    ca_key = read_key(ca_dir / "ca.key")
    ca_cert = read_certificate(ca_dir / "ca.crt")
    try:
        same = get_ed25519_key(ca_cert) == ca_key.public_key
    except IdentityError:
        same = False
    if not same:
        raise ConfigError(f"{ca_dir}/ca.crt does not certify ca.key")
    check_root(ca_cert, 0)
    register_path = ca_dir / REGISTER_FILE
    ca = read_ca_register(register_path, ca_key, ca_cert)
    tc_path = base / "tc" / "tc-public.bin"
    try:
        tc_key = ThresholdPublicKey.from_bytes(tc_path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{tc_path}: cannot read ({exc.strerror})") from None
    except (EncodingError, KeyFormatError) as exc:
        raise ConfigError(f"{tc_path}: malformed TC key ({exc.reason})") from None
    trustees = []
    for index in range(1, tc_key.n + 1):
        d = base / "tc" / f"trustee-{index}"
        role = _read_role(d, "trustee")
        try:
            wire = decode_as(TrusteeShareFile, read_private_file(d / "share.bin"))
            share = KeyShare(wire.index, int.from_bytes(wire.x, "big"))
            if wire.index != index:
                raise ConfigError(f"{d}/share.bin belongs to trustee {wire.index}")
            verify_key_share(tc_key, share)
        except (EncodingError, CryptoError) as exc:
            raise ConfigError(f"{d}/share.bin: {exc.reason}") from None
        trustees.append(Trustee(index, share, tc_key, role.key, role.certificate))
    replica_certs: list[x509.Certificate] = []
    if n_replicas is not None:
        replica_certs = [
            read_certificate(root / f"node-{i}" / REPLICA_CERT_FILE) for i in range(n_replicas)
        ]
    return ConsortiumIdentity(
        ca=ca,
        operator=_read_role(ca_dir, "operator"),
        rm=_read_role(base / "rm", "identity"),
        rm_pseudonym=_read_role(base / "rm", "pseudonym"),
        mm=_read_role(base / "mm", "mm"),
        tc_key=tc_key,
        trustees=tuple(trustees),
        replica_certificates=tuple(replica_certs),
        register_path=register_path,
    )
