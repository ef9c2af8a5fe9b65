"""Threshold ElGamal hybrid decryption: t of n decrypt, bad shares are named, tampering fails."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.crypto.errors import (
    DecryptionError,
    DuplicateShare,
    EncodingError,
    InvalidShare,
    KeyFormatError,
    SharingError,
    TooFewShares,
)
from gridledger.crypto.groups import FFDHE2048, SchnorrGroup
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.sharing import (
    dkg_complaints,
    dkg_deal,
    dkg_finalize,
    dkg_qualified,
)
from gridledger.crypto.threshold import (
    ChaumPedersenProof,
    DecryptionShare,
    KeyShare,
    ThresholdCiphertext,
    ThresholdPublicKey,
    combine,
    combine_robust,
    deal_threshold_key,
    decryption_share,
    encrypt,
    encrypt_with,
    reconstruct_private_key,
    threshold_key_from_dkg,
    verify_decryption_share,
    verify_key_share,
)

G = FFDHE2048
T, N = 3, 5
PK, KEYS = deal_threshold_key(T, N, G, DeterministicRng("trace-center"))
AAD = b"gridledger/trace/epoch-7"
MSG = b"pseudonym 0x42 belongs to household 17"


def _ct_and_shares(
    seed: str, plaintext: bytes = MSG, aad: bytes = AAD
) -> tuple[ThresholdCiphertext, list[DecryptionShare]]:
    rng = DeterministicRng(seed)
    ct = encrypt(PK, plaintext, aad, rng)
    return ct, [decryption_share(PK, k, ct, rng) for k in KEYS]


CT, SHARES = _ct_and_shares("fixture")


def test_key_setup_is_consistent() -> None:
    PK.check_consistency()
    for k in KEYS:
        verify_key_share(PK, k)
    assert repr(KEYS[0]) == "KeyShare(index=1)"  # the share never lands in a log line
    with pytest.raises(InvalidShare) as info:
        verify_key_share(PK, KeyShare(2, KEYS[2].x))
    assert info.value.index == 2
    bent = list(PK.verification_keys)
    bent[4] = G.mul(bent[4], G.g)
    with pytest.raises(SharingError):
        dataclasses.replace(PK, verification_keys=tuple(bent)).check_consistency()
    with pytest.raises(SharingError):
        dataclasses.replace(PK, y=G.mul(PK.y, G.g)).check_consistency()


@given(
    st.binary(max_size=512),
    st.binary(max_size=32),
    st.permutations(range(N)),
    st.integers(T, N),
    st.integers(0, 2**32),
)
@settings(max_examples=15, deadline=None)
def test_any_t_valid_shares_decrypt(
    plaintext: bytes, aad: bytes, order: list[int], k: int, seed: int
) -> None:
    rng = DeterministicRng(seed)
    ct = encrypt(PK, plaintext, aad, rng)
    chosen = [decryption_share(PK, KEYS[i], ct, rng) for i in order[:k]]
    for s in chosen:
        verify_decryption_share(PK, ct, s)
    assert combine(PK, ct, chosen, aad) == plaintext
    assert combine_robust(PK, ct, chosen, aad) == (plaintext, ())


def test_every_t_subset_decrypts() -> None:
    for subset in itertools.combinations(SHARES, T):
        assert combine(PK, CT, list(subset), AAD) == MSG


def test_t_minus_1_shares_are_too_few() -> None:
    with pytest.raises(TooFewShares) as info:
        combine(PK, CT, SHARES[:2], AAD)
    assert (info.value.have, info.value.need) == (2, 3)
    with pytest.raises(TooFewShares):
        combine_robust(PK, CT, SHARES[1:3], AAD)


def test_duplicate_share() -> None:
    with pytest.raises(DuplicateShare) as info:
        combine(PK, CT, [SHARES[0], SHARES[3], SHARES[3]], AAD)
    assert info.value.index == 4
    # combine_robust drops an exact duplicate, so it still needs t distinct ones.
    with pytest.raises(TooFewShares):
        combine_robust(PK, CT, [SHARES[0], SHARES[3], SHARES[3]], AAD)


def _bad_shares() -> dict[str, DecryptionShare]:
    s = SHARES[1]  # trustee 2
    p = G.p
    e, z = s.proof.challenge, s.proof.response
    return {
        "d times g": dataclasses.replace(s, d=G.mul(s.d, G.g)),
        "forged response": dataclasses.replace(s, proof=ChaumPedersenProof(e, (z + 1) % G.q)),
        "forged challenge": dataclasses.replace(s, proof=ChaumPedersenProof((e + 1) % G.q, z)),
        "d outside the group": dataclasses.replace(s, d=p - s.d),
        "another trustee's share": dataclasses.replace(SHARES[2], index=2),
        "share for another ciphertext": _ct_and_shares("other")[1][1],
        "proof not reduced": dataclasses.replace(s, proof=ChaumPedersenProof(e, z + G.q)),
    }


@pytest.mark.parametrize("kind", list(_bad_shares()))
def test_wrong_decryption_share_is_rejected_and_named(kind: str) -> None:
    bad = _bad_shares()[kind]
    with pytest.raises(InvalidShare) as info:
        verify_decryption_share(PK, CT, bad)
    assert info.value.index == 2
    with pytest.raises(InvalidShare) as info:
        combine(PK, CT, [SHARES[0], bad, SHARES[2]], AAD)
    assert info.value.index == 2
    # Robust combining sets it aside and reports it, given t good shares.
    plaintext, bad_indices = combine_robust(PK, CT, [bad, SHARES[0], SHARES[3], SHARES[4]], AAD)
    assert plaintext == MSG and bad_indices == (2,)


def test_a_dishonest_proof_for_a_wrong_d_does_not_verify() -> None:
    # A trustee using a wrong key x' produces a self-consistent proof for g^{x'}, which
    # fails against its registered verification key.
    liar = KeyShare(3, (KEYS[2].x + 1) % G.q)
    share = decryption_share(PK, liar, CT, DeterministicRng("liar"))
    with pytest.raises(InvalidShare) as info:
        verify_decryption_share(PK, CT, share)
    assert info.value.index == 3


def test_index_out_of_range_is_named() -> None:
    for index in (0, N + 1):
        bad = dataclasses.replace(SHARES[0], index=index)
        with pytest.raises(InvalidShare) as info:
            verify_decryption_share(PK, CT, bad)
        assert info.value.index == index
        with pytest.raises(InvalidShare):
            combine(PK, CT, [bad, *SHARES[1:4]], AAD)
        assert combine_robust(PK, CT, [bad, *SHARES[1:4]], AAD) == (MSG, (index,))


def test_combine_robust_with_several_bad_and_exactly_t_good() -> None:
    bad = list(_bad_shares().values())[:2]
    plaintext, bad_indices = combine_robust(PK, CT, [bad[0], SHARES[4], bad[1], *SHARES[:2]], AAD)
    assert plaintext == MSG and bad_indices == (2, 2)
    with pytest.raises(TooFewShares):
        combine_robust(PK, CT, [bad[0], SHARES[4], SHARES[0]], AAD)


@pytest.mark.parametrize("field", ["body", "nonce", "aad", "c1"])
def test_tampering_raises_decryption_error(field: str) -> None:
    ct, aad = CT, AAD
    if field == "body":
        ct = dataclasses.replace(CT, body=bytes([CT.body[0] ^ 1]) + CT.body[1:])
    elif field == "nonce":
        ct = dataclasses.replace(CT, nonce=bytes([CT.nonce[0] ^ 1]) + CT.nonce[1:])
    elif field == "aad":
        aad = AAD + b"!"
    else:  # a valid group element, so the trustees produce valid shares for it
        ct = dataclasses.replace(CT, c1=G.mul(CT.c1, G.g))
    rng = DeterministicRng("tamper")
    shares = [decryption_share(PK, k, ct, rng) for k in KEYS[:T]]
    with pytest.raises(DecryptionError):
        combine(PK, ct, shares, aad)
    with pytest.raises(DecryptionError):
        combine_robust(PK, ct, shares, aad)


def test_truncated_body_or_short_nonce() -> None:
    for ct in (
        dataclasses.replace(CT, body=CT.body[:-1]),
        dataclasses.replace(CT, body=b""),
        dataclasses.replace(CT, nonce=CT.nonce[:-1]),
    ):
        with pytest.raises(DecryptionError):
            combine(PK, ct, SHARES[:T], AAD)


@pytest.mark.parametrize("c1", [0, 1, G.p - 1, G.p, G.p + 4, -4])
def test_c1_outside_the_group_is_rejected(c1: int) -> None:
    # p - 1 has order 2: answering it would leak x_i mod 2 (small-subgroup attack).
    ct = dataclasses.replace(CT, c1=c1)
    with pytest.raises(DecryptionError):
        decryption_share(PK, KEYS[0], ct, DeterministicRng("c1"))
    with pytest.raises(DecryptionError):
        verify_decryption_share(PK, ct, SHARES[0])
    with pytest.raises(DecryptionError):
        combine(PK, ct, SHARES, AAD)
    with pytest.raises(DecryptionError):
        combine_robust(PK, ct, SHARES, AAD)


def test_encrypt_with_is_deterministic() -> None:
    a = encrypt_with(PK, MSG, AAD, 12345, bytes(12))
    assert a == encrypt_with(PK, MSG, AAD, 12345, bytes(12))
    assert a.c1 == G.exp_g(12345)
    assert a != encrypt_with(PK, MSG, AAD, 12346, bytes(12))
    rng = DeterministicRng("det")
    shares = [decryption_share(PK, k, a, rng) for k in KEYS[2:]]
    assert combine(PK, a, shares, AAD) == MSG
    for r in (0, G.q):
        with pytest.raises(SharingError):
            encrypt_with(PK, MSG, AAD, r, bytes(12))
    with pytest.raises(SharingError):
        encrypt_with(PK, MSG, AAD, 1, bytes(11))


def test_encryption_is_randomised() -> None:
    rng = DeterministicRng("rand")
    a, b = encrypt(PK, MSG, AAD, rng), encrypt(PK, MSG, AAD, rng)
    assert a.c1 != b.c1 and a.body != b.body
    assert len(a.body) == len(MSG) + 16


def test_reconstruct_private_key_audit_path() -> None:
    x = reconstruct_private_key(KEYS[:T], PK)
    assert G.exp_g(x) == PK.y
    assert reconstruct_private_key([KEYS[4], KEYS[0], KEYS[2]], PK) == x
    with pytest.raises(TooFewShares):
        reconstruct_private_key(KEYS[:2], PK)
    with pytest.raises(DuplicateShare):
        reconstruct_private_key([KEYS[0], KEYS[0], KEYS[1]], PK)
    bad = KeyShare(2, (KEYS[1].x + 1) % G.q)
    with pytest.raises(InvalidShare) as info:
        reconstruct_private_key([KEYS[0], bad, KEYS[2]], PK)
    assert info.value.index == 2
    with pytest.raises(InvalidShare):
        reconstruct_private_key([KEYS[0], KEYS[1], KeyShare(N + 1, 1)], PK)


def test_public_key_validation() -> None:
    vks = PK.verification_keys
    for kwargs in (
        {"t": 0},
        {"t": N + 1},
        {"verification_keys": vks[:-1]},
        {"y": 1},
        {"y": G.p - 1},
        {"verification_keys": (*vks[:-1], G.p - 1)},
    ):
        with pytest.raises(ValueError):
            dataclasses.replace(PK, **kwargs)


def test_wire_round_trips() -> None:
    assert ThresholdPublicKey.from_bytes(PK.to_bytes()) == PK
    assert ThresholdCiphertext.from_bytes(CT.to_bytes(G), G) == CT
    for s in SHARES:
        assert DecryptionShare.from_bytes(s.to_bytes(G), G) == s
    with pytest.raises(EncodingError):
        ThresholdCiphertext.from_bytes(SHARES[0].to_bytes(G), G)  # wrong wire type


def test_public_key_with_an_unknown_bad_group_is_refused() -> None:
    # A group whose "generator" has order 2q: structurally fine, fails the full check.
    fake = SchnorrGroup(G.p, G.q, G.p - 2)
    pk = ThresholdPublicKey(fake, PK.y, T, N, PK.verification_keys)
    with pytest.raises(KeyFormatError):
        ThresholdPublicKey.from_bytes(pk.to_bytes())


def test_one_of_one() -> None:
    pk, keys = deal_threshold_key(1, 1, G, DeterministicRng("solo"))
    rng = DeterministicRng("solo-ct")
    ct = encrypt(pk, b"m", b"", rng)
    assert combine(pk, ct, [decryption_share(pk, keys[0], ct, rng)], b"") == b"m"


def test_threshold_key_from_dkg_decrypts() -> None:
    t, n = 2, 3
    rng = DeterministicRng("dkg")
    dealings = {i: dkg_deal(i, t, n, G, rng.fork(str(i))) for i in range(1, n + 1)}
    commitments = {i: dd.commitments for i, dd in dealings.items()}
    received = {j: {i: dd.share_for(j) for i, dd in dealings.items()} for j in range(1, n + 1)}
    complaints = {j: dkg_complaints(j, received[j], commitments, t, n, G) for j in received}
    qual = dkg_qualified(t, n, commitments, complaints, {}, G)
    keys = [
        threshold_key_from_dkg(dkg_finalize(j, qual, received[j], commitments, {}, t, n, G), t, G)
        for j in range(1, n + 1)
    ]
    pk = keys[0][0]
    assert all(k[0] == pk for k in keys)  # every trustee derives the same public key
    pk.check_consistency()
    ct = encrypt(pk, MSG, AAD, rng)
    shares = [decryption_share(pk, ks, ct, rng) for _, ks in keys]
    assert combine(pk, ct, [shares[2], shares[0]], AAD) == MSG
    assert combine(pk, ct, shares[1:], AAD) == MSG
