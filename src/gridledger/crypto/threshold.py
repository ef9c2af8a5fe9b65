"""Threshold ElGamal hybrid encryption: ``t`` of ``n`` trustees decrypt, none alone.

This is the trace center's lock. It works in any :class:`~groups.PrimeOrderGroup`
(written multiplicatively below); :data:`DEFAULT_THRESHOLD_GROUP` is edwards25519
(~128-bit security, a decryption share in well under a millisecond), and the
RFC 7919 group ffdhe2048 remains supported. Anyone encrypts to the shared public key
``y = g^x``; the private key ``x`` exists only as Shamir shares ``x_i`` (from a
trusted dealer, :func:`deal_threshold_key`, or from the DKG,
:func:`threshold_key_from_dkg`) and is never assembled on the normal path:

* encrypt: ``r`` uniform in [1, q), ``c1 = g^r``, ``K = HKDF-SHA256(y^r)`` with
  ``c1`` and ``y`` in the info, ``body = AES-256-GCM_K(plaintext)`` with ``c1`` in
  the associated data. ElGamal KEM + AEAD (DHIES-style): IND-CCA under the
  decisional/gap Diffie-Hellman assumption in the random-oracle model.
* trustee ``i`` publishes ``d_i = c1^{x_i}`` with a Chaum-Pedersen proof that
  ``log_g y_i = log_{c1} d_i`` (``y_i = g^{x_i}`` is its public verification key),
  made non-interactive by Fiat-Shamir over every public value.
* a combiner checks ``t`` shares and computes ``y^r = prod d_i^{lambda_i}``
  (Lagrange in the exponent), then opens the AEAD.

``c1`` is checked to be a group element other than the identity before any
trustee exponentiates it: a value in a small subgroup (``p - 1`` mod p, a torsion
point on the curve) would make ``d_i`` leak ``x_i`` modulo the small order.
Failures are typed: :class:`InvalidShare` names the trustee whose share is bad,
:class:`DecryptionError` says only "no" for a tampered ciphertext, never
returning garbage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import gmpy2
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.errors import (
    DecryptionError,
    DuplicateShare,
    EncodingError,
    InvalidShare,
    SharingError,
    TooFewShares,
)
from gridledger.crypto.groups import (
    CUSTOM_SCHNORR_NAME,
    EDWARDS25519,
    PrimeOrderGroup,
    SchnorrGroup,
    get_named_group,
)
from gridledger.crypto.hashing import hash_value, register_tag
from gridledger.crypto.rng import Rng
from gridledger.crypto.sharing import (
    DkgResult,
    Share,
    lagrange_coefficient,
    reconstruct,
    split,
)

CP_PROOF_TAG = register_tag("gridledger/crypto/threshold/cp-proof/2")
_KDF_INFO = b"gridledger/crypto/threshold/kdf/1"
_AEAD_LABEL = b"gridledger/crypto/threshold/aead/1"
KEY_SIZE = 32
NONCE_SIZE = 12

DEFAULT_THRESHOLD_GROUP: PrimeOrderGroup = EDWARDS25519
"""The recommended group for new threshold keys: edwards25519 (~128-bit security,
32-byte elements). :data:`~groups.FFDHE2048` keeps working for existing keys."""


# --- keys --------------------------------------------------------------------------


MIN_CUSTOM_P_BITS = 2048
MIN_CUSTOM_Q_BITS = 256


@dataclass(frozen=True)
class ThresholdPublicKey:
    """The shared public key ``y = g^x`` and each trustee's ``y_i = g^{x_i}``.

    ``verification_keys[i - 1]`` belongs to trustee ``i``. Construction checks that
    ``y`` (not the identity) and every ``y_i`` are group elements;
    :meth:`check_consistency` also checks that the ``y_i`` lie on one degree ``t - 1``
    polynomial through ``y``.
    """

    group: PrimeOrderGroup
    y: int
    t: int
    n: int
    verification_keys: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.t <= self.n:
            raise ValueError(f"need 1 <= t <= n, got t={self.t}, n={self.n}")
        if len(self.verification_keys) != self.n:
            raise ValueError(f"{len(self.verification_keys)} verification keys for n={self.n}")
        if self.y == self.group.identity or not self.group.is_element(self.y):
            raise ValueError("y is not a group element other than the identity")
        if not all(self.group.is_element(v) for v in self.verification_keys):
            raise ValueError("a verification key is not a group element")

    def verification_key(self, index: int) -> int:
        if not 1 <= index <= self.n:
            raise InvalidShare(index, f"index outside 1..{self.n}")
        return self.verification_keys[index - 1]

    def check_consistency(self) -> None:
        """Raise :class:`SharingError` unless the verification keys interpolate to ``y``.

        Interpolates in the exponent from the first ``t`` keys to 0 and to every
        other index: ``O(n t)`` exponentiations, so run it once when a key is set up.
        """
        grp = self.group
        base = list(range(1, self.t + 1))
        targets = [0, *range(self.t + 1, self.n + 1)]
        for at in targets:
            acc = grp.identity
            for j in base:
                lam = lagrange_coefficient(j, base, grp.q, at=at)
                acc = grp.mul(acc, grp.exp(self.verification_keys[j - 1], lam))
            expected = self.y if at == 0 else self.verification_keys[at - 1]
            if acc != expected:
                where = "y" if at == 0 else f"verification key {at}"
                raise SharingError(f"{where} is inconsistent with the other verification keys")

    def to_bytes(self) -> bytes:
        """Canonical wire bytes: the group by name (with ``p, q, g`` only for a custom
        Schnorr group), then ``y``, ``t``, ``n`` and the verification keys."""
        g = self.group
        return encode(
            _PublicKeyWire(
                group=g.name,
                params=_group_params(g),
                y=g.element_to_bytes(self.y),
                t=self.t,
                n=self.n,
                verification_keys=tuple(g.element_to_bytes(v) for v in self.verification_keys),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ThresholdPublicKey:
        """Decode, validating a custom Schnorr group fully (primality) before use.

        Raises :class:`KeyFormatError` for an unknown group name or a bad custom
        group, :class:`EncodingError` for anything else malformed (including a
        named group spelled out as parameters: each key has one encoding).
        """
        wire = decode_as(_PublicKeyWire, data)
        try:
            group: PrimeOrderGroup
            if wire.group == CUSTOM_SCHNORR_NAME:
                if len(wire.params) != 3:
                    raise ValueError("a custom Schnorr group needs p, q and g")
                p, q, g = (_from_minimal(v) for v in wire.params)
                if p.bit_length() < MIN_CUSTOM_P_BITS or q.bit_length() < MIN_CUSTOM_Q_BITS:
                    # A toy group would let anyone decrypt by brute force.
                    raise ValueError(
                        f"a custom group needs p of {MIN_CUSTOM_P_BITS} bits and q of "
                        f"{MIN_CUSTOM_Q_BITS} bits at least"
                    )
                group = SchnorrGroup(p, q, g)
                if group.name != CUSTOM_SCHNORR_NAME:
                    raise ValueError(f"the group {group.name!r} must be sent by name")
                group.check()
            else:
                group = get_named_group(wire.group)
                if wire.params:
                    raise ValueError(f"the named group {wire.group!r} takes no parameters")
            return cls(
                group=group,
                y=group.element_from_bytes(wire.y),
                t=wire.t,
                n=wire.n,
                verification_keys=tuple(
                    group.element_from_bytes(v) for v in wire.verification_keys
                ),
            )
        except ValueError as exc:
            raise EncodingError(f"threshold public key: {exc}") from None


@dataclass(frozen=True)
class KeyShare:
    """Trustee ``index``'s share ``x_i`` of the private key (kept out of ``repr``)."""

    index: int
    x: int = field(repr=False)


