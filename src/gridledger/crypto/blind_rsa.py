"""RSA blind signatures (RFC 9474, RSABSSA-SHA384).

A client blinds a message, the signer signs the blinded value without learning
the message, and the client unblinds the result into an ordinary RSASSA-PSS
signature (SHA-384, MGF1-SHA-384) that anyone can check with the public key.
The signer cannot later link a signature to the signing session that produced
it, which is what pseudonym registration and e-coin withdrawal need.

Protocol, with the RFC's operation names::

    client: input_msg = prepare(variant, msg, rng)
    client: blinded_msg, inv = blind(public_key, variant, input_msg, rng)
    signer: blind_sig = blind_sign(private_key, blinded_msg)
    client: sig = finalize(public_key, variant, input_msg, blind_sig, inv)
    anyone: verify(public_key, variant, input_msg, sig)

All four RFC variants are supported (:class:`Variant`). Prefer a *Randomized*
variant: its 32-byte random ``msg_prefix`` keeps the message unguessable even
when ``msg`` itself is low-entropy, which protects the client against a signer
that publishes a malformed key to learn the message (RFC 9474 §7, "Message
Entropy").
Each rng-taking function has a ``*_with`` twin that takes the random values
explicitly, so that the RFC's Appendix A vectors replay exactly.

Key and domain separation -- callers MUST:

* use a dedicated RSA key per purpose (one for the registration manager's
  pseudonym signatures, another for each e-coin denomination, ...), and never
  use a blind-signing key for anything else. :func:`blind_sign` is a raw RSA
  private-key operation on a value the signer cannot see: it would sign a PSS
  encoding of *any* message, including one meant for another protocol, under
  the same key. Only separate keys actually separate purposes.
* put a domain tag (e.g. ``hashing.tagged_message(tag, payload)``) at the start
  of ``msg``, so that a verifier interprets a signed message in the one context
  it was made for. The signer never sees the message, so it cannot enforce the
  tag: the tag is for verifiers, the key is the real boundary.

Implementation: EMSA-PSS (RFC 8017 §9.1) is written here with ``hashlib``;
the signer uses CRT with gmpy2's constant-time ``powmod_sec`` (the blinded
message is attacker-chosen, so the private exponentiation must not leak
through timing) and re-checks ``s^e == m mod n`` before releasing a blind
signature: a faulty CRT half would otherwise hand the client a factor of
``n`` (the Bellcore attack). Errors: bad inputs and a failed self-check raise
:class:`BlindSignatureError`; a signature that does not verify raises
:class:`InvalidSignature`.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

import gmpy2

from gridledger.crypto.errors import BlindSignatureError, InvalidSignature
from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import RsaPrivateKey, RsaPublicKey

HASH_SIZE = 48  # SHA-384
MSG_PREFIX_SIZE = 32
_MAX_BLIND_TRIES = 8  # a random r is a non-unit with probability < 2**-1000

_Mpz = Any  # gmpy2.mpz (gmpy2 ships no type stubs)


class Variant(enum.Enum):
    """The four RSABSSA-SHA384 variants of RFC 9474 §5 (value: the RFC's name)."""

    PSS_RANDOMIZED = "RSABSSA-SHA384-PSS-Randomized"
    PSSZERO_RANDOMIZED = "RSABSSA-SHA384-PSSZERO-Randomized"
    PSS_DETERMINISTIC = "RSABSSA-SHA384-PSS-Deterministic"
    PSSZERO_DETERMINISTIC = "RSABSSA-SHA384-PSSZERO-Deterministic"

    @property
    def salt_length(self) -> int:
        """PSS salt length: 48 (the hash size) for PSS, 0 for PSSZERO."""
        return 0 if "PSSZERO" in self.value else HASH_SIZE

    @property
    def is_randomized(self) -> bool:
        """Whether :func:`prepare` prepends a 32-byte random prefix to the message."""
        return self.value.endswith("-Randomized")


@dataclass(frozen=True)
class BlindingResult:
    """Output of :func:`blind`: send ``blinded_msg`` to the signer, keep ``inv`` secret.

    ``inv`` (the inverse of the blinding factor) links the blinded message to
    the final signature, so it is kept out of ``repr``.
    """

    blinded_msg: bytes
    inv: bytes = field(repr=False)


@dataclass(frozen=True)
class BlindSigner:
    """A signer key precomputed for CRT; build once with :meth:`from_private_key`.

    The secret numbers are gmpy2 integers and stay out of ``repr``.
    """

    public_key: RsaPublicKey
    n: _Mpz = field(repr=False)
    e: _Mpz = field(repr=False)
    p: _Mpz = field(repr=False)
    q: _Mpz = field(repr=False)
    dp: _Mpz = field(repr=False)
    dq: _Mpz = field(repr=False)
    qinv: _Mpz = field(repr=False)

    @classmethod
    def from_private_key(cls, key: RsaPrivateKey) -> BlindSigner:
        nums = key.private_numbers()
        pub = key.public_key
        return cls(
            public_key=pub,
            n=gmpy2.mpz(pub.n),
            e=gmpy2.mpz(pub.e),
            p=gmpy2.mpz(nums.p),
            q=gmpy2.mpz(nums.q),
            dp=gmpy2.mpz(nums.dmp1),
            dq=gmpy2.mpz(nums.dmq1),
            qinv=gmpy2.mpz(nums.iqmp),  # q^-1 mod p
        )


# -- primitives (RFC 8017 §4, §5.2, §9.1, B.2.1) -------------------------------


def _i2osp(x: int, length: int) -> bytes:
    """I2OSP: ``x`` as ``length`` big-endian bytes; too large is a typed error."""
    if x < 0 or x.bit_length() > 8 * length:
        raise BlindSignatureError("integer too large for its octet-string length")
    return int(x).to_bytes(length, "big")


def _os2ip(data: bytes) -> int:
    """OS2IP: big-endian bytes to a non-negative integer."""
    return int.from_bytes(data, "big")


def _mgf1_sha384(seed: bytes, length: int) -> bytes:
    """MGF1 with SHA-384 (RFC 8017 B.2.1)."""
    out = bytearray()
    for counter in range(-(-length // HASH_SIZE)):
        out += hashlib.sha384(seed + counter.to_bytes(4, "big")).digest()
    return bytes(out[:length])


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _em_params(public_key: RsaPublicKey) -> tuple[int, int]:
    """(emBits, emLen) for EMSA-PSS under ``public_key``: emBits = modBits - 1."""
    em_bits = public_key.n.bit_length() - 1
    return em_bits, -(-em_bits // 8)


def _emsa_pss_encode(msg: bytes, em_bits: int, salt: bytes) -> bytes:
    """EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with SHA-384 and MGF1-SHA-384."""
    em_len = -(-em_bits // 8)
    s_len = len(salt)
    if em_len < HASH_SIZE + s_len + 2:
        raise BlindSignatureError("modulus too small for this PSS salt length")
    m_hash = hashlib.sha384(msg).digest()
    h = hashlib.sha384(b"\x00" * 8 + m_hash + salt).digest()
    db = b"\x00" * (em_len - s_len - HASH_SIZE - 2) + b"\x01" + salt
    masked_db = bytearray(_xor(db, _mgf1_sha384(h, em_len - HASH_SIZE - 1)))
    masked_db[0] &= 0xFF >> (8 * em_len - em_bits)
    return bytes(masked_db) + h + b"\xbc"


def _emsa_pss_verify(msg: bytes, em: bytes, em_bits: int, s_len: int) -> bool:
    """EMSA-PSS-VERIFY (RFC 8017 §9.1.2): True for "consistent"."""
    em_len = -(-em_bits // 8)
    if len(em) != em_len or em_len < HASH_SIZE + s_len + 2 or em[-1] != 0xBC:
        return False
    masked_db, h = em[: em_len - HASH_SIZE - 1], em[em_len - HASH_SIZE - 1 : -1]
    top_mask = 0xFF >> (8 * em_len - em_bits)
    if masked_db[0] & ~top_mask & 0xFF:
        return False
    db = bytearray(_xor(masked_db, _mgf1_sha384(h, em_len - HASH_SIZE - 1)))
    db[0] &= top_mask
    ps_len = em_len - HASH_SIZE - s_len - 2
    if any(db[:ps_len]) or db[ps_len] != 0x01:
        return False
    salt = bytes(db[len(db) - s_len :]) if s_len else b""
    m_hash = hashlib.sha384(msg).digest()
    return hmac.compare_digest(h, hashlib.sha384(b"\x00" * 8 + m_hash + salt).digest())


def _rsasp1(signer: BlindSigner, m: int) -> int:
    """RSASP1 by CRT (RFC 8017 §5.2.1, second form) in constant-time exponentiation."""
    mm = gmpy2.mpz(m)
    s1 = gmpy2.powmod_sec(mm % signer.p, signer.dp, signer.p)
    s2 = gmpy2.powmod_sec(mm % signer.q, signer.dq, signer.q)
    h = (signer.qinv * (s1 - s2)) % signer.p
    return int(s2 + h * signer.q)


def _rsavp1(public_key: RsaPublicKey, s: int) -> int:
    """RSAVP1 (RFC 8017 §5.2.2): ``s^e mod n``; the caller checks ``s < n``."""
    return int(gmpy2.powmod(s, public_key.e, public_key.n))


# -- the protocol (RFC 9474 §4) ------------------------------------------------


def prepare_with(variant: Variant, msg: bytes, msg_prefix: bytes) -> bytes:
    """Prepare (§4.1) with an explicit prefix: 32 bytes if randomized, else ``b""``."""
    expected = MSG_PREFIX_SIZE if variant.is_randomized else 0
    if len(msg_prefix) != expected:
        raise BlindSignatureError(f"{variant.value} takes a {expected}-byte msg_prefix")
    return msg_prefix + msg


def prepare(variant: Variant, msg: bytes, rng: Rng) -> bytes:
    """Prepare (§4.1): ``input_msg``, i.e. ``msg`` behind a fresh random prefix if randomized.

    The caller signs, finalizes and verifies ``input_msg``, not ``msg``.
    """
    prefix = rng.random_bytes(MSG_PREFIX_SIZE) if variant.is_randomized else b""
    return prepare_with(variant, msg, prefix)


def blind_with(
    public_key: RsaPublicKey, variant: Variant, input_msg: bytes, r: int, salt: bytes
) -> BlindingResult:
    """Blind (§4.2) with an explicit blinding factor ``r`` and PSS ``salt``.

    For test vectors and for callers that derive ``r`` themselves; ``r`` must be
    secret, uniform and fresh per message, or the signature becomes linkable.
    """
    n = public_key.n
    if len(salt) != variant.salt_length:
        raise BlindSignatureError(f"{variant.value} takes a {variant.salt_length}-byte salt")
    if not 1 <= r < n:
        raise BlindSignatureError("blinding factor out of range [1, n)")
    em_bits, _ = _em_params(public_key)
    m = _os2ip(_emsa_pss_encode(input_msg, em_bits, salt))
    if gmpy2.gcd(m, n) != 1:
        raise BlindSignatureError("encoded message is not invertible mod n")
    try:
        inv = gmpy2.invert(r, n)
    except ZeroDivisionError:
        raise BlindSignatureError("blinding factor is not invertible mod n") from None
    z = (m * _rsavp1(public_key, r)) % n
    k = public_key.modulus_bytes
    return BlindingResult(blinded_msg=_i2osp(z, k), inv=_i2osp(int(inv), k))


def compute_blinded_msg(
    public_key: RsaPublicKey, variant: Variant, input_msg: bytes, r: int, salt: bytes
) -> bytes:
    """``EM * r^e mod n`` only: what a verifier needs to re-check a revealed blinding.

    A cut-and-choose verifier (the RM) recomputes the blinded messages of the
    opened candidates from their revealed ``r`` and salt and compares bytes; it
    needs neither ``inv`` nor the unit checks, which only protect the *user*
    (a non-unit ``r`` would factor ``n``). Same range and length checks as
    :func:`blind_with`, same bytes.
    """
    n = public_key.n
    if len(salt) != variant.salt_length:
        raise BlindSignatureError(f"{variant.value} takes a {variant.salt_length}-byte salt")
    if not 1 <= r < n:
        raise BlindSignatureError("blinding factor out of range [1, n)")
    em_bits, _ = _em_params(public_key)
    m = _os2ip(_emsa_pss_encode(input_msg, em_bits, salt))
    return _i2osp((m * _rsavp1(public_key, r)) % n, public_key.modulus_bytes)


def blind(public_key: RsaPublicKey, variant: Variant, input_msg: bytes, rng: Rng) -> BlindingResult:
    """Blind (§4.2): a fresh salt and a uniform unit ``r`` of Z_n, then ``EM * r^e mod n``."""
    salt = rng.random_bytes(variant.salt_length)
    n = public_key.n
    for _ in range(_MAX_BLIND_TRIES):
        r = rng.randbelow(n - 1) + 1
        if gmpy2.gcd(r, n) == 1:
            return blind_with(public_key, variant, input_msg, r, salt)
    raise BlindSignatureError("no invertible blinding factor found (broken rng or key?)")


def blind_sign(private_key: RsaPrivateKey | BlindSigner, blinded_msg: bytes) -> bytes:
    """BlindSign (§4.3): ``blinded_msg^d mod n``, checked before it leaves the signer.

    Pass a :class:`BlindSigner` to skip re-deriving the CRT numbers on each call.
    """
    signer = (
        private_key
        if isinstance(private_key, BlindSigner)
        else BlindSigner.from_private_key(private_key)
    )
    k = signer.public_key.modulus_bytes
    if len(blinded_msg) != k:
        raise BlindSignatureError(f"blinded message must be {k} bytes")
    m = _os2ip(blinded_msg)
    if m >= signer.public_key.n:
        raise BlindSignatureError("message representative out of range")
    s = _rsasp1(signer, m)
    if not 0 <= s < signer.public_key.n or _rsavp1(signer.public_key, s) != m:
        raise BlindSignatureError("signing failure: blind signature failed its self-check")
    return _i2osp(s, k)


def finalize(
    public_key: RsaPublicKey,
    variant: Variant,
    input_msg: bytes,
    blind_sig: bytes,
    inv: bytes,
) -> bytes:
    """Finalize (§4.4): unblind with ``inv`` and return the signature only if it verifies."""
    n, k = public_key.n, public_key.modulus_bytes
    if len(blind_sig) != k:
        raise BlindSignatureError(f"blind signature must be {k} bytes")
    if len(inv) != k:
        raise BlindSignatureError(f"inv must be {k} bytes")
    z, inv_int = _os2ip(blind_sig), _os2ip(inv)
    if z >= n:
        raise BlindSignatureError("blind signature out of range")
    if not 1 <= inv_int < n or gmpy2.gcd(inv_int, n) != 1:
        raise BlindSignatureError("inv is not invertible mod n")
    sig = _i2osp(int((gmpy2.mpz(z) * inv_int) % n), k)
    verify(public_key, variant, input_msg, sig)
    return sig


def verify(public_key: RsaPublicKey, variant: Variant, input_msg: bytes, sig: bytes) -> None:
    """Verification (§4.5): RSASSA-PSS-VERIFY (RFC 8017 §8.1.2) on ``input_msg``.

    Raises :class:`InvalidSignature` on any failure.
    """
    fail = f"RSA blind signature does not verify ({variant.value})"
    if len(sig) != public_key.modulus_bytes:
        raise InvalidSignature(fail)
    s = _os2ip(sig)
    if s >= public_key.n:
        raise InvalidSignature(fail)
    m = _rsavp1(public_key, s)
    em_bits, em_len = _em_params(public_key)
    if m.bit_length() > em_bits:
        raise InvalidSignature(fail)
    if not _emsa_pss_verify(input_msg, _i2osp(m, em_len), em_bits, variant.salt_length):
        raise InvalidSignature(fail)


def is_valid(public_key: RsaPublicKey, variant: Variant, input_msg: bytes, sig: bytes) -> bool:
    """:func:`verify` as a predicate."""
    try:
        verify(public_key, variant, input_msg, sig)
    except InvalidSignature:
        return False
    return True
