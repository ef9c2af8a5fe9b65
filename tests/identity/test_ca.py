"""CA: issuance, chain, validity window, revocation (CRL and on chain), roles (unforgeability)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.errors import IdentityError
from gridledger.identity.ca import (
    MemberAttributes,
    Permission,
    Role,
    compute_certificate_der,
    compute_certificate_hash,
    compute_crl,
    compute_member_key,
    compute_round_slots,
    create_authority,
    get_attributes,
    get_rsa_key,
    load_certificate,
    process_issue,
    process_revoke,
    process_take_superseded,
    verify_member,
)
from gridledger.identity.contracts import (
    get_blacklist,
)
from gridledger.identity.errors import (
    CertificateRejected,
    MemberBlacklisted,
    WrongRole,
)

from .conftest import DAY, NOW, World
from .helpers import corrupt_certificates, evidence_on_chain, submit_trace


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


def test_ca_refuses_blacklisted_member_id_and_meter() -> None:
    rng = DeterministicRng("ca-bl")
    ca = create_authority("CA-bl", Ed25519PrivateKey.generate(rng), NOW - DAY, 9 * DAY, rng)
    key = Ed25519PrivateKey.generate(rng).public_key
    attrs = MemberAttributes("consumer", "house-x", "meter-x", ("trade",))
    first = process_issue(ca, "house-x", key, attrs, NOW, DAY, rng)
    process_issue(ca, "house-x", key, attrs, NOW, DAY, rng)  # not blacklisted: renewal is fine
    assert process_take_superseded(ca) == (compute_certificate_hash(first),)  # renewal revokes
    ca.blacklist = {compute_member_key(get_attributes(first))}
    before = dict(ca.issued)
    with pytest.raises(MemberBlacklisted) as info:
        process_issue(ca, "house-x", key, attrs, NOW, DAY, rng)
    assert info.value.identity == compute_member_key(attrs)
    assert info.value.subject == "member:house-x"
    renamed = MemberAttributes("consumer", "house-y", "meter-x", ("trade",))
    with pytest.raises(MemberBlacklisted, match="meter:meter-x"):
        process_issue(ca, "house-y", key, renamed, NOW, DAY, rng)
    assert ca.issued == before  # nothing issued on refusal
    other = MemberAttributes("consumer", "house-z", "meter-z", ("trade",))
    process_issue(ca, "house-z", key, other, NOW, DAY, rng)


def test_ca_reads_the_on_chain_blacklist_after_a_trace(world: World) -> None:
    t = evidence_on_chain(world, "ca-chain", 64)
    # A CA that certified house-0 (here: a fresh CA certifying the same member id).
    rng = DeterministicRng("ca-chain")
    ca = create_authority("CA-chain", Ed25519PrivateKey.generate(rng), NOW - DAY, 9 * DAY, rng)
    attrs = MemberAttributes("producer", "house-0", "meter-0", ("trade",))
    ca.admitted["member:house-0"] = [compute_member_key(get_attributes(world.users[0].cert))]
    ca.blacklist = get_blacklist(t.chain.get)
    key = world.users[0].key.public_key
    process_issue(ca, "house-0", key, attrs, NOW, DAY, rng)  # not yet traced
    assert submit_trace(t, t.record_entries).ok
    with pytest.raises(MemberBlacklisted):
        process_issue(ca, "house-0", key, attrs, NOW, DAY, rng)


# -- certificate parsing: typed errors only ----------------------------------------------


def _check_typed(der: bytes, world: World) -> None:
    """Everything a verifier does with received DER raises only identity errors."""
    try:
        cert = load_certificate(der)
        get_attributes(cert)
        get_rsa_key(cert)
        verify_member(cert, world.roots, NOW, Role.PRODUCER, Permission.TRADE)
    except IdentityError:
        pass


def test_corrupted_certificates_are_typed_rejections(world: World) -> None:
    """A corrupted certificate (bad version, negative serial, broken name, extension or
    key) is a CertificateRejected, never a bare ValueError, InvalidVersion or warning."""
    der = compute_certificate_der(world.users[0].cert)
    variants = corrupt_certificates(der, "ca-corrupt", flips=300)
    for bad in variants[:8]:  # version, serial, truncations: refused at load
        with pytest.raises(CertificateRejected):
            load_certificate(bad)
    for bad in variants:
        _check_typed(bad, world)
    with pytest.raises(CertificateRejected):
        load_certificate("not bytes")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200))
def test_any_bytes_load_or_are_rejected(data: bytes) -> None:
    with contextlib.suppress(CertificateRejected):
        load_certificate(data)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4))
def test_mutated_certificates_give_typed_errors(world: World, edits: list[tuple[int, int]]) -> None:
    b = bytearray(compute_certificate_der(world.users[1].cert))
    for at, value in edits:
        b[at % len(b)] = value
    _check_typed(bytes(b), world)


_ids = st.sampled_from(["house-1", "house-2", "house-3"])
_meters = st.sampled_from(["meter-1", "meter-2", "meter-3"])


@settings(max_examples=300, deadline=None)
@given(_ids, _meters, _ids, _meters)
def test_round_slots_meet_whenever_member_id_or_meter_is_shared(
    member_a: str, meter_a: str, member_b: str, meter_b: str
) -> None:
    """Two certificates share an RM round slot iff they share a member id or a meter: a
    renewal that changes either one still finds the round used."""
    a = MemberAttributes("producer", member_a, meter_a, ("trade",))
    b = MemberAttributes("consumer", member_b, meter_b, ("trade",))
    shared = set(compute_round_slots(a)) & set(compute_round_slots(b))
    assert bool(shared) == (member_a == member_b or meter_a == meter_b)
