"""The replica runtime: the asyncio driver around the pure PBFT core and the ledger.

One event loop per replica process. Frames from the transport, client
requests from the API and clock ticks are fed into the PBFT handlers; the
effects they return are carried out in order:

* ``Send`` / ``Broadcast``: encoded envelopes handed to the transport;
* ``Execute``: the batch's payloads are decoded as ledger transactions
  (undecodable ones are dropped, identically on every replica), executed into
  the next block and stored atomically (block, receipts, state) in SQLite; the
  header hash goes back to the core through ``on_executed``;
* ``Certified``: the commit certificate is stored with its block;
* ``ReplyToClient``: receipts are handed to the API callers waiting on them;
* ``NeedStateTransfer``: blocks are fetched from peers (:mod:`gridledger.node.sync`),
  trusted through a commit certificate and re-executed, then ``on_state_transferred``;
* ``ViewChanged``: logged and the view persisted in the store's meta area;
* ``PersistVotes`` (always first in its list): the replica's live votes are
  rewritten as one blob under the meta key ``pbft/votes`` (one SQLite
  transaction, fsynced under ``synchronous=FULL``) before any later effect of
  the list, so no vote leaves the process before it is on disk.

Transaction signatures are checked once per replica, when the block executes
(``ledger.execution``); ``submit`` only decodes and keeps the decoded form for
execution (``verify_on_submit=True`` adds an early check). Frames are
processed in slices of at most ``_SLICE_S`` seconds so that signature checks
never hold the loop for long. A replica restarted after
SIGKILL reopens its store (the ledger checks state against the head header),
reloads its votes (and with them its view: it never votes twice differently at
one view and seq), and catches up from peers: either PBFT asks for a state
transfer, or the periodic height gossip shows f+1 peers ahead of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gridledger.consensus import pbft
from gridledger.consensus.clock import Clock
from gridledger.consensus.effects import (
    Broadcast,
    Certified,
    Effect,
    Execute,
    NeedStateTransfer,
    PersistVotes,
    ReplyToClient,
    Send,
    ViewChanged,
    VoteRecord,
)
from gridledger.consensus.messages import (
    REQUEST_OVERHEAD_BYTES,
    ClientRequest,
    SignedEnvelope,
    compute_request_size,
)
from gridledger.consensus.tcp import TcpTransport
from gridledger.consensus.transport import Transport, TransportError
from gridledger.crypto.encoding import TYPE_KEY, decode, decode_as, encode, from_value, wire_name
from gridledger.crypto.errors import EncodingError
from gridledger.crypto.rng import SYSTEM_RNG
from gridledger.errors import ConfigError, GridledgerError
from gridledger.identity.contracts import IdentityContract
from gridledger.ledger.block import Block, GenesisConfig
from gridledger.ledger.certificate import CommitCertificate
from gridledger.ledger.chain import Ledger, check_certificate_for
from gridledger.ledger.contracts import Contract, ContractRegistry
from gridledger.ledger.contracts_builtin import KvContract
from gridledger.ledger.errors import LedgerError
from gridledger.ledger.execution import Receipt
from gridledger.ledger.storage import SqliteBlockStore
from gridledger.ledger.tx import Transaction, verify_transaction_signature
from gridledger.node.api import (
    ApiError,
    ApiServer,
    TooManyTransactions,
    get_hex_param,
    get_param,
)
from gridledger.node.config import NodeConfig
from gridledger.node.consortium import load_genesis
from gridledger.node.identity_material import get_identity_config
from gridledger.node.keys import read_key
from gridledger.node.sync import (
    MAX_FETCH_BLOCKS,
    MAX_FETCH_BYTES,
    BlocksReply,
    FetchBlocks,
    SyncStatus,
)

log = logging.getLogger("gridledger.replica")

_SLICE_S = 0.02
_FETCH_TIMEOUT_S = 3.0
_GOSSIP_S = 1.0
_LAG_BEFORE_SYNC_S = 2.0
_VIEW_META = "node/view"
VOTES_META = "pbft/votes"
_MAX_DECODED = 200_000
MAX_TX_BYTES = 64 * 1024  # a transaction's encoding, checked at submit
MAX_SUBMIT_TXS = 2_000  # transactions per submit call
_SUBMIT_SLICE = 100  # yield to the event loop after decoding this many transactions
_ENVELOPE = wire_name(SignedEnvelope)
_SYNC_TYPES: dict[str, type[Any]] = {
    wire_name(SyncStatus): SyncStatus,
    wire_name(FetchBlocks): FetchBlocks,
    wire_name(BlocksReply): BlocksReply,
}


def build_registry(genesis: GenesisConfig | None = None) -> ContractRegistry:
    """The contracts every replica runs, built deterministically from the genesis.

    Always the KV contract; plus the identity contract when the genesis carries
    the identity material (:func:`~gridledger.node.identity_material.get_identity_config`,
    :class:`~gridledger.errors.ConfigError` if it is corrupt). All replicas of a
    chain share the genesis, so they register the same contracts.
    """
    contracts: list[Contract] = [KvContract()]
    if genesis is not None:
        identity = get_identity_config(genesis)
        if identity is not None:
            contracts.append(IdentityContract(identity))
    return ContractRegistry(tuple(contracts))


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


class WallClock:
    """Milliseconds since the Unix epoch, never decreasing.

    Block timestamps are agreed from the primary's clock and compared with the
    backups' clocks (and with the genesis time), so the replicas need a shared
    origin: the wall clock, not ``SystemClock``'s per-boot monotonic one.
    """

    def __init__(self) -> None:
        self._last = 0

    def now_ms(self) -> int:
        self._last = max(self._last, time.time_ns() // 1_000_000)
        return self._last


@dataclass
class _PeerHeights:
    """What each peer last gossiped, and since when this replica has been behind."""

    heights: dict[int, int] = field(default_factory=dict)
    behind_since: float | None = None


class Replica:
    """One consortium replica: PBFT core + ledger + transport + client API."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        transport: Transport | None = None,
        clock: Clock | None = None,
        registry: ContractRegistry | None = None,
        synchronous: str = "FULL",
        verify_on_submit: bool = False,
    ) -> None:
        self.config = config
        self.id = config.replica_id
        self.key = read_key(config.key_file)
        self.genesis: GenesisConfig = load_genesis(config.genesis_file)
        if self.genesis.chain_id != config.chain_id:
            raise GridledgerError(
                f"genesis is for chain {self.genesis.chain_id!r}, config says {config.chain_id!r}"
            )
        if len(self.genesis.validators) != config.n:
            raise GridledgerError("the genesis validator set and the peer list differ in size")
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            if not config.data_dir.is_dir():
                raise ConfigError(f"data_dir {config.data_dir} is not a directory")
            self.store = SqliteBlockStore(
                config.data_dir / "chain.sqlite",
                synchronous="NORMAL" if synchronous == "NORMAL" else "FULL",
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot use data_dir {config.data_dir}: {exc.strerror or exc}"
            ) from None
        self.ledger = Ledger(self.store, registry or build_registry(self.genesis), self.genesis)
        self.clock = clock or WallClock()
        self.transport: Transport = transport or TcpTransport(
            self.id,
            config.chain_id,
            (config.listen.host, config.listen.port),
            {pid: (p.replica.host, p.replica.port) for pid, p in config.peers.items()},
            key=self.key,
            validators=self.genesis.validators,
        )
        self.transport.set_receiver(self._on_frame)
        self.api = ApiServer(config.api.host, config.api.port, self._api_methods())
        self._votes: tuple[VoteRecord, ...] = self.get_persisted_votes()
        self.restored_votes = len(self._votes)
        self.core = self._new_core()
        self._frames: deque[tuple[int, bytes]] = deque()
        self._requests: deque[ClientRequest] = deque()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiters: dict[bytes, list[asyncio.Future[dict[str, Any]]]] = {}
        self._fetches: dict[int, tuple[int, asyncio.Future[BlocksReply]]] = {}
        self._sync_task: asyncio.Task[None] | None = None
        self._sync_by_core = False  # the running sync answers a NeedStateTransfer
        self._peers = _PeerHeights()
        self._decoded: dict[bytes, Transaction] = {}
        self.verify_on_submit = verify_on_submit
        self.executed_txs = 0
        self.bad_frames = 0

    # -- setup ------------------------------------------------------------------------

    def _pbft_config(self) -> pbft.PbftConfig:
        c = self.config.consensus
        return pbft.PbftConfig(
            chain_id=self.config.chain_id,
            validators=self.genesis.validators,
            batch_max=c.max_batch,
            batch_timeout_ms=c.batch_delay_ms,
            view_change_timeout_ms=c.view_change_timeout_ms,
            checkpoint_interval=c.checkpoint_interval,
            watermark_window=c.watermark_window,
            # A lagging replica must fetch blocks well before its request timer could
            # fire, or it starts a view change on its own (and then ignores view v).
            state_transfer_delay_ms=max(100, c.view_change_timeout_ms // 4),
            batch_max_bytes=c.max_batch_bytes,
        )

    @property
    def max_tx_bytes(self) -> int:
        """The largest transaction accepted at submit: 64 KiB, or less if a batch is smaller."""
        room = self.core.config.max_request_bytes - REQUEST_OVERHEAD_BYTES - 32
        return min(MAX_TX_BYTES, room)

    def _new_core(self) -> pbft.ReplicaState:
        """A PBFT state resuming at the highest certified block of the store (or genesis).

        Blocks executed after it are kept: when the core hands them out again,
        :meth:`_execute` answers with the stored header hash instead of re-executing.
        """
        config = self._pbft_config()
        for height in range(self.ledger.height, 0, -1):
            cert = self.store.get_certificate(height)
            header = self.store.get_header(height)
            if cert is not None and header is not None:
                return pbft.new_replica_state(
                    config,
                    self.id,
                    self.key,
                    stable_seq=height,
                    stable_digest=header.header_hash,
                    stable_certificate=cert,
                    timestamp_ms=header.timestamp_ms,
                    votes=self._votes,
                )
            if self.ledger.height - height > 4 * self.config.consensus.watermark_window:
                break
        return pbft.new_replica_state(
            config, self.id, self.key, timestamp_ms=self.genesis.timestamp_ms, votes=self._votes
        )

    def get_persisted_votes(self) -> tuple[VoteRecord, ...]:
        """This replica's own votes from the store (``PersistVotes``); empty at genesis.

        A blob that does not decode is a corrupt disk: refuse to start rather than
        forget votes (and possibly vote twice differently at one slot).
        """
        raw = self.store.get_meta(VOTES_META)
        if raw is None:
            return ()
        try:
            return pbft.decode_vote_log(raw)
        except EncodingError as exc:
            raise GridledgerError(f"the vote log in {VOTES_META!r} is corrupt: {exc}") from None

    def _persist_votes(self, effect: PersistVotes) -> None:
        """Rewrite the live votes as one blob: one SQLite transaction, durable on return.

        If the write fails the replica stops (fail-stop): sending votes it could forget
        would make it unsafe after a restart.
        """
        live = pbft.compute_live_votes(self._votes, effect)
        try:
            self.store.put_meta(VOTES_META, pbft.encode_vote_log(live))
        except Exception:
            log.critical("replica %d: cannot persist its votes; stopping", self.id)
            self.request_stop()
            raise
        self._votes = live

    def get_persisted_view(self) -> int:
        """The last view this replica entered (informational: PBFT relearns it from peers)."""
        raw = self.store.get_meta(_VIEW_META)
        try:
            view = decode(raw) if raw is not None else 0
        except EncodingError:
            return 0
        return view if isinstance(view, int) else 0

    async def start(self) -> None:
        """Listen (replicas and clients) and start the core loop."""
        await self.transport.start()
        await self.api.start()
        self._tasks = [
            asyncio.create_task(self._run_core(), name=f"replica-{self.id}-core"),
            asyncio.create_task(self._run_gossip(), name=f"replica-{self.id}-gossip"),
            asyncio.create_task(self._run_status_log(), name=f"replica-{self.id}-log"),
        ]
        log.info(
            "replica %d started at height %d, view %d (n=%d, api %s)",
            self.id,
            self.ledger.height,
            self.get_view(),
            self.config.n,
            self.config.api,
        )

    async def stop(self) -> None:
        """Stop tasks, close sockets and the store."""
        self._stopping.set()
        self._wakeup.set()
        tasks = list(self._tasks)
        if self._sync_task is not None:
            tasks.append(self._sync_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.api.close()
        await self.transport.close()
        self.store.close()
        log.info("replica %d stopped at height %d", self.id, self.ledger.height)

    async def run_forever(self) -> None:
        await self.start()
        try:
            await self._stopping.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        self._stopping.set()

    # -- views of the core ------------------------------------------------------------

    def get_view(self) -> int:
        return int(self.core.view)

    def get_primary(self) -> int:
        return int(self.core.primary)

    # -- the core loop ----------------------------------------------------------------

    def _on_frame(self, sender: int, frame: bytes) -> None:
        self._frames.append((sender, frame))
        self._wakeup.set()

    async def _run_core(self) -> None:
        tick_s = self.config.consensus.tick_ms / 1000
        next_tick = time.monotonic()
        while not self._stopping.is_set():
            timeout = max(0.0, next_tick - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            self._wakeup.clear()
            slice_start = time.monotonic()
            while self._frames or self._requests:
                if self._requests:
                    requests = list(self._requests)
                    self._requests.clear()
                    for req in requests:
                        self._apply(pbft.on_client_request(self.core, req, self.clock.now_ms()))
                if self._frames:
                    sender, frame = self._frames.popleft()
                    self._process_frame(sender, frame)
                if time.monotonic() - slice_start > _SLICE_S:
                    await asyncio.sleep(0)  # let the transport and the API run
                    slice_start = time.monotonic()
            if time.monotonic() >= next_tick:
                self._apply(pbft.on_tick(self.core, self.clock.now_ms()))
                next_tick = time.monotonic() + tick_s

    def _process_frame(self, sender: int, frame: bytes) -> None:
        try:
            value = decode(frame)
            kind = value.get(TYPE_KEY) if isinstance(value, dict) else None
            if kind == _ENVELOPE:
                envelope = from_value(SignedEnvelope, value)
                self._apply(pbft.on_message(self.core, envelope, self.clock.now_ms()))
            elif kind in _SYNC_TYPES:
                self._on_sync_message(sender, from_value(_SYNC_TYPES[kind], value))
            else:
                self.bad_frames += 1
        except EncodingError:
            self.bad_frames += 1

    def _apply(self, effects: Sequence[Effect]) -> None:
        """Carry out effects in order; executing may produce more effects (handled here)."""
        queue = deque(effects)
        while queue:
            effect = queue.popleft()
            if isinstance(effect, PersistVotes):
                # First in its list: on disk before any send of the list. A failed write
                # raises, and the votes are never sent.
                self._persist_votes(effect)
            elif isinstance(effect, Send):
                with contextlib.suppress(TransportError):
                    self.transport.send(effect.to, encode(effect.envelope))
            elif isinstance(effect, Broadcast):
                with contextlib.suppress(TransportError):
                    self.transport.broadcast(encode(effect.envelope))
            elif isinstance(effect, Execute):
                digest = self._execute(effect)
                queue.extend(pbft.on_executed(self.core, effect.seq, digest))
            elif isinstance(effect, Certified):
                self._on_certified(effect)
            elif isinstance(effect, ReplyToClient):
                pass  # receipts reach API callers from _execute; replies need no transport here
            elif isinstance(effect, NeedStateTransfer):
                self._start_state_transfer(
                    effect.target_seq, effect.state_digest, effect.peers, by_core=True
                )
            elif isinstance(effect, ViewChanged):
                log.info(
                    "replica %d entered view %d (primary %d)", self.id, effect.view, effect.primary
                )
                self.store.put_meta(_VIEW_META, encode(effect.view))

    # -- execution --------------------------------------------------------------------

    def _execute(self, effect: Execute) -> bytes:
        """Execute a committed batch into block ``effect.seq``; returns its header hash."""
        if effect.seq != self.ledger.height + 1:
            # Already executed before a restart (the core replays from its stable point).
            header = self.store.get_header(effect.seq)
            if header is not None:
                return header.header_hash
            raise LedgerError(f"asked to execute {effect.seq} at height {self.ledger.height}")
        txs = []
        for req in effect.requests:
            tx = self._decoded.pop(req.payload, None)
            if tx is None:
                try:
                    tx = decode_as(Transaction, req.payload)
                except EncodingError:
                    continue  # not a transaction: dropped by every replica alike
            txs.append(tx)
        block, outcome = self.ledger.commit(txs, effect.timestamp_ms, proposer=0, view=0)
        self.executed_txs += len(txs)
        self._resolve_waiters(block, outcome.receipts)
        return block.header.header_hash

    def _remember_decoded(self, payload: bytes, tx: Transaction) -> None:
        """Keep the decoded form of a submitted transaction for its execution (bounded)."""
        self._decoded[payload] = tx
        while len(self._decoded) > _MAX_DECODED:
            del self._decoded[next(iter(self._decoded))]

    def _resolve_waiters(self, block: Block, receipts: Sequence[Receipt]) -> None:
        if not self._waiters:
            return
        block_hash = block.header.header_hash
        for index, receipt in enumerate(receipts):
            futures = self._waiters.pop(receipt.tx_hash, None)
            if futures:
                answer = compute_receipt_json(receipt, block.height, index, block_hash)
                for fut in futures:
                    if not fut.done():
                        fut.set_result(answer)

    def _on_certified(self, effect: Certified) -> None:
        try:
            self.ledger.attach_certificate(effect.seq, effect.certificate)
        except LedgerError as exc:
            log.warning(
                "replica %d: certificate for %d refused: %s", self.id, effect.seq, exc.reason
            )

    # -- state transfer ---------------------------------------------------------------

    def _on_sync_message(self, sender: int, msg: Any) -> None:
        if isinstance(msg, SyncStatus):
            self._peers.heights[sender] = msg.height
        elif isinstance(msg, FetchBlocks):
            self._serve_fetch(sender, msg)
        elif isinstance(msg, BlocksReply):
            entry = self._fetches.get(msg.request_id)
            if entry is None or entry[0] != sender:
                self.bad_frames += 1  # not asked, or not asked of this peer
                return
            del self._fetches[msg.request_id]
            if not entry[1].done():
                entry[1].set_result(msg)

    def _serve_fetch(self, sender: int, msg: FetchBlocks) -> None:
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
        with contextlib.suppress(TransportError):
            self.transport.send(sender, encode(reply))

    def _start_state_transfer(
        self, target: int, digest: bytes | None, peers: Sequence[int], *, by_core: bool = False
    ) -> None:
        if self._sync_task is not None and not self._sync_task.done():
            if self._sync_by_core or not by_core:
                return
            # The core waits for this transfer (it executes nothing until then): it
            # pre-empts a catch-up started by gossip, which peers could keep busy.
            self._sync_task.cancel()
        self._sync_by_core = by_core
        log.info(
            "replica %d: state transfer from height %d to %d", self.id, self.ledger.height, target
        )
        self._sync_task = asyncio.create_task(self._state_transfer(target, tuple(peers)))

    async def _fetch(self, peer: int, start: int, end: int) -> BlocksReply | None:
        rid = SYSTEM_RNG.randbelow(1 << 63)  # unpredictable: no reply can be pre-sent
        fut: asyncio.Future[BlocksReply] = asyncio.get_running_loop().create_future()
        self._fetches[rid] = (peer, fut)
        try:
            self.transport.send(peer, encode(FetchBlocks(rid, start, end)))
            return await asyncio.wait_for(fut, _FETCH_TIMEOUT_S)
        except (TimeoutError, TransportError):
            return None
        finally:
            self._fetches.pop(rid, None)

    def _import_segment(self, reply: BlocksReply, target: int) -> int:
        """Apply the longest certified prefix of ``reply``; returns how many blocks were applied."""
        blocks = [b for b in reply.blocks if b.height <= target]
        certs = list(reply.certificates[: len(blocks)])
        # The last certified block vouches for every block it links back to.
        last_cert = max((i for i, c in enumerate(certs) if c is not None), default=-1)
        if last_cert < 0:
            return 0
        anchor = blocks[last_cert]
        cert = certs[last_cert]
        assert cert is not None
        check_certificate_for(anchor.header, cert, self.genesis)
        for i in range(last_cert, 0, -1):
            if blocks[i].header.prev_hash != blocks[i - 1].header.header_hash:
                raise LedgerError("fetched blocks do not link")
        applied = 0
        for block, c in zip(blocks[: last_cert + 1], certs, strict=False):
            if block.height != self.ledger.height + 1:
                raise LedgerError("fetched blocks do not start at the next height")
            outcome = self.ledger.apply(block, c)
            self._resolve_waiters(block, outcome.receipts)
            applied += 1
        return applied

    async def _state_transfer(self, target: int, peers: tuple[int, ...]) -> None:
        candidates = list(peers) or [p for p in self.config.peers if p != self.id]
        deadline = time.monotonic() + 120.0
        turn = 0
        while self.ledger.height < target and time.monotonic() < deadline:
            peer = candidates[turn % len(candidates)]
            turn += 1
            reply = await self._fetch(peer, self.ledger.height + 1, target)
            if reply is None or not reply.blocks:
                await asyncio.sleep(0.1)
                continue
            try:
                self._import_segment(reply, target)
            except GridledgerError as exc:
                log.warning("replica %d: blocks from %d refused: %s", self.id, peer, exc.reason)
        log.info("replica %d: state transfer done at height %d", self.id, self.ledger.height)
        head = self.ledger.head
        self._apply(
            pbft.on_state_transferred(
                self.core, head.height, head.header_hash, timestamp_ms=head.timestamp_ms
            )
        )

    async def _run_gossip(self) -> None:
        """Tell peers our height; start a catch-up if f+1 peers have been ahead for a while."""
        while True:
            await asyncio.sleep(_GOSSIP_S)
            status = SyncStatus(self.ledger.height, self.ledger.head.header_hash, self.get_view())
            with contextlib.suppress(TransportError):
                self.transport.broadcast(encode(status))
            ahead = sorted(
                (h for h in self._peers.heights.values() if h > self.ledger.height), reverse=True
            )
            f = self.config.f
            if len(ahead) <= f:
                self._peers.behind_since = None
                continue
            now = time.monotonic()
            if self._peers.behind_since is None:
                self._peers.behind_since = now
            elif now - self._peers.behind_since > _LAG_BEFORE_SYNC_S:
                self._peers.behind_since = None
                target = ahead[f]  # at least f+1 peers claim this height
                self._start_state_transfer(target, None, ())

    async def _run_status_log(self) -> None:
        period = self.config.consensus.status_log_s
        last = self.executed_txs
        while True:
            await asyncio.sleep(period)
            rate = (self.executed_txs - last) / period
            last = self.executed_txs
            log.info(
                "replica %d: height %d, view %d, %.0f tx/s, peers %s",
                self.id,
                self.ledger.height,
                self.get_view(),
                rate,
                self.transport.get_connected_peers(),
            )

    # -- client API -------------------------------------------------------------------

    def _api_methods(self) -> dict[str, Any]:
        return {
            "status": self._api_status,
            "submit": self._api_submit,
            "wait": self._api_wait,
            "block": self._api_block,
            "headers": self._api_headers,
            "tx_proof": self._api_tx_proof,
            "state": self._api_state,
        }

    async def _api_status(self, params: dict[str, Any]) -> dict[str, Any]:
        head = self.ledger.head
        return {
            "replica_id": self.id,
            "chain_id": self.config.chain_id,
            "n": self.config.n,
            "f": self.config.f,
            "height": head.height,
            "head_hash": head.header_hash.hex(),
            "view": self.get_view(),
            "primary": self.get_primary(),
            "peers": self.transport.get_connected_peers(),
            "syncing": self._sync_task is not None and not self._sync_task.done(),
            "executed_txs": self.executed_txs,
            "restored_votes": self.restored_votes,
        }

    async def _api_submit(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = params.get("txs", [])
        if "tx" in params:
            raw = [params["tx"]]
        if not isinstance(raw, list) or not raw:
            raise ApiError("submit needs 'tx' or a non-empty list 'txs' of hex transactions")
        if len(raw) > MAX_SUBMIT_TXS:
            raise TooManyTransactions(
                f"too many transactions: {len(raw)} in one submit, at most {MAX_SUBMIT_TXS}"
            )
        max_tx = self.max_tx_bytes
        wait = bool(params.get("wait", False))
        timeout = params.get("timeout", 10.0)
        if not isinstance(timeout, (int, float)) or not 0 < timeout <= 120:
            raise ApiError("timeout must be a number of seconds in (0, 120]")
        results: list[Any] = []
        waits: list[tuple[int, asyncio.Future[dict[str, Any]]]] = []
        waited: list[bytes] = []
        loop = asyncio.get_running_loop()
        for i, text in enumerate(raw):
            if i % _SUBMIT_SLICE == _SUBMIT_SLICE - 1:
                await asyncio.sleep(0)  # a large submit must not hold the loop
            if isinstance(text, str) and len(text) > 2 * max_tx:
                results.append(
                    {
                        "status": "invalid",
                        "error": "too-large",
                        "reason": f"transaction too large: {len(text) // 2} bytes, "
                        f"at most {max_tx}",
                    }
                )
                continue
            try:
                payload = bytes.fromhex(text) if isinstance(text, str) else b""
                tx = decode_as(Transaction, payload)
                if tx.chain_id != self.config.chain_id:
                    raise ApiError(f"transaction is for chain {tx.chain_id!r}")
                if self.verify_on_submit:
                    verify_transaction_signature(tx)
            except (ValueError, GridledgerError) as exc:
                reason = exc.reason if isinstance(exc, GridledgerError) else "not hex"
                results.append({"status": "invalid", "reason": reason})
                continue
            # A single (re)submission is answered from the chain if already there; batches
            # skip the lookup (load generators) and rely on PBFT's request dedup.
            known = self._get_stored_receipt(tx.tx_hash) if len(raw) == 1 else None
            if known is not None:
                results.append(known)  # already in the chain: answer, do not resubmit
                continue
            results.append({"tx_hash": tx.tx_hash.hex(), "status": "pending"})
            request = ClientRequest(tx.sender, tx.nonce, payload)
            if compute_request_size(request) > self.core.config.max_request_bytes:
                results[-1] = {"status": "invalid", "error": "too-large", "reason": "too large"}
                continue
            self._remember_decoded(payload, tx)
            self._requests.append(request)
            if wait:
                fut: asyncio.Future[dict[str, Any]] = loop.create_future()
                self._waiters.setdefault(tx.tx_hash, []).append(fut)
                waits.append((i, fut))
                waited.append(tx.tx_hash)
        self._wakeup.set()
        if waits:
            done, _ = await asyncio.wait([f for _, f in waits], timeout=timeout)
            for i, fut in waits:
                if fut in done:
                    results[i] = fut.result()
                else:
                    fut.cancel()
            self._drop_waiters(waited)
        return {"receipts": results}

    async def _api_wait(self, params: dict[str, Any]) -> dict[str, Any]:
        """Receipts of transactions submitted elsewhere, once this replica executes them.

        Lets a client send a batch to the primary only and still collect f+1 matching
        receipts (PBFT's client sends to the primary first, to all only on timeout).
        """
        hashes = params.get("hashes")
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise ApiError("wait needs 'hashes', a list of hex transaction hashes")
        timeout = params.get("timeout", 10.0)
        if not isinstance(timeout, (int, float)) or not 0 < timeout <= 120:
            raise ApiError("timeout must be a number of seconds in (0, 120]")
        loop = asyncio.get_running_loop()
        results: list[Any] = []
        waits: list[tuple[int, asyncio.Future[dict[str, Any]]]] = []
        waited: list[bytes] = []
        for i, text in enumerate(hashes):
            try:
                tx_hash = bytes.fromhex(text)
            except ValueError:
                raise ApiError(f"{text!r} is not hex") from None
            results.append({"tx_hash": text, "status": "pending"})
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._waiters.setdefault(tx_hash, []).append(fut)
            waits.append((i, fut))
            waited.append(tx_hash)
        if len(hashes) == 1:
            known = self._get_stored_receipt(waited[0])
            if known is not None:
                waits[0][1].set_result(known)
        done, _ = await asyncio.wait([f for _, f in waits], timeout=timeout)
        for i, fut in waits:
            if fut in done:
                results[i] = fut.result()
            else:
                fut.cancel()
        self._drop_waiters(waited)
        return {"receipts": results}

    def _get_stored_receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        found = self.store.find_tx(tx_hash)
        if found is None:
            return None
        height, index = found
        receipts = self.store.get_receipts(height)
        header = self.store.get_header(height)
        if receipts is None or header is None or index >= len(receipts):
            return None
        return compute_receipt_json(receipts[index], height, index, header.header_hash)

    def _drop_waiters(self, tx_hashes: Sequence[bytes]) -> None:
        """Forget the finished waiters of these transactions (after a timeout)."""
        for tx_hash in tx_hashes:
            futures = self._waiters.get(tx_hash)
            if futures is not None and all(f.done() for f in futures):
                del self._waiters[tx_hash]

    async def _api_block(self, params: dict[str, Any]) -> dict[str, Any]:
        height = get_param(params, "height", int)
        try:
            block = self.ledger.get_block(height)
        except LedgerError as exc:
            raise ApiError(exc.reason) from None
        cert = self.store.get_certificate(height)
        receipts = self.ledger.get_receipts(height)
        return {
            "height": height,
            "block": encode(block).hex(),
            "header_hash": block.header.header_hash.hex(),
            "certificate": None if cert is None else encode(cert).hex(),
            "receipts": [encode(r).hex() for r in receipts],
        }

    async def _api_headers(self, params: dict[str, Any]) -> dict[str, Any]:
        start = get_param(params, "from", int)
        end = min(get_param(params, "to", int), start + 999, self.ledger.height)
        headers = []
        for height in range(max(start, 0), end + 1):
            header = self.store.get_header(height)
            cert = self.store.get_certificate(height)
            if header is None:
                break
            headers.append(
                {
                    "header": encode(header).hex(),
                    "certificate": None if cert is None else encode(cert).hex(),
                }
            )
        return {"headers": headers}

    async def _api_tx_proof(self, params: dict[str, Any]) -> dict[str, Any]:
        tx_hash = get_hex_param(params, "hash")
        found = self.store.find_tx(tx_hash)
        if found is None:
            raise ApiError(f"transaction {tx_hash.hex()} is not in the chain")
        height, _ = found
        proof = self.ledger.get_tx_proof(height, tx_hash)
        receipt, receipt_proof = self.ledger.get_receipt_proof(height, tx_hash)
        return {
            "height": height,
            "proof": encode(proof).hex(),
            "receipt": encode(receipt).hex(),
            "receipt_proof": encode(receipt_proof).hex(),
        }

    async def _api_state(self, params: dict[str, Any]) -> dict[str, Any]:
        key = get_hex_param(params, "key")
        height, value, proof = self.ledger.get_state_proof(key)
        return {
            "height": height,
            "value": None if value is None else value.hex(),
            "proof": encode(proof).hex(),
        }
