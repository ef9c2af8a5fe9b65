"""PBFT behind the engine seam: the pure core of :mod:`gridledger.consensus.pbft` as a
:class:`~gridledger.consensus.engine.ConsensusEngine`.

The adapter translates PBFT's effects into engine-neutral ones and nothing
more: ``PersistVotes`` becomes one :class:`PersistState` of the live vote log
(under ``pbft/votes``), ``Certified`` becomes :class:`Finalized` with the commit
certificate (the proof of :func:`~gridledger.ledger.finality.build_bft_rule`),
``NeedStateTransfer`` becomes :class:`NeedSync`, and client replies are dropped
(the node answers clients with receipts from its ledger).

On start it resumes at the highest block of the chain that carries a commit
certificate (at most ``4 × watermark_window`` blocks below the head), with the
vote log it persisted, so it never votes twice differently for one slot.
"""

from __future__ import annotations

from typing import Any

from gridledger.consensus import pbft
from gridledger.consensus.effects import (
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
    PersistState,
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
    )


class PbftEngine:
    """One replica's PBFT state behind the engine interface."""

    def __init__(self, context: EngineContext, config: pbft.PbftConfig | None = None) -> None:
        self.config = config or compute_pbft_config(context.genesis, context.params)
        self._votes = _read_votes(context.read_persisted(VOTES_KEY))
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
                self._votes = pbft.compute_live_votes(self._votes, effect)
                out.append(PersistState(VOTES_KEY, pbft.encode_vote_log(self._votes)))
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


def _read_votes(raw: bytes | None) -> tuple[VoteRecord, ...]:
    """The persisted vote log; a blob that does not decode is a corrupt disk: refuse to start."""
    if raw is None:
        return ()
    try:
        return pbft.decode_vote_log(raw)
    except EncodingError as exc:
        raise ConfigError(f"the vote log {VOTES_KEY!r} is corrupt: {exc.reason}") from None


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
