"""Threshold ElGamal hybrid decryption: t of n decrypt, bad shares are named, tampering fails."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.crypto.encoding import encode
from gridledger.crypto.errors import (
    DecryptionError,
    DuplicateShare,
    EncodingError,
    InvalidShare,
    KeyFormatError,
    SharingError,
    TooFewShares,
)
from gridledger.crypto.groups import (
    EDWARDS25519,
    FFDHE2048,
    NAMED_GROUPS,
    PrimeOrderGroup,
    SchnorrGroup,
)
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.sharing import (
    dkg_complaints,
    dkg_deal,
    dkg_finalize,
    dkg_qualified,
)
from gridledger.crypto.threshold import (
    DEFAULT_THRESHOLD_GROUP,
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
from gridledger.crypto.threshold import _PublicKeyWire as PublicKeyWire
from tests.crypto.test_groups import BAD_KINDS, GROUP_IDS, GROUPS, bad_element, twist

T, N = 3, 5
AAD = b"gridledger/trace/epoch-7"
MSG = b"pseudonym 0x42 belongs to household 17"


@dataclasses.dataclass(frozen=True)
class Setup:
    """A dealt 3-of-5 key in one group, a ciphertext and every trustee's share of it."""

    group: PrimeOrderGroup
    pk: ThresholdPublicKey
    keys: tuple[KeyShare, ...]
    ct: ThresholdCiphertext
    shares: list[DecryptionShare]

    def ct_and_shares(
        self, seed: str, plaintext: bytes = MSG, aad: bytes = AAD
    ) -> tuple[ThresholdCiphertext, list[DecryptionShare]]:
        rng = DeterministicRng(seed)
        ct = encrypt(self.pk, plaintext, aad, rng)
        return ct, [decryption_share(self.pk, k, ct, rng) for k in self.keys]


_SETUPS: dict[str, Setup] = {}


def _setup(group: PrimeOrderGroup) -> Setup:
    """Built once per group (and process): key dealing is the slow part in ffdhe2048."""
    if group.name not in _SETUPS:
        pk, keys = deal_threshold_key(T, N, group, DeterministicRng("trace-center"))
        rng = DeterministicRng("fixture")
        ct = encrypt(pk, MSG, AAD, rng)
        shares = [decryption_share(pk, k, ct, rng) for k in keys]
        _SETUPS[group.name] = Setup(group, pk, keys, ct, shares)
    return _SETUPS[group.name]


@pytest.fixture(scope="module", params=GROUPS, ids=GROUP_IDS)
def setup(request: pytest.FixtureRequest) -> Setup:
    group: PrimeOrderGroup = request.param
    return _setup(group)


def test_default_group_is_edwards25519() -> None:
    assert DEFAULT_THRESHOLD_GROUP is EDWARDS25519


def test_key_setup_is_consistent(setup: Setup) -> None:
    G, PK, KEYS = setup.group, setup.pk, setup.keys
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
@settings(max_examples=10, deadline=None)
def test_any_t_valid_shares_decrypt(
    setup: Setup, plaintext: bytes, aad: bytes, order: list[int], k: int, seed: int
) -> None:
    PK, KEYS = setup.pk, setup.keys
    rng = DeterministicRng(seed)
    ct = encrypt(PK, plaintext, aad, rng)
    chosen = [decryption_share(PK, KEYS[i], ct, rng) for i in order[:k]]
    for s in chosen:
        verify_decryption_share(PK, ct, s)
    assert combine(PK, ct, chosen, aad) == plaintext
    assert combine_robust(PK, ct, chosen, aad) == (plaintext, ())


def test_every_t_subset_decrypts(setup: Setup) -> None:
    PK, CT, SHARES = setup.pk, setup.ct, setup.shares
    for subset in itertools.combinations(SHARES, T):
        assert combine(PK, CT, list(subset), AAD) == MSG


def test_t_minus_1_shares_are_too_few(setup: Setup) -> None:
    PK, CT, SHARES = setup.pk, setup.ct, setup.shares
    with pytest.raises(TooFewShares) as info:
        combine(PK, CT, SHARES[:2], AAD)
    assert (info.value.have, info.value.need) == (2, 3)
    with pytest.raises(TooFewShares):
        combine_robust(PK, CT, SHARES[1:3], AAD)


