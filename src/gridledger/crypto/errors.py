"""Errors of the crypto layer::

CryptoError
├── EncodingError          value cannot be encoded / bytes are not canonical
├── InvalidSignature       a signature does not verify
├── DecryptionError        a ciphertext failed authentication (opaque on purpose)
├── KeyError_              a key is malformed or of the wrong kind
├── BlindSignatureError    a blind-RSA step failed (bad blinded message, self-check)
└── SharingError           secret sharing / threshold decryption failed
    ├── TooFewShares       fewer than t shares were supplied
    ├── DuplicateShare     two shares carry the same index
    └── InvalidShare       a share fails its Feldman / Chaum-Pedersen check (names it)
"""

from __future__ import annotations

from gridledger.errors import CryptoError


class EncodingError(CryptoError):
    """A value cannot be canonically encoded, or bytes are not a canonical encoding."""


class InvalidSignature(CryptoError):
    """A signature does not verify under the given key, message and domain tag."""


class DecryptionError(CryptoError):
    """A ciphertext could not be opened: tampered, truncated, or wrong key or context.

    Deliberately carries no detail, so that it cannot serve as a padding or tag oracle.
    """

    def __init__(self, reason: str = "ciphertext could not be authenticated") -> None:
        super().__init__(reason)


class KeyFormatError(CryptoError):
    """A key is malformed, too short, or of the wrong kind for the operation."""


class BlindSignatureError(CryptoError):
    """A blind-RSA step failed: message out of range, or the signer's self-check."""


class SharingError(CryptoError):
    """Secret sharing or threshold decryption failed."""


class TooFewShares(SharingError):
    """Fewer than the threshold ``t`` of shares were supplied."""

    def __init__(self, have: int, need: int) -> None:
        super().__init__(f"{have} shares supplied, {need} needed")
        self.have = have
        self.need = need


class DuplicateShare(SharingError):
    """Two supplied shares carry the same index."""

    def __init__(self, index: int) -> None:
        super().__init__(f"share index {index} supplied twice")
        self.index = index


class InvalidShare(SharingError):
    """A share fails its verification; ``index`` names the trustee that sent it."""

    def __init__(self, index: int, reason: str = "share does not verify") -> None:
        super().__init__(f"share {index}: {reason}")
        self.index = index
