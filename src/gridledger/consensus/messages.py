"""PBFT wire messages, their digests, and the signed envelope that carries them.

Every message between replicas travels as a :class:`SignedEnvelope`: the sender's
replica id, the canonical encoding of exactly one message (``body``), and an
Ed25519 signature by the sender's validator key over ``ENVELOPE_TAG || chain_id
|| body`` (the chain id binds a signature to one consortium, so envelopes of a
test network can never be replayed on another). The body is decoded with the
tagged union :data:`MESSAGE_TYPES`, keyed by the ``"_t"`` wire name, so a
message of one type can never be read as another.

Proofs inside view changes are the signed envelopes themselves (a pre-prepare
and 2f prepares), and a checkpoint proof is a
:class:`~gridledger.ledger.certificate.CommitCertificate` built from the vote
signatures that every :class:`Checkpoint` carries.

:class:`Authenticator` seals and opens envelopes with the keys of the validator
set; it collapses every failure into :class:`~gridledger.consensus.errors.BadEnvelope`
with a short ``reason`` (counted by the replica, never a traceback).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gridledger.consensus.errors import BadEnvelope
from gridledger.crypto.encoding import TYPE_KEY, decode, decode_as, encode, from_value, wire_type
from gridledger.crypto.errors import EncodingError, InvalidSignature, KeyFormatError
from gridledger.crypto.hashing import hash_bytes, hash_value, register_tag
from gridledger.crypto.signatures import Ed25519PrivateKey, Ed25519PublicKey
from gridledger.ledger.certificate import CommitCertificate, Validator

ENVELOPE_TAG = register_tag("gridledger/consensus/envelope/1")
REQUEST_TAG = register_tag("gridledger/consensus/request/2")
BATCH_TAG = register_tag("gridledger/consensus/batch/1")

MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
# Upper bounds of the encoding overheads (used for the batch byte budget).
REQUEST_OVERHEAD_BYTES = 128  # a ClientRequest around its client id and payload
PRE_PREPARE_OVERHEAD_BYTES = 512  # a signed PRE-PREPARE envelope around its batch
PREPARE_BYTES = 256  # a signed PREPARE envelope


@wire_type("consensus.client-request/1")
@dataclass(frozen=True)
class ClientRequest:
    """A client's request; ``payload`` is an encoded signed ledger transaction (opaque here)."""

    client: bytes
    request_id: int
    payload: bytes

    @functools.cached_property
    def digest(self) -> bytes:
        """:func:`compute_request_digest`, computed once per object.

        ``H(request/2, len(client) as 4 bytes || client || request_id as 9 signed
        bytes || payload)``: the fields framed so that no two requests share the
        bytes (a fixed-size length before the only variable field but the last,
        a fixed-size id), hashed in one call. Every replica computes it for every
        request at intake and again for the copy in a pre-prepare; encoding the
        request instead (its payload is the whole transaction) cost three times
        as much.
        """
        try:
            framed = (
                len(self.client).to_bytes(4, "big")
                + self.client
                + self.request_id.to_bytes(9, "big", signed=True)
            )
        except OverflowError:
            raise EncodingError("client request: id or client out of range") from None
        return hash_bytes(REQUEST_TAG, framed + self.payload)


@wire_type("consensus.forwarded-requests/1")
@dataclass(frozen=True)
class ForwardedRequests:
    """Requests a backup forwards to the primary, many under one signature.

    One envelope per request cost the backup a signature and the primary a
    verification per request (about 75 µs together): past saturation, when
    requests wait in the queue about as long as the forward delay, that was
    enough to halve the consortium's throughput.
    """

    requests: tuple[ClientRequest, ...]


@wire_type("consensus.pre-prepare/1")
@dataclass(frozen=True)
class PrePrepare:
    """The primary assigns ``seq`` to a batch in ``view``.

    ``batch_digest`` is :func:`compute_batch_digest` of ``(timestamp_ms, batch)``:
    agreeing on the digest means agreeing on the timestamp too. A null request
    (a gap filled by a new primary) has an empty batch and timestamp 0.
    """

    view: int
    seq: int
    batch_digest: bytes
    batch: tuple[ClientRequest, ...]
    timestamp_ms: int


@wire_type("consensus.prepare/1")
@dataclass(frozen=True)
class Prepare:
    """A backup accepted the pre-prepare for ``(view, seq)`` with ``batch_digest``."""

    view: int
    seq: int
    batch_digest: bytes


