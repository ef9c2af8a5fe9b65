"""The PrimeOrderGroup interface: group laws in both families, edwards25519 membership.

Also home of small helpers the sharing and threshold tests share (``GROUPS``,
``twist``, ``bad_element``): non-members of the right shape for each group.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl import bindings as sodium

from gridledger.crypto.errors import EncodingError, KeyFormatError
from gridledger.crypto.groups import (
    CUSTOM_SCHNORR_NAME,
    EDWARDS25519,
    FFDHE2048,
    FFDHE3072,
    NAMED_GROUPS,
    SHARE_GROUP,
    Ed25519Group,
    PrimeOrderGroup,
    SchnorrGroup,
    get_named_group,
)
from gridledger.crypto.rng import DeterministicRng

GROUPS: list[PrimeOrderGroup] = [EDWARDS25519, FFDHE2048]
GROUP_IDS = ["ed25519", "ffdhe2048"]
parametrize_groups = pytest.mark.parametrize("group", GROUPS, ids=GROUP_IDS)

E = EDWARDS25519
FIELD_P = 2**255 - 19
ELL = 2**252 + 27742317777372353535851937790883648493


def _enc(x: int) -> bytes:
    return x.to_bytes(32, "little")


def _dec(b: bytes) -> int:
    return int.from_bytes(b, "little")


# An edwards25519 point of order 8 (libsodium's small-order blocklist); its multiples
# are the whole torsion subgroup. ORDER_2 = (0, -1).
T8 = _dec(bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"))
ORDER_2 = FIELD_P - 1


def curve_add(a: int, b: int) -> int:
    """Point addition without any subgroup check (libsodium's core add)."""
    return _dec(sodium.crypto_core_ed25519_add(_enc(a), _enc(b)))


def _torsion() -> list[int]:
    points, acc = [], 1
    for _ in range(8):
        points.append(acc)
        acc = curve_add(acc, T8)
    assert acc == 1
    return points


TORSION = _torsion()


def twist(group: PrimeOrderGroup, x: int) -> int:
    """``x`` times an element of order 2 outside the group: a non-member whose square
    is ``x^2`` (Schnorr: ``-x mod p``; edwards25519: ``x + (0, -1)``)."""
    if isinstance(group, SchnorrGroup):
        return (group.p - x) % group.p
    return curve_add(x, ORDER_2)


def bad_element(group: PrimeOrderGroup, kind: str) -> int:
    """A value of the given kind that ``group.is_element`` rejects (or the identity)."""
    if isinstance(group, SchnorrGroup):
        p = group.p
        table = {
            "zero": 0,
            "identity": 1,
            "order-2": p - 1,
            "twisted": twist(group, group.g),
            "unreduced": p + group.g,
            "off-curve": p,
            "negative": -group.g,
            "too-large": 1 << (8 * group.element_size),
        }
    else:
        table = {
            "zero": 0,  # y = 0: a point of order 4
            "identity": 1,
            "order-2": ORDER_2,
            "twisted": curve_add(group.g, T8),  # mixed order
            "unreduced": FIELD_P + 1,  # y = p + 1 == 1: the identity, non-canonically
            "off-curve": 2,  # y = 2 is not the y of any curve point
            "negative": -4,
            "too-large": 1 << 256,
        }
    return table[kind]


BAD_KINDS = ["zero", "identity", "order-2", "twisted", "unreduced", "off-curve", "negative"]


# --- both families -------------------------------------------------------------------


@parametrize_groups
def test_groups_satisfy_the_protocol(group: PrimeOrderGroup) -> None:
    assert isinstance(group, PrimeOrderGroup)
    assert NAMED_GROUPS[group.name] == group == get_named_group(group.name)
    assert group.identity == 1 and group.is_element(1)
    assert group.is_element(group.g) and group.g != group.identity
    assert group.exp(group.g, group.q) == group.identity


def test_named_groups() -> None:
    assert set(NAMED_GROUPS) == {"ed25519", "ffdhe2048", "ffdhe3072", "share-group"}
    for name, grp in NAMED_GROUPS.items():
        assert grp.name == name
    assert (FFDHE3072.name, SHARE_GROUP.name) == ("ffdhe3072", "share-group")
    assert SchnorrGroup(23, 11, 4).name == CUSTOM_SCHNORR_NAME
    assert SchnorrGroup(FFDHE2048.p, FFDHE2048.q, 16).name == CUSTOM_SCHNORR_NAME
    other: PrimeOrderGroup = FFDHE2048
    assert Ed25519Group() == EDWARDS25519 != other
    with pytest.raises(KeyFormatError):
        get_named_group(CUSTOM_SCHNORR_NAME)
    with pytest.raises(KeyFormatError):
        get_named_group("secp256k1")


@parametrize_groups
@given(data=st.data())
@settings(max_examples=10, deadline=None)
def test_group_laws(group: PrimeOrderGroup, data: st.DataObject) -> None:
    a, b, c = (data.draw(st.integers(0, group.q - 1)) for _ in range(3))
    ga, gb, gc = group.exp_g(a), group.exp_g(b), group.exp_g(c)
    for x in (ga, gb, gc):
        assert group.is_element(x)
        assert group.element_from_bytes(group.element_to_bytes(x)) == x
    mul = group.mul
    assert mul(ga, gb) == mul(gb, ga) == group.exp_g(a + b)
    assert mul(mul(ga, gb), gc) == mul(ga, mul(gb, gc))
    assert mul(ga, group.identity) == ga
    assert mul(ga, group.inv(ga)) == group.identity == group.inv(group.identity)
    assert group.exp(ga, -1) == group.inv(ga)
    assert group.exp(ga, b) == group.exp_secret(gb, a) == group.exp_g(a * b)
    assert group.exp(ga, b + group.q) == group.exp(ga, b)
    assert group.exp(ga, group.q) == group.exp(ga, 0) == group.identity
    assert group.exp(group.identity, b) == group.exp_secret(group.identity, b) == group.identity
    assert group.exp_secret(ga, group.q) == group.identity
    assert group.scalar_from_bytes(group.scalar_to_bytes(a)) == a


@parametrize_groups
def test_scalar_encodings(group: PrimeOrderGroup) -> None:
    q = group.q
    for x in (0, 1, q - 1):
        data = group.scalar_to_bytes(x)
        assert len(data) == group.scalar_size
        assert group.scalar_from_bytes(data) == x
    for bad in (q, -1):
        with pytest.raises(EncodingError):
            group.scalar_to_bytes(bad)
    with pytest.raises(EncodingError):
        group.scalar_from_bytes(b"\xff" * group.scalar_size)  # >= q
    with pytest.raises(EncodingError):
        group.scalar_from_bytes(b"\x01" * (group.scalar_size - 1))
    with pytest.raises(EncodingError):
        group.element_from_bytes(b"\x01" * (group.element_size + 1))
    rng = DeterministicRng(f"scalars-{group.name}")
    assert all(1 <= group.random_scalar(rng) < q for _ in range(20))


@parametrize_groups
@pytest.mark.parametrize("kind", [*BAD_KINDS, "too-large"])
def test_non_members_are_rejected(group: PrimeOrderGroup, kind: str) -> None:
    x = bad_element(group, kind)
    assert group.is_element(x) == (kind == "identity")


# --- edwards25519 ----------------------------------------------------------------------


def test_edwards25519_constants() -> None:
    assert E.q == ELL and E.q.bit_length() == 253
    assert E.element_size == E.scalar_size == 32 and E.security_bits == 128
    assert E.element_to_bytes(E.g) == bytes.fromhex("58" + "66" * 31)
    assert E.element_to_bytes(E.identity) == b"\x01" + bytes(31)
    assert E.exp_g(1) == E.g == E.exp(E.g, E.q + 1)
    assert E.scalar_to_bytes(1) == b"\x01" + bytes(31)  # little-endian, as in RFC 8032


def test_edwards25519_matches_rfc8032_public_keys() -> None:
    # An independent implementation (OpenSSL via `cryptography`): A = [clamp(H(seed))]B.
    for i in range(4):
        seed = hashlib.sha256(b"rfc8032-%d" % i).digest()
        h = bytearray(hashlib.sha512(seed).digest()[:32])
        h[0] &= 248
        h[31] = (h[31] & 127) | 64
        a = _dec(bytes(h))
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
        expected = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert E.element_to_bytes(E.exp_g(a)) == expected
        assert E.element_to_bytes(E.exp_secret(E.g, a)) == expected
        assert E.is_element(_dec(expected))


def test_small_order_points_are_rejected() -> None:
    assert len(set(TORSION)) == 8
    # Exactly one point of order 1, one of order 2, two of order 4, four of order 8.
    orders = sorted(next(k for k in (1, 2, 4, 8) if _order(t, k)) for t in TORSION)
    assert orders == [1, 2, 4, 4, 8, 8, 8, 8]
    for t in TORSION:
        # libsodium refuses all eight, the identity included; the group accepts only it.
        assert not sodium.crypto_core_ed25519_is_valid_point(_enc(t))
        assert E.is_element(t) == (t == 1)
        assert not E.is_element(t ^ (1 << 255))  # -t (or x = 0 with the sign bit set)


def _order(t: int, k: int) -> bool:
    acc = 1
    for _ in range(k):
        acc = curve_add(acc, t)
    return acc == 1


def test_points_with_a_torsion_component_are_rejected() -> None:
    p = E.exp_g(123456789)
    for t in TORSION[1:]:
        mixed = curve_add(p, t)
        assert sodium.crypto_core_ed25519_add(_enc(mixed), _enc(1)) == _enc(mixed)  # on curve
        assert not E.is_element(mixed)
        with pytest.raises(ValueError):
            E.exp(mixed, 5)
    # Membership is a property of the point: torsion parts that cancel leave a member.
    assert E.is_element(curve_add(curve_add(p, TORSION[3]), TORSION[5]))  # 3 + 5 = 8 = 0


def test_non_canonical_encodings_are_rejected() -> None:
    # y + p for y < 19 are the only non-canonical y; none of those y is in the
    # prime-order subgroup, but libsodium's core add decodes them (reducing y), so the
    # canonical check in is_element is what keeps a second encoding of a point out.
    assert curve_add(FIELD_P + 1, E.g) == E.g  # y = p + 1 decodes as the identity
    for y in range(19):
        for sign in (0, 1 << 255):
            x = (y + FIELD_P) | sign
            assert not E.is_element(x)
            with pytest.raises(EncodingError):
                E.element_from_bytes(_enc(x))
            with pytest.raises(EncodingError):
                E.element_to_bytes(x)
    # The sign bit on the identity (x = 0, "negative zero") is not canonical either.
    assert not E.is_element(1 | 1 << 255)


def test_off_curve_bytes_are_rejected() -> None:
    off = 0
    for y in range(2, 50):
        try:
            curve_add(y, 1)
        except Exception:
            off = y
            break
    assert off == 2
    assert not E.is_element(off)
    with pytest.raises(ValueError):
        E.mul(off, E.g)
    with pytest.raises(ValueError):
        E.exp(off, 3)
    assert E.element_from_bytes(_enc(off)) == off  # well-formed bytes; membership is separate
    for x in (-1, 1 << 256):
        assert not E.is_element(x)
        with pytest.raises(EncodingError):
            E.element_to_bytes(x)


def test_inverse_is_libsodium_negation() -> None:
    for k in (1, 2, 99, ELL - 1):
        a = E.exp_g(k)
        assert E.inv(a) == _dec(sodium.crypto_core_ed25519_sub(_enc(1), _enc(a)))
        assert E.inv(a) == E.exp_g(ELL - k)