def test_duplicate_share(setup: Setup) -> None:
    PK, CT, SHARES = setup.pk, setup.ct, setup.shares
    with pytest.raises(DuplicateShare) as info:
        combine(PK, CT, [SHARES[0], SHARES[3], SHARES[3]], AAD)
    assert info.value.index == 4
    # combine_robust drops an exact duplicate, so it still needs t distinct ones.
    with pytest.raises(TooFewShares):
        combine_robust(PK, CT, [SHARES[0], SHARES[3], SHARES[3]], AAD)


def _bad_shares(setup: Setup) -> dict[str, DecryptionShare]:
    G, SHARES = setup.group, setup.shares
    s = SHARES[1]  # trustee 2
    e, z = s.proof.challenge, s.proof.response
    return {
        "d times g": dataclasses.replace(s, d=G.mul(s.d, G.g)),
        "forged response": dataclasses.replace(s, proof=ChaumPedersenProof(e, (z + 1) % G.q)),
        "forged challenge": dataclasses.replace(s, proof=ChaumPedersenProof((e + 1) % G.q, z)),
        "d outside the group": dataclasses.replace(s, d=twist(G, s.d)),
        "d the identity": dataclasses.replace(s, d=G.identity),
        "another trustee's share": dataclasses.replace(SHARES[2], index=2),
        "share for another ciphertext": setup.ct_and_shares("other")[1][1],
        "proof not reduced": dataclasses.replace(s, proof=ChaumPedersenProof(e, z + G.q)),
    }


BAD_SHARE_KINDS = [
    "d times g",
    "forged response",
    "forged challenge",
    "d outside the group",
    "d the identity",
    "another trustee's share",
    "share for another ciphertext",
    "proof not reduced",
]


@pytest.mark.parametrize("kind", BAD_SHARE_KINDS)
def test_wrong_decryption_share_is_rejected_and_named(setup: Setup, kind: str) -> None:
    PK, CT, SHARES = setup.pk, setup.ct, setup.shares
    bad = _bad_shares(setup)[kind]
    with pytest.raises(InvalidShare) as info:
        verify_decryption_share(PK, CT, bad)
    assert info.value.index == 2
    with pytest.raises(InvalidShare) as info:
        combine(PK, CT, [SHARES[0], bad, SHARES[2]], AAD)
    assert info.value.index == 2
    # Robust combining sets it aside and reports it, given t good shares.
    plaintext, bad_indices = combine_robust(PK, CT, [bad, SHARES[0], SHARES[3], SHARES[4]], AAD)
    assert plaintext == MSG and bad_indices == (2,)


def test_a_dishonest_proof_for_a_wrong_d_does_not_verify(setup: Setup) -> None:
    G, PK, KEYS, CT = setup.group, setup.pk, setup.keys, setup.ct
    # A trustee using a wrong key x' produces a self-consistent proof for g^{x'}, which
    # fails against its registered verification key.
    liar = KeyShare(3, (KEYS[2].x + 1) % G.q)
    share = decryption_share(PK, liar, CT, DeterministicRng("liar"))
    with pytest.raises(InvalidShare) as info:
        verify_decryption_share(PK, CT, share)
    assert info.value.index == 3


def test_index_out_of_range_is_named(setup: Setup) -> None:
    PK, CT, SHARES = setup.pk, setup.ct, setup.shares
    for index in (0, N + 1):
        bad = dataclasses.replace(SHARES[0], index=index)
        with pytest.raises(InvalidShare) as info:
            verify_decryption_share(PK, CT, bad)
        assert info.value.index == index
        with pytest.raises(InvalidShare):
            combine(PK, CT, [bad, *SHARES[1:4]], AAD)
        assert combine_robust(PK, CT, [bad, *SHARES[1:4]], AAD) == (MSG, (index,))


