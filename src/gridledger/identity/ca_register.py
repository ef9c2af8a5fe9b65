"""The CA's register of what it certified, on disk: written crash-safely, read back checked.

The CA must recognise a returning member after a restart: a renewal revokes the
member's earlier household certificates, and a member or meter blacklisted on
chain must not be re-admitted under a fresh certificate
(:func:`gridledger.identity.ca.check_admissible`). Both rely on the register
(``issued``, ``revoked``, and the index ``admitted`` / ``holders`` derived from
the issued certificates' attributes), so it is persisted after every change:

* :func:`write_ca_register` writes a temporary file (mode 0600), ``fsync``\\ s it,
  renames it over the register and ``fsync``\\ s the directory: after a crash the
  file is the old register or the new one, never a torn mix;
* :func:`read_ca_register` rebuilds a :class:`CertificateAuthority`, checking
  that the register belongs to this CA (same root), that every certificate is
  DER, signed by that root, with a unique serial, and that every revocation
  names an issued serial. Anything else is one :class:`~gridledger.errors.ConfigError`.

The queue of superseded certificates (hashes not yet posted as ``identity.revoke``)
is part of the register, so a crash between a renewal and its revocation posting
loses nothing: the posting is retried from the reloaded queue.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature

from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.errors import EncodingError
from gridledger.errors import ConfigError, IdentityError
from gridledger.identity.ca import (
    CertificateAuthority,
    PrivateKey,
    compute_admission_keys,
    compute_certificate_der,
    compute_member_key,
    get_attributes,
    load_certificate,
)

REGISTER_FILE = "register.bin"
SERIAL_SIZE = 20  # RFC 5280: at most 20 octets
MAX_REGISTER_SIZE = 1 << 28


@wire_type("identity.ca-revoked/1")
@dataclass(frozen=True)
class RevokedSerial:
    """One revoked serial (big-endian, 20 bytes) and its revocation time (s)."""

    serial: bytes
    at: int


@wire_type("identity.ca-register/1")
@dataclass(frozen=True)
class CaRegisterFile:
    """The CA's register as stored: its root, what it issued (in order), revoked, queued."""

    ca_certificate: bytes
    issued: tuple[bytes, ...]
    revoked: tuple[RevokedSerial, ...]
    superseded: tuple[bytes, ...]


def compute_register_file(ca: CertificateAuthority) -> CaRegisterFile:
    """The register of ``ca`` in its stored form (issue order kept)."""
    return CaRegisterFile(
        compute_certificate_der(ca.certificate),
        tuple(compute_certificate_der(c) for c in ca.issued.values()),
        tuple(
            RevokedSerial(serial.to_bytes(SERIAL_SIZE, "big"), at)
            for serial, at in sorted(ca.revoked.items())
        ),
        tuple(ca.superseded),
    )


def write_ca_register(path: Path, ca: CertificateAuthority) -> None:
    """Persist ``ca``'s register at ``path`` atomically (temp file, fsync, rename, fsync dir)."""
    data = encode(compute_register_file(ca))
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the CA register ({exc.strerror})") from None


def read_ca_register(
    path: Path, key: PrivateKey, certificate: x509.Certificate
) -> CertificateAuthority:
    """The CA (``key``, root ``certificate``) with the register stored at ``path``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the CA register ({exc.strerror})") from None
    try:
        wire = decode_as(CaRegisterFile, data, max_size=MAX_REGISTER_SIZE)
    except EncodingError as exc:
        raise ConfigError(f"{path}: malformed CA register ({exc.reason})") from None
    try:
        return compute_authority(key, certificate, wire)
    except IdentityError as exc:
        raise ConfigError(f"{path}: {exc.reason}") from None


def compute_authority(
    key: PrivateKey, certificate: x509.Certificate, wire: CaRegisterFile
) -> CertificateAuthority:
    """Rebuild the CA's state from its stored register (raises :class:`IdentityError`)."""
    if wire.ca_certificate != compute_certificate_der(certificate):
        raise IdentityError("the register belongs to another CA")
    ca = CertificateAuthority(key, certificate, {}, {})
    for der in wire.issued:
        cert = load_certificate(der)
        _check_issued_by(cert, certificate)
        if cert.serial_number in ca.issued:
            raise IdentityError(f"serial {cert.serial_number:x} appears twice")
        _index(ca, cert)
        ca.issued[cert.serial_number] = cert
    for entry in wire.revoked:
        serial = int.from_bytes(entry.serial, "big")
        if len(entry.serial) != SERIAL_SIZE or serial not in ca.issued or entry.at < 0:
            raise IdentityError("a revocation names no issued certificate")
        ca.revoked[serial] = entry.at
    if any(len(h) != 32 for h in wire.superseded):
        raise IdentityError("a queued revocation is not a certificate hash")
    ca.superseded.extend(wire.superseded)
    return ca


def _check_issued_by(cert: x509.Certificate, root: x509.Certificate) -> None:
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, _CryptoInvalidSignature):
        raise IdentityError("the register holds a certificate this CA did not sign") from None


def _index(ca: CertificateAuthority, cert: x509.Certificate) -> None:
    """Replay :func:`~gridledger.identity.ca.process_issue`'s index updates for ``cert``."""
    attributes = get_attributes(cert)
    member = compute_member_key(attributes)
    for key in compute_admission_keys(attributes):
        members = ca.admitted.setdefault(key, [])
        if member not in members:
            members.append(member)
        ca.holders.setdefault(key, []).append(cert.serial_number)