def verify_key_share(pk: ThresholdPublicKey, key_share: KeyShare) -> None:
    """Raise :class:`InvalidShare` unless ``g^{x_i}`` is trustee ``i``'s verification key."""
    vk = pk.verification_key(key_share.index)
    if not pk.group.is_scalar(key_share.x) or pk.group.exp_g(key_share.x) != vk:
        raise InvalidShare(key_share.index, "key share does not match its verification key")


def deal_threshold_key(
    t: int, n: int, group: PrimeOrderGroup, rng: Rng
) -> tuple[ThresholdPublicKey, tuple[KeyShare, ...]]:
    """Trusted-dealer setup: the dealer sees ``x`` once and must erase it.

    Prefer :func:`threshold_key_from_dkg` when the trustees can run the DKG.
    """
    x = group.random_scalar(rng)
    dealing = split(x, t, n, group, rng)
    vks = tuple(group.exp_secret(group.g, s.value) for s in dealing.shares)
    pk = ThresholdPublicKey(group, dealing.commitments[0], t, n, vks)
    return pk, tuple(KeyShare(s.index, s.value) for s in dealing.shares)


def threshold_key_from_dkg(
    result: DkgResult, t: int, group: PrimeOrderGroup
) -> tuple[ThresholdPublicKey, KeyShare]:
    """A trustee's public key and key share from its :func:`~sharing.dkg_finalize` result.

    Every honest trustee derives the same :class:`ThresholdPublicKey`.
    """
    n = len(result.verification_keys)
    pk = ThresholdPublicKey(group, result.public_key, t, n, result.verification_keys)
    key_share = KeyShare(result.share.index, result.share.value)
    verify_key_share(pk, key_share)
    return pk, key_share