@wire_type("consensus.commit/1")
@dataclass(frozen=True)
class Commit:
    """A replica has a prepared certificate for ``(view, seq, batch_digest)``."""

    view: int
    seq: int
    batch_digest: bytes


@wire_type("consensus.checkpoint/1")
@dataclass(frozen=True)
class Checkpoint:
    """The sender executed ``seq`` and its block header hash is ``state_digest``.

    ``vote_signature`` is ``ledger.certificate.sign_vote`` over
    ``BlockVote(chain_id, seq, state_digest)``, so 2f+1 matching checkpoints form a
    ``CommitCertificate`` for the block at height ``seq``.
    """

    seq: int
    state_digest: bytes
    vote_signature: bytes


@wire_type("consensus.prepared-proof/1")
@dataclass(frozen=True)
class PreparedProof:
    """A prepared certificate: the signed pre-prepare and 2f signed matching prepares."""

    pre_prepare: SignedEnvelope
    prepares: tuple[SignedEnvelope, ...]


@wire_type("consensus.view-change/1")
@dataclass(frozen=True)
class ViewChange:
    """The sender moves to ``new_view``; carries its stable checkpoint and prepared proofs.

    ``checkpoint_proof`` is the certificate of the block at ``stable_seq`` (``None``
    only at genesis, ``stable_seq == 0``).
    """

    new_view: int
    stable_seq: int
    checkpoint_proof: CommitCertificate | None
    prepared_proofs: tuple[PreparedProof, ...]


@wire_type("consensus.new-view/1")
@dataclass(frozen=True)
class NewView:
    """The new primary starts ``view``: 2f+1 signed view changes and the O set.

    ``pre_prepares`` are envelopes of :class:`PrePrepare` signed by the new primary,
    one per seq in ``(min-s, max-s]``, in seq order.
    """

    view: int
    view_changes: tuple[SignedEnvelope, ...]
    pre_prepares: tuple[SignedEnvelope, ...]


@wire_type("consensus.status/1")
@dataclass(frozen=True)
class Status:
    """A replica's periodic heartbeat: where it is (BFT's STATUS message, simplified).

    Peers use it to learn who they can hear (a replica does not accuse its primary
    while it hears fewer than 2f peers: it is more likely cut off itself) and to
    hand a lagging sender what it lacks: the stable checkpoint certificate above
    its ``stable_seq``, or the NEW-VIEW of a view it is still asking for.
    """

    view: int
    in_view_change: bool
    stable_seq: int
    last_executed: int
    sent_ms: int  # the sender's clock; only a newer STATUS than the last one counts


@wire_type("consensus.checkpoint-certificate/1")
@dataclass(frozen=True)
class CheckpointCertificate:
    """A relayed commit certificate: 2f+1 block votes on the block at ``certificate.height``.

    Self-authenticating (each vote is signed by its validator), so any replica may
    relay it: a lagging replica does not depend on the checkpoints each signer sent
    it directly (a faulty signer may have sent it a wrong one, or none).
    """

    certificate: CommitCertificate


@wire_type("consensus.reply/1")
@dataclass(frozen=True)
class Reply:
    """A replica's answer to a request; ``result`` is :func:`compute_reply_result`."""

    view: int
    request_digest: bytes
    replica: int
    result: bytes


@wire_type("consensus.envelope/1")
@dataclass(frozen=True)
class SignedEnvelope:
    """One encoded message, its sender and the sender's Ed25519 signature."""

    sender: int
    body: bytes
    signature: bytes


Message = (
    ClientRequest
    | ForwardedRequests
    | PrePrepare
    | Prepare
    | Commit
    | Checkpoint
    | ViewChange
    | NewView
    | Reply
    | Status
    | CheckpointCertificate
)

MESSAGE_TYPES: dict[str, type[Any]] = {
    "consensus.client-request/1": ClientRequest,
    "consensus.forwarded-requests/1": ForwardedRequests,
    "consensus.pre-prepare/1": PrePrepare,
    "consensus.prepare/1": Prepare,
    "consensus.commit/1": Commit,
    "consensus.checkpoint/1": Checkpoint,
    "consensus.view-change/1": ViewChange,
    "consensus.new-view/1": NewView,
    "consensus.reply/1": Reply,
    "consensus.status/1": Status,
    "consensus.checkpoint-certificate/1": CheckpointCertificate,
}


