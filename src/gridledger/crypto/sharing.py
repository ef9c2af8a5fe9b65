"""Shamir (t, n) secret sharing with Feldman commitments, and a joint-Feldman DKG.

The tracing key of the privacy scheme is shared among ``n`` trustees so that any
``t`` of them can unmask a cheater while ``t - 1`` learn nothing: a secret ``s``
in Z_q becomes the constant term of a random polynomial ``f`` of degree ``t - 1``
and trustee ``i`` holds ``f(i)``. Any ``t`` points fix ``f`` (Lagrange at 0); for
any ``t - 1`` points, every candidate secret is matched by exactly one
polynomial, so the points are independent of the secret.

Feldman commitments ``C_j = g^{a_j}`` to the coefficients let each trustee check
its own share (``g^{f(i)} = prod C_j^{i^j}``) and let a reconstructor name the
trustee that sent a bad share. They hide the secret only computationally (``C_0 =
g^s``), which is what threshold ElGamal needs anyway (``y = g^s`` is public).

The joint-Feldman DKG (Pedersen, 1991; as analysed by Gennaro, Jarecki, Krawczyk
and Rabin) removes the trusted dealer: every trustee deals a random secret, the
shared key is the sum of the qualified dealers' secrets, and no party ever holds
it. Caveat: a rushing adversary can bias the distribution of the public key ``y``;
Gennaro et al. (CT-RSA 2003) show this is harmless for threshold ElGamal/Schnorr
style uses, which are this module's only client. All functions are pure: the
message flow (broadcast commitments, private shares, complaints, revealed shares)
is the caller's.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import gmpy2

from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.errors import (
    DuplicateShare,
    InvalidShare,
    SharingError,
    TooFewShares,
)
from gridledger.crypto.groups import PrimeOrderGroup
from gridledger.crypto.rng import Rng


@dataclass(frozen=True)
class Share:
    """Trustee ``index``'s point ``f(index)`` on the sharing polynomial.

    Deliberately unvalidated at construction: the functions that take shares
    check them against a group and raise :class:`InvalidShare` naming the index.
    """

    index: int
    value: int

    def to_bytes(self, group: PrimeOrderGroup) -> bytes:
        """Canonical wire bytes; the value is fixed-length big-endian."""
        return encode(_ShareWire(self.index, group.scalar_to_bytes(self.value)))

    @classmethod
    def from_bytes(cls, data: bytes, group: PrimeOrderGroup) -> Share:
        wire = decode_as(_ShareWire, data)
        return cls(wire.index, group.scalar_from_bytes(wire.value))


@wire_type("crypto.sharing.share/1")
@dataclass(frozen=True)
class _ShareWire:
    index: int
    value: bytes


@wire_type("crypto.sharing.commitments/1")
@dataclass(frozen=True)
class _CommitmentsWire:
    commitments: tuple[bytes, ...]


def commitments_to_bytes(commitments: Sequence[int], group: PrimeOrderGroup) -> bytes:
    """Canonical wire bytes of a Feldman commitment vector (for broadcast)."""
    return encode(_CommitmentsWire(tuple(group.element_to_bytes(c) for c in commitments)))


def commitments_from_bytes(data: bytes, group: PrimeOrderGroup) -> tuple[int, ...]:
    """Inverse of :func:`commitments_to_bytes`; membership is checked on use."""
    wire = decode_as(_CommitmentsWire, data)
    return tuple(group.element_from_bytes(c) for c in wire.commitments)


@dataclass(frozen=True)
class FeldmanDealing:
    """A dealer's output: commitments (public) and one share per trustee (private)."""

    commitments: tuple[int, ...]
    shares: tuple[Share, ...]

    @property
    def threshold(self) -> int:
        return len(self.commitments)


def _check_parameters(t: int, n: int, group: PrimeOrderGroup) -> None:
    if not 1 <= t <= n:
        raise SharingError(f"need 1 <= t <= n, got t={t}, n={n}")
    if n >= group.q:
        raise SharingError("n must be smaller than the group order")


def compute_polynomial(coefficients: Sequence[int], x: int, modulus: int) -> int:
    """``sum a_j x^j mod modulus`` by Horner's rule (``coefficients[0]`` is ``a_0``)."""
    acc = gmpy2.mpz(0)
    for a in reversed(coefficients):
        acc = (acc * x + a) % modulus
    return int(acc)


