"""Errors of the identity layer::

    IdentityError
    ├── MessageRejected          a protocol message is malformed or fails a check
    │   ├── ExpiredMessage       its timestamp is outside the freshness window
    │   ├── ReplayDetected       its nonce (or RM signature) was seen before
    │   └── WrongRole            the sender's certificate lacks the role or attribute
    ├── CertificateRejected      an X.509 or pseudonym certificate fails verification
    │   └── PseudonymRefused     a pseudonym may not act in a round (unpublished, revoked,
    │                            another round, outside its window): the market's check
    ├── RegistrationRejected     the RM or MM refuses a registration step
    │   ├── Blacklisted          the identity was traced and blacklisted
    │   │   └── MemberBlacklisted  the CA refuses to re-admit a blacklisted member or meter
    │   └── CheatingDetected     a cut-and-choose opening failed (carries signed evidence)
    ├── TracingError             a tracing step failed (bad evidence, too few valid shares)
    │   ├── EvidenceRejected     an accusation is not backed by a live, signed obligation
    │   └── UnaccountableTrace   the tag decrypts, but its consent does not verify for the
    │                            identity it names (nobody can be blamed)
    └── InvalidTimestamp         an attacker-chosen time lies outside [0, MAX_TIMESTAMP)

Every error carries ``reason``; subclasses add typed fields. State objects are
left untouched when any of these is raised (the protocol functions check
first and write last).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridledger.errors import IdentityError

if TYPE_CHECKING:
    from gridledger.identity.messages import CheatingEvidence

__all__ = [
    "Blacklisted",
    "CertificateRejected",
    "CheatingDetected",
    "EvidenceRejected",
    "ExpiredMessage",
    "IdentityError",
    "InvalidTimestamp",
    "MemberBlacklisted",
    "MessageRejected",
    "PseudonymRefused",
    "RegistrationRejected",
    "ReplayDetected",
    "TracingError",
    "UnaccountableTrace",
    "WrongRole",
]


class MessageRejected(IdentityError):
    """A protocol message is malformed, for another session or round, or its signature fails."""


class ExpiredMessage(MessageRejected):
    """A message's timestamp lies outside the accepted window around ``now``."""

    def __init__(self, timestamp: int, now: int) -> None:
        super().__init__(f"timestamp {timestamp} is not fresh at {now}")
        self.timestamp = timestamp
        self.now = now


class ReplayDetected(MessageRejected):
    """A nonce, session or RM signature was already used; ``key`` is the replayed value."""

    def __init__(self, key: bytes, reason: str = "message replayed") -> None:
        super().__init__(reason)
        self.key = key


class WrongRole(MessageRejected):
    """A certificate is valid but lacks the required role, attribute or permission."""

    def __init__(self, required: str, actual: str) -> None:
        super().__init__(f"role or attribute {required!r} required, certificate has {actual!r}")
        self.required = required
        self.actual = actual


class CertificateRejected(IdentityError):
    """An X.509 or pseudonym certificate is forged, expired, revoked or from an unknown CA."""


class PseudonymRefused(CertificateRejected):
    """A pseudonym certificate may not be used in ``round`` at the given time: not the one
    published on chain, revoked (trace or sweep), for another round, outside its validity
    window, or issued under an MM or RM key revoked since. ``pseudonym_key`` names it."""

    def __init__(self, reason: str, pseudonym_key: bytes, round_: int) -> None:
        super().__init__(reason)
        self.pseudonym_key = pseudonym_key
        self.round = round_


class RegistrationRejected(IdentityError):
    """The RM or MM refuses a registration step (one pseudonym per round, bad tag, ...)."""


class Blacklisted(RegistrationRejected):
    """The identity (hash of its certificate) was traced and is blacklisted."""

    def __init__(self, identity: bytes) -> None:
        super().__init__(f"identity {identity.hex()[:16]}… is blacklisted")
        self.identity = identity


class MemberBlacklisted(Blacklisted):
    """The CA refuses a certificate: an earlier certificate of this member id or meter is
    blacklisted on chain (``identity`` is that certificate's hash, ``subject`` what matched).
    """

    def __init__(self, identity: bytes, subject: str) -> None:
        super().__init__(identity)
        self.reason = f"{subject} was blacklisted (identity {identity.hex()[:16]}…)"
        self.args = (self.reason,)
        self.subject = subject


class CheatingDetected(RegistrationRejected):
    """A cut-and-choose opening does not match its commitment.

    ``evidence`` holds the user's signed commitments and signed openings and the
    RM's signed challenge: anyone can re-run the check
    (:func:`gridledger.identity.registration.verify_cheating_evidence`).
    """

    def __init__(self, evidence: CheatingEvidence, index: int, reason: str) -> None:
        super().__init__(f"candidate {index}: {reason}")
        self.evidence = evidence
        self.index = index


class TracingError(IdentityError):
    """Tracing failed: evidence not on chain, wrong pseudonym, or fewer than t valid shares."""

    def __init__(self, reason: str, bad_trustees: tuple[int, ...] = ()) -> None:
        super().__init__(reason)
        self.bad_trustees = bad_trustees


class EvidenceRejected(TracingError):
    """Evidence does not name a live obligation signed by both pseudonyms of one round."""


class UnaccountableTrace(TracingError):
    """The tag decrypted, but the consent inside does not verify for the identity it names
    (or no certificate for it was given): the pseudonym is revoked, nobody is blamed."""

    def __init__(self, reason: str, identity: bytes) -> None:
        super().__init__(reason)
        self.identity = identity


# Seconds at 10000-01-01T00:00Z: every timestamp below it (and below 2**40) converts to a
# datetime on every platform; larger ones raise platform-dependent errors.
MAX_TIMESTAMP = min(1 << 40, 253_402_300_800)


class InvalidTimestamp(IdentityError):
    """A timestamp (seconds) outside ``[0, MAX_TIMESTAMP)``: refused before any date
    conversion, with a platform-independent reason."""

    def __init__(self, what: str, value: int) -> None:
        super().__init__(f"{what} is out of range")
        self.what = what
        self.value = value


def check_timestamp(what: str, value: int) -> int:
    """Return ``value`` if ``0 <= value < MAX_TIMESTAMP``, else :class:`InvalidTimestamp`."""
    if not 0 <= value < MAX_TIMESTAMP:
        raise InvalidTimestamp(what, value)
    return value