def test_combine_robust_with_several_bad_and_exactly_t_good(setup: Setup) -> None:
    PK, CT, SHARES = setup.pk, setup.ct, setup.shares
    bad = list(_bad_shares(setup).values())[:2]
    plaintext, bad_indices = combine_robust(PK, CT, [bad[0], SHARES[4], bad[1], *SHARES[:2]], AAD)
    assert plaintext == MSG and bad_indices == (2, 2)
    with pytest.raises(TooFewShares):
        combine_robust(PK, CT, [bad[0], SHARES[4], SHARES[0]], AAD)


@pytest.mark.parametrize("field", ["body", "nonce", "aad", "c1"])
def test_tampering_raises_decryption_error(setup: Setup, field: str) -> None:
    G, PK, KEYS, CT = setup.group, setup.pk, setup.keys, setup.ct
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


def test_truncated_body_or_short_nonce(setup: Setup) -> None:
    PK, CT, SHARES = setup.pk, setup.ct, setup.shares
    for ct in (
        dataclasses.replace(CT, body=CT.body[:-1]),
        dataclasses.replace(CT, body=b""),
        dataclasses.replace(CT, nonce=CT.nonce[:-1]),
    ):
        with pytest.raises(DecryptionError):
            combine(PK, ct, SHARES[:T], AAD)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_c1_outside_the_group_is_rejected(setup: Setup, kind: str) -> None:
    # p - 1 (or the curve point (0, -1)) has order 2: answering it would leak x_i mod 2
    # (small-subgroup attack); a torsion component on the curve leaks x_i mod 8.
    PK, KEYS, CT, SHARES = setup.pk, setup.keys, setup.ct, setup.shares
    ct = dataclasses.replace(CT, c1=bad_element(setup.group, kind))
    with pytest.raises(DecryptionError):
        decryption_share(PK, KEYS[0], ct, DeterministicRng("c1"))
    with pytest.raises(DecryptionError):
        verify_decryption_share(PK, ct, SHARES[0])
    with pytest.raises(DecryptionError):
        combine(PK, ct, SHARES, AAD)
    with pytest.raises(DecryptionError):
        combine_robust(PK, ct, SHARES, AAD)


def test_encrypt_with_is_deterministic(setup: Setup) -> None:
    G, PK, KEYS = setup.group, setup.pk, setup.keys
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


def test_encryption_is_randomised(setup: Setup) -> None:
    PK = setup.pk
    rng = DeterministicRng("rand")
    a, b = encrypt(PK, MSG, AAD, rng), encrypt(PK, MSG, AAD, rng)
    assert a.c1 != b.c1 and a.body != b.body
    assert len(a.body) == len(MSG) + 16


def test_reconstruct_private_key_audit_path(setup: Setup) -> None:
    G, PK, KEYS = setup.group, setup.pk, setup.keys
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


def test_public_key_validation(setup: Setup) -> None:
    G, PK = setup.group, setup.pk
    vks = PK.verification_keys
    order_2, mixed = bad_element(G, "order-2"), twist(G, PK.y)
    for kwargs in (
        {"t": 0},
        {"t": N + 1},
        {"verification_keys": vks[:-1]},
        {"y": G.identity},
        {"y": order_2},
        {"y": mixed},
        {"verification_keys": (*vks[:-1], order_2)},
        {"verification_keys": (mixed, *vks[1:])},
    ):
        with pytest.raises(ValueError):
            dataclasses.replace(PK, **kwargs)


def test_wire_round_trips(setup: Setup) -> None:
    G, PK, CT, SHARES = setup.group, setup.pk, setup.ct, setup.shares
    assert ThresholdPublicKey.from_bytes(PK.to_bytes()) == PK
    assert ThresholdCiphertext.from_bytes(CT.to_bytes(G), G) == CT
    for s in SHARES:
        assert DecryptionShare.from_bytes(s.to_bytes(G), G) == s
    with pytest.raises(EncodingError):
        ThresholdCiphertext.from_bytes(SHARES[0].to_bytes(G), G)  # wrong wire type