def split(secret: int, t: int, n: int, group: PrimeOrderGroup, rng: Rng) -> FeldmanDealing:
    """Share ``secret`` in Z_q so that any ``t`` of ``n`` shares recover it.

    Coefficients ``a_1 .. a_{t-1}`` are uniform in Z_q (zero allowed: excluding it
    would bias the distribution and break perfect secrecy of ``t - 1`` shares).
    """
    _check_parameters(t, n, group)
    if not group.is_scalar(secret):
        raise SharingError("secret must lie in [0, q)")
    coefficients = [secret] + [rng.randbelow(group.q) for _ in range(t - 1)]
    commitments = tuple(group.exp_secret(group.g, a) for a in coefficients)
    shares = tuple(Share(i, compute_polynomial(coefficients, i, group.q)) for i in range(1, n + 1))
    return FeldmanDealing(commitments, shares)


def check_commitments(commitments: Sequence[int], group: PrimeOrderGroup) -> None:
    """Raise :class:`SharingError` unless every commitment is a group element.

    Without this a dealer could hide a factor outside the order-q subgroup (say
    ``-1`` mod p, or a torsion point on edwards25519) in ``C_0`` that cancels for
    some indices and corrupts the public key.
    """
    if not commitments:
        raise SharingError("empty commitment vector")
    for j, c in enumerate(commitments):
        if not group.is_element(c):
            raise SharingError(f"commitment {j} is not a group element")


def compute_commitment_at(commitments: Sequence[int], index: int, group: PrimeOrderGroup) -> int:
    """``prod_j C_j^{index^j} = g^{f(index)}``: the public image of share ``index``.

    Horner's rule in the exponent: only small exponents (``index``) are used. The
    commitments must be group elements (:func:`check_commitments`).
    """
    acc = group.identity
    for c in reversed(commitments):
        acc = group.mul(group.exp(acc, index), c)
    return acc


def _verify_share_against(share: Share, commitments: Sequence[int], group: PrimeOrderGroup) -> None:
    if share.index < 1 or share.index >= group.q:
        raise InvalidShare(share.index, "index out of range")
    if not group.is_scalar(share.value):
        raise InvalidShare(share.index, "value not reduced mod q")
    if group.exp_g(share.value) != compute_commitment_at(commitments, share.index, group):
        raise InvalidShare(share.index, "share does not match the Feldman commitments")


def verify_share(share: Share, commitments: Sequence[int], group: PrimeOrderGroup) -> None:
    """Raise :class:`InvalidShare` (naming ``share.index``) unless the share is consistent.

    Checks ``g^{value} = prod C_j^{index^j}``, after checking that the commitments
    are group elements (a malformed vector is reported against this share, since
    the share cannot be validated against it).
    """
    try:
        check_commitments(commitments, group)
    except SharingError as exc:
        raise InvalidShare(share.index, exc.reason) from None
    _verify_share_against(share, commitments, group)


def is_valid_share(share: Share, commitments: Sequence[int], group: PrimeOrderGroup) -> bool:
    try:
        verify_share(share, commitments, group)
    except InvalidShare:
        return False
    return True


def lagrange_coefficient(i: int, indices: Iterable[int], modulus: int, *, at: int = 0) -> int:
    """``lambda_i = prod_{j != i} (at - j) / (i - j) mod modulus``: the weight of ``f(i)``
    in ``f(at)``; at the default ``at = 0`` this is ``prod_{j != i} j / (j - i)``.

    ``indices`` must be distinct mod a prime ``modulus`` and include ``i``.
    """
    idx = list(indices)
    if i not in idx:
        raise SharingError(f"index {i} is not among the interpolation indices")
    num = gmpy2.mpz(1)
    den = gmpy2.mpz(1)
    for j in idx:
        if j == i:
            continue
        num = num * (at - j) % modulus
        den = den * (i - j) % modulus
    if den == 0:
        raise SharingError("interpolation indices must be distinct mod the modulus")
    return int(num * gmpy2.invert(den, modulus) % modulus)