# --- encryption --------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdCiphertext:
    """``c1 = g^r``, the AES-GCM nonce, and the AES-GCM ciphertext with its tag."""

    c1: int
    nonce: bytes
    body: bytes

    def to_bytes(self, group: PrimeOrderGroup) -> bytes:
        return encode(_CiphertextWire(group.element_to_bytes(self.c1), self.nonce, self.body))

    @classmethod
    def from_bytes(cls, data: bytes, group: PrimeOrderGroup) -> ThresholdCiphertext:
        wire = decode_as(_CiphertextWire, data)
        return cls(group.element_from_bytes(wire.c1), wire.nonce, wire.body)


def _check_c1(pk: ThresholdPublicKey, c1: int) -> None:
    # The identity (r = 0) would make y^r public; a non-member could confine d_i to a
    # small subgroup.
    if c1 == pk.group.identity or not pk.group.is_element(c1):
        raise DecryptionError("c1 is not a group element other than the identity")


def _derive_key(pk: ThresholdPublicKey, c1: int, shared: int) -> bytes:
    grp = pk.group
    info = _KDF_INFO + grp.element_to_bytes(c1) + grp.element_to_bytes(pk.y)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=info)
    return hkdf.derive(grp.element_to_bytes(shared))


def _aead_aad(pk: ThresholdPublicKey, c1: int, aad: bytes) -> bytes:
    # c1 has a fixed length, so the concatenation is unambiguous.
    return _AEAD_LABEL + pk.group.element_to_bytes(c1) + aad


def encrypt_with(
    pk: ThresholdPublicKey, plaintext: bytes, aad: bytes, r: int, nonce: bytes
) -> ThresholdCiphertext:
    """Deterministic twin of :func:`encrypt` (test vectors): ``r`` and ``nonce`` given.

    Reusing ``r`` reuses the AES key and, with the same nonce, breaks GCM: never
    call this with anything but fresh randomness outside tests.
    """
    grp = pk.group
    if not 1 <= r < grp.q:
        raise SharingError("r must lie in [1, q)")
    if len(nonce) != NONCE_SIZE:
        raise SharingError(f"the nonce is {NONCE_SIZE} bytes")
    c1 = grp.exp_secret(grp.g, r)
    return encrypt_from_parts(pk, plaintext, aad, c1, grp.exp_secret(pk.y, r), nonce)


def encrypt_from_parts(
    pk: ThresholdPublicKey, plaintext: bytes, aad: bytes, c1: int, shared: int, nonce: bytes
) -> ThresholdCiphertext:
    """The DEM half of :func:`encrypt_with`, given ``c1 = g^r`` and ``shared = y^r``.

    For a verifier that recomputes a ciphertext from a *revealed* ``r`` with its
    own (faster, non-constant-time) exponentiation; the bytes are exactly those
    :func:`encrypt_with` gives for the same ``r`` and nonce.
    """
    if len(nonce) != NONCE_SIZE:
        raise SharingError(f"the nonce is {NONCE_SIZE} bytes")
    key = _derive_key(pk, c1, shared)
    body = AESGCM(key).encrypt(nonce, plaintext, _aead_aad(pk, c1, aad))
    return ThresholdCiphertext(c1, nonce, body)


def encrypt(pk: ThresholdPublicKey, plaintext: bytes, aad: bytes, rng: Rng) -> ThresholdCiphertext:
    """Encrypt ``plaintext`` to the trustees, binding ``aad`` (not encrypted)."""
    r = pk.group.random_scalar(rng)
    return encrypt_with(pk, plaintext, aad, r, rng.random_bytes(NONCE_SIZE))


# --- decryption shares -------------------------------------------------------------


@dataclass(frozen=True)
class ChaumPedersenProof:
    """Fiat-Shamir proof of ``log_g y_i = log_{c1} d``: ``(challenge, response)``."""

    challenge: int
    response: int


