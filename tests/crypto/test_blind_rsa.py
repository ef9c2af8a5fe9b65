"""RSA blind signatures (RFC 9474): Appendix A vectors, round trips, interop, failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gmpy2
import pytest
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridledger.crypto import blind_rsa
from gridledger.crypto.blind_rsa import (
    BlindingResult,
    BlindSigner,
    Variant,
    blind,
    blind_sign,
    blind_with,
    finalize,
    is_valid,
    prepare,
    prepare_with,
    verify,
)
from gridledger.crypto.errors import BlindSignatureError, InvalidSignature
from gridledger.crypto.hashing import register_tag, tagged_message
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import RsaPrivateKey, RsaPublicKey
from gridledger.errors import CryptoError

VECTORS_PATH = Path(__file__).resolve().parent.parent / "data" / "rfc9474.json"
VECTORS: list[dict[str, str]] = json.loads(VECTORS_PATH.read_text())
INTEROP_TAG = register_tag("gridledger/test/blind-rsa-interop/1")


def _hex_bytes(s: str) -> bytes:
    return bytes.fromhex(s.removeprefix("0x"))


def _hex_int(s: str) -> int:
    return int(s, 16)


@dataclass(frozen=True)
class Vector:
    variant: Variant
    key: RsaPrivateKey
    raw: dict[str, str]

    @property
    def public_key(self) -> RsaPublicKey:
        return self.key.public_key

    def b(self, name: str) -> bytes:
        return _hex_bytes(self.raw[name])

    def i(self, name: str) -> int:
        return _hex_int(self.raw[name])

    def modulus_int_bytes(self, name: str) -> bytes:
        """A field holding an integer mod n, as modulus_len bytes (I2OSP)."""
        return self.i(name).to_bytes(self.public_key.modulus_bytes, "big")


def _key_from_numbers(p: int, q: int, e: int, d: int) -> RsaPrivateKey:
    numbers = rsa.RSAPrivateNumbers(
        p,
        q,
        d,
        rsa.rsa_crt_dmp1(d, p),
        rsa.rsa_crt_dmq1(d, q),
        rsa.rsa_crt_iqmp(p, q),
        rsa.RSAPublicNumbers(e, p * q),
    )
    return RsaPrivateKey(numbers.private_key())


@pytest.fixture(scope="module", params=VECTORS, ids=[v["name"] for v in VECTORS])
def vector(request: pytest.FixtureRequest) -> Vector:
    raw: dict[str, str] = request.param
    key = _key_from_numbers(*(_hex_int(raw[f]) for f in ("p", "q", "e", "d")))
    return Vector(Variant(raw["name"]), key, raw)


@pytest.fixture(scope="module")
def key() -> RsaPrivateKey:
    return RsaPrivateKey.generate(2048)


@pytest.fixture(scope="module")
def signer(key: RsaPrivateKey) -> BlindSigner:
    return BlindSigner.from_private_key(key)


def _crypto_verify(pub: RsaPublicKey, variant: Variant, msg: bytes, sig: bytes) -> None:
    """Check ``sig`` as a standard RSASSA-PSS signature with OpenSSL (via ``cryptography``)."""
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=variant.salt_length)
    pub.to_crypto().verify(sig, msg, pss, hashes.SHA384())


def _flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[len(out) - 1 - bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _run(
    key: RsaPrivateKey | BlindSigner, pub: RsaPublicKey, variant: Variant, msg: bytes, seed: int
) -> tuple[bytes, BlindingResult, bytes, bytes]:
    rng = DeterministicRng(seed)
    input_msg = prepare(variant, msg, rng)
    blinding = blind(pub, variant, input_msg, rng)
    blind_sig = blind_sign(key, blinding.blinded_msg)
    sig = finalize(pub, variant, input_msg, blind_sig, blinding.inv)
    return input_msg, blinding, blind_sig, sig


# -- RFC 9474 Appendix A -------------------------------------------------------


def test_vector_file_covers_every_variant() -> None:
    assert sorted(v["name"] for v in VECTORS) == sorted(v.value for v in Variant)


def test_vector_key_fields(vector: Vector) -> None:
    p, q, n, e, d = (vector.i(f) for f in ("p", "q", "n", "e", "d"))
    assert p * q == n
    assert vector.public_key == RsaPublicKey(n, e)
    assert (e * d) % ((p - 1) * (q - 1) // int(gmpy2.gcd(p - 1, q - 1))) == 1


def test_vector_parameters(vector: Vector) -> None:
    assert vector.i("sLen") == vector.variant.salt_length == len(vector.b("salt"))
    assert bool(vector.i("is_randomized")) == vector.variant.is_randomized
    expected_prefix = blind_rsa.MSG_PREFIX_SIZE if vector.variant.is_randomized else 0
    assert len(vector.b("msg_prefix")) == expected_prefix


def test_vector_prepare(vector: Vector) -> None:
    input_msg = prepare_with(vector.variant, vector.b("msg"), vector.b("msg_prefix"))
    assert input_msg == vector.b("input_msg")


def test_vector_blind(vector: Vector) -> None:
    n = vector.public_key.n
    r = int(gmpy2.invert(vector.i("inv"), n))
    result = blind_with(
        vector.public_key, vector.variant, vector.b("input_msg"), r, vector.b("salt")
    )
    assert result.blinded_msg == vector.b("blinded_msg")
    assert result.inv == vector.modulus_int_bytes("inv")
    if "encoded_msg" in vector.raw:  # unblinding the message gives EMSA-PSS(input_msg)
        encoded = vector.i("blinded_msg") * pow(vector.i("inv"), vector.public_key.e, n) % n
        assert encoded == vector.i("encoded_msg")


def test_vector_blind_sign(vector: Vector) -> None:
    assert blind_sign(vector.key, vector.b("blinded_msg")) == vector.b("blind_sig")
    signer = BlindSigner.from_private_key(vector.key)
    assert blind_sign(signer, vector.b("blinded_msg")) == vector.b("blind_sig")


def test_vector_finalize_and_verify(vector: Vector) -> None:
    pub, variant, input_msg = vector.public_key, vector.variant, vector.b("input_msg")
    inv = vector.modulus_int_bytes("inv")
    sig = finalize(pub, variant, input_msg, vector.b("blind_sig"), inv)
    assert sig == vector.b("sig")
    verify(pub, variant, input_msg, sig)
    _crypto_verify(pub, variant, input_msg, sig)


# -- round trips with fresh keys -----------------------------------------------


@pytest.mark.parametrize("variant", list(Variant))
def test_round_trip(key: RsaPrivateKey, signer: BlindSigner, variant: Variant) -> None:
    pub = key.public_key
    msg = tagged_message(INTEROP_TAG, b"pseudonym registration")
    input_msg, blinding, blind_sig, sig = _run(key, pub, variant, msg, seed=1)
    assert input_msg.endswith(msg)
    assert len(input_msg) == len(msg) + (32 if variant.is_randomized else 0)
    assert blind_sign(signer, blinding.blinded_msg) == blind_sig
    verify(pub, variant, input_msg, sig)
    assert is_valid(pub, variant, input_msg, sig)
    _crypto_verify(pub, variant, input_msg, sig)


@pytest.mark.parametrize("variant", list(Variant))
def test_same_seed_replays(signer: BlindSigner, variant: Variant) -> None:
    pub = signer.public_key
    assert _run(signer, pub, variant, b"m", seed=7) == _run(signer, pub, variant, b"m", seed=7)


def test_signer_key_from_vector_signs_fresh_messages(vector: Vector) -> None:
    _, _, _, sig = _run(vector.key, vector.public_key, vector.variant, b"fresh", seed=3)
    assert len(sig) == 512


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    msg=st.binary(max_size=200), variant=st.sampled_from(list(Variant)), seed=st.integers(0, 2**32)
)
def test_round_trip_property(signer: BlindSigner, msg: bytes, variant: Variant, seed: int) -> None:
    pub = signer.public_key
    input_msg, _, _, sig = _run(signer, pub, variant, msg, seed)
    verify(pub, variant, input_msg, sig)
    _crypto_verify(pub, variant, input_msg, sig)


# -- interop with cryptography (OpenSSL) ---------------------------------------


@pytest.mark.parametrize(
    ("variant", "salt_length"),
    [(Variant.PSS_DETERMINISTIC, 48), (Variant.PSSZERO_DETERMINISTIC, 0)],
)
def test_verify_accepts_openssl_pss_signatures(
    key: RsaPrivateKey, variant: Variant, salt_length: int
) -> None:
    msg = b"signed by OpenSSL"
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=salt_length)
    sig = key.to_crypto().sign(msg, pss, hashes.SHA384())
    verify(key.public_key, variant, msg, sig)


def test_verify_accepts_gridledger_rsa_signatures(key: RsaPrivateKey) -> None:
    msg = b"long-term identity statement"
    sig = key.sign(INTEROP_TAG, msg)
    verify(key.public_key, Variant.PSS_DETERMINISTIC, tagged_message(INTEROP_TAG, msg), sig)


def test_openssl_rejects_tampered_signature(signer: BlindSigner) -> None:
    pub = signer.public_key
    input_msg, _, _, sig = _run(signer, pub, Variant.PSS_RANDOMIZED, b"m", seed=2)
    with pytest.raises(CryptoInvalidSignature):
        _crypto_verify(pub, Variant.PSS_RANDOMIZED, input_msg, _flip_bit(sig, 5))


# -- tampering -----------------------------------------------------------------


@pytest.fixture(scope="module")
def session(signer: BlindSigner) -> tuple[bytes, BlindingResult, bytes, bytes]:
    return _run(signer, signer.public_key, Variant.PSS_RANDOMIZED, b"coin", seed=11)


@pytest.mark.parametrize("bit", [0, 1000, 2046])
def test_flipped_bit_in_sig_is_rejected(
    signer: BlindSigner, session: tuple[bytes, BlindingResult, bytes, bytes], bit: int
) -> None:
    input_msg, _, _, sig = session
    with pytest.raises(InvalidSignature):
        verify(signer.public_key, Variant.PSS_RANDOMIZED, input_msg, _flip_bit(sig, bit))
    assert not is_valid(signer.public_key, Variant.PSS_RANDOMIZED, input_msg, _flip_bit(sig, bit))


@pytest.mark.parametrize("bit", [0, 200, 300])
def test_flipped_bit_in_message_is_rejected(
    signer: BlindSigner, session: tuple[bytes, BlindingResult, bytes, bytes], bit: int
) -> None:
    input_msg, blinding, blind_sig, sig = session
    tampered = _flip_bit(input_msg, bit)
    with pytest.raises(InvalidSignature):
        finalize(signer.public_key, Variant.PSS_RANDOMIZED, tampered, blind_sig, blinding.inv)
    with pytest.raises(InvalidSignature):
        verify(signer.public_key, Variant.PSS_RANDOMIZED, tampered, sig)


@pytest.mark.parametrize("bit", [0, 1000, 2040])
def test_flipped_bit_in_blind_sig_is_rejected(
    signer: BlindSigner, session: tuple[bytes, BlindingResult, bytes, bytes], bit: int
) -> None:
    input_msg, blinding, blind_sig, _ = session
    with pytest.raises(InvalidSignature):
        finalize(
            signer.public_key,
            Variant.PSS_RANDOMIZED,
            input_msg,
            _flip_bit(blind_sig, bit),
            blinding.inv,
        )


def test_wrong_inv_is_rejected(
    signer: BlindSigner, session: tuple[bytes, BlindingResult, bytes, bytes]
) -> None:
    input_msg, blinding, blind_sig, _ = session
    with pytest.raises(InvalidSignature):
        finalize(
            signer.public_key,
            Variant.PSS_RANDOMIZED,
            input_msg,
            blind_sig,
            _flip_bit(blinding.inv, 0),
        )


def test_wrong_variant_is_rejected(
    signer: BlindSigner, session: tuple[bytes, BlindingResult, bytes, bytes]
) -> None:
    input_msg, _, _, sig = session
    with pytest.raises(InvalidSignature):
        verify(signer.public_key, Variant.PSSZERO_RANDOMIZED, input_msg, sig)


def test_other_key_is_rejected(
    vector: Vector, session: tuple[bytes, BlindingResult, bytes, bytes]
) -> None:
    input_msg, _, _, sig = session
    with pytest.raises(InvalidSignature):
        verify(vector.public_key, Variant.PSS_RANDOMIZED, input_msg, sig)


# -- range and length checks ---------------------------------------------------


def _blinded_out_of_range(pub: RsaPublicKey) -> Iterator[bytes]:
    k = pub.modulus_bytes
    yield pub.n.to_bytes(k, "big")
    yield (pub.n + 1).to_bytes(k, "big")
    yield b"\xff" * k


def test_blinded_msg_not_below_n_is_rejected(signer: BlindSigner) -> None:
    for blinded in _blinded_out_of_range(signer.public_key):
        with pytest.raises(BlindSignatureError, match="out of range"):
            blind_sign(signer, blinded)


@pytest.mark.parametrize("length", [0, 255, 257])
def test_blinded_msg_of_wrong_length_is_rejected(signer: BlindSigner, length: int) -> None:
    with pytest.raises(BlindSignatureError):
        blind_sign(signer, b"\x01" * length)


def test_finalize_rejects_malformed_inputs(
    signer: BlindSigner, session: tuple[bytes, BlindingResult, bytes, bytes]
) -> None:
    pub, v = signer.public_key, Variant.PSS_RANDOMIZED
    input_msg, blinding, blind_sig, _ = session
    k, n, p = pub.modulus_bytes, pub.n, int(signer.p)
    bad_invs = [b"\x00" * k, n.to_bytes(k, "big"), p.to_bytes(k, "big"), blinding.inv[1:]]
    for bad_inv in bad_invs:
        with pytest.raises(BlindSignatureError):
            finalize(pub, v, input_msg, blind_sig, bad_inv)
    for bad_sig in [*_blinded_out_of_range(pub), blind_sig[1:], blind_sig + b"\x00"]:
        with pytest.raises(BlindSignatureError):
            finalize(pub, v, input_msg, bad_sig, blinding.inv)


def test_verify_rejects_malformed_signatures(signer: BlindSigner) -> None:
    pub, v = signer.public_key, Variant.PSS_DETERMINISTIC
    k = pub.modulus_bytes
    for sig in [b"", b"\x00" * (k - 1), b"\x00" * k, b"\x00" * (k + 1), b"\xff" * k]:
        with pytest.raises(InvalidSignature):
            verify(pub, v, b"m", sig)
    with pytest.raises(InvalidSignature):
        verify(pub, v, b"m", pub.n.to_bytes(k, "big"))


def test_blind_with_rejects_bad_factor_and_salt(signer: BlindSigner) -> None:
    pub, p = signer.public_key, int(signer.p)
    for r in (0, pub.n, pub.n + 5, -1, p, 3 * int(signer.q)):
        with pytest.raises(BlindSignatureError):
            blind_with(pub, Variant.PSS_DETERMINISTIC, b"m", r, b"\x00" * 48)
    for variant, salt in [
        (Variant.PSS_DETERMINISTIC, b""),
        (Variant.PSS_RANDOMIZED, b"\x00" * 32),
        (Variant.PSSZERO_DETERMINISTIC, b"\x00"),
    ]:
        with pytest.raises(BlindSignatureError):
            blind_with(pub, variant, b"m", 2, salt)


def test_prepare_with_checks_prefix_length() -> None:
    with pytest.raises(BlindSignatureError):
        prepare_with(Variant.PSS_RANDOMIZED, b"m", b"")
    with pytest.raises(BlindSignatureError):
        prepare_with(Variant.PSS_RANDOMIZED, b"m", b"\x00" * 31)
    with pytest.raises(BlindSignatureError):
        prepare_with(Variant.PSSZERO_DETERMINISTIC, b"m", b"\x00" * 32)
    assert prepare_with(Variant.PSS_DETERMINISTIC, b"m", b"") == b"m"


class _StuckRng:
    """An rng whose 'random' blinding factor is always the prime p: never a unit."""

    def __init__(self, p: int) -> None:
        self.p = p

    def random_bytes(self, n: int) -> bytes:
        return b"\x00" * n

    def randbelow(self, upper: int) -> int:
        return self.p - 1


def test_blind_gives_up_on_a_broken_rng(signer: BlindSigner) -> None:
    with pytest.raises(BlindSignatureError, match="invertible"):
        blind(signer.public_key, Variant.PSS_DETERMINISTIC, b"m", _StuckRng(int(signer.p)))


def test_errors_are_typed_not_bare_value_errors() -> None:
    assert issubclass(BlindSignatureError, CryptoError)
    assert issubclass(InvalidSignature, CryptoError)
    assert not issubclass(BlindSignatureError, ValueError)


# -- signer self-check (fault attacks) -----------------------------------------


def test_faulty_crt_signature_is_caught(
    signer: BlindSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault in one CRT half would leak a factor (Bellcore); the self-check withholds it."""
    blinding = blind(signer.public_key, Variant.PSS_RANDOMIZED, b"m", DeterministicRng(5))
    m = int.from_bytes(blinding.blinded_msg, "big")
    n, e, p, q = (int(x) for x in (signer.n, signer.e, signer.p, signer.q))
    released: list[int] = []

    def faulty_rsasp1(s: BlindSigner, value: int) -> int:
        good = int(gmpy2.powmod(value, s.dq, s.q))
        bad = int(gmpy2.powmod(value, s.dp, s.p)) ^ 1  # a single bit fault in the p half
        h = int(s.qinv) * (bad - good) % p
        sig = good + h * q
        released.append(sig)
        return sig

    monkeypatch.setattr(blind_rsa, "_rsasp1", faulty_rsasp1)
    with pytest.raises(BlindSignatureError, match="self-check"):
        blind_sign(signer, blinding.blinded_msg)
    assert gmpy2.gcd(pow(released[0], e, n) - m, n) == q  # what the check kept secret


