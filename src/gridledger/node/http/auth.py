"""Sign-in of a household with its Ed25519 key, in its own browser.

1. ``POST /v1/auth/challenge`` → a fresh 32-byte challenge and the exact
   ``message`` to sign: the domain tag :data:`SIGN_IN_TAG`'s prefix, the chain
   id, a zero byte, the challenge. The browser checks that the message starts
   with that prefix (so a node cannot make it sign a transaction), signs it
   with WebCrypto Ed25519; the private key never leaves the page.
2. ``POST /v1/auth/session`` with the public key, challenge and signature →
   a bearer token bound to that key for :data:`SESSION_S` seconds. A
   challenge is single use and expires after :data:`CHALLENGE_S` seconds.

Tokens and challenges live in memory on this node only (bounded tables,
oldest dropped first): signing in again is one round trip.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gridledger.crypto.errors import InvalidSignature, KeyFormatError
from gridledger.crypto.hashing import register_tag
from gridledger.crypto.rng import SYSTEM_RNG, Rng
from gridledger.crypto.signatures import Ed25519PublicKey
from gridledger.node.http.problems import HttpProblem, ProblemCode

SIGN_IN_TAG = register_tag("gridledger/node/http-sign-in/1")
CHALLENGE_S = 120.0
SESSION_S = 3600.0
MAX_PENDING = 10_000


@dataclass(frozen=True)
class Session:
    public_key: bytes
    expires_at: float


def compute_sign_in_message(chain_id: str, challenge: bytes) -> bytes:
    """The bytes the browser signs (tag prefix included: WebCrypto signs raw bytes)."""
    return SIGN_IN_TAG.prefix + chain_id.encode() + b"\x00" + challenge


class SessionTable:
    """Outstanding challenges and live sessions of one node."""

    def __init__(
        self, chain_id: str, rng: Rng = SYSTEM_RNG, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.chain_id = chain_id
        self.rng = rng
        self.clock = clock
        self._challenges: OrderedDict[bytes, float] = OrderedDict()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create_challenge(self) -> tuple[bytes, bytes, float]:
        """(challenge, message to sign, seconds it stays valid)."""
        challenge = self.rng.random_bytes(32)
        self._challenges[challenge] = self.clock() + CHALLENGE_S
        while len(self._challenges) > MAX_PENDING:
            self._challenges.popitem(last=False)
        return challenge, compute_sign_in_message(self.chain_id, challenge), CHALLENGE_S

    def process_sign_in(self, public_key: bytes, challenge: bytes, signature: bytes) -> str:
        """Check the signed challenge (single use); a fresh bearer token for ``public_key``."""
        expires = self._challenges.pop(challenge, None)
        if expires is None or expires < self.clock():
            raise HttpProblem(ProblemCode.UNAUTHORIZED, "unknown or expired challenge")
        try:
            key = Ed25519PublicKey(public_key)
            key.verify(SIGN_IN_TAG, self.chain_id.encode() + b"\x00" + challenge, signature)
        except (InvalidSignature, KeyFormatError):
            raise HttpProblem(ProblemCode.UNAUTHORIZED, "the signature does not verify") from None
        token = self.rng.random_bytes(32).hex()
        self._sessions[token] = Session(public_key, self.clock() + SESSION_S)
        while len(self._sessions) > MAX_PENDING:
            self._sessions.popitem(last=False)
        return token

    def get_session(self, authorization: str | None) -> Session:
        """The session of an ``Authorization: Bearer <token>`` header (401 otherwise)."""
        if not authorization or not authorization.startswith("Bearer "):
            raise HttpProblem(
                ProblemCode.UNAUTHORIZED,
                "sign in first: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        session = self._sessions.get(authorization.removeprefix("Bearer ").strip())
        if session is None or session.expires_at < self.clock():
            raise HttpProblem(
                ProblemCode.UNAUTHORIZED,
                "unknown or expired session",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return session