@dataclass(frozen=True)
class DecryptionShare:
    """Trustee ``index``'s ``d = c1^{x_i}`` with its proof of correctness."""

    index: int
    d: int
    proof: ChaumPedersenProof

    def to_bytes(self, group: PrimeOrderGroup) -> bytes:
        return encode(
            _DecryptionShareWire(
                self.index,
                group.element_to_bytes(self.d),
                group.scalar_to_bytes(self.proof.challenge),
                group.scalar_to_bytes(self.proof.response),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes, group: PrimeOrderGroup) -> DecryptionShare:
        wire = decode_as(_DecryptionShareWire, data)
        proof = ChaumPedersenProof(
            group.scalar_from_bytes(wire.challenge), group.scalar_from_bytes(wire.response)
        )
        return cls(wire.index, group.element_from_bytes(wire.d), proof)


def _cp_challenge(pk: ThresholdPublicKey, index: int, c1: int, d: int, a1: int, a2: int) -> int:
    """The Fiat-Shamir challenge over the group, the keys, the statement and commitments.

    The 256-bit digest is reduced mod ``q``: negligible bias for ``q`` near ``2^252``
    (edwards25519) and none to speak of for 2047-bit ``q``.
    """
    grp = pk.group
    eb = grp.element_to_bytes
    digest = hash_value(
        CP_PROOF_TAG,
        [
            grp.name,
            list(_group_params(grp)),
            eb(grp.g),
            eb(pk.y),
            index,
            eb(pk.verification_keys[index - 1]),
            eb(c1),
            eb(d),
            eb(a1),
            eb(a2),
        ],
    )
    return int.from_bytes(digest, "big") % grp.q


def decryption_share(
    pk: ThresholdPublicKey, key_share: KeyShare, ct: ThresholdCiphertext, rng: Rng
) -> DecryptionShare:
    """Trustee ``key_share.index``'s share ``d = c1^{x_i}`` and its Chaum-Pedersen proof."""
    grp = pk.group
    _check_c1(pk, ct.c1)
    pk.verification_key(key_share.index)  # index in range
    x = key_share.x
    d = grp.exp_secret(ct.c1, x)
    w = grp.random_scalar(rng)
    a1 = grp.exp_secret(grp.g, w)
    a2 = grp.exp_secret(ct.c1, w)
    e = _cp_challenge(pk, key_share.index, ct.c1, d, a1, a2)
    z = (w + e * gmpy2.mpz(x)) % grp.q
    return DecryptionShare(key_share.index, d, ChaumPedersenProof(e, int(z)))


def verify_decryption_share(
    pk: ThresholdPublicKey, ct: ThresholdCiphertext, share: DecryptionShare
) -> None:
    """Raise :class:`InvalidShare` (naming ``share.index``) unless the share is correct.

    Raises :class:`DecryptionError` if ``c1`` itself is not a valid group element.
    """
    grp = pk.group
    _check_c1(pk, ct.c1)
    i = share.index
    vk = pk.verification_key(i)
    if not grp.is_element(share.d):
        raise InvalidShare(i, "d is not a group element")
    e, z = share.proof.challenge, share.proof.response
    if not (grp.is_scalar(e) and grp.is_scalar(z)):
        raise InvalidShare(i, "proof values not reduced mod q")
    # a1 = g^z * y_i^-e, a2 = c1^z * d^-e; e is short (256 bits), so invert after exp.
    a1 = grp.mul(grp.exp_g(z), grp.inv(grp.exp(vk, e)))
    a2 = grp.mul(grp.exp(ct.c1, z), grp.inv(grp.exp(share.d, e)))
    if _cp_challenge(pk, i, ct.c1, share.d, a1, a2) != e:
        raise InvalidShare(i, "Chaum-Pedersen proof does not verify")


def is_valid_decryption_share(
    pk: ThresholdPublicKey, ct: ThresholdCiphertext, share: DecryptionShare
) -> bool:
    try:
        verify_decryption_share(pk, ct, share)
    except InvalidShare:
        return False
    return True


# --- combining ---------------------------------------------------------------------


def _open(
    pk: ThresholdPublicKey, ct: ThresholdCiphertext, shares: Sequence[DecryptionShare], aad: bytes
) -> bytes:
    """Lagrange-combine exactly ``t`` verified shares into ``y^r`` and open the AEAD."""
    grp = pk.group
    indices = [s.index for s in shares]
    shared = grp.identity
    for s in shares:
        lam = lagrange_coefficient(s.index, indices, grp.q)
        shared = grp.mul(shared, grp.exp(s.d, lam))
    key = _derive_key(pk, ct.c1, shared)
    if len(ct.nonce) != NONCE_SIZE:
        raise DecryptionError()
    try:
        return AESGCM(key).decrypt(ct.nonce, ct.body, _aead_aad(pk, ct.c1, aad))
    except InvalidTag:
        raise DecryptionError() from None


def combine(
    pk: ThresholdPublicKey,
    ct: ThresholdCiphertext,
    shares: Sequence[DecryptionShare],
    aad: bytes,
) -> bytes:
    """Decrypt ``ct`` from decryption shares, strictly; ``aad`` as given to :func:`encrypt`.

    Raises :class:`DecryptionError` for a bad ``c1`` or a ciphertext that fails
    authentication (tampered body, nonce, ``c1`` or ``aad``); :class:`InvalidShare`
    for an index out of range or a share whose proof fails (the first one, by
    position); :class:`DuplicateShare`; :class:`TooFewShares`. Uses the first
    ``t`` shares after checking all of them.
    """
    _check_c1(pk, ct.c1)
    seen: set[int] = set()
    for s in shares:
        pk.verification_key(s.index)
        if s.index in seen:
            raise DuplicateShare(s.index)
        seen.add(s.index)
    if len(shares) < pk.t:
        raise TooFewShares(len(shares), pk.t)
    for s in shares:
        verify_decryption_share(pk, ct, s)
    return _open(pk, ct, list(shares)[: pk.t], aad)


def combine_robust(
    pk: ThresholdPublicKey,
    ct: ThresholdCiphertext,
    shares: Sequence[DecryptionShare],
    aad: bytes,
) -> tuple[bytes, tuple[int, ...]]:
    """Decrypt despite bad shares: ``(plaintext, indices of the invalid shares)``.

    Invalid shares (bad proof, index out of range) are set aside and reported;
    duplicates of a valid index are harmless (a valid ``d_i`` is unique) and
    dropped. Raises :class:`TooFewShares` if fewer than ``t`` distinct valid
    shares remain, and :class:`DecryptionError` as :func:`combine` does.
    """
    _check_c1(pk, ct.c1)
    good: dict[int, DecryptionShare] = {}
    bad: list[int] = []
    for s in shares:
        if s.index in good and good[s.index].d == s.d:
            continue
        try:
            verify_decryption_share(pk, ct, s)
        except InvalidShare:
            bad.append(s.index)
            continue
        good.setdefault(s.index, s)
    if len(good) < pk.t:
        raise TooFewShares(len(good), pk.t)
    chosen = list(good.values())[: pk.t]
    return _open(pk, ct, chosen, aad), tuple(bad)


def reconstruct_private_key(shares: Sequence[KeyShare], pk: ThresholdPublicKey) -> int:
    """Audit path only: assemble ``x`` from ``t`` key shares, checked against ``y``.

    Each share is checked against its verification key first, so a bad one is
    named (:class:`InvalidShare`); then the Lagrange result must satisfy ``g^x = y``.
    """
    as_shares = [Share(k.index, k.x) for k in shares]
    x = reconstruct(as_shares, pk.t, pk.group, n=pk.n)  # range, duplicates, count
    for k in shares:
        verify_key_share(pk, k)
    if pk.group.exp_g(x) != pk.y:
        raise SharingError("reconstructed key does not match the public key")
    return x


# --- wire formats ------------------------------------------------------------------


def _group_params(group: PrimeOrderGroup) -> tuple[bytes, ...]:
    """``(p, q, g)`` in minimal big-endian form for a custom Schnorr group; ``()`` for a
    named group, which its name identifies."""
    if group.name != CUSTOM_SCHNORR_NAME:
        return ()
    if not isinstance(group, SchnorrGroup):
        raise EncodingError("only Schnorr groups can travel as explicit parameters")
    return (_minimal_bytes(group.p), _minimal_bytes(group.q), _minimal_bytes(group.g))


def _minimal_bytes(x: int) -> bytes:
    return x.to_bytes((x.bit_length() + 7) // 8, "big")


def _from_minimal(data: bytes) -> int:
    if not data or data[0] == 0:
        raise ValueError("integer is not in minimal big-endian form")
    return int.from_bytes(data, "big")


@wire_type("crypto.threshold.public-key/2")
@dataclass(frozen=True)
class _PublicKeyWire:
    group: str
    """A name from :data:`~groups.NAMED_GROUPS`, or ``"schnorr"`` with ``params``."""
    params: tuple[bytes, ...]
    """``(p, q, g)``, minimal big-endian, for ``"schnorr"`` only; empty otherwise."""
    y: bytes
    t: int
    n: int
    verification_keys: tuple[bytes, ...]


@wire_type("crypto.threshold.ciphertext/1")
@dataclass(frozen=True)
class _CiphertextWire:
    c1: bytes
    nonce: bytes
    body: bytes


@wire_type("crypto.threshold.decryption-share/1")
@dataclass(frozen=True)
class _DecryptionShareWire:
    index: int
    d: bytes
    challenge: bytes
    response: bytes
