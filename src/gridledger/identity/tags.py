"""Tracing tags: the user's identity encrypted to the trace center, and fast re-checks.

A tag is a threshold-ElGamal hybrid ciphertext (:mod:`gridledger.crypto.threshold`)
of :class:`~gridledger.identity.messages.TagPlaintext` (the certificate hash of
the registered user and the round) under the TC's shared key, with
:class:`~gridledger.identity.messages.TagContext` (round, TC key hash) as
associated data. The user picks the ElGamal exponent ``r`` and reveals it for
every opened cut-and-choose candidate, so that the RM can recompute the tag.

Cost. The RM recomputes two exponentiations (``g^r`` and ``y^r``) per opened
candidate: 62 at K = 32. With a uniform 2047-bit ``r`` that is ~3 ms each with
gmpy2 (~200 ms per registration), far from the 50 registrations/s target. Two
measures, both sound:

* **short exponents**: honest users draw ``r`` with :data:`TAG_EXPONENT_BITS` = 320
  bits. In the safe-prime group ffdhe2048, ElGamal with short exponents is
  semantically secure under the short-exponent discrete-log assumption plus
  DDH (Koshiba-Kurosawa, PKC 2004); RFC 7919 §5.2 accepts exponents of twice
  the security level (~225 bits for ffdhe2048), and 320 leaves margin. The RM
  does not require short exponents: a longer ``r`` is merely slower to check.
* **fixed-base tables** (:class:`FixedBaseTable`): ``g`` and ``y`` are fixed, so
  the RM precomputes ``base^(d * 256^i)`` for all digits ``d`` and evaluates
  ``base^r`` with one multiplication per 8 bits of ``r`` (40 for 320 bits)
  instead of ~400 squarings and multiplications. The table is built lazily up to
  the longest exponent seen. Table lookups depend on ``r``, so this path is used
  only for *public* exponents (revealed openings); the user's own encryption
  goes through the constant-time :func:`threshold.encrypt_with`.

Together an opening costs ~0.15 ms of exponentiation instead of ~6 ms.

Revocation handle. Besides the hybrid ciphertext, a tag carries
``(g^s, M_I y^s)`` with ``M_I = g^{H(identity) mod q}``: a plain ElGamal
encryption of a per-identity group element, with its own fresh short exponent
``s`` (independent of ``r``: reusing ``r`` would let anyone test guessed
identities against the KEM secret). The RM re-checks it for opened candidates
like the ciphertext (two more table exponentiations); after a trace, the
trustees use it for plaintext-equality tests (:mod:`gridledger.identity.sweep`).
Under DDH it hides ``M_I`` even though identities are enumerable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gmpy2

from gridledger.crypto import threshold
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.errors import EncodingError
from gridledger.crypto.groups import PrimeOrderGroup, SchnorrGroup
from gridledger.crypto.hashing import hash_bytes, register_tag
from gridledger.crypto.rng import Rng
from gridledger.crypto.threshold import ThresholdCiphertext, ThresholdPublicKey
from gridledger.identity.messages import (
    TAG_HASH_TAG,
    PseudonymConsent,
    TagContext,
    TagPlaintext,
    TracingTag,
)

TC_KEY_HASH_TAG = register_tag("gridledger/identity/tc-key/1")
HANDLE_TAG = register_tag("gridledger/identity/revocation-handle/1")
HANDLE_HASH_TAG = register_tag("gridledger/identity/revocation-handle-hash/1")
TAG_EXPONENT_BITS = 320
WINDOW_BITS = 8
IDENTITY_SIZE = 32
CONSENT_SIZE = 256  # an RSA-2048 signature: every household key is RSA-2048
_HANDLE_CACHE_SIZE = 4096


def compute_tc_key_hash(pk: ThresholdPublicKey) -> bytes:
    return hash_bytes(TC_KEY_HASH_TAG, pk.to_bytes())


def compute_tag_plaintext(identity: bytes, round_: int, consent: bytes) -> bytes:
    return encode(TagPlaintext(identity, round_, consent))


def compute_handle_hash(grp: PrimeOrderGroup, handle_a: int, handle_b: int) -> bytes:
    """The hash of a revocation handle ``(a, b)`` that the user's consent signs."""
    return hash_bytes(
        HANDLE_HASH_TAG, grp.element_to_bytes(handle_a) + grp.element_to_bytes(handle_b)
    )


def compute_consent_message(round_: int, pseudonym_key: bytes, handle_hash: bytes) -> bytes:
    """The bytes the user's long-term key signs (under ``CONSENT_TAG``) for one candidate."""
    return encode(PseudonymConsent(round_, pseudonym_key, handle_hash))


def compute_handle(pk: ThresholdPublicKey, identity: bytes, s: int) -> tuple[int, int]:
    """The revocation handle ``(g^s, M_I y^s)`` (constant-time exponentiations)."""
    grp = pk.group
    if not 1 <= s < grp.q:
        raise EncodingError("handle exponent outside [1, q)")
    ha = grp.exp_secret(grp.g, s)
    hb = grp.mul(compute_handle_plaintext(grp, identity), grp.exp_secret(pk.y, s))
    return ha, hb


