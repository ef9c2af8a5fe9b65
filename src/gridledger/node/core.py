"""The node core: one replica's ledger, consensus engine, state transfer and client intake,
with no I/O of its own.

Events in, effects out::

    frame from a peer ──▶ on_frame(sender, frame, now_ms) ─┐
    client transactions ─▶ submit(payloads, now_ms) ───────┼──▶ list[NodeEffect]:
    time passes ─────────▶ on_tick(now_ms) ────────────────┘     Transmit (to one peer or all)
                                                                  BlockCommitted (waiters)
                                                                  Logged (the log)

The core is the only interpreter of engine effects (:mod:`gridledger.consensus.engine`):
it writes what the engine persists to the injected :class:`~gridledger.ledger.storage.BlockStore`
before carrying out the effects after it, executes ordered batches into blocks,
stores finality proofs, fetches and verifies blocks when the engine (or the
height gossip) says it is behind, and serves blocks to peers that are. The
asyncio replica (:mod:`gridledger.node.replica`) wraps it with sockets, SQLite
and the wall clock; the simulator (:mod:`gridledger.node.simnet`) drives the very
same core over an in-memory network in simulated time with a memory store.

Frames on the wire carry one channel byte: ``0x01`` an engine frame (opaque to
the core), ``0x02`` a node frame (status gossip, block fetch). Nothing a peer
sends can raise out of :meth:`NodeCore.on_frame`: malformed frames are counted
per reason and dropped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gridledger.consensus.engine import (
    AppendToLog,
    BroadcastFrame,
    ConsensusEngine,
    EngineContext,
    EngineEffect,
    EngineFactory,
    ExecuteBlock,
    Finalized,
    LeaderChanged,
    LogConsumer,
    NeedSync,
    PersistState,
    PersistStates,
    SendFrame,
    create_engine,
)
from gridledger.consensus.messages import REQUEST_OVERHEAD_BYTES, ClientRequest
from gridledger.consensus.params import ConsensusParams
from gridledger.crypto.encoding import (
    decode,
    encode,
    from_value,
    get_type_tag,
    wire_name,
)
from gridledger.crypto.errors import EncodingError
from gridledger.crypto.hashing import hash_bytes
from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.errors import GridledgerError, NodeError
from gridledger.ledger.block import Block, GenesisConfig
from gridledger.ledger.certificate import CommitCertificate
from gridledger.ledger.chain import Ledger
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.errors import LedgerError
from gridledger.ledger.execution import Dropped, Receipt, get_nonce_problem
from gridledger.ledger.quorum import compute_f
from gridledger.ledger.storage import BlockStore
from gridledger.ledger.tx import (
    TX_HASH_TAG,
    Transaction,
    decode_transaction,
    verify_transaction_signature,
)
from gridledger.node.sync import (
    MAX_FETCH_BLOCKS,
    MAX_FETCH_BYTES,
    BlocksReply,
    FetchBlocks,
    SyncStatus,
)

ENGINE_CHANNEL = 0x01
NODE_CHANNEL = 0x02
_RECENT_RECEIPT_BLOCKS = 64  # decoded receipts kept for resent transactions
_RECENT_DROPS = 100_000  # transactions left out of blocks, remembered for their askers
_NODE_TYPES: dict[str, type[Any]] = {
    wire_name(SyncStatus): SyncStatus,
    wire_name(FetchBlocks): FetchBlocks,
    wire_name(BlocksReply): BlocksReply,
}


class NodeCoreError(NodeError):
    """The core cannot go on safely (its store refused a write): the replica must stop."""


@dataclass(frozen=True)
class NodeLimits:
    """Bounds on what one replica accepts and how it catches up."""

    max_tx_bytes: int = 64 * 1024
    max_submit_txs: int = 2_000
    # Admission control: transactions accepted and not yet committed. Past it a
    # client hears "busy, retry after N ms" and nothing is kept, so the queue, and
    # with it the latency, stays bounded past saturation: about max_inflight_txs /
    # throughput (2,000 at ~1,000-3,000 tx/s: 0.7-2 s), while two full batches
    # (max_batch 1,000) still fit. The retry delay is the time the committed rate
    # of the last seconds needs to drain half the queue, within
    # [busy_retry_ms, max_busy_retry_ms]: clients come back when there is room
    # instead of resending in a storm that costs the replicas CPU.
    max_inflight_txs: int = 2_000
    # Within that bound the queue follows the load: at most what the committed rate
    # of the last gossip period clears in queue_delay_ms (never below
    # min_inflight_txs), so that past saturation an accepted transaction waits
    # about queue_delay_ms, whatever this machine's throughput (0: the fixed bound).
    queue_delay_ms: int = 1_000
    min_inflight_txs: int = 500
    inflight_expiry_ms: int = 60_000
    busy_retry_ms: int = 200
    max_busy_retry_ms: int = 2_000
    gossip_ms: int = 1_000
    lag_before_sync_ms: int = 2_000
    fetch_timeout_ms: int = 3_000
    sync_deadline_ms: int = 120_000
    max_decoded: int = 200_000


@dataclass(frozen=True)
class Transmit:
    """Send ``frame`` to replica ``to`` (``None``: to every other replica)."""

    to: int | None
    frame: bytes


@dataclass(frozen=True)
class BlockCommitted:
    """Block ``block`` was executed (or imported) and stored, with its receipts.

    ``dropped``: transactions of the ordered batch left out of the block (a
    nonce already used or too old), so that whoever waits for them is told.
    """

    block: Block
    receipts: tuple[Receipt, ...]
    dropped: tuple[Dropped, ...] = ()


@dataclass(frozen=True)
class Logged:
    """Something worth a line in the log (``level`` as in :mod:`logging`)."""

    level: int
    message: str


@dataclass(frozen=True)
class LogAppend:
    """Publish ``payload`` to the external ordered log under dedup ``key`` (log engines only)."""

    key: str
    payload: bytes


NodeEffect = Transmit | BlockCommitted | Logged | LogAppend


def compute_receipt_json(
    receipt: Receipt, height: int, index: int, block_hash: bytes
) -> dict[str, Any]:
    """The API form of a receipt: identical on every honest replica."""
    return {
        "tx_hash": receipt.tx_hash.hex(),
        "status": "committed" if receipt.ok else "rejected",
        "reason": receipt.reason,
        "data": receipt.data.hex(),
        "height": height,
        "index": index,
        "block_hash": block_hash.hex(),
    }


def compute_dropped_json(dropped: Dropped, height: int) -> dict[str, Any]:
    """The API answer for a transaction ordered into block ``height`` but left out of it."""
    return {
        "tx_hash": dropped.tx_hash.hex(),
        "status": "dropped",
        "reason": dropped.reason,
        "height": height,
    }


@dataclass
class _Sync:
    """A running state transfer: fetch blocks up to ``target`` from ``peers`` in turn."""

    target: int
    peers: tuple[int, ...]
    by_engine: bool
    deadline_ms: int
    turn: int = 0
    request_id: int | None = None
    asked: int = -1
    asked_until_ms: int = 0


@dataclass
class _Gossip:
    heights: dict[int, int] = field(default_factory=dict)
    behind_since_ms: int | None = None
    next_ms: int = 0


class _StoreChain:
    """The read-only chain view an engine gets at start."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @property
    def height(self) -> int:
        return self._ledger.height

    def get_header(self, height: int) -> Any:
        return self._ledger.store.get_header(height)

    def get_certificate(self, height: int) -> CommitCertificate | None:
        return self._ledger.store.get_certificate(height)

    def get_state(self, key: bytes) -> bytes | None:
        return self._ledger.state.get(key)