def test_public_key_with_an_unknown_bad_group_is_refused() -> None:
    # A group whose "generator" has order 2q: structurally fine, fails the full check.
    G, PK = FFDHE2048, _setup(FFDHE2048).pk
    fake = SchnorrGroup(G.p, G.q, G.p - 2)
    pk = ThresholdPublicKey(fake, PK.y, T, N, PK.verification_keys)
    with pytest.raises(KeyFormatError):
        ThresholdPublicKey.from_bytes(pk.to_bytes())


def test_one_of_one(setup: Setup) -> None:
    G = setup.group
    pk, keys = deal_threshold_key(1, 1, G, DeterministicRng("solo"))
    rng = DeterministicRng("solo-ct")
    ct = encrypt(pk, b"m", b"", rng)
    assert combine(pk, ct, [decryption_share(pk, keys[0], ct, rng)], b"") == b"m"


def test_threshold_key_from_dkg_decrypts(setup: Setup) -> None:
    G = setup.group
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


def _wire(pk: ThresholdPublicKey, group: str, params: tuple[bytes, ...]) -> bytes:
    g = pk.group
    return encode(
        PublicKeyWire(
            group=group,
            params=params,
            y=g.element_to_bytes(pk.y),
            t=pk.t,
            n=pk.n,
            verification_keys=tuple(g.element_to_bytes(v) for v in pk.verification_keys),
        )
    )


def test_public_key_wire_form_names_the_group(setup: Setup) -> None:
    pk = setup.pk
    assert pk.to_bytes() == _wire(pk, setup.group.name, ())
    assert ThresholdPublicKey.from_bytes(pk.to_bytes()).group is NAMED_GROUPS[setup.group.name]
    with pytest.raises(KeyFormatError):
        ThresholdPublicKey.from_bytes(_wire(pk, "curve448", ()))
    with pytest.raises(EncodingError):  # a named group takes no parameters
        ThresholdPublicKey.from_bytes(_wire(pk, setup.group.name, (b"\x05",)))
    other = EDWARDS25519 if setup.group is FFDHE2048 else FFDHE2048
    with pytest.raises(EncodingError):  # elements of the wrong size for the named group
        ThresholdPublicKey.from_bytes(_wire(pk, other.name, ()))
    with pytest.raises(EncodingError):
        ThresholdCiphertext.from_bytes(setup.ct.to_bytes(setup.group), other)


def test_custom_schnorr_group_travels_with_its_parameters() -> None:
    base = FFDHE2048
    custom = SchnorrGroup(p=base.p, q=base.q, g=9)  # another generator: not a named group
    assert custom.name == "schnorr"
    pk, keys = deal_threshold_key(2, 3, custom, DeterministicRng("custom"))
    params = tuple(x.to_bytes((x.bit_length() + 7) // 8, "big") for x in (base.p, base.q, 9))
    assert pk.to_bytes() == _wire(pk, "schnorr", params)
    assert ThresholdPublicKey.from_bytes(pk.to_bytes()) == pk
    rng = DeterministicRng("custom-ct")
    ct = encrypt(pk, MSG, AAD, rng)
    assert combine(pk, ct, [decryption_share(pk, k, ct, rng) for k in keys[1:]], AAD) == MSG
    for bad in (params[:2], (b"\0" + params[0], params[1], params[2])):
        with pytest.raises(EncodingError):
            ThresholdPublicKey.from_bytes(_wire(pk, "schnorr", bad))


def test_a_toy_custom_group_is_refused() -> None:
    toy = SchnorrGroup(p=23, q=11, g=4)
    pk, _ = deal_threshold_key(2, 3, toy, DeterministicRng("toy"))
    with pytest.raises(EncodingError, match="bits"):
        ThresholdPublicKey.from_bytes(pk.to_bytes())


def test_named_groups_travel_by_name_only() -> None:
    # A named group spelled out as parameters: refused, so that a key has one encoding.
    ffdhe = _setup(FFDHE2048).pk
    g = FFDHE2048
    spelled = tuple(x.to_bytes((x.bit_length() + 7) // 8, "big") for x in (g.p, g.q, g.g))
    with pytest.raises(EncodingError):
        ThresholdPublicKey.from_bytes(_wire(ffdhe, "schnorr", spelled))