def _check_share_set(
    shares: Sequence[Share], t: int, group: PrimeOrderGroup, n: int | None
) -> None:
    """Indices in range, no duplicates, at least ``t`` of them (in that order)."""
    if t < 1:
        raise SharingError("threshold must be at least 1")
    upper = group.q - 1 if n is None else n
    seen: set[int] = set()
    for s in shares:
        if not 1 <= s.index <= upper:
            raise InvalidShare(s.index, "index out of range")
        if not group.is_scalar(s.value):
            raise InvalidShare(s.index, "value not reduced mod q")
        if s.index in seen:
            raise DuplicateShare(s.index)
        seen.add(s.index)
    if len(shares) < t:
        raise TooFewShares(len(shares), t)


def _interpolate_at_zero(shares: Sequence[Share], modulus: int) -> int:
    indices = [s.index for s in shares]
    acc = gmpy2.mpz(0)
    for s in shares:
        acc = (acc + s.value * gmpy2.mpz(lagrange_coefficient(s.index, indices, modulus))) % modulus
    return int(acc)


def reconstruct(
    shares: Sequence[Share], t: int, group: PrimeOrderGroup, *, n: int | None = None
) -> int:
    """The secret, by Lagrange interpolation at 0 of the first ``t`` shares.

    Raises :class:`InvalidShare` for an index of 0 or out of range (beyond ``n``
    if given), :class:`DuplicateShare`, then :class:`TooFewShares`. Unverified
    shares give a wrong secret silently: use :func:`reconstruct_verified` when
    commitments are available.
    """
    shares = list(shares)
    _check_share_set(shares, t, group, n)
    return _interpolate_at_zero(shares[:t], group.q)


def reconstruct_verified(
    shares: Sequence[Share], t: int, commitments: Sequence[int], group: PrimeOrderGroup
) -> int:
    """:func:`reconstruct` after checking every share against the commitments.

    Raises :class:`InvalidShare` naming the first bad share; the result is then
    checked against ``C_0`` as a last line of defence.
    """
    shares = list(shares)
    if len(commitments) != t:
        raise SharingError(f"{len(commitments)} commitments for threshold {t}")
    _check_share_set(shares, t, group, None)
    check_commitments(commitments, group)
    for s in shares:
        _verify_share_against(s, commitments, group)
    secret = _interpolate_at_zero(shares[:t], group.q)
    if group.exp_g(secret) != commitments[0]:  # unreachable if the checks above hold
        raise SharingError("reconstructed secret does not match its commitment")
    return secret


# --- Joint-Feldman distributed key generation --------------------------------------


@dataclass(frozen=True)
class DkgDealing:
    """Dealer ``dealer``'s round-1 output: broadcast ``commitments``, send
    ``shares[j - 1]`` to trustee ``j`` over a private authenticated channel."""

    dealer: int
    commitments: tuple[int, ...]
    shares: tuple[Share, ...]

    def share_for(self, j: int) -> Share:
        return self.shares[j - 1]


@dataclass(frozen=True)
class DkgResult:
    """Trustee ``index``'s view at the end of the DKG."""

    index: int
    share: Share
    public_key: int
    verification_keys: tuple[int, ...]
    """``verification_keys[k - 1] = g^{x_k}``: public, computed from the commitments."""
    qualified: frozenset[int]
    commitments: tuple[int, ...]
    """Coefficient-wise product of the qualified dealers' commitments."""


def dkg_deal(i: int, t: int, n: int, group: PrimeOrderGroup, rng: Rng) -> DkgDealing:
    """Trustee ``i`` deals a fresh random secret (its contribution to the key)."""
    _check_parameters(t, n, group)
    if not 1 <= i <= n:
        raise SharingError(f"dealer index {i} outside 1..{n}")
    dealing = split(rng.randbelow(group.q), t, n, group, rng)
    return DkgDealing(i, dealing.commitments, dealing.shares)


def dkg_check_received(
    dealer: int,
    receiver: int,
    share: Share,
    commitments: Sequence[int],
    t: int,
    group: PrimeOrderGroup,
) -> None:
    """Trustee ``receiver`` checks the share ``dealer`` sent it.

    Raises :class:`InvalidShare` whose ``index`` is the *dealer* (the party at
    fault), with the reason, so that the receiver can broadcast a complaint.
    """
    if len(commitments) != t:
        raise InvalidShare(dealer, f"dealer {dealer} broadcast {len(commitments)} commitments")
    if share.index != receiver:
        raise InvalidShare(dealer, f"dealer {dealer} sent a share for index {share.index}")
    try:
        verify_share(share, commitments, group)
    except InvalidShare as exc:
        raise InvalidShare(dealer, f"dealer {dealer}: {exc.reason}") from None


