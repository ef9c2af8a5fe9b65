"""Keys of CBSG: the control center as key generation center, meters and receivers.

Seed 002 §IV.A-B, on BLS12-381 (spec §6.11.6)::

    CC (KGC):  master x,  Y_Pub1 = x·P1 ∈ G1,  Y_Pub2 = x·P2 ∈ G2  (published)
    partial key for identity ID:  r random, α = r·P1, η = H1(ID ‖ α), h = r + η·x
    the holder checks h·P1 = α + η·Y_Pub1   (the paper never checks it)
    full key:  secret value x_S, Y_S = x_S·P1;  private (h, x_S), public (Y_S, α)
    signing key:  a = x_S + h,  PK = Y_S + K  with  K = α + η·Y_Pub1 = h·P1

The CC learns h but never x_S, and a thief of x_S lacks h: a report is
signed with a = x_S + h (:mod:`.signcrypt`), so it takes both halves.
Receivers decrypt with x_R alone (ECDH, :mod:`.signcrypt`), so the master key
x opens nothing (no key escrow). PK is what an accounting node checks a
signature against; the contract computes it once, at registration.
The channel that carries h to its holder is out of scope here (TLS from the CC
or HPKE to a factory key, spec §6.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.aggregation.curve import (
    ORDER,
    P1,
    P2,
    G1Point,
    G2Point,
    Scalar,
    compute_hash_to_scalar,
    decode_g1,
    decode_g2,
    get_random_scalar,
    is_pairing_product_one,
)
from gridledger.aggregation.errors import InvalidEncoding, InvalidPartialKey
from gridledger.crypto.encoding import encode, wire_type
from gridledger.crypto.hashing import register_tag
from gridledger.crypto.rng import Rng

H1_TAG = register_tag("gridledger/aggregation/h1-partial-key/1")

ROLE_METER = "meter"
ROLE_CC = "cc"
ROLE_GO = "go"
ROLE_ES = "es"
ROLES = frozenset({ROLE_METER, ROLE_CC, ROLE_GO, ROLE_ES})
MAX_ID_LENGTH = 64


@wire_type("aggregation.system-params/1")
@dataclass(frozen=True)
class SystemParams:
    """What the CC publishes: Y_Pub in both groups (compressed)."""

    y_pub1: bytes
    y_pub2: bytes


@wire_type("aggregation.partial-key/1")
@dataclass(frozen=True)
class PartialKey:
    """The CC's partial private key for ``identity``: α public, h secret (32 bytes, big-endian)."""

    identity: str
    alpha: bytes
    h: bytes


@wire_type("aggregation.public-key/1")
@dataclass(frozen=True)
class PublicKeyRecord:
    """A meter's or receiver's public key as registered on chain by the CC.

    ``tx_key`` is the Ed25519 key a receiver signs its feedback or equipment
    transactions with (empty for meters).
    """

    identity: str
    role: str
    y: bytes
    alpha: bytes
    tx_key: bytes


@dataclass(frozen=True)
class ParticipantKeys:
    """A meter's or receiver's full private key (never on the wire)."""

    identity: str
    secret: Scalar
    h: Scalar
    y: G1Point
    alpha: G1Point

    @property
    def signing_secret(self) -> Scalar:
        """a = x_S + h: the signing key needs the holder's secret value and the CC's part."""
        return self.secret + self.h

    def to_record(self, role: str, tx_key: bytes = b"") -> PublicKeyRecord:
        """The public part, to be registered by the CC."""
        return PublicKeyRecord(
            self.identity,
            role,
            self.y.to_compressed_bytes(),
            self.alpha.to_compressed_bytes(),
            tx_key,
        )


@dataclass(frozen=True)
class KeyGenerationCenter:
    """The control center's master key (the KGC of the certificateless scheme)."""

    master: Scalar

    @classmethod
    def create(cls, rng: Rng) -> KeyGenerationCenter:
        """A fresh master key x."""
        return cls(get_random_scalar(rng))

    @property
    def params(self) -> SystemParams:
        return SystemParams(
            (P1 * self.master).to_compressed_bytes(), (P2 * self.master).to_compressed_bytes()
        )

    def issue_partial_key(self, identity: str, rng: Rng) -> PartialKey:
        """(α, h) for ``identity``; the CC checks the ID is registered before calling this."""
        check_identity(identity)
        r = get_random_scalar(rng)
        alpha = (P1 * r).to_compressed_bytes()
        h = r + compute_eta(identity, alpha) * self.master
        return PartialKey(identity, alpha, int(h).to_bytes(32, "big"))


def check_identity(identity: str) -> None:
    """Raise :class:`InvalidEncoding` unless ``identity`` is a usable ID (it names state keys)."""
    if (
        not identity
        or len(identity) > MAX_ID_LENGTH
        or not identity.isprintable()
        or "/" in identity
    ):
        raise InvalidEncoding(f"identity must be 1..{MAX_ID_LENGTH} printable characters, no '/'")


def compute_eta(identity: str, alpha: bytes) -> Scalar:
    """η = H1(ID ‖ α)."""
    return compute_hash_to_scalar(H1_TAG, encode([identity, alpha]))


def decode_params(params: SystemParams) -> tuple[G1Point, G2Point]:
    """(Y_Pub1, Y_Pub2 as checked points); raise if they are not x·P1 and x·P2 for one x."""
    y1 = decode_g1(params.y_pub1)
    y2 = decode_g2(params.y_pub2)
    if not is_pairing_product_one([y1, -P1], [P2, y2]):
        raise InvalidEncoding("Y_Pub1 and Y_Pub2 do not share one master key")
    return y1, y2


def compute_partial_public_key(y_pub1: G1Point, identity: str, alpha: bytes) -> G1Point:
    """K = α + η·Y_Pub1 (= h·P1 for an honest partial key)."""
    return decode_g1(alpha) + y_pub1 * compute_eta(identity, alpha)


def compute_signing_key(y_pub1: G1Point, identity: str, y_s: bytes, alpha: bytes) -> G1Point:
    """PK = Y_S + K = (x_S + h)·P1, the key a report's signature is checked against."""
    return decode_g1(y_s) + compute_partial_public_key(y_pub1, identity, alpha)


def check_partial_key(y_pub1: G1Point, partial: PartialKey) -> Scalar:
    """The holder's check h·P1 = α + η·Y_Pub1; return h or raise :class:`InvalidPartialKey`."""
    h_int = int.from_bytes(partial.h, "big")
    if len(partial.h) != 32 or not 0 < h_int < ORDER:
        raise InvalidPartialKey("h is not a scalar in Z_q*")
    h = Scalar(h_int)
    try:
        expected = compute_partial_public_key(y_pub1, partial.identity, partial.alpha)
    except InvalidEncoding as exc:
        raise InvalidPartialKey(exc.reason) from None
    if P1 * h != expected:
        raise InvalidPartialKey(f"partial key of {partial.identity!r} does not match Y_Pub")
    return h


def create_participant_keys(y_pub1: G1Point, partial: PartialKey, rng: Rng) -> ParticipantKeys:
    """Check the CC's partial key, pick the secret value x_S, return the full key."""
    h = check_partial_key(y_pub1, partial)
    secret = get_random_scalar(rng)
    return ParticipantKeys(partial.identity, secret, h, P1 * secret, decode_g1(partial.alpha))
