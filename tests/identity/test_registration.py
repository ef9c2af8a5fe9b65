"""Registration: mutual authentication, non-repudiation, replay/expiry/roles, one per round."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from gridledger.crypto import blind_rsa
from gridledger.crypto.encoding import encode
from gridledger.crypto.groups import get_named_group
from gridledger.crypto.rng import DeterministicRng
from gridledger.errors import IdentityError
from gridledger.identity.ca import (
    MemberAttributes,
    Permission,
    Role,
    compute_certificate_hash,
    compute_member_key,
    get_attributes,
    get_rsa_key,
    process_issue,
    process_take_superseded,
    verify_member,
)
from gridledger.identity.errors import (
    Blacklisted,
    CertificateRejected,
    ExpiredMessage,
    MessageRejected,
    RegistrationRejected,
    ReplayDetected,
    WrongRole,
)
from gridledger.identity.messages import (
    BLIND_SIGNATURE_TAG,
    CHALLENGE_TAG,
    COMMITMENTS_TAG,
    HELLO_TAG,
    OPEN_REQUEST_TAG,
    OPENINGS_TAG,
    SignedChallenge,
    SignedHello,
)
from gridledger.identity.registration import (
    RegistrationManager,
    RmConfig,
    compute_pseudonym_input,
    create_registration_manager,
    on_challenge,
    on_commitments,
    on_hello,
    on_open_request,
    on_openings,
    parse_message,
    process_open_round,
    start_registration,
)
from gridledger.identity.tags import (
    compute_handle,
    compute_handle_public,
    compute_tag,
    compute_tag_public,
    create_tag_verifier,
)
from gridledger.identity.trace_center import (
    deal_trustee_keys,
)

from .conftest import DAY, NOW, Member, World, issue, register
from .helpers import corrupt_certificates, start


def _snapshot(rm: RegistrationManager) -> tuple[object, ...]:
    return (
        dict(rm.sessions),
        dict(rm.slots),
        set(rm.consumed),
        set(rm.replay.seen),
        rm.replay.floor,
        list(rm.evidence),
    )


def test_full_registration_yields_valid_rm_signature(world: World) -> None:
    rng = DeterministicRng("reg")
    cred = register(world, world.new_rm(k=8), world.users[0], 3, rng)
    msg = compute_pseudonym_input(3, cred.pseudonym.public_key.raw, cred.tag)
    blind_rsa.verify(
        world.rm_blind.key.public_key,
        blind_rsa.Variant.PSS_RANDOMIZED,
        cred.msg_prefix + msg,
        cred.rm_signature,
    )


def test_k32_registration(world: World) -> None:
    cred = register(world, world.new_rm(k=32), world.users[1], 5, DeterministicRng("k32"))
    assert cred.round == 5


@pytest.mark.parametrize("group_name", ["ed25519", "ffdhe2048"])
def test_fast_tag_path_matches_threshold_encrypt(world: World, group_name: str) -> None:
    group = get_named_group(group_name)
    tc_key = (
        world.tc_key
        if world.tc_key.group == group
        else deal_trustee_keys(3, 5, group, DeterministicRng("fast-tag"))[0]
    )
    verifier = create_tag_verifier(tc_key)
    q = tc_key.group.q
    for r, s in ((1, q - 1), ((2**319 + 12345) % q, 7), (q - 1, (2**300 + 3) % q)):
        ident = bytes(range(32))
        consent = bytes(range(256))
        handle = compute_handle(tc_key, ident, s)
        assert compute_handle_public(verifier, ident, s) == handle
        assert compute_tag_public(verifier, ident, 9, r, b"n" * 12, handle, consent) == compute_tag(
            tc_key, ident, 9, r, b"n" * 12, handle, consent
        )


def test_every_step_signature_binds_its_sender(world: World) -> None:
    rng = DeterministicRng("nr")
    rm = world.new_rm()
    user = world.users[2]
    st, hello = start(world, user, rng)
    ch = on_hello(rm, hello, NOW, rng)
    com = on_challenge(st, ch, NOW, rng)
    req = on_commitments(rm, com, NOW, rng)
    op = on_open_request(st, req, NOW)
    bs = on_openings(rm, op, NOW)
    user_key, rm_key = get_rsa_key(user.cert), get_rsa_key(world.rm.cert)
    steps = [
        (user_key, HELLO_TAG, hello.hello, hello.signature),
        (rm_key, CHALLENGE_TAG, ch.challenge, ch.signature),
        (user_key, COMMITMENTS_TAG, com.commitments, com.signature),
        (rm_key, OPEN_REQUEST_TAG, req.request, req.signature),
        (user_key, OPENINGS_TAG, op.openings, op.signature),
        (rm_key, BLIND_SIGNATURE_TAG, bs.response, bs.signature),
    ]
    for key, tag, body, sig in steps:
        assert key.verify(tag, encode(body), sig) is None
        other = rm_key if key is user_key else user_key
        with pytest.raises(Exception, match="does not verify"):
            other.verify(tag, encode(body), sig)
        tampered = dataclasses.replace(body, timestamp=body.timestamp + 1)
        with pytest.raises(Exception, match="does not verify"):
            key.verify(tag, encode(tampered), sig)


def test_tampered_hello_rejected_without_state_change(world: World) -> None:
    rng = DeterministicRng("tamper")
    rm = world.new_rm()
    user = world.users[3]
    _, hello = start(world, user, rng)
    before = _snapshot(rm)
    bad = SignedHello(dataclasses.replace(hello.hello, round=2), hello.signature)
    with pytest.raises(MessageRejected):
        on_hello(rm, bad, NOW, rng)
    assert _snapshot(rm) == before


def test_replay_and_expiry(world: World) -> None:
    rng = DeterministicRng("replay")
    rm = world.new_rm()
    user = world.users[4]
    _, hello = start(world, user, rng)
    on_hello(rm, hello, NOW, rng)
    before = _snapshot(rm)
    with pytest.raises(ReplayDetected):
        on_hello(rm, hello, NOW + 1, rng)
    assert _snapshot(rm) == before
    _, old = start(world, user, rng, 2, NOW - 1000)
    with pytest.raises(ExpiredMessage):
        on_hello(rm, old, NOW, rng)
    assert _snapshot(rm) == before


def test_malformed_bytes_are_typed_errors(world: World) -> None:
    for data in (b"", b"\xff\x00", encode({"_t": "identity.reg-hello-signed/1"}), encode([1, 2])):
        with pytest.raises(MessageRejected):
            parse_message(SignedHello, data)


def test_wrong_roles_and_wrong_rm(world: World) -> None:
    rng = DeterministicRng("roles")
    rm = world.new_rm()
    # The MM's certificate is not a household certificate.
    _, hello = start(world, world.mm, rng)
    before = _snapshot(rm)
    with pytest.raises(WrongRole):
        on_hello(rm, hello, NOW, rng)
    # The user refuses an "RM" whose certificate lacks the rm role.
    with pytest.raises(WrongRole):
        start_registration(
            world.users[0].key,
            world.users[0].cert,
            world.roots,
            world.tc_key,
            world.mm.cert,
            1,
            NOW,
            rng,
            rm_blind_certificate=world.rm_blind.cert,
        )
    # A hello addressed to another RM.
    _, hello2 = start(world, world.users[0], rng)
    misaddressed = dataclasses.replace(hello2.hello, rm=b"\x00" * 32)
    signed = SignedHello(misaddressed, world.users[0].key.sign(HELLO_TAG, encode(misaddressed)))
    with pytest.raises(MessageRejected):
        on_hello(rm, signed, NOW, rng)
    assert _snapshot(rm) == before


def test_user_rejects_challenge_signed_with_mint_key(world: World) -> None:
    rng = DeterministicRng("mint")
    rm = world.new_rm()
    rm.blind_certificate = world.mint_blind.cert  # a misconfigured or malicious RM
    user = world.users[5]
    st, hello = start(world, user, rng)
    ch = on_hello(rm, hello, NOW, rng)
    with pytest.raises(WrongRole):
        on_challenge(st, ch, NOW, rng)


def test_one_pseudonym_per_identity_per_round(world: World) -> None:
    rng = DeterministicRng("once")
    rm = world.new_rm()
    user = world.users[6]
    register(world, rm, user, 7, rng)
    with pytest.raises(RegistrationRejected):
        register(world, rm, user, 7, rng, now=NOW + 1)
    register(world, rm, user, 8, rng, now=NOW + 2)  # the next round is fine


def test_abort_after_open_request_consumes_the_round(world: World) -> None:
    rng = DeterministicRng("abort")
    rm = world.new_rm()
    user = world.users[7]
    st, hello = start(world, user, rng)
    com = on_challenge(st, on_hello(rm, hello, NOW, rng), NOW, rng)
    on_commitments(
        rm, com, NOW, rng
    )  # the user now sees which candidate is kept ... and walks away
    with pytest.raises(RegistrationRejected):
        register(world, rm, user, 1, rng, now=NOW + 500)
    # Abandoning *before* the open request is harmless: a retry after the timeout works.
    _, hello2 = start(world, user, rng, 2)
    on_hello(rm, hello2, NOW, rng)
    with pytest.raises(RegistrationRejected):
        register(world, rm, user, 2, rng, now=NOW + 10)
    register(world, rm, user, 2, rng, now=NOW + 100)


def test_late_openings_and_wrong_stage(world: World) -> None:
    rng = DeterministicRng("late")
    rm = world.new_rm()
    user = world.users[8]
    st, hello = start(world, user, rng)
    com = on_challenge(st, on_hello(rm, hello, NOW, rng), NOW, rng)
    req = on_commitments(rm, com, NOW, rng)
    with pytest.raises(ReplayDetected):
        on_commitments(rm, com, NOW, rng)
    op = on_open_request(st, req, NOW)
    with pytest.raises(ExpiredMessage):
        on_openings(rm, op, NOW + 1000)


def test_blacklisted_and_revoked_users_refused(world: World) -> None:
    rng = DeterministicRng("bl")
    rm = world.new_rm()
    user = world.users[9]
    rm.blacklist = {compute_certificate_hash(user.cert)}
    with pytest.raises(Blacklisted):
        register(world, rm, user, 1, rng)
    rm.blacklist = frozenset()
    rm.revoked = {compute_certificate_hash(user.cert)}
    with pytest.raises(CertificateRejected):
        register(world, rm, user, 1, rng, now=NOW + 1)
    copy.copy(rm)


def test_second_certificate_gains_nothing(world: World, rsa_keys: list) -> None:  # type: ignore[type-arg]
    rng = DeterministicRng("r-f3")
    attrs = MemberAttributes("prosumer", "house-77", "meter-77", ("trade",))
    key = rsa_keys[12]
    old = Member(
        key, process_issue(world.ca, "house-77", key.public_key, attrs, NOW - DAY, 365 * DAY, rng)
    )
    new = Member(
        key, process_issue(world.ca, "house-77", key.public_key, attrs, NOW - 10, 365 * DAY, rng)
    )
    # the CA revoked the earlier certificate on renewal, for the operator to post
    assert process_take_superseded(world.ca) == (compute_certificate_hash(old.cert),)
    rm = world.new_rm(k=4)
    register(world, rm, old, 320, rng)
    with pytest.raises(RegistrationRejected, match="member already used"):
        register(world, rm, new, 320, rng)  # same member, same round: one slot
    # tracing blacklists the member key: the other certificate is refused too
    rm.blacklist = frozenset({compute_member_key(get_attributes(old.cert))})
    with pytest.raises(Blacklisted):
        register(world, rm, new, 321, rng)


# -- the household pins the genesis's RM blind key ---------------------------------------


def test_household_refuses_a_second_certified_rm_blind_key(world: World, rsa_keys: list) -> None:  # type: ignore[type-arg]
    """A colluding RM and MM single one household out: the RM signs its pseudonym under a
    second blind key, validly certified to the RM (same member id, sign-pseudonyms), so
    that the MM, or anyone, can tell that household's pseudonym by the key alone."""
    rng = DeterministicRng("pin-blind-key")
    attrs = MemberAttributes("rm", "rm-1", None, ("sign-pseudonyms",))
    rogue = issue(world.ca, "rm-1-pseudonyms-b", rsa_keys[3], attrs, rng)
    # the second key is certified exactly like the genesis one: only the pin tells them apart
    verify_member(rogue.cert, world.roots, NOW, Role.RM, Permission.SIGN_PSEUDONYMS)
    rm = create_registration_manager(
        RmConfig(k=4), world.rm.key, world.rm.cert, rogue.key, rogue.cert, world.roots,
        world.tc_key,
    )  # fmt: skip
    process_open_round(rm, 5)
    user = world.users[20]
    st, hello = start_registration(
        user.key, user.cert, world.roots, world.tc_key, world.rm.cert, 5, NOW, rng,
        rm_blind_certificate=world.rm_blind.cert,
    )  # fmt: skip
    challenge = on_hello(rm, hello, NOW, rng)
    with pytest.raises(MessageRejected, match="pinned at genesis"):
        on_challenge(st, challenge, NOW, rng)
    assert st.challenge is None and st.blind_key is None and st.candidates == []
    # The same household registers with the genesis key (another RM instance, same round).
    credential = register(world, world.new_rm(k=4), user, 5, rng)
    assert credential.round == 5