def dkg_complaints(
    receiver: int,
    received: Mapping[int, Share],
    commitments: Mapping[int, Sequence[int]],
    t: int,
    n: int,
    group: PrimeOrderGroup,
) -> frozenset[int]:
    """The dealers trustee ``receiver`` complains about: missing or bad share or commitments."""
    bad: set[int] = set()
    for dealer in range(1, n + 1):
        share = received.get(dealer)
        comms = commitments.get(dealer)
        if share is None or comms is None:
            bad.add(dealer)
            continue
        try:
            dkg_check_received(dealer, receiver, share, comms, t, group)
        except InvalidShare:
            bad.add(dealer)
    return frozenset(bad)


def dkg_qualified(
    t: int,
    n: int,
    commitments: Mapping[int, Sequence[int]],
    complaints: Mapping[int, Collection[int]],
    revealed: Mapping[tuple[int, int], Share],
    group: PrimeOrderGroup,
) -> frozenset[int]:
    """The qualified set QUAL, computed identically by every trustee from public data.

    ``complaints[j]`` is the set of dealers trustee ``j`` complained about;
    ``revealed[(dealer, j)]`` is the share ``dealer`` then broadcast for ``j``. A
    dealer is disqualified if its commitments are missing or malformed, if ``t``
    or more trustees complain (at most ``t - 1`` are corrupt, so one complaint is
    honest), or if it fails to reveal a valid share for each complainer.
    """
    qualified: set[int] = set()
    for dealer in range(1, n + 1):
        comms = commitments.get(dealer)
        if comms is None or len(comms) != t:
            continue
        try:
            check_commitments(comms, group)
        except SharingError:
            continue
        complainers = sorted(j for j, against in complaints.items() if dealer in against)
        if len(complainers) >= t:
            continue
        ok = True
        for j in complainers:
            share = revealed.get((dealer, j))
            if share is None:
                ok = False
                break
            try:
                dkg_check_received(dealer, j, share, comms, t, group)
            except InvalidShare:
                ok = False
                break
        if ok:
            qualified.add(dealer)
    return frozenset(qualified)


def dkg_finalize(
    receiver: int,
    qualified: Collection[int],
    received: Mapping[int, Share],
    commitments: Mapping[int, Sequence[int]],
    revealed: Mapping[tuple[int, int], Share],
    t: int,
    n: int,
    group: PrimeOrderGroup,
) -> DkgResult:
    """Trustee ``receiver``'s key share ``x = sum_{i in QUAL} s_{i,receiver}``, the public
    key ``y = prod_{i in QUAL} C_{i,0}`` and every trustee's verification key.

    A share revealed after a complaint replaces the one received privately.
    """
    _check_parameters(t, n, group)
    if not 1 <= receiver <= n:
        raise SharingError(f"trustee index {receiver} outside 1..{n}")
    if len(qualified) < 1:
        raise SharingError("no qualified dealer")
    q = group.q
    x = gmpy2.mpz(0)
    combined = [group.identity] * t
    for dealer in sorted(qualified):
        share = revealed.get((dealer, receiver), received.get(dealer))
        comms = commitments.get(dealer)
        if share is None or comms is None:
            raise InvalidShare(dealer, f"no share or commitments from qualified dealer {dealer}")
        dkg_check_received(dealer, receiver, share, comms, t, group)
        x = (x + share.value) % q
        combined = [group.mul(c, d) for c, d in zip(combined, comms, strict=True)]
    combined_t = tuple(combined)
    vks = tuple(compute_commitment_at(combined_t, k, group) for k in range(1, n + 1))
    key_share = Share(receiver, int(x))
    if group.exp_g(key_share.value) != vks[receiver - 1]:  # unreachable given the checks
        raise SharingError("final share does not match its verification key")
    return DkgResult(
        index=receiver,
        share=key_share,
        public_key=combined_t[0],
        verification_keys=vks,
        qualified=frozenset(qualified),
        commitments=combined_t,
    )
