"""The client side of PBFT: accept a result once f+1 replicas sent matching replies.

At most f replicas are faulty, so f+1 matching signed replies from distinct
replicas include at least one honest replica's: the result is the one the
consortium agreed on (Castro & Liskov §4.1). A result here is
``compute_reply_result(seq, header_hash)``: the block that ordered the request.
"""

from __future__ import annotations

from gridledger.consensus.errors import BadEnvelope
from gridledger.consensus.messages import Authenticator, Reply, SignedEnvelope
from gridledger.consensus.quorum import compute_weak
from gridledger.ledger.certificate import Validator


class ReplyCollector:
    """Gathers signed replies for many requests; reports each request's result once."""

    def __init__(self, chain_id: str, validators: tuple[Validator, ...]) -> None:
        self._auth = Authenticator(chain_id, validators)
        self._weak = compute_weak(len(validators))
        self._votes: dict[bytes, dict[int, bytes]] = {}
        self.results: dict[bytes, bytes] = {}
        self.rejected = 0

    def process_reply(self, env: SignedEnvelope) -> bytes | None:
        """Add one reply; return the result the first time f+1 replicas agree on it."""
        try:
            msg = self._auth.open(env)
        except BadEnvelope:
            self.rejected += 1
            return None
        if not isinstance(msg, Reply) or msg.replica != env.sender:
            self.rejected += 1
            return None
        if msg.request_digest in self.results:
            return None
        votes = self._votes.setdefault(msg.request_digest, {})
        votes.setdefault(env.sender, msg.result)
        matching = sum(1 for r in votes.values() if r == msg.result)
        if matching < self._weak:
            return None
        self.results[msg.request_digest] = msg.result
        del self._votes[msg.request_digest]
        return msg.result