# -- one pseudonym per member per round, whatever the meter id ---------------------------


def test_renewal_with_another_meter_gets_no_second_pseudonym(world: World, rsa_keys: list) -> None:  # type: ignore[type-arg]
    """A household registers, renews its certificate with a new meter id (a new member
    key), and registers again in the same round before the old certificate's revocation
    reaches the RM: refused. So is the old meter under a new member id."""
    rng = DeterministicRng("renew-meter")
    key = rsa_keys[13]

    def household(member: str, meter: str) -> Member:
        return issue(
            world.ca, member, key, MemberAttributes("producer", member, meter, ("trade",)), rng
        )

    try:
        first = household("house-90", "meter-90")
        renewed = household("house-90", "meter-91")
        moved = household("house-91", "meter-90")
        members = {compute_member_key(get_attributes(m.cert)) for m in (first, renewed, moved)}
        assert len(members) == 3  # three member keys: the old per-member-key slot let all in
        rm = world.new_rm(k=2)
        # a session in progress for the renewed certificate blocks the old one too
        _, hello = start_registration(
            key, renewed.cert, world.roots, world.tc_key, world.rm.cert, 330, NOW, rng,
            rm_blind_certificate=world.rm_blind.cert,
        )  # fmt: skip
        on_hello(rm, hello, NOW, rng)
        with pytest.raises(RegistrationRejected, match="in progress"):
            register(world, rm, first, 330, rng)
        rm = world.new_rm(k=2)
        register(world, rm, first, 330, rng)
        before = _snapshot(rm)
        for again in (renewed, moved):
            with pytest.raises(RegistrationRejected, match="already used"):
                register(world, rm, again, 330, rng, now=NOW + 1)
        assert _snapshot(rm) == before
        register(world, rm, renewed, 331, rng, now=NOW + 2)  # the next round is open to it
    finally:
        process_take_superseded(world.ca)  # leave the shared CA's queue as it was