def compute_tag_aad(pk: ThresholdPublicKey, round_: int) -> bytes:
    return encode(TagContext(round_, compute_tc_key_hash(pk)))


def compute_tag_hash(tag: bytes) -> bytes:
    return hash_bytes(TAG_HASH_TAG, tag)


def compute_handle_exponent(group: PrimeOrderGroup, identity: bytes) -> int:
    """``H(identity) mod q``: the (public) exponent of the identity's handle plaintext."""
    return int.from_bytes(hash_bytes(HANDLE_TAG, identity), "big") % group.q


def compute_handle_plaintext(group: PrimeOrderGroup, identity: bytes) -> int:
    """``M_I = g^{H(identity)}``: what a revocation handle encrypts."""
    return group.exp_g(compute_handle_exponent(group, identity))


def compute_tag_exponent(group: PrimeOrderGroup, rng: Rng) -> int:
    """A fresh short ElGamal exponent in ``[2^(bits-1), 2^bits)`` (never 0, always < q)."""
    top = 1 << (TAG_EXPONENT_BITS - 1)
    r = top | rng.randbelow(top)
    if r >= group.q:  # only for toy groups
        r = group.random_scalar(rng)
    return r


def _encode_tag(pk: ThresholdPublicKey, ct: ThresholdCiphertext, ha: int, hb: int) -> bytes:
    grp = pk.group
    return encode(TracingTag(ct.to_bytes(grp), grp.element_to_bytes(ha), grp.element_to_bytes(hb)))


def compute_tag(
    pk: ThresholdPublicKey,
    identity: bytes,
    round_: int,
    r: int,
    nonce: bytes,
    handle: tuple[int, int],
    consent: bytes,
) -> bytes:
    """The user's tag (constant-time exponentiations), as canonical bytes.

    ``r``, ``nonce``: the hybrid ciphertext's exponent and AES-GCM nonce; ``handle``:
    :func:`compute_handle` (its exponent fresh, independent of ``r``); ``consent``:
    the user's signature on :class:`PseudonymConsent` for this candidate.
    """
    ct = threshold.encrypt_with(
        pk, compute_tag_plaintext(identity, round_, consent), compute_tag_aad(pk, round_), r, nonce
    )
    return _encode_tag(pk, ct, handle[0], handle[1])


@dataclass
class FixedBaseTable:
    """``rows[i][d] = base^(d * 2^(8 i)) mod p``, extended lazily (public exponents only)."""

    base: int
    p: int
    rows: list[list[Any]] = field(default_factory=list)

    def _extend(self, nrows: int) -> None:
        p = gmpy2.mpz(self.p)
        nxt = (
            gmpy2.mpz(self.base)
            if not self.rows
            else self.rows[-1][-1] * self.rows[-1][1] % p  # base^(256^i)
        )
        while len(self.rows) < nrows:
            row = [gmpy2.mpz(1), nxt]
            for _ in range(2, 1 << WINDOW_BITS):
                row.append(row[-1] * nxt % p)
            self.rows.append(row)
            nxt = row[-1] * nxt % p

    def ensure(self, bits: int) -> None:
        """Make sure exponents of ``bits`` bits can be evaluated."""
        nrows = (bits + WINDOW_BITS - 1) // WINDOW_BITS
        if nrows > len(self.rows):
            self._extend(nrows)

    def exp(self, e: int) -> int:
        """``base^e mod p`` for a public ``e >= 0``."""
        return compute_fixed_base_pair(self, self, e)[0]


