"""Traceability of the blind signature: a cheating user is caught at rate 1 - 1/K."""

from __future__ import annotations

import math

import pytest

from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.identity.ca import compute_certificate_hash, compute_member_key, get_attributes
from gridledger.identity.contracts import (
    KIND_BLACKLIST,
    Reader,
)
from gridledger.identity.errors import CheatingDetected, MessageRejected
from gridledger.identity.registration import (
    on_commitments,
    on_open_request,
    on_openings,
    verify_cheating_evidence,
)

from .conftest import NOW, World
from .helpers import Chain, cheat_commitments


def test_caught_cheater_leaves_verifiable_evidence(world: World) -> None:
    rng = DeterministicRng("caught")
    rm = world.new_rm(k=4)
    user = world.users[10]
    st, com = cheat_commitments(world, rm, user, 1, bad=0, rng=rng)
    req = on_commitments(rm, com, NOW, rng)
    if req.request.keep == 0:
        pytest.skip("seed made the cheater escape")  # deterministic seed: not taken
    with pytest.raises(CheatingDetected) as info:
        on_openings(rm, on_open_request(st, req, NOW), NOW)
    assert info.value.index == 0
    evidence = info.value.evidence
    assert rm.evidence == [evidence]
    assert verify_cheating_evidence(
        evidence, world.roots, world.tc_key
    ) == compute_certificate_hash(user.cert)
    # Posting it blacklists the user on chain; a second post is refused.
    chain = Chain(world)
    sender = Ed25519PrivateKey.generate(rng)
    assert chain.submit(KIND_BLACKLIST, evidence, sender).ok
    assert Reader(chain.get).is_blacklisted(compute_member_key(get_attributes(user.cert)))
    assert not chain.submit(KIND_BLACKLIST, evidence, sender).ok


def test_honest_transcript_is_not_evidence(world: World) -> None:
    rng = DeterministicRng("honest-evidence")
    rm = world.new_rm(k=4)
    user = world.users[11]
    st, com = cheat_commitments(world, rm, user, 1, bad=99, rng=rng)  # no bad candidate
    req = on_commitments(rm, com, NOW, rng)
    op = on_open_request(st, req, NOW)
    on_openings(rm, op, NOW)
    from gridledger.identity.messages import CheatingEvidence

    sess = next(iter(rm.sessions.values()))
    fake = CheatingEvidence(sess.hello, sess.challenge, com, req, op)
    with pytest.raises(MessageRejected):
        verify_cheating_evidence(fake, world.roots, world.tc_key)


def test_catch_rate_is_one_minus_one_over_k(world: World) -> None:
    k, trials = 4, 160
    rng = DeterministicRng("rate")
    rm = world.new_rm(k=k)
    user = world.users[12]
    caught = 0
    for t in range(trials):
        bad = rng.randbelow(k)
        st, com = cheat_commitments(world, rm, user, 10 + t, bad=bad, rng=rng)
        req = on_commitments(rm, com, NOW, rng)
        try:
            on_openings(rm, on_open_request(st, req, NOW), NOW)
        except CheatingDetected:
            caught += 1
    p = 1 - 1 / k
    sigma = math.sqrt(p * (1 - p) / trials)
    assert abs(caught / trials - p) < 4 * sigma, caught


def test_rm_cut_and_choose_checks_the_revocation_handle(world: World) -> None:
    rng = DeterministicRng("handle-cheat")
    rm = world.new_rm(k=4)
    st, com = cheat_commitments(world, rm, world.users[13], 5, bad=0, rng=rng, handle_only=True)
    req = on_commitments(rm, com, NOW, rng)
    assert req.request.keep != 0  # this seed opens the bad candidate
    with pytest.raises(CheatingDetected) as info:
        on_openings(rm, on_open_request(st, req, NOW), NOW)
    assert info.value.index == 0
    # The evidence convicts on chain like a bad ciphertext does.
    from gridledger.identity.registration import verify_cheating_evidence

    identity = verify_cheating_evidence(info.value.evidence, world.roots, world.tc_key)
    assert identity == compute_certificate_hash(world.users[13].cert)
