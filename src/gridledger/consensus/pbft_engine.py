"""PBFT behind the engine seam: the pure core of :mod:`gridledger.consensus.pbft` as a
:class:`~gridledger.consensus.engine.ConsensusEngine`.

The adapter translates PBFT's effects into engine-neutral ones and nothing
more: ``PersistVotes`` becomes one :class:`PersistStates` of the live vote log
(:func:`compute_vote_log_write`), ``Certified`` becomes :class:`Finalized` with the commit
certificate (the proof of :func:`~gridledger.ledger.finality.build_bft_rule`),
``NeedStateTransfer`` becomes :class:`NeedSync`, and client replies are dropped
(the node answers clients with receipts from its ledger).

On start it resumes at the highest block of the chain that carries a commit
certificate (at most ``4 × watermark_window`` blocks below the head), with the
vote log it persisted, so it never votes twice differently for one slot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gridledger.consensus import pbft
from gridledger.consensus.effects import (
    PHASE_PREPARED,
    Broadcast,
    Certified,
    Effect,
    Execute,
    NeedStateTransfer,
    PersistVotes,
    Send,
    ViewChanged,
    VoteRecord,
)
from gridledger.consensus.engine import (
    BroadcastFrame,
    EngineContext,
    EngineEffect,
    ExecuteBlock,
    Finalized,
    LeaderChanged,
    NeedSync,
    PersistStates,
    SendFrame,
    register_engine,
)
from gridledger.consensus.messages import ClientRequest
from gridledger.consensus.params import ConsensusParams
from gridledger.crypto.encoding import encode
from gridledger.crypto.errors import EncodingError
from gridledger.errors import ConfigError
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.finality import PBFT_ENGINE

VOTES_KEY = "pbft/votes"
PROOF_KEY_PREFIX = "pbft/proof/"


def compute_pbft_config(genesis: GenesisConfig, params: ConsensusParams) -> pbft.PbftConfig:
    """PBFT's validated settings from the one set of consensus knobs."""
    return pbft.PbftConfig(
        chain_id=genesis.chain_id,
        validators=genesis.validators,
        batch_max=params.max_batch,
        batch_max_bytes=params.max_batch_bytes,
        batch_timeout_ms=params.batch_delay_ms,
        view_change_timeout_ms=params.view_change_timeout_ms,
        checkpoint_interval=params.checkpoint_interval,
        watermark_window=params.watermark_window,
        retransmit_interval_ms=params.retransmit_interval_ms,
        timestamp_tolerance_ms=params.timestamp_tolerance_ms,
        # A lagging replica must fetch blocks well before its request timer could
        # fire, or it starts a view change on its own (and then ignores view v).
        state_transfer_delay_ms=max(100, params.view_change_timeout_ms // 4),
        max_pending_requests=params.max_pending_requests,
        max_inflight_batches=params.max_inflight_batches,
        client_replies=False,  # the node answers clients with receipts from its ledger
    )


class PbftEngine:
    """One replica's PBFT state behind the engine interface."""

    def __init__(self, context: EngineContext, config: pbft.PbftConfig | None = None) -> None:
        self.config = config or compute_pbft_config(context.genesis, context.params)
        stored = read_vote_log(context.read_persisted)
        self._votes = stored.votes
        # What the disk holds in the current layout: the first write after a start
        # moves proofs found inline (a log of the old layout) under their own keys.
        self._votes_on_disk = stored.keyed
        self.restored_votes = len(self._votes)
        self.state = _resume(self.config, context, self._votes)

    # -- reads ------------------------------------------------------------------------

    @property
    def view(self) -> int:
        return int(self.state.view)

    @property
    def leader(self) -> int:
        return int(self.state.primary)

    @property
    def max_request_bytes(self) -> int:
        return self.config.max_request_bytes

    def get_status(self) -> dict[str, Any]:
        s = self.state
        return {
            "engine": PBFT_ENGINE,
            "view": self.view,
            "primary": self.leader,
            "in_view_change": s.in_view_change,
            "low_watermark": s.low_watermark,
            "pending_requests": len(s.pending),
            "restored_votes": self.restored_votes,
            "rejected": dict(s.rejected),
            "view_changes_started": s.view_changes_started,
        }

    # -- events -----------------------------------------------------------------------

    def on_request(self, request: ClientRequest, now_ms: int) -> list[EngineEffect]:
        return self._translate(pbft.on_client_request(self.state, request, now_ms))

    def on_requests(self, requests: Sequence[ClientRequest], now_ms: int) -> list[EngineEffect]:
        return self._translate(pbft.on_client_requests(self.state, requests, now_ms))

    def on_frame(self, sender: int, frame: bytes, now_ms: int) -> list[EngineEffect]:
        return self._translate(pbft.on_frame(self.state, frame, now_ms))

    def on_tick(self, now_ms: int) -> list[EngineEffect]:
        return self._translate(pbft.on_tick(self.state, now_ms))

    def on_executed(self, height: int, header_hash: bytes) -> list[EngineEffect]:
        return self._translate(pbft.on_executed(self.state, height, header_hash))

    def on_synced(self, height: int, header_hash: bytes, timestamp_ms: int) -> list[EngineEffect]:
        return self._translate(
            pbft.on_state_transferred(self.state, height, header_hash, timestamp_ms=timestamp_ms)
        )

    # -- translation ------------------------------------------------------------------

    def _translate(self, effects: list[Effect]) -> list[EngineEffect]:
        out: list[EngineEffect] = []
        for effect in effects:
            if isinstance(effect, PersistVotes):
                live = pbft.compute_live_votes(self._votes, effect)
                out.append(compute_vote_log_write(self._votes_on_disk, live))
                self._votes = self._votes_on_disk = live
            elif isinstance(effect, Send):
                out.append(SendFrame(effect.to, encode(effect.envelope)))
            elif isinstance(effect, Broadcast):
                out.append(BroadcastFrame(encode(effect.envelope)))
            elif isinstance(effect, Execute):
                out.append(
                    ExecuteBlock(effect.seq, effect.requests, effect.timestamp_ms, proposer=0)
                )
            elif isinstance(effect, Certified):
                out.append(Finalized(effect.seq, effect.state_digest, effect.certificate))
            elif isinstance(effect, NeedStateTransfer):
                out.append(NeedSync(effect.target_seq, effect.state_digest, effect.peers))
            elif isinstance(effect, ViewChanged):
                out.append(LeaderChanged(effect.view, effect.primary))
            # ReplyToClient: the node answers clients with receipts from its ledger.
        return out


def get_proof_key(vote: VoteRecord) -> str:
    """The key of the prepared proof of ``vote`` (phase ``prepared``) on disk."""
    return f"{PROOF_KEY_PREFIX}{vote.seq}/{vote.view}"


def compute_vote_log_write(
    old: tuple[VoteRecord, ...], new: tuple[VoteRecord, ...]
) -> PersistStates:
    """The one atomic write that takes the disk from the live votes ``old`` to ``new``.

    A prepared proof holds a whole signed batch (hundreds of kilobytes under load)
    and never changes once made, while the small votes change several times per
    slot. Rewriting every live proof with every vote cost each replica about 1 MB
    written per vote under load; so each proof is written once, under
    :func:`get_proof_key`, and removed in the write that drops it from the live
    set. The vote log under :data:`VOTES_KEY` keeps every row, a proof's row with
    an empty digest (:func:`read_vote_log` puts the proof back). Both go in one
    write, so the disk never holds a log row without its proof.
    """
    old_proofs = {get_proof_key(v): v.digest for v in old if v.phase == PHASE_PREPARED}
    new_proofs = {get_proof_key(v): v.digest for v in new if v.phase == PHASE_PREPARED}
    puts = [(key, proof) for key, proof in new_proofs.items() if old_proofs.get(key) != proof]
    rows = (
        VoteRecord(v.view, v.seq, v.phase, b"") if v.phase == PHASE_PREPARED else v for v in new
    )
    puts.append((VOTES_KEY, pbft.encode_vote_log(rows)))
    deletes = tuple(key for key in old_proofs if key not in new_proofs)
    return PersistStates(tuple(puts), deletes)


@dataclass(frozen=True)
class StoredVotes:
    """The vote log read from disk.

    ``votes`` are the live votes, prepared proofs included. ``keyed`` are the
    same minus the proofs the log carried inline (the layout written before
    proofs had their own keys): what :func:`compute_vote_log_write` must take
    as the disk's state, so that its first write stores those proofs under
    their keys before it empties their rows.
    """

    votes: tuple[VoteRecord, ...]
    keyed: tuple[VoteRecord, ...]


def read_vote_log(read: Callable[[str], bytes | None]) -> StoredVotes:
    """The live votes on disk (what :func:`compute_vote_log_write` wrote). A log that
    does not decode, or a proof it names that is missing, is a corrupt disk: refuse
    to start rather than forget a vote.

    A ``prepared`` row that carries its proof inline (the log as written before
    proofs had their own keys) is taken as it is, and left out of ``keyed``.
    """
    raw = read(VOTES_KEY)
    if raw is None:
        return StoredVotes((), ())
    try:
        rows = pbft.decode_vote_log(raw)
    except EncodingError as exc:
        raise ConfigError(f"the vote log {VOTES_KEY!r} is corrupt: {exc.reason}") from None
    votes: list[VoteRecord] = []
    keyed: list[VoteRecord] = []
    for row in rows:
        if row.phase == PHASE_PREPARED:
            if row.digest:  # inline: not under its own key yet
                votes.append(row)
                continue
            key = get_proof_key(row)
            proof = read(key)
            if proof is None:
                raise ConfigError(f"the vote log names the prepared proof {key!r}, not on disk")
            row = VoteRecord(row.view, row.seq, row.phase, proof)
        votes.append(row)
        keyed.append(row)
    return StoredVotes(tuple(votes), tuple(keyed))


def _resume(
    config: pbft.PbftConfig, context: EngineContext, votes: tuple[VoteRecord, ...]
) -> pbft.ReplicaState:
    """A PBFT state at the highest certified block of the chain (or genesis).

    Blocks executed after it are kept by the node: when the core hands them out
    again, the node answers with the stored header hash instead of re-executing.
    """
    chain = context.chain
    oldest = max(0, chain.height - 4 * config.watermark_window)
    for height in range(chain.height, oldest, -1):
        cert = chain.get_certificate(height)
        header = chain.get_header(height)
        if cert is not None and header is not None:
            return pbft.new_replica_state(
                config,
                context.replica_id,
                context.key,
                stable_seq=height,
                stable_digest=header.header_hash,
                stable_certificate=cert,
                timestamp_ms=header.timestamp_ms,
                votes=votes,
            )
    return pbft.new_replica_state(
        config,
        context.replica_id,
        context.key,
        timestamp_ms=context.genesis.timestamp_ms,
        votes=votes,
    )


register_engine(PBFT_ENGINE, PbftEngine)
