"""The CA's register on disk: it survives a restart and a crash mid-write, and refuses tampering."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey, RsaPrivateKey
from gridledger.errors import ConfigError
from gridledger.identity.ca import (
    CertificateAuthority,
    MemberAttributes,
    compute_certificate_der,
    compute_certificate_hash,
    compute_member_key,
    create_authority,
    get_attributes,
    process_issue,
    process_revoke,
    process_take_superseded,
)
from gridledger.identity.ca_register import (
    CaRegisterFile,
    read_ca_register,
    write_ca_register,
)
from gridledger.identity.errors import MemberBlacklisted

from .conftest import DAY, NOW, Member, issue


def _attrs(member: str, meter: str) -> MemberAttributes:
    return MemberAttributes("prosumer", member, meter, ("trade",))


def _ca(seed: str) -> CertificateAuthority:
    rng = DeterministicRng(seed)
    return create_authority("reg CA", Ed25519PrivateKey.generate(rng), NOW - DAY, 3650 * DAY, rng)


def _same(a: CertificateAuthority, b: CertificateAuthority) -> None:
    assert list(a.issued) == list(b.issued) and a.issued == b.issued
    assert a.revoked == b.revoked and a.superseded == b.superseded
    assert a.admitted == b.admitted and a.holders == b.holders


def test_a_restarted_ca_still_knows_its_members(
    tmp_path: Path,
    rsa_keys: list[RsaPrivateKey],
) -> None:
    """After a restart the CA must still revoke a renewing member's old certificate and
    refuse a blacklisted member who returns under a new member id with the same meter:
    a CA that lost its register would do neither."""
    rng = DeterministicRng("reg-restart")
    ca, path = _ca("reg-ca"), tmp_path / "register.bin"
    old = issue(ca, "house-1", rsa_keys[10], _attrs("house-1", "meter-1"), rng)
    other = issue(ca, "house-2", rsa_keys[11], _attrs("house-2", "meter-2"), rng)
    process_revoke(ca, other.cert.serial_number, NOW)
    write_ca_register(path, ca)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    restarted = read_ca_register(path, ca.key, ca.certificate)
    _same(ca, restarted)
    # renewal after the restart: the old certificate is superseded, queued for posting
    process_issue(
        restarted, "house-1", rsa_keys[10].public_key, _attrs("house-1", "meter-1b"), NOW,
        365 * DAY, rng,
    )  # fmt: skip
    assert process_take_superseded(restarted) == (compute_certificate_hash(old.cert),)
    assert old.cert.serial_number in restarted.revoked
    # the member is traced and blacklisted on chain; it returns as "house-1c" on meter-1
    restarted.blacklist = frozenset({compute_member_key(get_attributes(old.cert))})
    with pytest.raises(MemberBlacklisted):
        process_issue(
            restarted, "house-1c", rsa_keys[10].public_key, _attrs("house-1c", "meter-1"), NOW,
            365 * DAY, rng,
        )  # fmt: skip


def test_a_crash_mid_write_leaves_the_old_register(
    tmp_path: Path, rsa_keys: list[RsaPrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = DeterministicRng("reg-crash")
    ca, path = _ca("reg-crash-ca"), tmp_path / "register.bin"
    issue(ca, "house-3", rsa_keys[12], _attrs("house-3", "meter-3"), rng)
    write_ca_register(path, ca)
    saved = path.read_bytes()
    issue(ca, "house-4", rsa_keys[13], _attrs("house-4", "meter-4"), rng)
    calls: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def crash(src: object, dst: object) -> None:
        calls.append("replace")
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(ConfigError, match="cannot write the CA register"):
        write_ca_register(path, ca)
    assert calls == ["fsync", "replace"]  # the data reached the disk before the rename
    assert path.read_bytes() == saved  # the register is the old one, whole
    assert len(read_ca_register(path, ca.key, ca.certificate).issued) == 1
    monkeypatch.undo()
    # a torn temporary file from the crash is simply overwritten by the next write
    path.with_name(path.name + ".tmp").write_bytes(b"\x00torn")
    write_ca_register(path, ca)
    _same(ca, read_ca_register(path, ca.key, ca.certificate))


def test_a_tampered_register_is_refused(tmp_path: Path, rsa_keys: list[RsaPrivateKey]) -> None:
    """Someone with the disk edits the register: drops a certificate's traces by swapping
    in another CA's file, slips in a certificate the CA never signed, names a revocation of
    nothing, or corrupts bytes. Each is a ConfigError, not a silently smaller register."""
    rng = DeterministicRng("reg-tamper")
    ca, path = _ca("reg-tamper-ca"), tmp_path / "register.bin"
    member = issue(ca, "house-5", rsa_keys[10], _attrs("house-5", "meter-5"), rng)
    process_revoke(ca, member.cert.serial_number, NOW)
    write_ca_register(path, ca)
    wire = decode_as(CaRegisterFile, path.read_bytes())
    rogue = _ca("rogue")
    foreign = issue(rogue, "house-6", rsa_keys[11], _attrs("house-6", "meter-6"), rng)
    variants = [
        dataclasses.replace(wire, ca_certificate=compute_certificate_der(rogue.certificate)),
        dataclasses.replace(wire, issued=(*wire.issued, compute_certificate_der(foreign.cert))),
        dataclasses.replace(wire, issued=(wire.issued[0], wire.issued[0])),
        dataclasses.replace(wire, issued=(b"not a certificate",)),
        dataclasses.replace(wire, superseded=(b"short",)),
        dataclasses.replace(
            wire, revoked=(dataclasses.replace(wire.revoked[0], serial=b"\x01" * 20),)
        ),
    ]
    blobs = [encode(v) for v in variants]
    raw = path.read_bytes()
    blobs += [raw[: len(raw) // 2], raw + b"\x00", b""]
    for blob in blobs:
        path.write_bytes(blob)
        with pytest.raises(ConfigError):
            read_ca_register(path, ca.key, ca.certificate)
    path.unlink()
    with pytest.raises(ConfigError, match="cannot read"):
        read_ca_register(path, ca.key, ca.certificate)


def test_register_keeps_revocations_and_the_queue(
    tmp_path: Path, rsa_keys: list[RsaPrivateKey]
) -> None:
    rng = DeterministicRng("reg-queue")
    ca, path = _ca("reg-queue-ca"), tmp_path / "register.bin"
    first = issue(ca, "house-7", rsa_keys[12], _attrs("house-7", "meter-7"), rng)
    renewed = Member(
        rsa_keys[12],
        process_issue(
            ca, "house-7", rsa_keys[12].public_key, _attrs("house-7", "meter-7"), NOW, DAY, rng
        ),
    )
    assert ca.superseded == [compute_certificate_hash(first.cert)]
    write_ca_register(path, ca)
    restarted = read_ca_register(path, ca.key, ca.certificate)
    _same(ca, restarted)
    assert renewed.cert.serial_number in restarted.issued
    wire = decode_as(CaRegisterFile, path.read_bytes())
    assert wire.revoked[0].serial == first.cert.serial_number.to_bytes(20, "big")