def decode_message(body: bytes) -> Message:
    """Decode one message body by its ``"_t"`` wire name; raises ``EncodingError``."""
    value = decode(body, max_size=MAX_ENVELOPE_BYTES)
    if not isinstance(value, dict):
        raise EncodingError("a message is a map")
    tag = value.get(TYPE_KEY)
    # The tag must be a string before it is used as a key: a list or a map there
    # would raise TypeError (unhashable), not a typed error.
    cls = MESSAGE_TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise EncodingError(f"unknown message type {str(tag)[:64]!r}")
    msg: Message = from_value(cls, value)
    return msg


def decode_envelope(frame: bytes) -> SignedEnvelope:
    """Decode the canonical bytes of an envelope (as sent on the wire)."""
    return decode_as(SignedEnvelope, frame, max_size=MAX_ENVELOPE_BYTES)


def compute_request_digest(req: ClientRequest) -> bytes:
    """The digest that identifies (and deduplicates) a request (:attr:`ClientRequest.digest`)."""
    return req.digest


def compute_request_size(req: ClientRequest) -> int:
    """An upper bound on ``len(encode(req))`` (cheap: no encoding)."""
    return len(req.payload) + len(req.client) + REQUEST_OVERHEAD_BYTES


def split_requests(
    reqs: Sequence[ClientRequest], max_count: int, max_bytes: int
) -> list[tuple[ClientRequest, ...]]:
    """``reqs`` in order, cut into runs of at most ``max_count`` requests and
    ``max_bytes`` (by :func:`compute_request_size`; a larger request goes alone):
    what one forwarding frame may carry."""
    runs: list[tuple[ClientRequest, ...]] = []
    run: list[ClientRequest] = []
    size = 0
    for req in reqs:
        req_size = compute_request_size(req)
        if run and (len(run) >= max_count or size + req_size > max_bytes):
            runs.append(tuple(run))
            run, size = [], 0
        run.append(req)
        size += req_size
    if run:
        runs.append(tuple(run))
    return runs


def compute_batch_digest(timestamp_ms: int, batch: tuple[ClientRequest, ...]) -> bytes:
    """The digest of a pre-prepare's content: its timestamp and its ordered batch."""
    return hash_value(BATCH_TAG, [timestamp_ms, [compute_request_digest(r) for r in batch]])


def compute_reply_result(seq: int, state_digest: bytes) -> bytes:
    """A reply's result: the request was ordered in block ``seq`` whose header hash is given."""
    return encode([seq, state_digest])


def _signed_bytes(chain_id: str, body: bytes) -> bytes:
    return encode([chain_id, hash_bytes(ENVELOPE_TAG, body)])


class Authenticator:
    """Seals and opens envelopes for one replica (or, without a key, verifies only)."""

    def __init__(
        self,
        chain_id: str,
        validators: tuple[Validator, ...],
        replica_id: int | None = None,
        key: Ed25519PrivateKey | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.replica_id = replica_id
        self._key = key
        self._public: dict[int, Ed25519PublicKey] = {
            v.replica_id: Ed25519PublicKey(v.public_key) for v in validators
        }
        if key is not None and (
            replica_id is None or self._public.get(replica_id) != key.public_key
        ):
            raise KeyFormatError("the signing key is not this replica's validator key")
        self.verifications = 0
        self.signatures = 0

    def seal(self, msg: Message) -> SignedEnvelope:
        """Encode ``msg`` and sign it as this replica."""
        if self._key is None or self.replica_id is None:
            raise KeyFormatError("this authenticator has no signing key")
        body = encode(msg)
        self.signatures += 1
        sig = self._key.sign(ENVELOPE_TAG, _signed_bytes(self.chain_id, body))
        return SignedEnvelope(self.replica_id, body, sig)

    def verify(self, env: SignedEnvelope) -> None:
        """Raise :class:`BadEnvelope` unless ``env`` is signed by its claimed sender."""
        key = self._public.get(env.sender)
        if key is None:
            raise BadEnvelope("unknown-sender")
        self.verifications += 1
        try:
            key.verify(ENVELOPE_TAG, _signed_bytes(self.chain_id, env.body), env.signature)
        except (InvalidSignature, KeyFormatError):
            raise BadEnvelope("bad-signature") from None

    def open(self, env: SignedEnvelope) -> Message:
        """Verify ``env`` and decode its body; raises :class:`BadEnvelope`."""
        self.verify(env)
        try:
            return decode_message(env.body)
        except EncodingError:
            raise BadEnvelope("malformed") from None
