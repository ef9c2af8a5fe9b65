"""Anonymity and robustness: RM + MM records and published certificates link only by chance."""

from __future__ import annotations

import math

import gmpy2

from gridledger.crypto.rng import DeterministicRng, Rng
from gridledger.identity.ca import compute_certificate_hash
from gridledger.identity.pseudonym_issuer import (
    compute_pseudonym_request,
    on_pseudonym_request,
    process_close_batch,
    process_open_batch,
)

from .conftest import NOW, World, register

N_USERS, ROUNDS = 8, 6


def _shuffle(items: list[int], rng: Rng) -> list[int]:
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = rng.randbelow(i + 1)
        out[i], out[j] = out[j], out[i]
    return out


def _run(world: World, users_shuffle: bool, seed: str) -> tuple[int, int, int]:
    """Returns successes of (arrival-order, publication-order, RSA-unblinding) adversaries."""
    rng = DeterministicRng(seed)
    user_rng = DeterministicRng(seed + "users")
    rm, mm = world.new_rm(k=4), world.new_mm()
    n = world.rm_blind.key.public_key.n
    e = world.rm_blind.key.public_key.e
    d = world.rm_blind.key.private_numbers().d
    wins = [0, 0, 0]
    by_identity = {compute_certificate_hash(m.cert): i for i, m in enumerate(world.users)}
    for rnd in range(100, 100 + ROUNDS):
        order = _shuffle(list(range(N_USERS)), rng)  # registration order at the RM
        creds = {u: register(world, rm, world.users[u], rnd, rng) for u in order}
        # RM record: for each session, the identity and the blinded kept message.
        sessions = [s for s in rm.sessions.values() if s.round == rnd]
        who = {s.session_id: by_identity[s.identity] for s in sessions}
        # Users submit to the MM in their own random order (or, naively, at once).
        arrival = _shuffle(order, user_rng) if users_shuffle else list(order)
        process_open_batch(mm, rnd)
        for u in arrival:
            on_pseudonym_request(mm, compute_pseudonym_request(creds[u], world.mm.cert))
        arrived_keys = [r.pseudonym_key for r in mm.pending]
        batch = process_close_batch(mm, NOW, NOW + 3600, rng).certificates
        owner = {creds[u].pseudonym.public_key.raw: u for u in order}
        # Adversary 1: i-th RM session <-> i-th MM arrival.
        guess1 = {arrived_keys[i]: order[i] for i in range(N_USERS)}
        # Adversary 2: i-th RM session <-> i-th published certificate.
        guess2 = {batch[i].certificate.pseudonym_key: order[i] for i in range(N_USERS)}
        # Adversary 3 (knows d): for each certificate, the session whose implied
        # blinding factor r = (B / s^e)^d is smallest.
        guess3 = {}
        for signed in batch:
            em = pow(int.from_bytes(signed.certificate.rm_signature, "big"), e, n)
            best = min(
                sessions,
                key=lambda s: int(
                    gmpy2.powmod(
                        int.from_bytes(s.openings.openings.kept_blinded_msg, "big")
                        * pow(em, -1, n)
                        % n,
                        d,
                        n,
                    )
                ),
            )
            guess3[signed.certificate.pseudonym_key] = who[best.session_id]
        for i, guess in enumerate((guess1, guess2, guess3)):
            wins[i] += sum(1 for k, u in guess.items() if owner[k] == u)
    return wins[0], wins[1], wins[2]


def test_linking_adversaries_do_no_better_than_chance(world: World) -> None:
    trials = N_USERS * ROUNDS
    p = 1 / N_USERS
    bound = p + 4 * math.sqrt(p * (1 - p) / trials)
    for wins in _run(world, users_shuffle=True, seed="anon"):
        assert wins / trials <= bound, (wins, trials)


def test_arrival_timing_would_link_if_users_did_not_delay(world: World) -> None:
    """Sanity check of the adversary: the MM's arrival order links naive users."""
    by_arrival, by_publication, _ = _run(world, users_shuffle=False, seed="naive")
    assert by_arrival == N_USERS * ROUNDS
    assert by_publication / (N_USERS * ROUNDS) < 0.5  # the batch shuffle still hides it publicly