def compute_fixed_base_pair(a: FixedBaseTable, b: FixedBaseTable, e: int) -> tuple[int, int]:
    """``(a.base^e, b.base^e) mod p`` in one pass over the exponent's bytes (8-bit windows)."""
    a.ensure(e.bit_length())
    b.ensure(e.bit_length())
    p = gmpy2.mpz(a.p)
    acc_a = gmpy2.mpz(1)
    acc_b = gmpy2.mpz(1)
    rows_a, rows_b = a.rows, b.rows
    for i, digit in enumerate(e.to_bytes((e.bit_length() + 7) // 8, "little")):
        if digit:
            acc_a = acc_a * rows_a[i][digit] % p
            acc_b = acc_b * rows_b[i][digit] % p
    return int(acc_a), int(acc_b)


@dataclass
class TagVerifier:
    """The RM's precomputed state for re-checking tags under one TC key."""

    pk: ThresholdPublicKey
    g_table: FixedBaseTable | None  # None: not a Schnorr group, no tables
    y_table: FixedBaseTable | None
    tc_key_hash: bytes
    handle_plaintexts: dict[bytes, int] = field(default_factory=dict)

    def get_handle_plaintext(self, identity: bytes) -> int:
        """``M_I`` for ``identity``, computed once per identity (K−1 openings reuse it)."""
        m = self.handle_plaintexts.get(identity)
        if m is None:
            if len(self.handle_plaintexts) >= _HANDLE_CACHE_SIZE:
                self.handle_plaintexts.clear()
            m = compute_handle_plaintext(self.pk.group, identity)
            self.handle_plaintexts[identity] = m
        return m


def create_tag_verifier(pk: ThresholdPublicKey) -> TagVerifier:
    """Precompute fixed-base tables for ``g`` and ``y`` (Schnorr groups only)."""
    grp = pk.group
    if not isinstance(grp, SchnorrGroup):
        return TagVerifier(pk, None, None, compute_tc_key_hash(pk))
    verifier = TagVerifier(
        pk, FixedBaseTable(grp.g, grp.p), FixedBaseTable(pk.y, grp.p), compute_tc_key_hash(pk)
    )
    warm = (1 << TAG_EXPONENT_BITS) - 1
    compute_fixed_base_pair(verifier.g_table, verifier.y_table, warm)  # type: ignore[arg-type]
    return verifier


def compute_handle_public(verifier: TagVerifier, identity: bytes, s: int) -> tuple[int, int]:
    """:func:`compute_handle` for a *revealed* ``s`` (fixed-base tables when available)."""
    grp = verifier.pk.group
    if not 1 <= s < grp.q:
        raise EncodingError("handle exponent outside [1, q)")
    if verifier.g_table is None or verifier.y_table is None:
        hb = grp.mul(verifier.get_handle_plaintext(identity), grp.exp(verifier.pk.y, s))
        return grp.exp_g(s), hb
    ha, ys = compute_fixed_base_pair(verifier.g_table, verifier.y_table, s)
    return ha, grp.mul(verifier.get_handle_plaintext(identity), ys)


def compute_tag_public(
    verifier: TagVerifier,
    identity: bytes,
    round_: int,
    r: int,
    nonce: bytes,
    handle: tuple[int, int],
    consent: bytes,
) -> bytes:
    """:func:`compute_tag` for a *revealed* ``r``, via the fixed-base tables.

    Uses :func:`threshold.encrypt_from_parts`, so the bytes are exactly those
    :func:`threshold.encrypt_with` produces; a test checks the two agree.
    """
    pk = verifier.pk
    grp = pk.group
    if not 1 <= r < grp.q:
        raise EncodingError("tag exponent outside [1, q)")
    if len(nonce) != threshold.NONCE_SIZE:
        raise EncodingError("tag nonce has the wrong length")
    if verifier.g_table is None or verifier.y_table is None:
        # A curve group: libsodium's exponentiation is already as fast as it gets;
        # reuse the cached key hash instead of recomputing.
        c1, shared = grp.exp_g(r), grp.exp(pk.y, r)
    else:
        c1, shared = compute_fixed_base_pair(verifier.g_table, verifier.y_table, r)
    ct = threshold.encrypt_from_parts(
        pk,
        compute_tag_plaintext(identity, round_, consent),
        encode(TagContext(round_, verifier.tc_key_hash)),
        c1,
        shared,
        nonce,
    )
    return _encode_tag(pk, ct, handle[0], handle[1])


def compute_expected_body_size(round_: int) -> int:
    return len(compute_tag_plaintext(bytes(IDENTITY_SIZE), round_, bytes(CONSENT_SIZE))) + 16


@dataclass(frozen=True)
class ParsedTag:
    """A tag's parts: the hybrid ciphertext and the revocation handle ``(a, b)``."""

    ciphertext: ThresholdCiphertext
    handle_a: int
    handle_b: int


def decode_tag(pk: ThresholdPublicKey, tag: bytes) -> ParsedTag:
    """Decode a tag's parts (no form checks beyond decoding; see :func:`parse_tag`)."""
    wire = decode_as(TracingTag, tag)
    grp = pk.group
    return ParsedTag(
        ThresholdCiphertext.from_bytes(wire.ciphertext, grp),
        grp.element_from_bytes(wire.handle_a),
        grp.element_from_bytes(wire.handle_b),
    )


def parse_tag(pk: ThresholdPublicKey, tag: bytes, round_: int) -> ParsedTag:
    """Decode a tag and check its form: canonical, ``c1`` and ``g^s`` group elements ≠ 1,
    ``M y^s`` a group element, right sizes.

    Raises :class:`EncodingError` on any failure. (That the tag is for ``round_``
    is bound by the AEAD's associated data and checked at decryption; its size
    is checked here.)
    """
    grp = pk.group
    parsed = decode_tag(pk, tag)
    ct = parsed.ciphertext
    if _encode_tag(pk, ct, parsed.handle_a, parsed.handle_b) != tag:
        raise EncodingError("tag is not canonical")
    for x in (ct.c1, parsed.handle_a):
        if x == grp.identity or not grp.is_element(x):
            raise EncodingError("tag c1 or handle is not a group element other than 1")
    if not grp.is_element(parsed.handle_b):
        raise EncodingError("tag handle is not a group element")
    if len(ct.nonce) != threshold.NONCE_SIZE:
        raise EncodingError("tag nonce has the wrong length")
    if len(ct.body) != compute_expected_body_size(round_):
        raise EncodingError("tag body has the wrong length")
    return parsed