class NodeCore:
    """One replica, sans I/O: ledger + engine + state transfer + client intake."""

    def __init__(
        self,
        *,
        replica_id: int,
        key: Ed25519PrivateKey,
        genesis: GenesisConfig,
        store: BlockStore,
        registry: ContractRegistry,
        params: ConsensusParams,
        rng: Rng,
        limits: NodeLimits | None = None,
        engine_factory: EngineFactory | None = None,
        verify_on_submit: bool = False,
    ) -> None:
        self.replica_id = replica_id
        self.genesis = genesis
        self.store = store
        self.params = params
        self.limits = limits or NodeLimits()
        self.rng = rng
        self.verify_on_submit = verify_on_submit
        self.n = len(genesis.validators)
        self.f = compute_f(self.n)
        self.peers = tuple(v.replica_id for v in genesis.validators if v.replica_id != replica_id)
        self.ledger = Ledger(store, registry, genesis)
        context = EngineContext(
            replica_id, key, genesis, params, _StoreChain(self.ledger), store.get_meta, rng
        )
        self.engine: ConsensusEngine = (engine_factory or create_engine)(context)
        self.bad_frames: Counter[str] = Counter()
        self.executed_txs = 0
        self.busy_answers = 0
        self._rate_sample: tuple[int, int] | None = None  # (now_ms, executed_txs)
        self._commit_rate = 0.0  # transactions per second, over the last gossip period
        self._decoded: dict[bytes, Transaction] = {}
        self._inflight: dict[bytes, int] = {}  # tx hash -> accepted at (ms)
        self._recent_receipts: dict[int, tuple[tuple[Receipt, ...], bytes]] = {}
        self._recent_index: dict[bytes, tuple[int, int]] = {}  # tx hash -> (height, index)
        self._recent_drops: dict[bytes, tuple[Dropped, int]] = {}  # with the block height
        self._sync: _Sync | None = None
        self._gossip = _Gossip()
        self.failed = False

    # -- reads ------------------------------------------------------------------------

    @property
    def view(self) -> int:
        return self.engine.view

    @property
    def leader(self) -> int:
        return self.engine.leader

    @property
    def is_syncing(self) -> bool:
        return self._sync is not None

    @property
    def max_request_bytes(self) -> int:
        """The largest request the engine takes (PBFT: what fits a batch)."""
        bound = getattr(self.engine, "max_request_bytes", None)
        return bound if isinstance(bound, int) else self.limits.max_tx_bytes + 1024

    @property
    def max_tx_bytes(self) -> int:
        """The largest transaction accepted at submit: 64 KiB, or less if a batch is smaller."""
        room = self.max_request_bytes - REQUEST_OVERHEAD_BYTES - 32
        return min(self.limits.max_tx_bytes, room)

    def get_receipt_json(self, tx_hash: bytes) -> dict[str, Any] | None:
        """The stored receipt of ``tx_hash`` in API form, or ``None`` if not on chain.

        Accepted and not yet committed: ``None`` without a store read. In one of
        the last blocks: from memory. Otherwise one indexed read, and the block's
        receipts are kept decoded for the next ones asked for.
        """
        if tx_hash in self._inflight:
            return None
        found = self._recent_index.get(tx_hash) or self.store.find_tx(tx_hash)
        if found is None:
            return self._get_drop_json(tx_hash)
        height, index = found
        cached = self._recent_receipts.get(height)
        if cached is None:
            receipts = self.store.get_receipts(height)
            header = self.store.get_header(height)
            if receipts is None or header is None:
                return None
            cached = (receipts, header.header_hash)
            self._remember_receipts(height, cached)
        receipts, block_hash = cached
        if index >= len(receipts):
            return None
        return compute_receipt_json(receipts[index], height, index, block_hash)

    def _remember_receipts(self, height: int, entry: tuple[tuple[Receipt, ...], bytes]) -> None:
        """Keep the receipts of the last few blocks decoded and indexed (bounded).

        Resent transactions (a client retrying after ``busy`` or a lost answer)
        are mostly in recent blocks; without this, every one of them would read
        and decode its whole block's receipts again.
        """
        if height in self._recent_receipts:
            return
        self._recent_receipts[height] = entry
        for index, receipt in enumerate(entry[0]):
            self._recent_index.setdefault(receipt.tx_hash, (height, index))
        while len(self._recent_receipts) > _RECENT_RECEIPT_BLOCKS:
            old = next(iter(self._recent_receipts))
            for receipt in self._recent_receipts.pop(old)[0]:
                if self._recent_index.get(receipt.tx_hash, (old, 0))[0] == old:
                    self._recent_index.pop(receipt.tx_hash, None)

    def get_status(self) -> dict[str, Any]:
        head = self.ledger.head
        return {
            "replica_id": self.replica_id,
            "chain_id": self.genesis.chain_id,
            "engine": self.genesis.engine,
            "n": self.n,
            "f": self.f,
            "height": head.height,
            "head_hash": head.header_hash.hex(),
            "view": self.view,
            "primary": self.leader,
            "syncing": self.is_syncing,
            "executed_txs": self.executed_txs,
            "inflight_txs": len(self._inflight),
            "busy_answers": self.busy_answers,
            "bad_frames": dict(self.bad_frames),
            "consensus": self.engine.get_status(),
        }

    # -- events: clients --------------------------------------------------------------

    def submit(
        self, payloads: Sequence[bytes], now_ms: int
    ) -> tuple[list[dict[str, Any]], list[NodeEffect]]:
        """Take client transactions; one result per payload, plus the effects to carry out.

        A transaction already on chain is answered with its receipt at once (a
        retry after a lost answer is idempotent), one left out of a recent block
        with ``dropped``; one already accepted and not yet committed is
        ``pending`` again without a second request; one whose nonce the state
        shows used or too old is ``invalid`` (it would be left out of any block);
        past the admission bound the answer is ``busy`` with a retry delay, and
        nothing of the transaction is kept.
        """
        results: list[dict[str, Any]] = []
        out: list[NodeEffect] = []
        max_tx = self.max_tx_bytes
        capacity = self.admission_limit
        retry_after_ms: int | None = None  # computed once per call, when first needed
        state = self.ledger.state
        accepted: list[ClientRequest] = []  # handed to the engine together, at the end
        for payload in payloads:
            if len(self._inflight) >= capacity and len(payload) <= max_tx:
                if retry_after_ms is None:
                    retry_after_ms = self.get_retry_after_ms()
                results.append(self._answer_at_capacity(payload, retry_after_ms))
                continue
            if len(payload) > max_tx:
                results.append(
                    {
                        "status": "invalid",
                        "error": "too-large",
                        "reason": f"transaction too large: {len(payload)} bytes, at most {max_tx}",
                    }
                )
                continue
            try:
                tx = decode_transaction(payload)
                if tx.chain_id != self.genesis.chain_id:
                    raise NodeError(f"transaction is for chain {tx.chain_id!r}")
                if self.verify_on_submit:
                    verify_transaction_signature(tx)
            except GridledgerError as exc:
                results.append({"status": "invalid", "reason": exc.reason})
                continue
            # Every receipt spends its nonce: with a fresh nonce the transaction is not on
            # chain, and only the drops need a look (a dict), not the store's index.
            problem = get_nonce_problem(state, tx.sender, tx.nonce)
            if problem:
                known = self.get_receipt_json(tx.tx_hash)
            else:
                known = self._get_drop_json(tx.tx_hash)
            if known is not None:
                results.append(known)
                continue
            pending = {"tx_hash": tx.tx_hash.hex(), "status": "pending"}
            if tx.tx_hash in self._inflight:
                if problem:  # left out of a block this replica fetched (state transfer)
                    del self._inflight[tx.tx_hash]
                    drop = self._remember_drop(Dropped(tx.tx_hash, problem), self.ledger.height)
                    results.append(compute_dropped_json(*drop))
                else:
                    results.append(pending)
                continue
            if problem:
                results.append(
                    {
                        "tx_hash": tx.tx_hash.hex(),
                        "status": "invalid",
                        "error": problem.replace(" ", "-"),
                        "reason": f"{problem} {tx.nonce} for sender {tx.sender.hex()[:16]}",
                    }
                )
                continue
            if len(self._inflight) >= capacity:
                self.busy_answers += 1
                results.append(
                    {
                        "tx_hash": tx.tx_hash.hex(),
                        "status": "busy",
                        "reason": "replica at capacity",
                        "retry_after_ms": self.get_retry_after_ms(),
                    }
                )
                continue
            self._inflight[tx.tx_hash] = now_ms
            self._remember_decoded(payload, tx)
            results.append(pending)
            accepted.append(ClientRequest(tx.sender, tx.nonce, payload))
        if accepted:
            out.extend(self._run(self._hand_over(accepted, now_ms), now_ms))
        return results, out

    def _hand_over(self, requests: list[ClientRequest], now_ms: int) -> list[EngineEffect]:
        """One call's requests to the engine: in one call if it takes batches
        (:class:`~gridledger.consensus.engine.TakesRequestBatches`), else one by one."""
        on_requests = getattr(self.engine, "on_requests", None)
        if on_requests is not None:
            effects: list[EngineEffect] = on_requests(requests, now_ms)
            return effects
        return [e for request in requests for e in self.engine.on_request(request, now_ms)]

    def _answer_at_capacity(self, payload: bytes, retry_after_ms: int) -> dict[str, Any]:
        """At the admission bound: answer from memory, without decoding or reading the store.

        Overloaded replicas hear many resent transactions; refusing one must
        cost far less than executing one, or refusals eat the capacity they
        protect. The payload's hash under the transaction tag is its hash if it
        is a transaction at all; a pending or recently committed one gets its
        usual answer, anything else ``busy`` (always a safe answer: nothing is
        kept or ordered, and the full checks run when the client comes back).
        """
        tx_hash = hash_bytes(TX_HASH_TAG, payload)
        if tx_hash in self._inflight:
            return {"tx_hash": tx_hash.hex(), "status": "pending"}
        if tx_hash in self._recent_index or tx_hash in self._recent_drops:
            known = self.get_receipt_json(tx_hash)
            if known is not None:
                return known
        self.busy_answers += 1
        return {
            "tx_hash": tx_hash.hex(),
            "status": "busy",
            "reason": "replica at capacity",
            "retry_after_ms": retry_after_ms,
        }

    def on_request(self, request: ClientRequest, now_ms: int) -> list[NodeEffect]:
        """Hand an already checked request to the engine (``submit`` does the checks).

        The engine orders whatever it is given; a payload that is not a transaction
        is left out of the block by every replica alike.
        """
        return self._run(self.engine.on_request(request, now_ms), now_ms)

    # -- events: peers ----------------------------------------------------------------

    def on_frame(self, sender: int, frame: bytes, now_ms: int) -> list[NodeEffect]:
        """A frame from replica ``sender`` (authenticated by the transport)."""
        if not frame or sender == self.replica_id or sender not in self.peers:
            self.bad_frames["unknown-sender" if frame else "empty"] += 1
            return []
        channel, body = frame[0], frame[1:]
        try:
            if channel == ENGINE_CHANNEL:
                return self._run(self.engine.on_frame(sender, body, now_ms), now_ms)
            if channel == NODE_CHANNEL:
                return self._on_node_frame(sender, body, now_ms)
            self.bad_frames["unknown-channel"] += 1
        except NodeCoreError:
            raise
        except GridledgerError as exc:
            self.bad_frames[type(exc).__name__] += 1
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:  # a handler bug must not stop the replica; say so once
            self.bad_frames["handler-bug"] += 1
            level = logging.ERROR if self.bad_frames["handler-bug"] == 1 else logging.DEBUG
            return [Logged(level, f"frame from {sender} hit a bug: {exc!r}")]
        return []

    def _on_node_frame(self, sender: int, body: bytes, now_ms: int) -> list[NodeEffect]:
        try:
            value = decode(body, max_size=MAX_FETCH_BYTES + 1024 * 1024)
            cls = _NODE_TYPES.get(get_type_tag(value) or "")
            if cls is None:
                self.bad_frames["unknown-type"] += 1
                return []
            msg = from_value(cls, value)
        except EncodingError:
            self.bad_frames["malformed"] += 1
            return []
        if isinstance(msg, SyncStatus):
            if msg.height >= 0:
                self._gossip.heights[sender] = msg.height
            return []
        if isinstance(msg, FetchBlocks):
            return self._serve_fetch(sender, msg)
        assert isinstance(msg, BlocksReply)
        return self._on_blocks(sender, msg, now_ms)

    # -- events: an external ordered log ------------------------------------------------

    @property
    def log_position(self) -> int:
        """Where the log adapter resumes (0 if the engine consumes no log)."""
        return self.engine.log_position if isinstance(self.engine, LogConsumer) else 0

    def on_log(self, seq: int, payload: bytes, now_ms: int) -> list[NodeEffect]:
        """Entry ``seq`` of the external ordered log, from the shell's log adapter."""
        if not isinstance(self.engine, LogConsumer):
            return []
        return self._run(self.engine.on_log(seq, payload, now_ms), now_ms)

    # -- events: time -----------------------------------------------------------------

    def on_tick(self, now_ms: int) -> list[NodeEffect]:
        """Timers: the engine's, state-transfer retries, height gossip, admission expiry."""
        out = self._run(self.engine.on_tick(now_ms), now_ms)
        if self._sync is not None:
            out.extend(self._on_sync_tick(now_ms))
        if now_ms >= self._gossip.next_ms:
            self._gossip.next_ms = now_ms + self.limits.gossip_ms
            out.extend(self._gossip_tick(now_ms))
            self._expire_inflight(now_ms)
            self._sample_commit_rate(now_ms)
        return out

    # -- engine effects ---------------------------------------------------------------

    def _run(self, effects: list[EngineEffect], now_ms: int) -> list[NodeEffect]:
        """Carry out engine effects in order; executing or syncing may yield more."""
        out: list[NodeEffect] = []
        queue = list(effects)
        i = 0
        while i < len(queue):
            effect = queue[i]
            i += 1
            if isinstance(effect, PersistState | PersistStates):
                self._persist(effect)
            elif isinstance(effect, SendFrame):
                out.append(Transmit(effect.to, bytes([ENGINE_CHANNEL]) + effect.frame))
            elif isinstance(effect, BroadcastFrame):
                out.append(Transmit(None, bytes([ENGINE_CHANNEL]) + effect.frame))
            elif isinstance(effect, ExecuteBlock):
                header_hash = self._execute(effect, out)
                queue.extend(self.engine.on_executed(effect.height, header_hash))
            elif isinstance(effect, Finalized):
                self._on_finalized(effect, out)
            elif isinstance(effect, NeedSync):
                out.extend(self._start_sync(effect.target, effect.peers, now_ms, by_engine=True))
            elif isinstance(effect, AppendToLog):
                out.append(LogAppend(effect.key, effect.payload))
            elif isinstance(effect, LeaderChanged):
                out.append(
                    Logged(
                        logging.INFO,
                        f"replica {self.replica_id} entered view {effect.view} "
                        f"(leader {effect.leader})",
                    )
                )
        return out

    def _persist(self, effect: PersistState | PersistStates) -> None:
        """Durable before any later effect of the list; a failed write stops the replica."""
        try:
            if isinstance(effect, PersistState):
                self.store.put_meta(effect.key, effect.blob)
            else:
                self.store.update_meta(effect.puts, effect.deletes)
        except Exception as exc:
            self.failed = True
            if isinstance(effect, PersistState):
                what = effect.key
            else:
                what = ", ".join(k for k, _ in effect.puts) or ", ".join(effect.deletes)
            raise NodeCoreError(f"cannot persist {what[:200]!r}: {exc}") from exc

    def _execute(self, effect: ExecuteBlock, out: list[NodeEffect]) -> bytes:
        """Execute an ordered batch into block ``effect.height``; returns its header hash."""
        if effect.height != self.ledger.height + 1:
            # Already executed before a restart (the engine replays from its stable point).
            header = self.store.get_header(effect.height)
            if header is not None:
                return header.header_hash
            raise NodeCoreError(f"asked to execute {effect.height} at height {self.ledger.height}")
        txs: list[Transaction] = []
        for req in effect.requests:
            tx = self._decoded.pop(req.payload, None)
            if tx is None:
                try:
                    tx = decode_transaction(req.payload)
                except EncodingError:
                    continue  # not a transaction: dropped by every replica alike
            txs.append(tx)
        block, outcome = self.ledger.commit(
            txs, effect.timestamp_ms, proposer=effect.proposer, view=0
        )
        self._on_committed(block, outcome.receipts, out, outcome.dropped)
        return block.header.header_hash

    def _on_committed(
        self,
        block: Block,
        receipts: tuple[Receipt, ...],
        out: list[NodeEffect],
        dropped: tuple[Dropped, ...] = (),
    ) -> None:
        self.executed_txs += len(block.transactions)
        for tx in block.transactions:
            self._inflight.pop(tx.tx_hash, None)
        if dropped:
            included = {tx.tx_hash for tx in block.transactions}
            dropped = tuple(d for d in dropped if d.tx_hash not in included)
            for d in dropped:
                self._inflight.pop(d.tx_hash, None)
                self._remember_drop(d, block.height)
        self._remember_receipts(block.height, (receipts, block.header.header_hash))
        out.append(BlockCommitted(block, receipts, dropped))

    def _on_finalized(self, effect: Finalized, out: list[NodeEffect]) -> None:
        try:
            self.ledger.attach_certificate(effect.height, effect.proof)
        except LedgerError as exc:
            out.append(
                Logged(
                    logging.WARNING,
                    f"replica {self.replica_id}: proof for {effect.height} refused: {exc.reason}",
                )
            )

    def _get_drop_json(self, tx_hash: bytes) -> dict[str, Any] | None:
        """The ``dropped`` answer of a transaction left out of a recent block, if it was."""
        drop = self._recent_drops.get(tx_hash)
        return None if drop is None else compute_dropped_json(*drop)

    def _remember_drop(self, dropped: Dropped, height: int) -> tuple[Dropped, int]:
        """Remember a transaction left out of block ``height`` (bounded, oldest forgotten).

        Every replica executes the same batches, so every one remembers the same
        drops and answers the transaction alike (clients need f+1 equal answers),
        however late they ask; the first drop of a hash is kept.
        """
        entry = self._recent_drops.setdefault(dropped.tx_hash, (dropped, height))
        while len(self._recent_drops) > _RECENT_DROPS:
            del self._recent_drops[next(iter(self._recent_drops))]
        return entry

    def _remember_decoded(self, payload: bytes, tx: Transaction) -> None:
        """Keep the decoded form of a submitted transaction for its execution (bounded)."""
        self._decoded[payload] = tx
        while len(self._decoded) > self.limits.max_decoded:
            del self._decoded[next(iter(self._decoded))]

    def get_retry_after_ms(self) -> int:
        """How long a client told ``busy`` should wait: half the queue's drain time."""
        limits = self.limits
        if self._commit_rate <= 0:  # nothing committed lately: stalled (or just started)
            return limits.max_busy_retry_ms if self._inflight else limits.busy_retry_ms
        drain_ms = int(500 * len(self._inflight) / self._commit_rate)
        return max(limits.busy_retry_ms, min(limits.max_busy_retry_ms, drain_ms))

    @property
    def admission_limit(self) -> int:
        """How many accepted, uncommitted transactions this replica holds before ``busy``.

        A fixed bound lets the queueing delay past saturation grow with it
        (2,000 at 1,000 tx/s is two seconds); bounding the queue by what the
        recent commit rate clears in ``queue_delay_ms`` bounds the delay instead.
        The floor keeps batches full when the rate is low because little was
        offered, and with no recent commits (start, stall) the fixed bound holds.
        """
        limits = self.limits
        rate = self._commit_rate
        if limits.queue_delay_ms <= 0 or rate <= 0:
            return limits.max_inflight_txs
        by_rate = int(rate * limits.queue_delay_ms / 1000)
        return max(
            min(limits.min_inflight_txs, limits.max_inflight_txs),
            min(limits.max_inflight_txs, by_rate),
        )

    @property
    def commit_rate(self) -> float:
        """Transactions per second committed over the last gossip period (0: none lately)."""
        return self._commit_rate

    def _sample_commit_rate(self, now_ms: int) -> None:
        sample = self._rate_sample
        self._rate_sample = (now_ms, self.executed_txs)
        if sample is not None and now_ms > sample[0]:
            self._commit_rate = (self.executed_txs - sample[1]) * 1000 / (now_ms - sample[0])

    def _expire_inflight(self, now_ms: int) -> None:
        """Forget accepted transactions that never committed (a client may resubmit them)."""
        horizon = now_ms - self.limits.inflight_expiry_ms
        stale = [h for h, t in self._inflight.items() if t < horizon]
        for h in stale:
            del self._inflight[h]

    # -- state transfer ---------------------------------------------------------------

    def _start_sync(
        self, target: int, peers: Sequence[int], now_ms: int, *, by_engine: bool
    ) -> list[NodeEffect]:
        if target <= self.ledger.height:
            if by_engine:
                return self._finish_sync(now_ms)
            return []
        # A transfer the engine waits for (it executes nothing until then) pre-empts a
        # catch-up started by gossip, which peers could keep busy; nothing else does.
        if self._sync is not None and (self._sync.by_engine or not by_engine):
            return []
        candidates = tuple(p for p in peers if p in self.peers) or self.peers
        self._sync = _Sync(
            target, candidates, by_engine, deadline_ms=now_ms + self.limits.sync_deadline_ms
        )
        log = Logged(
            logging.INFO,
            f"replica {self.replica_id}: state transfer from height {self.ledger.height} "
            f"to {target}",
        )
        return [log, *self._ask_next(now_ms)]

    def _ask_next(self, now_ms: int) -> list[NodeEffect]:
        sync = self._sync
        assert sync is not None
        peer = sync.peers[sync.turn % len(sync.peers)]
        sync.turn += 1
        sync.request_id = self.rng.randbelow(1 << 63)  # unpredictable: no reply can be pre-sent
        sync.asked = peer
        sync.asked_until_ms = now_ms + self.limits.fetch_timeout_ms
        ask = FetchBlocks(sync.request_id, self.ledger.height + 1, sync.target)
        return [Transmit(peer, bytes([NODE_CHANNEL]) + encode(ask))]

    def _on_sync_tick(self, now_ms: int) -> list[NodeEffect]:
        sync = self._sync
        assert sync is not None
        if now_ms >= sync.deadline_ms:
            return self._finish_sync(now_ms)
        if now_ms >= sync.asked_until_ms:
            return self._ask_next(now_ms)
        return []

    def _on_blocks(self, sender: int, reply: BlocksReply, now_ms: int) -> list[NodeEffect]:
        sync = self._sync
        if sync is None or reply.request_id != sync.request_id or sender != sync.asked:
            self.bad_frames["unasked-blocks"] += 1  # not asked, or not asked of this peer
            return []
        sync.request_id = None
        out: list[NodeEffect] = []
        try:
            self._import_segment(reply, sync.target, out)
        except GridledgerError as exc:
            out.append(
                Logged(
                    logging.WARNING,
                    f"replica {self.replica_id}: blocks from {sender} refused: {exc.reason}",
                )
            )
        if self.ledger.height >= sync.target:
            out.extend(self._finish_sync(now_ms))
        else:
            out.extend(self._ask_next(now_ms))
        return out

    def _import_segment(self, reply: BlocksReply, target: int, out: list[NodeEffect]) -> None:
        """Apply the longest finalised prefix of ``reply``."""
        blocks = [b for b in reply.blocks if b.height <= target]
        proofs = list(reply.certificates[: len(blocks)])
        # The last finalised block vouches for every block it links back to.
        last = max((i for i, c in enumerate(proofs) if c is not None), default=-1)
        if last < 0:
            return
        anchor, proof = blocks[last], proofs[last]
        assert proof is not None
        self.ledger.finality.check(anchor.header, proof)
        for i in range(last, 0, -1):
            if blocks[i].header.prev_hash != blocks[i - 1].header.header_hash:
                raise LedgerError("fetched blocks do not link")
        for block, cert in zip(blocks[: last + 1], proofs, strict=False):
            if block.height != self.ledger.height + 1:
                raise LedgerError("fetched blocks do not start at the next height")
            outcome = self.ledger.apply(block, cert)
            self._on_committed(block, outcome.receipts, out)

    def _finish_sync(self, now_ms: int) -> list[NodeEffect]:
        self._sync = None
        head = self.ledger.head
        out: list[NodeEffect] = [
            Logged(
                logging.INFO,
                f"replica {self.replica_id}: state transfer done at height {head.height}",
            )
        ]
        out.extend(
            self._run(
                self.engine.on_synced(head.height, head.header_hash, head.timestamp_ms), now_ms
            )
        )
        return out

    def _serve_fetch(self, sender: int, msg: FetchBlocks) -> list[NodeEffect]:
        last = min(msg.to_height, msg.from_height + MAX_FETCH_BLOCKS - 1)
        blocks: list[Block] = []
        certs: list[CommitCertificate | None] = []
        size = 0
        for block, cert in self.ledger.export_blocks(msg.from_height, last):
            blocks.append(block)
            certs.append(cert)
            size += len(encode(block)) + (0 if cert is None else len(encode(cert)))
            if size > MAX_FETCH_BYTES and len(blocks) > 1:
                blocks.pop()  # always at least one block
                certs.pop()
                break
        reply = BlocksReply(msg.request_id, tuple(blocks), tuple(certs))
        return [Transmit(sender, bytes([NODE_CHANNEL]) + encode(reply))]

    def _gossip_tick(self, now_ms: int) -> list[NodeEffect]:
        """Tell peers our height; catch up if f+1 peers have been ahead for a while."""
        status = SyncStatus(self.ledger.height, self.ledger.head.header_hash, self.view)
        out: list[NodeEffect] = [Transmit(None, bytes([NODE_CHANNEL]) + encode(status))]
        height = self.ledger.height
        ahead = sorted((h for h in self._gossip.heights.values() if h > height), reverse=True)
        if len(ahead) <= self.f:
            self._gossip.behind_since_ms = None
            return out
        if self._gossip.behind_since_ms is None:
            self._gossip.behind_since_ms = now_ms
        elif now_ms - self._gossip.behind_since_ms > self.limits.lag_before_sync_ms:
            self._gossip.behind_since_ms = None
            target = ahead[self.f]  # at least f+1 peers claim this height
            out.extend(self._start_sync(target, (), now_ms, by_engine=False))
        return out