def test_any_wrong_signature_is_caught(
    signer: BlindSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = blind_rsa._rsasp1
    monkeypatch.setattr(blind_rsa, "_rsasp1", lambda s, m: real(s, m) + 1)
    with pytest.raises(BlindSignatureError, match="self-check"):
        blind_sign(signer, (12345).to_bytes(256, "big"))


# -- unlinkability and secrecy -------------------------------------------------


@pytest.mark.parametrize("variant", list(Variant))
def test_two_blindings_of_one_message_differ(signer: BlindSigner, variant: Variant) -> None:
    pub = signer.public_key
    input_msg = prepare_with(variant, b"same", b"\x00" * (32 if variant.is_randomized else 0))
    first = blind(pub, variant, input_msg, DeterministicRng(1))
    second = blind(pub, variant, input_msg, DeterministicRng(2))
    assert first.blinded_msg != second.blinded_msg
    assert first.inv != second.inv
    sigs = [
        finalize(pub, variant, input_msg, blind_sign(signer, b.blinded_msg), b.inv)
        for b in (first, second)
    ]
    # With salt length 0 the signature on one input_msg is unique, whoever blinded it;
    # with PSS a fresh salt makes it differ. (Randomized variants add their prefix in prepare.)
    assert (sigs[0] == sigs[1]) == (variant.salt_length == 0)


def test_reprs_hide_secrets(signer: BlindSigner) -> None:
    assert str(int(signer.p)) not in repr(signer)
    blinding = blind(signer.public_key, Variant.PSS_RANDOMIZED, b"m", DeterministicRng(1))
    assert blinding.inv.hex() not in repr(blinding)
    assert "inv" not in repr(blinding)


def test_variant_names_and_parameters() -> None:
    params: dict[Variant, Any] = {v: (v.salt_length, v.is_randomized) for v in Variant}
    assert params == {
        Variant.PSS_RANDOMIZED: (48, True),
        Variant.PSSZERO_RANDOMIZED: (0, True),
        Variant.PSS_DETERMINISTIC: (48, False),
        Variant.PSSZERO_DETERMINISTIC: (0, False),
    }
    assert Variant("RSABSSA-SHA384-PSS-Randomized") is Variant.PSS_RANDOMIZED


def _prime(rng: DeterministicRng, bits: int, e: int) -> int:
    """A test prime with its top two bits set and gcd(e, p - 1) = 1 (not for real keys)."""
    for _ in range(100):
        start = int.from_bytes(rng.random_bytes(bits // 8 + 1), "big") >> (8 - bits % 8)
        p = int(gmpy2.next_prime(start | (3 << (bits - 2))))
        if p.bit_length() == bits and gmpy2.gcd(e, p - 1) == 1:
            return p
    raise AssertionError("no prime found")


def test_modulus_of_8k_plus_1_bits() -> None:
    """emLen = modulus_len - 1 when modBits - 1 is a multiple of 8 (RFC 8017 §9.1.1, emBits).

    OpenSSL rounds key sizes to 2048, so the 2049-bit key is built from its primes.
    """
    rng, e = DeterministicRng("2049-bit key"), 65537
    p, q = _prime(rng, 1025, e), _prime(rng, 1024, e)
    d = int(gmpy2.invert(e, (p - 1) * (q - 1) // int(gmpy2.gcd(p - 1, q - 1))))
    key = _key_from_numbers(p, q, e, d)
    pub = key.public_key
    assert pub.n.bit_length() == 2049 and pub.modulus_bytes == 257
    for seed, variant in enumerate(Variant):
        input_msg, _, _, sig = _run(key, pub, variant, b"odd size", seed)
        assert len(sig) == 257
        _crypto_verify(pub, variant, input_msg, sig)


def test_compute_blinded_msg_matches_blind_with_on_every_vector() -> None:
    for raw in VECTORS:
        pk = RsaPublicKey(_hex_int(raw["n"]), _hex_int(raw["e"]))
        variant = Variant(raw["name"])
        input_msg = _hex_bytes(raw["input_msg"])
        r = pow(_hex_int(raw["inv"]), -1, pk.n)
        salt = _hex_bytes(raw["salt"])
        expected = blind_with(pk, variant, input_msg, r, salt).blinded_msg
        assert blind_rsa.compute_blinded_msg(pk, variant, input_msg, r, salt) == expected
        assert int.from_bytes(expected, "big") == _hex_int(raw["blinded_msg"])
        with pytest.raises(BlindSignatureError):
            blind_rsa.compute_blinded_msg(pk, variant, input_msg, pk.n, salt)