# -- a corrupted certificate inside a message: typed, on both sides -------------------------


def test_corrupted_certificates_in_messages_are_typed(world: World) -> None:
    """The RM gets a hello, the household a challenge, whose embedded certificate is
    corrupted (bad version, negative serial, broken fields): only identity errors, and
    neither side's state changes."""
    rng = DeterministicRng("corrupt-msg")
    rm = world.new_rm(k=2)
    user = world.users[21]
    st, hello = start_registration(
        user.key, user.cert, world.roots, world.tc_key, world.rm.cert, 40, NOW, rng,
        rm_blind_certificate=world.rm_blind.cert,
    )  # fmt: skip
    before = _snapshot(rm)
    for bad in corrupt_certificates(hello.hello.user_certificate, "corrupt-hello"):
        forged = dataclasses.replace(hello.hello, user_certificate=bad)
        signed = SignedHello(forged, user.key.sign(HELLO_TAG, encode(forged)))
        with pytest.raises(IdentityError):
            on_hello(rm, signed, NOW, rng)
        assert _snapshot(rm) == before
    challenge = on_hello(rm, hello, NOW, rng)
    ch = challenge.challenge
    for field in ("rm_certificate", "blind_key_certificate"):
        for bad in corrupt_certificates(getattr(ch, field), f"corrupt-{field}", flips=30):
            forged_ch = dataclasses.replace(ch, **{field: bad})
            signed_ch = SignedChallenge(
                forged_ch, world.rm.key.sign(CHALLENGE_TAG, encode(forged_ch))
            )
            with pytest.raises(IdentityError):
                on_challenge(st, signed_ch, NOW, rng)
            assert st.challenge is None and st.candidates == []
    on_challenge(st, challenge, NOW, rng)  # the genuine challenge still goes through
