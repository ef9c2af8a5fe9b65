"""BLS12-381 for CBSG, through the ``py-arkworks-bls12381`` binding (arkworks).

Seed 002 assumes a symmetric (Type-1) pairing over a 512-bit curve (≈80-bit
security, obsolete); we port it to BLS12-381 (Type-3, ≈117-120-bit security,
spec §6.11.6). All curve arithmetic is the binding's: group operations,
multi-scalar multiplication (Pippenger), multi-pairing and pairing checks, and
RFC 9380 hash-to-curve (``BLS12381G2_XMD:SHA-256_SSWU_RO_`` for paper mode's
H3; the RFC's Appendix J vectors are replayed in the tests). The real scheme
needs only G1 and one pairing check of the CC's parameters. This module only adds the
checks every input from the outside needs (length, on the curve, in the
prime-order subgroup, not the identity) and turns the binding's exceptions
into :class:`~gridledger.aggregation.errors.InvalidEncoding`.

Hashes to Z_q (H1, H2) take 64 bytes of domain-separated SHA-256 output and
reduce them modulo q, so the bias is below 2^-250. A scalar on the wire (the
signature's s) is 32 bytes big-endian and must be below q: s + q would be the
same scalar under other bytes, so a signature would be malleable.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

from gridledger.aggregation.errors import InvalidEncoding
from gridledger.crypto.hashing import HashTag, hash_bytes
from gridledger.crypto.rng import Rng

__all__ = [
    "G1_SIZE",
    "G2_SIZE",
    "GT",
    "ORDER",
    "P1",
    "P2",
    "SCALAR_SIZE",
    "G1Point",
    "G2Point",
    "Scalar",
    "compute_gt_bytes",
    "compute_hash_to_g2",
    "compute_hash_to_scalar",
    "compute_msm_g1",
    "compute_msm_g2",
    "decode_g1",
    "decode_g2",
    "decode_registered_g1",
    "decode_scalar",
    "encode_scalar",
    "get_random_scalar",
    "is_pairing_product_one",
]

ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
G1_SIZE = 48
G2_SIZE = 96
SCALAR_SIZE = 32
P1 = G1Point()
P2 = G2Point()
_BINDING_ERRORS = (ValueError, TypeError, OverflowError)


def get_random_scalar(rng: Rng) -> Scalar:
    """A uniform non-zero scalar (d, w, secret values, partial-key nonces)."""
    return Scalar(rng.randbelow(ORDER - 1) + 1)


def compute_hash_to_scalar(tag: HashTag, data: bytes) -> Scalar:
    """H: {0,1}* -> Z_q*: 512 bits of tagged SHA-256 reduced mod q (zero maps to one)."""
    wide = hash_bytes(tag, b"\x00" + data) + hash_bytes(tag, b"\x01" + data)
    value = Scalar.from_be_bytes_mod_order(wide)
    return Scalar(1) if value.is_zero() else value


def compute_hash_to_g2(dst: bytes, message: bytes) -> G2Point:
    """H3: RFC 9380 hash_to_curve into G2 (random-oracle suite) with an explicit DST."""
    return G2Point.hash_to_curve(message, dst)


def compute_gt_bytes(value: GT) -> bytes:
    """The canonical 576-byte serialisation of a target-group element (for H4)."""
    return bytes.fromhex(str(value))


def decode_g1(data: bytes) -> G1Point:
    """A compressed G1 point from the outside: on the curve, in the subgroup, not zero."""
    if not isinstance(data, bytes) or len(data) != G1_SIZE:
        raise InvalidEncoding(f"a G1 point is {G1_SIZE} bytes")
    try:
        point = G1Point.from_compressed_bytes(data)
    except _BINDING_ERRORS:
        raise InvalidEncoding("not a compressed G1 point") from None
    if point == G1Point.identity():
        raise InvalidEncoding("the G1 identity is not allowed")
    return point


def decode_g2(data: bytes) -> G2Point:
    """A compressed G2 point from the outside: on the curve, in the subgroup, not zero."""
    if not isinstance(data, bytes) or len(data) != G2_SIZE:
        raise InvalidEncoding(f"a G2 point is {G2_SIZE} bytes")
    try:
        point = G2Point.from_compressed_bytes(data)
    except _BINDING_ERRORS:
        raise InvalidEncoding("not a compressed G2 point") from None
    if point == G2Point.identity():
        raise InvalidEncoding("the G2 identity is not allowed")
    return point


def encode_scalar(value: Scalar) -> bytes:
    """A scalar as 32 bytes, big-endian (canonical: below q)."""
    return value.to_be_bytes()


def decode_scalar(data: bytes) -> Scalar:
    """A scalar from the outside: exactly 32 bytes, big-endian, below q (no silent reduction)."""
    if not isinstance(data, bytes) or len(data) != SCALAR_SIZE:
        raise InvalidEncoding(f"a scalar is {SCALAR_SIZE} bytes")
    if int.from_bytes(data, "big") >= ORDER:
        raise InvalidEncoding("scalar not below the group order")
    return Scalar.from_be_bytes(data)


@lru_cache(maxsize=1 << 16)
def decode_registered_g1(data: bytes) -> G1Point:
    """:func:`decode_g1` for keys read back from state, remembered (a pure function of bytes)."""
    return decode_g1(data)


def compute_msm_g1(points: Sequence[G1Point], scalars: Sequence[Scalar]) -> G1Point:
    """Σ s_i·P_i in G1 by Pippenger (points already checked by the decoders above)."""
    if not points:
        return G1Point.identity()
    return G1Point.multiexp_unchecked(list(points), list(scalars))


def compute_msm_g2(points: Sequence[G2Point], scalars: Sequence[Scalar]) -> G2Point:
    """Σ s_i·P_i in G2 by Pippenger (points already checked by the decoders above)."""
    if not points:
        return G2Point.identity()
    return G2Point.multiexp_unchecked(list(points), list(scalars))


def is_pairing_product_one(g1s: Sequence[G1Point], g2s: Sequence[G2Point]) -> bool:
    """Π e(a_i, b_i) = 1, one shared final exponentiation."""
    return bool(GT.pairing_check(list(g1s), list(g2s)))
