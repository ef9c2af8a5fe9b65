"""Groups, Shamir/Feldman sharing and the joint-Feldman DKG."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence

import gmpy2
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.crypto.errors import (
    DuplicateShare,
    EncodingError,
    InvalidShare,
    KeyFormatError,
    SharingError,
    TooFewShares,
)
from gridledger.crypto.groups import (
    FFDHE2048,
    FFDHE3072,
    SHARE_GROUP,
    SHARE_K,
    PrimeOrderGroup,
    SchnorrGroup,
)
from gridledger.crypto.hashing import register_tag
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.sharing import (
    DkgDealing,
    DkgResult,
    Share,
    check_commitments,
    commitments_from_bytes,
    commitments_to_bytes,
    compute_polynomial,
    dkg_check_received,
    dkg_complaints,
    dkg_deal,
    dkg_finalize,
    dkg_qualified,
    is_valid_share,
    lagrange_coefficient,
    reconstruct,
    reconstruct_verified,
    split,
    verify_share,
)
from gridledger.crypto.signatures import RsaPrivateKey
from tests.crypto.test_groups import parametrize_groups, twist

G = FFDHE2048
Q = G.q
TOY = SchnorrGroup(p=23, q=11, g=4)  # 4 = 2^2 has order 11 mod 23
ALL_ONES_64 = 2**64 - 1
_RSA_TAG = register_tag("gridledger/tests/crypto/sharing/rsa-d/1")


class ScriptedRng:
    """Returns given values from randbelow, to enumerate every polynomial."""

    def __init__(self, values: Sequence[int]) -> None:
        self._values = list(values)

    def random_bytes(self, n: int) -> bytes:
        raise AssertionError("not used")

    def randbelow(self, upper: int) -> int:
        v = self._values.pop(0)
        assert 0 <= v < upper
        return v


# --- groups --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "bits", "x"), [(FFDHE2048, 2048, 560316), (FFDHE3072, 3072, 2625351)]
)
def test_ffdhe_groups_are_rfc7919(group: SchnorrGroup, bits: int, x: int) -> None:
    p = group.p
    assert p.bit_length() == bits
    assert gmpy2.is_prime(p, 40) and gmpy2.is_prime(group.q, 40)
    assert group.q == (p - 1) // 2 and group.is_safe_prime
    assert p >> (bits - 64) == ALL_ONES_64  # top 64 bits all ones
    assert p & ALL_ONES_64 == ALL_ONES_64  # bottom 64 bits all ones
    # RFC 7919 §A: p = 2^b - 2^{b-64} + {[2^{b-130} e] + X} * 2^64 - 1.
    with gmpy2.context(precision=bits + 64):
        e_bits = int(gmpy2.floor(gmpy2.mpfr(2) ** (bits - 130) * gmpy2.exp(1)))
    assert p == 2**bits - 2 ** (bits - 64) + (e_bits + x) * 2**64 - 1
    assert group.g == 4 and group.exp(group.g, group.q) == 1
    group.check()


def test_share_group_parameters() -> None:
    grp = SHARE_GROUP
    assert gmpy2.is_prime(grp.p, 40) and gmpy2.is_prime(grp.q, 40)
    assert grp.q > 2**2056 > 2**2048
    assert (grp.p - 1) % grp.q == 0 and grp.p == SHARE_K * grp.q + 1
    assert grp.g != 1 and grp.exp(grp.g, grp.q) == 1
    assert grp.g == pow(2, SHARE_K, grp.p)
    # Nothing up the sleeve: Q is the first prime after floor(pi * 2^2055).
    with gmpy2.context(precision=2300):
        seed = int(gmpy2.floor(gmpy2.const_pi() * gmpy2.mpfr(2) ** 2055))
    assert grp.q == gmpy2.next_prime(seed)
    grp.check()


def test_group_membership() -> None:
    for grp in (FFDHE2048, SHARE_GROUP, TOY):
        assert grp.is_element(1) and grp.is_element(grp.g)
        assert grp.is_element(grp.exp(grp.g, 12345))
        assert not grp.is_element(0) and not grp.is_element(grp.p)
        assert not grp.is_element(grp.p - 1)  # order 2
        assert not grp.is_element(-grp.g % grp.p)
    assert SHARE_GROUP.is_element(SHARE_GROUP.g)
    assert not SHARE_GROUP.is_element(2)  # 2 has order k*Q, not Q


def test_group_validation() -> None:
    TOY.check()
    with pytest.raises(KeyFormatError):
        SchnorrGroup(23, 11, 5).check()  # 5 is a non-residue: order 22
    with pytest.raises(KeyFormatError):
        SchnorrGroup(25, 3, 4).check()  # 25 is not prime
    with pytest.raises(ValueError):
        SchnorrGroup(23, 7, 4)  # 7 does not divide 22
    with pytest.raises(ValueError):
        SchnorrGroup(23, 11, 23)


def test_group_helpers() -> None:
    a, b = G.exp_g(5), G.exp_g(7)
    assert G.mul(a, b) == G.exp_g(12)
    assert G.mul(a, G.inv(a)) == 1
    assert G.exp_secret(G.g, 12) == G.exp_g(12)
    assert G.exp_secret(G.g, 0) == 1 and G.exp_secret(G.g, G.q) == 1
    assert G.element_from_bytes(G.element_to_bytes(a)) == a
    assert len(G.element_to_bytes(1)) == 256 and len(G.scalar_to_bytes(1)) == 256
    assert G.scalar_from_bytes(G.scalar_to_bytes(Q - 1)) == Q - 1
    with pytest.raises(EncodingError):
        G.scalar_to_bytes(Q)
    with pytest.raises(EncodingError):
        G.element_from_bytes(b"\x01" * 255)
    with pytest.raises(EncodingError):
        G.element_from_bytes(b"\xff" * 256)  # >= p
    rng = DeterministicRng("scalars")
    assert all(1 <= G.random_scalar(rng) < Q for _ in range(20))


# --- Shamir / Feldman ----------------------------------------------------------------


@st.composite
def _sharing_case(draw: st.DrawFn, q: int) -> tuple[int, int, list[int], int, int]:
    n = draw(st.integers(1, 7))
    t = draw(st.integers(1, n))
    k = draw(st.integers(t, n))
    subset = draw(st.permutations(range(1, n + 1)))[:k]
    secret = draw(st.integers(0, q - 1))
    seed = draw(st.integers(0, 2**32))
    return t, n, subset, secret, seed


@parametrize_groups
@given(data=st.data())
@settings(max_examples=15, deadline=None)
def test_any_t_shares_reconstruct(group: PrimeOrderGroup, data: st.DataObject) -> None:
    G = group
    t, n, subset, secret, seed = data.draw(_sharing_case(G.q))
    dealing = split(secret, t, n, G, DeterministicRng(seed))
    assert dealing.threshold == t and len(dealing.shares) == n
    chosen = [dealing.shares[i - 1] for i in subset]
    assert reconstruct(chosen, t, G) == secret
    assert reconstruct(chosen, t, G, n=n) == secret
    assert reconstruct_verified(chosen, t, dealing.commitments, G) == secret
    assert dealing.commitments[0] == G.exp_g(secret)


def _solve_mod(matrix: list[list[int]], rhs: list[int], q: int) -> list[int]:
    """Gauss-Jordan elimination mod a prime (the matrix must be invertible)."""
    m = [[*row, v] for row, v in zip(matrix, rhs, strict=True)]
    size = len(m)
    for col in range(size):
        pivot = next(r for r in range(col, size) if m[r][col] % q)
        m[col], m[pivot] = m[pivot], m[col]
        inv = pow(m[col][col], -1, q)
        m[col] = [v * inv % q for v in m[col]]
        for r in range(size):
            if r != col and m[r][col]:
                f = m[r][col]
                m[r] = [(a - f * b) % q for a, b in zip(m[r], m[col], strict=True)]
    return [row[-1] for row in m]


@parametrize_groups
@given(st.integers(2, 7), st.data(), st.integers(0, 2**32))
@settings(max_examples=15, deadline=None)
def test_t_minus_1_shares_are_consistent_with_every_secret(
    group: PrimeOrderGroup, t: int, data: st.DataObject, seed: int
) -> None:
    G, Q = group, group.q
    secret, other = data.draw(st.integers(0, Q - 1)), data.draw(st.integers(0, Q - 1))
    n = data.draw(st.integers(t, 7))
    dealing = split(secret, t, n, G, DeterministicRng(seed))
    subset = data.draw(st.permutations(range(1, n + 1)))[: t - 1]
    seen = [dealing.shares[i - 1] for i in subset]
    # For the candidate secret `other`, solve the Vandermonde system for a_1..a_{t-1}:
    # sum_j a_j i^j = share_i - other. It is invertible, so exactly one polynomial of
    # degree < t passes through (0, other) and the t-1 seen points: the seen shares
    # are equally consistent with every secret, i.e. they carry no information.
    matrix = [[pow(s.index, j, Q) for j in range(1, t)] for s in seen]
    coeffs = [other, *_solve_mod(matrix, [(s.value - other) % Q for s in seen], Q)]
    for s in seen:
        assert compute_polynomial(coeffs, s.index, Q) == s.value
    assert compute_polynomial(coeffs, 0, Q) == other
    with pytest.raises(TooFewShares):
        reconstruct(seen, t, G)


@pytest.mark.parametrize("t", [2, 3])
def test_perfect_secrecy_exhaustively_in_a_toy_group(t: int) -> None:
    # Over all polynomials, every (t-1)-tuple of shares occurs exactly once for each
    # secret: the distribution of t-1 shares does not depend on the secret.
    q = TOY.q
    for secret in range(q):
        counts: Counter[tuple[int, ...]] = Counter()
        for coeffs in itertools.product(range(q), repeat=t - 1):
            dealing = split(secret, t, 3, TOY, ScriptedRng(coeffs))
            counts[tuple(s.value for s in dealing.shares[: t - 1])] += 1
        assert len(counts) == q ** (t - 1) and set(counts.values()) == {1}


@parametrize_groups
def test_t_minus_1_shares_give_a_wrong_secret(group: PrimeOrderGroup) -> None:
    G = group
    secret = 123456789
    dealing = split(secret, 3, 5, G, DeterministicRng("wrong"))
    assert reconstruct(dealing.shares[:2], 2, G) != secret


@parametrize_groups
def test_too_few_shares(group: PrimeOrderGroup) -> None:
    G = group
    dealing = split(42, 3, 5, G, DeterministicRng("few"))
    with pytest.raises(TooFewShares) as info:
        reconstruct(dealing.shares[:2], 3, G)
    assert (info.value.have, info.value.need) == (2, 3)
    with pytest.raises(TooFewShares):
        reconstruct_verified(dealing.shares[3:], 3, dealing.commitments, G)
    with pytest.raises(TooFewShares):
        reconstruct([], 1, G)


@parametrize_groups
def test_duplicate_share(group: PrimeOrderGroup) -> None:
    G = group
    dealing = split(42, 3, 5, G, DeterministicRng("dup"))
    s = dealing.shares
    with pytest.raises(DuplicateShare) as info:
        reconstruct([s[0], s[1], s[1]], 3, G)
    assert info.value.index == 2
    with pytest.raises(DuplicateShare):
        reconstruct([s[0], s[1], Share(2, s[2].value)], 3, G)
    with pytest.raises(DuplicateShare):
        reconstruct_verified([s[4], s[4], s[0]], 3, dealing.commitments, G)


@parametrize_groups
def test_bad_indices_and_values(group: PrimeOrderGroup) -> None:
    G, Q = group, group.q
    dealing = split(42, 2, 3, G, DeterministicRng("idx"))
    s = dealing.shares
    with pytest.raises(InvalidShare) as info:
        reconstruct([Share(0, 42), s[0]], 2, G)
    assert info.value.index == 0
    with pytest.raises(InvalidShare) as info:
        reconstruct([s[0], Share(4, 1)], 2, G, n=3)
    assert info.value.index == 4
    with pytest.raises(InvalidShare):
        reconstruct([s[0], Share(-1, 1)], 2, G)
    with pytest.raises(InvalidShare):
        reconstruct([s[0], Share(2, Q)], 2, G)
    with pytest.raises(InvalidShare):
        verify_share(Share(0, s[0].value), dealing.commitments, G)


@parametrize_groups
def test_split_parameters(group: PrimeOrderGroup) -> None:
    G, Q = group, group.q
    rng = DeterministicRng("params")
    for t, n in [(0, 3), (4, 3), (-1, 2)]:
        with pytest.raises(SharingError):
            split(1, t, n, G, rng)
    for secret in (-1, Q):
        with pytest.raises(SharingError):
            split(secret, 2, 3, G, rng)
    dealing = split(Q - 1, 1, 1, G, rng)  # t = n = 1: the share is the secret
    assert dealing.shares == (Share(1, Q - 1),)
    assert reconstruct(dealing.shares, 1, G) == Q - 1


@parametrize_groups
def test_corrupted_share_is_detected_and_named(group: PrimeOrderGroup) -> None:
    G, Q = group, group.q
    dealing = split(7, 3, 5, G, DeterministicRng("corrupt"))
    for s in dealing.shares:
        verify_share(s, dealing.commitments, G)
    bad = Share(4, (dealing.shares[3].value + 1) % Q)
    assert not is_valid_share(bad, dealing.commitments, G)
    with pytest.raises(InvalidShare) as info:
        verify_share(bad, dealing.commitments, G)
    assert info.value.index == 4
    shares = [dealing.shares[0], bad, dealing.shares[4]]
    assert reconstruct(shares, 3, G) != 7  # unverified: silently wrong
    with pytest.raises(InvalidShare) as info:
        reconstruct_verified(shares, 3, dealing.commitments, G)
    assert info.value.index == 4
    # A share moved to another index does not verify either.
    with pytest.raises(InvalidShare):
        verify_share(Share(2, dealing.shares[0].value), dealing.commitments, G)


@parametrize_groups
def test_commitments_outside_the_group_are_rejected(group: PrimeOrderGroup) -> None:
    G = group
    dealing = split(7, 2, 3, G, DeterministicRng("comm"))
    c0, c1 = dealing.commitments
    # -C_0 and -C_1 (mod p; on the curve, C_j + (0, -1)): the order-2 factors cancel for
    # odd indices, so share 1 "verifies" the equation.
    forged = (twist(G, c0), twist(G, c1))
    assert G.exp_g(dealing.shares[0].value) == G.mul(forged[0], forged[1])
    with pytest.raises(InvalidShare) as info:
        verify_share(dealing.shares[0], forged, G)
    assert info.value.index == 1
    with pytest.raises(SharingError):
        check_commitments(forged, G)
    with pytest.raises(SharingError):
        check_commitments((), G)
    with pytest.raises(SharingError):
        reconstruct_verified(dealing.shares, 3, dealing.commitments, G)  # wrong t


def test_lagrange_coefficients() -> None:
    indices = [2, 5, 7]
    lams = [lagrange_coefficient(i, indices, Q) for i in indices]
    assert sum(lams) % Q == 1  # interpolating the constant polynomial 1
    assert lagrange_coefficient(5, indices, Q, at=5) == 1
    assert lagrange_coefficient(5, indices, Q, at=2) == 0
    with pytest.raises(SharingError):
        lagrange_coefficient(3, indices, Q)
    with pytest.raises(SharingError):
        lagrange_coefficient(2, [2, 2 + Q], Q)


@parametrize_groups
def test_wire_round_trips(group: PrimeOrderGroup) -> None:
    G, Q = group, group.q
    dealing = split(99, 3, 4, G, DeterministicRng("wire"))
    for s in dealing.shares:
        data = s.to_bytes(G)
        assert Share.from_bytes(data, G) == s
    data = commitments_to_bytes(dealing.commitments, G)
    assert commitments_from_bytes(data, G) == dealing.commitments
    small = Share(1, 5).to_bytes(G)
    assert len(small) == len(dealing.shares[0].to_bytes(G))  # fixed length
    with pytest.raises(EncodingError):
        Share.from_bytes(small, SHARE_GROUP)  # wrong length for that group
    with pytest.raises(EncodingError):
        Share(1, Q).to_bytes(G)


def test_share_a_real_rsa_private_exponent() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    nums = key.private_numbers()
    d, n_mod, e = nums.d, nums.public_numbers.n, nums.public_numbers.e
    assert d < SHARE_GROUP.q
    dealing = split(d, 3, 5, SHARE_GROUP, DeterministicRng("rsa-d"))
    for s in dealing.shares:
        verify_share(s, dealing.commitments, SHARE_GROUP)
    picked = [dealing.shares[4], dealing.shares[1], dealing.shares[3]]
    d2 = reconstruct_verified(picked, 3, dealing.commitments, SHARE_GROUP)
    assert d2 == d
    # Sign with the reconstructed exponent: raw RSA, then a full PSS key rebuilt from it.
    m = 0x1234567890ABCDEF
    assert pow(pow(m, d2, n_mod), e, n_mod) == m
    p, q = rsa.rsa_recover_prime_factors(n_mod, e, d2)
    rebuilt = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d2,
        dmp1=rsa.rsa_crt_dmp1(d2, p),
        dmq1=rsa.rsa_crt_dmq1(d2, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=nums.public_numbers,
    ).private_key()
    signer = RsaPrivateKey(rebuilt)
    signature = signer.sign(_RSA_TAG, b"trace")
    RsaPrivateKey(key).public_key.verify(_RSA_TAG, b"trace", signature)


# --- joint-Feldman DKG ---------------------------------------------------------------


def _run_dkg(
    G: PrimeOrderGroup,
    t: int,
    n: int,
    dealings: Mapping[int, DkgDealing],
    revealed: Mapping[tuple[int, int], Share] | None = None,
) -> tuple[dict[int, frozenset[int]], dict[int, DkgResult]]:
    """Deliver every dealing, gather complaints, compute QUAL, finalize everyone."""
    commitments = {i: dd.commitments for i, dd in dealings.items()}
    received = {j: {i: dd.share_for(j) for i, dd in dealings.items()} for j in range(1, n + 1)}
    complaints = {j: dkg_complaints(j, received[j], commitments, t, n, G) for j in range(1, n + 1)}
    revealed = dict(revealed or {})
    qual = dkg_qualified(t, n, commitments, complaints, revealed, G)
    results = {
        j: dkg_finalize(j, qual, received[j], commitments, revealed, t, n, G)
        for j in range(1, n + 1)
    }
    return complaints, results


def _check_agreement(G: PrimeOrderGroup, results: Mapping[int, DkgResult], t: int) -> int:
    first = next(iter(results.values()))
    for r in results.values():
        assert r.public_key == first.public_key
        assert r.verification_keys == first.verification_keys
        assert r.qualified == first.qualified
        assert G.exp_g(r.share.value) == r.verification_keys[r.index - 1]
    shares = [r.share for r in results.values()]
    x = reconstruct(shares[:t], t, G)
    assert G.exp_g(x) == first.public_key
    assert reconstruct(shares[-t:], t, G) == x
    assert reconstruct_verified(shares, t, first.commitments, G) == x
    return x


@parametrize_groups
def test_dkg_honest_run(group: PrimeOrderGroup) -> None:
    G = group
    t, n = 3, 5
    rng = DeterministicRng("dkg-honest")
    dealings = {i: dkg_deal(i, t, n, G, rng.fork(str(i))) for i in range(1, n + 1)}
    complaints, results = _run_dkg(G, t, n, dealings)
    assert all(not c for c in complaints.values())
    assert results[1].qualified == frozenset(range(1, n + 1))
    x = _check_agreement(G, results, t)
    # No dealer held x: it is the sum of all dealers' secrets (each C_{i,0} = g^{s_i}).
    y = G.identity
    for dd in dealings.values():
        y = G.mul(y, dd.commitments[0])
    assert G.exp_g(x) == y == results[1].public_key


def _cheat(dealing: DkgDealing, victim: int, q: int) -> DkgDealing:
    shares = list(dealing.shares)
    shares[victim - 1] = Share(victim, (shares[victim - 1].value + 1) % q)
    return DkgDealing(dealing.dealer, dealing.commitments, tuple(shares))


@parametrize_groups
def test_dkg_cheating_dealer_is_named_and_disqualified(group: PrimeOrderGroup) -> None:
    G, Q = group, group.q
    t, n, cheater, victim = 3, 5, 2, 4
    rng = DeterministicRng("dkg-cheat")
    honest = {i: dkg_deal(i, t, n, G, rng.fork(str(i))) for i in range(1, n + 1)}
    dealings = dict(honest)
    dealings[cheater] = _cheat(honest[cheater], victim, Q)
    with pytest.raises(InvalidShare) as info:
        dkg_check_received(
            cheater,
            victim,
            dealings[cheater].share_for(victim),
            dealings[cheater].commitments,
            t,
            G,
        )
    assert info.value.index == cheater
    # The cheater answers the complaint with the same bad share: disqualified.
    bad_reveal = {(cheater, victim): dealings[cheater].share_for(victim)}
    complaints, results = _run_dkg(G, t, n, dealings, bad_reveal)
    assert complaints[victim] == {cheater}
    assert all(not complaints[j] for j in range(1, n + 1) if j != victim)
    assert results[1].qualified == frozenset({1, 3, 4, 5})
    _check_agreement(G, results, t)
    # Silence is no better than a bad answer.
    _, results = _run_dkg(G, t, n, dealings, {})
    assert results[1].qualified == frozenset({1, 3, 4, 5})


@parametrize_groups
def test_dkg_dealer_that_answers_a_complaint_correctly_stays(group: PrimeOrderGroup) -> None:
    G, Q = group, group.q
    t, n, dealer, victim = 3, 5, 3, 1
    rng = DeterministicRng("dkg-answer")
    honest = {i: dkg_deal(i, t, n, G, rng.fork(str(i))) for i in range(1, n + 1)}
    dealings = dict(honest)
    dealings[dealer] = _cheat(honest[dealer], victim, Q)  # e.g. lost in transit
    reveal = {(dealer, victim): honest[dealer].share_for(victim)}
    complaints, results = _run_dkg(G, t, n, dealings, reveal)
    assert complaints[victim] == {dealer}
    assert results[1].qualified == frozenset(range(1, n + 1))
    _check_agreement(G, results, t)


@parametrize_groups
def test_dkg_dealer_with_t_complaints_or_bad_commitments_is_out(group: PrimeOrderGroup) -> None:
    G, Q = group, group.q
    t, n = 2, 4
    rng = DeterministicRng("dkg-many")
    dealings = {i: dkg_deal(i, t, n, G, rng.fork(str(i))) for i in range(1, n + 1)}
    dealings[1] = _cheat(_cheat(dealings[1], 2, Q), 3, Q)
    c = dealings[4].commitments
    dealings[4] = DkgDealing(4, (twist(G, c[0]), c[1]), dealings[4].shares)
    honest_reveals = {(1, 2): Share(2, 0), (1, 3): Share(3, 0)}  # ignored: >= t complaints
    complaints, results = _run_dkg(G, t, n, dealings, honest_reveals)
    assert complaints[2] == {1, 4} and complaints[3] == {1, 4}
    assert results[2].qualified == frozenset({2, 3})
    _check_agreement(G, results, t)


@parametrize_groups
def test_dkg_parameters(group: PrimeOrderGroup) -> None:
    G = group
    rng = DeterministicRng("dkg-params")
    with pytest.raises(SharingError):
        dkg_deal(0, 2, 3, G, rng)
    with pytest.raises(SharingError):
        dkg_deal(4, 2, 3, G, rng)
    with pytest.raises(SharingError):
        dkg_finalize(1, frozenset(), {}, {}, {}, 2, 3, G)
    dd = dkg_deal(1, 2, 3, G, rng)
    with pytest.raises(InvalidShare) as info:
        dkg_check_received(1, 2, dd.share_for(3), dd.commitments, 2, G)  # wrong recipient
    assert info.value.index == 1
    with pytest.raises(InvalidShare):
        dkg_check_received(1, 2, dd.share_for(2), dd.commitments[:1], 2, G)
