"""CA: issuance, chain, validity window, revocation (CRL and on chain), roles (unforgeability)."""

from __future__ import annotations

import pytest

from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.identity.ca import (
    MemberAttributes,
    Permission,
    Role,
    compute_certificate_hash,
    compute_crl,
    create_authority,
    get_attributes,
    process_issue,
    process_revoke,
    verify_member,
)
from gridledger.identity.errors import CertificateRejected, WrongRole

from .conftest import DAY, NOW, World


def test_member_certificate_verifies_with_attributes(world: World) -> None:
    user = world.users[0]
    attrs = verify_member(user.cert, world.roots, NOW, Role.PRODUCER, Permission.TRADE)
    assert attrs == get_attributes(user.cert)
    assert attrs.meter_id == "meter-0"


def test_wrong_ca_and_forged_certificate_rejected(world: World) -> None:
    rng = DeterministicRng("rogue")
    rogue = create_authority(
        "gridledger CA", Ed25519PrivateKey.generate(rng), NOW - DAY, DAY * 9, rng
    )
    forged = process_issue(
        rogue,
        "rm",
        world.users[0].key.public_key,
        MemberAttributes("rm", "rm-1", None, ("sign-pseudonyms",)),
        NOW - DAY,
        DAY * 9,
        rng,
    )
    # Same issuer name as the real CA, but not signed by it.
    with pytest.raises(CertificateRejected):
        verify_member(forged, world.roots, NOW, Role.RM)
    with pytest.raises(CertificateRejected):
        verify_member(world.ca.certificate, world.roots, NOW)  # a CA cert is no member cert


def test_validity_window(world: World) -> None:
    with pytest.raises(CertificateRejected):
        verify_member(world.users[0].cert, world.roots, NOW - 2 * DAY)
    with pytest.raises(CertificateRejected):
        verify_member(world.users[0].cert, world.roots, NOW + 400 * DAY)


def test_wrong_role_and_missing_permission(world: World) -> None:
    with pytest.raises(WrongRole):
        verify_member(world.users[0].cert, world.roots, NOW, Role.RM)
    with pytest.raises(WrongRole):
        verify_member(world.rm.cert, world.roots, NOW, Role.RM, Permission.SIGN_PSEUDONYMS)
    with pytest.raises(WrongRole):
        verify_member(world.mint_blind.cert, world.roots, NOW, Role.RM)


def test_revocation_by_crl_and_on_chain_list() -> None:
    rng = DeterministicRng("crl")
    ca = create_authority("CA2", Ed25519PrivateKey.generate(rng), NOW - DAY, DAY * 9, rng)
    attrs = MemberAttributes("consumer", "h", "m", ("trade",))
    cert = process_issue(
        ca, "h", Ed25519PrivateKey.generate(rng).public_key, attrs, NOW - DAY, DAY * 5, rng
    )
    verify_member(cert, (ca.certificate,), NOW)
    with pytest.raises(CertificateRejected):
        verify_member(cert, (ca.certificate,), NOW, revoked={compute_certificate_hash(cert)})
    process_revoke(ca, cert.serial_number, NOW)
    crl = compute_crl(ca, NOW, DAY)
    with pytest.raises(CertificateRejected):
        verify_member(cert, (ca.certificate,), NOW, crls=(crl,))
    # A CRL signed by someone else is ignored.
    other = create_authority("CA2", Ed25519PrivateKey.generate(rng), NOW - DAY, DAY * 9, rng)
    other.issued[cert.serial_number] = cert
    process_revoke(other, cert.serial_number, NOW)
    fresh = create_authority("CA3", Ed25519PrivateKey.generate(rng), NOW - DAY, DAY * 9, rng)
    cert2 = process_issue(
        fresh, "h2", Ed25519PrivateKey.generate(rng).public_key, attrs, NOW - DAY, DAY, rng
    )
    verify_member(cert2, (fresh.certificate,), NOW, crls=(compute_crl(other, NOW, DAY),))


def test_bad_attributes_refused() -> None:
    with pytest.raises(ValueError):
        MemberAttributes("king", "x", None, ())
    with pytest.raises(ValueError):
        MemberAttributes("rm", "x", None, ("fly",))
