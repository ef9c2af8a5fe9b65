"""Denomination keys and coins, and the one check every holder and replica runs.

A **denomination key** is an RFC 9474 RSA key that signs coins of one value
(a power of two) during a window: the mint blind-signs with it while
``valid_from_ms <= t < withdraw_until_ms`` and a coin under it is spendable
while ``valid_from_ms <= t < spend_until_ms`` (GNU Taler's withdraw and deposit
expiries). It is named by ``key_id``, the tagged hash of its whole record, so
a coin cannot claim a key with another value or window.

A **coin** is ``(serial, key_id, signature)`` and nothing else: ``serial`` is 32
random bytes the wallet drew, ``signature`` the unblinded RSABSSA-SHA384-PSS-
Randomized signature on ``input_msg = serial || tag || key_id``. The serial is
the variant's random 32-byte ``msg_prefix`` (RFC 9474 §4.1), so the signed
message is unguessable, and the tag and key id bind it to e-coins of that key
(never to the RM's pseudonyms, which use other keys and another tag).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gridledger.crypto import blind_rsa
from gridledger.crypto.encoding import encode, wire_type
from gridledger.crypto.errors import KeyFormatError
from gridledger.crypto.hashing import hash_bytes, register_tag, tagged_message
from gridledger.crypto.signatures import RsaPublicKey
from gridledger.payments.errors import ExpiredDenomination, ForgedCoin
from gridledger.payments.units import MAX_DENOMINATION_EXPONENT, Money, is_power_of_two

VARIANT = blind_rsa.Variant.PSS_RANDOMIZED
SERIAL_SIZE = blind_rsa.MSG_PREFIX_SIZE
KEY_ID_SIZE = 32
MIN_SIGNATURE_SIZE = 256
MAX_SIGNATURE_SIZE = 512
KEY_ID_TAG = register_tag("gridledger/payments/denomination-key/1")
COIN_TAG = register_tag("gridledger/payments/coin/1")
COIN_LOCK_TAG = register_tag("gridledger/payments/coin-lock/1")


@wire_type("payments.denomination-key/1")
@dataclass(frozen=True)
class DenominationKey:
    """A published coin key: its value, RSA public key (DER) and validity windows (ms)."""

    value: Money
    public_key_der: bytes
    valid_from_ms: int
    withdraw_until_ms: int
    spend_until_ms: int

    def __post_init__(self) -> None:
        if not is_power_of_two(self.value) or self.value > 1 << MAX_DENOMINATION_EXPONENT:
            raise ValueError("a denomination is a power of two up to 2**40")
        if not 0 <= self.valid_from_ms < self.withdraw_until_ms <= self.spend_until_ms:
            raise ValueError("need valid_from < withdraw_until <= spend_until")
        if len(self.public_key_der) > 1024:
            raise ValueError("public key too long")

    @property
    def key_id(self) -> bytes:
        """The tagged hash of the whole record: what a coin names."""
        return compute_key_id(self)

    def is_withdrawable(self, at_ms: int) -> bool:
        return self.valid_from_ms <= at_ms < self.withdraw_until_ms

    def is_spendable(self, at_ms: int) -> bool:
        return self.valid_from_ms <= at_ms < self.spend_until_ms


@wire_type("payments.coin/1")
@dataclass(frozen=True)
class Coin:
    """An e-coin: a random serial, the denomination key's id, the unblinded signature."""

    serial: bytes
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.serial) != SERIAL_SIZE or len(self.key_id) != KEY_ID_SIZE:
            raise ValueError("serial and key_id are 32 bytes")
        if not MIN_SIGNATURE_SIZE <= len(self.signature) <= MAX_SIGNATURE_SIZE:
            raise ValueError("signature must be 256..512 bytes")

    @property
    def coin_id(self) -> bytes:
        """``key_id || serial``: names the coin (never shown before it is spent)."""
        return self.key_id + self.serial

    @property
    def lock(self) -> bytes:
        """Tagged hash of ``coin_id``: keys the spent registry and a payment's coin locks.

        A payer publishes it at payment time: it reveals nothing about the coin
        (the serial is random) but lets the chain refuse any other spend of it.
        """
        return hash_bytes(COIN_LOCK_TAG, self.coin_id)


def compute_key_id(denomination: DenominationKey) -> bytes:
    return hash_bytes(KEY_ID_TAG, encode(denomination))


def compute_coin_message(serial: bytes, key_id: bytes) -> bytes:
    """RFC 9474 ``input_msg`` of a coin: ``serial`` (the msg_prefix) then tag and key id."""
    return blind_rsa.prepare_with(VARIANT, tagged_message(COIN_TAG, key_id), serial)


_PSS_SHA384 = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=blind_rsa.HASH_SIZE)


@dataclass(frozen=True)
class DenominationVerifier:
    """A denomination key with its RSA key parsed once (replicas keep one per key id).

    Coins are checked with OpenSSL's RSASSA-PSS verification (SHA-384, MGF1-SHA-384,
    48-byte salt), which is exactly RFC 9474's verification for the PSS variants and
    about a third faster than :func:`gridledger.crypto.blind_rsa.verify` in Python
    (a test checks that both agree).
    """

    denomination: DenominationKey
    key_id: bytes
    public_key: RsaPublicKey
    openssl_key: rsa.RSAPublicKey = field(repr=False, compare=False)

    @classmethod
    def from_key(cls, denomination: DenominationKey) -> DenominationVerifier:
        """Parse the DER key; :class:`KeyFormatError` if it is not an RSA key of 2048+ bits."""
        public_key = RsaPublicKey.from_der(denomination.public_key_der)
        if public_key.n.bit_length() > 8 * MAX_SIGNATURE_SIZE:
            raise KeyFormatError("denomination keys are at most 4096 bits")
        return cls(denomination, compute_key_id(denomination), public_key, public_key.to_crypto())

    def verify_coin(self, coin: Coin, at_ms: int) -> None:
        """Raise :class:`ExpiredDenomination` or :class:`ForgedCoin` unless ``coin`` is good.

        Caller has matched ``coin.key_id`` to this key; the spent registry is
        the contract's business.
        """
        if not self.denomination.is_spendable(at_ms):
            raise ExpiredDenomination(coin.serial, coin.key_id, at_ms)
        if not self.is_valid_signature(coin):
            raise ForgedCoin(coin.serial)

    def is_valid_signature(self, coin: Coin) -> bool:
        if coin.key_id != self.key_id or len(coin.signature) != self.public_key.modulus_bytes:
            return False
        msg = compute_coin_message(coin.serial, coin.key_id)
        try:
            self.openssl_key.verify(coin.signature, msg, _PSS_SHA384, hashes.SHA384())
        except CryptoInvalidSignature:
            return False
        return True
