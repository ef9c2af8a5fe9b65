"""DPoS behind the engine seam: elected producers take slots, blocks execute once irreversible.

Per replica, pure (no clock, network or disk; time comes with every event):

* **Producing.** Slot ``s`` starts at ``genesis + s × block_interval_ms`` and belongs
  to ``schedule(round(s)).producers[s % P]``. On the first tick inside its slot
  the owner persists "produced in ``s``" (never two proposals in one slot, even
  across a crash), then signs and broadcasts a :class:`Proposal` on the head of
  its chosen fork, with pending requests and the certificates it gathered.
* **Fork choice.** Proposals form a tree above the last irreversible block (the
  *anchor*); the head is the longest branch (ties: the earlier slot, then the
  smaller id). A proposal whose parent is unknown waits as an orphan while its
  ancestors are fetched from the sender.
* **Irreversibility.** Walking back from the head, the first block on whose
  branch (itself and its descendants) 2/3+1 distinct producers have built is
  irreversible, and so is everything below it. Only then does the node execute
  it (:class:`ExecuteBlock`): the node core runs blocks strictly in order and
  never reverts one, so DPoS hands it nothing that a fork could still undo.
* **Finality proof.** After executing a block each replica signs its header
  hash (a block vote) and sends this *confirmation* to the producers of the next
  three slots; a producer that holds 2/3+1 of them forms a commit certificate
  and carries it in its next proposal, so every replica gets the proof without
  an all-to-all exchange (:mod:`gridledger.consensus.dpos.finality`).
* **Double production.** Two validly signed proposals of one producer for one
  slot are kept as :class:`DoubleProduction` evidence and sent on chain in a
  ``dpos.evidence`` transaction, which bars the producer from later elections.
* **Catch-up.** A certificate for a height far above the executed one means this
  replica is behind: :class:`NeedSync` to that height; afterwards the proposal at
  the synced height is recognised by its height, timestamp and producer.

The schedule of round ``r >= 2`` is on chain (:mod:`gridledger.consensus.dpos.contract`)
once a block of round ``r - 1`` has executed; until then proposals of round ``r``
wait (bounded) rather than being judged against a schedule not yet known.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any

from gridledger.consensus.dpos.config import (
    ENGINE_NAME,
    Schedule,
    compute_full_key,
    compute_initial_schedule,
    compute_schedule_key,
    compute_slot,
    compute_slot_time,
    get_owner,
    require_config,
)
from gridledger.consensus.dpos.contract import EVIDENCE_KIND
from gridledger.consensus.dpos.finality import (
    check_confirmations,
    compute_confirm_threshold,
    is_valid_signature_cached,
)
from gridledger.consensus.dpos.messages import (
    MAX_CERTIFICATES,
    MAX_FETCH,
    PROPOSAL_SIG_TAG,
    Ancestors,
    CompactCertificate,
    Confirmation,
    DoubleProduction,
    FetchAncestors,
    Forward,
    Proposal,
    SignedProposal,
    sign_proposal,
)
from gridledger.consensus.engine import (
    BroadcastFrame,
    EngineContext,
    EngineEffect,
    ExecuteBlock,
    Finalized,
    NeedSync,
    PersistState,
    SendFrame,
    register_engine,
)
from gridledger.consensus.messages import ClientRequest, split_requests
from gridledger.crypto.encoding import (
    decode,
    decode_as,
    encode,
    from_value,
    get_type_tag,
    wire_name,
)
from gridledger.crypto.errors import EncodingError
from gridledger.errors import ConfigError, GridledgerError
from gridledger.ledger.block import genesis_block
from gridledger.ledger.certificate import (
    BLOCK_VOTE_TAG,
    BlockVote,
    CertificateError,
    CommitCertificate,
    VoteSignature,
    sign_vote,
)
from gridledger.ledger.tx import Transaction

LAST_SLOT_KEY = "dpos/produced-slot"
CONFIRM_FANOUT = 3  # confirmations go to the producers of the next slots
MAX_RESEND = 32  # heights whose confirmation is resent until a proof is seen
MAX_EVIDENCE = 1_000  # double productions kept in memory (each also goes on chain)
SYNC_GAP = 8  # a certificate this many heights above the executed one: state transfer
MAX_FRAME_BYTES = 8 * 1024 * 1024
_FRAME_TYPES: dict[str, type[Any]] = {
    wire_name(cls): cls
    for cls in (SignedProposal, Confirmation, Forward, FetchAncestors, Ancestors)
}


class DposEngine:
    """One replica's DPoS state behind the engine interface."""

    def __init__(self, context: EngineContext) -> None:
        genesis = context.genesis
        self.ctx = context
        self.me = context.replica_id
        self.config = require_config(genesis)
        self.chain_id = genesis.chain_id
        self.keys = {v.replica_id: v.public_key for v in genesis.validators}
        self.genesis_ms = genesis.timestamp_ms
        self.interval = self.config.block_interval_ms
        self.p = self.config.producers
        self.irreversible_after = 2 * self.p // 3 + 1
        self.confirm_threshold = compute_confirm_threshold(len(genesis.validators))
        self.validators = genesis.validators
        self.initial = compute_initial_schedule(genesis, self.config)
        self.max_pending = max(1, context.params.max_pending_requests)
        self.window = 4 * self.p + 16  # heights and slots kept around the anchor
        raw = context.read_persisted(LAST_SLOT_KEY)
        if raw is not None and len(raw) != 8:
            raise ConfigError(f"the persisted {LAST_SLOT_KEY!r} is corrupt")
        self.produced_slot = -1 if raw is None else int.from_bytes(raw, "big")
        self._schedules: dict[int, Schedule] = {}
        self.blocks: dict[bytes, SignedProposal] = {}  # the tree above the anchor
        self.orphans: OrderedDict[bytes, SignedProposal] = OrderedDict()
        self.unready: OrderedDict[bytes, SignedProposal] = OrderedDict()
        self.history: OrderedDict[bytes, SignedProposal] = OrderedDict()  # executed
        self.by_slot: dict[int, SignedProposal] = {}
        self.evidence: dict[int, DoubleProduction] = {}
        self.mempool: OrderedDict[bytes, ClientRequest] = OrderedDict()
        self.confirmations: dict[tuple[int, bytes], dict[int, bytes]] = {}
        self.my_certs: dict[int, CommitCertificate] = {}
        self.announced: set[int] = set()  # heights whose certificate a proposal carried
        self.certs: dict[int, CommitCertificate] = {}  # verified, waiting for our execution
        self.finalized: set[int] = set()
        self.executed_hashes: dict[int, bytes] = {}
        self.fetch_asked: dict[bytes, int] = {}
        self.my_confirmations: dict[int, Confirmation] = {}
        self.next_resend_ms = 0
        self.rejected: Counter[str] = Counter()
        self.now_ms = genesis.timestamp_ms
        self.syncing = False
        self.produced = 0
        self.irreversible_blocks = 0
        self.anchor_id: bytes | None = None
        self.head_id: bytes | None = None
        self.anchor_height = 0
        self.anchor_slot = 0
        self.executed_slot = 0
        self._set_anchor_from_chain(context.chain.height)

    # -- reads ------------------------------------------------------------------------

    @property
    def view(self) -> int:
        return self._slot(self.now_ms) // self.p

    @property
    def leader(self) -> int:
        return get_owner(self.get_schedule(self.view), self._slot(self.now_ms))

    @property
    def head(self) -> SignedProposal | None:
        return None if self.head_id is None else self.blocks.get(self.head_id)

    @property
    def head_height(self) -> int:
        head = self.head
        return self.anchor_height if head is None else head.proposal.height

    def get_status(self) -> dict[str, Any]:
        return {
            "engine": ENGINE_NAME,
            "round": self.view,
            "producer": self.leader,
            "head_height": self.head_height,
            "irreversible_height": self.anchor_height,
            "tree_size": len(self.blocks),
            "orphans": len(self.orphans),
            "pending_requests": len(self.mempool),
            "produced": self.produced,
            "double_production": sorted(self.evidence),
            "rejected": dict(self.rejected),
        }

    def get_evidence(self) -> tuple[DoubleProduction, ...]:
        """Double production this replica has seen, oldest slot first."""
        return tuple(self.evidence[s] for s in sorted(self.evidence))

    def get_schedule(self, round_: int) -> Schedule:
        """The schedule of ``round_`` as far as this replica has executed the chain.

        Exact once a block of round ``round_ - 1`` has executed here (the election
        for ``round_`` is then on chain, :meth:`is_schedule_known`); before that,
        the latest schedule on chain, which is what the contract would use too.
        """
        if round_ <= 1:
            return self.initial
        cached = self._schedules.get(round_)
        if cached is not None:
            return cached
        found = self.initial
        for q in range(round_, max(1, round_ - 8), -1):
            raw = self.ctx.chain.get_state(compute_full_key(compute_schedule_key(q)))
            if raw is not None:
                found = decode_as(Schedule, raw)
                break
        if self.is_schedule_known(round_):
            self._schedules[round_] = found
            for old in [r for r in self._schedules if r < round_ - 8]:
                del self._schedules[old]
        return found

    def is_schedule_known(self, round_: int) -> bool:
        """Whether the election deciding ``round_`` has executed here."""
        return round_ <= 1 or self.executed_slot // self.p >= round_ - 1

    # -- events -----------------------------------------------------------------------

    def on_request(self, request: ClientRequest, now_ms: int) -> list[EngineEffect]:
        return self.on_requests((request,), now_ms)

    def on_requests(self, requests: Sequence[ClientRequest], now_ms: int) -> list[EngineEffect]:
        """New requests go to the next producers, as many in one ``Forward`` as fit
        half a frame and a block (a producer keeps at most ``max_block_requests`` of
        a frame); one frame per request cost an encoding and a send each."""
        self.now_ms = max(self.now_ms, now_ms)
        fresh = [r for r in requests if self._add_request(r)]
        targets = [t for t in self._next_producers() if t != self.me]
        out: list[EngineEffect] = []
        for run in split_requests(fresh, self.config.max_block_requests, MAX_FRAME_BYTES // 2):
            frame = encode(Forward(run))
            out.extend(SendFrame(t, frame) for t in targets)
        return out

    def on_frame(self, sender: int, frame: bytes, now_ms: int) -> list[EngineEffect]:
        self.now_ms = max(self.now_ms, now_ms)
        try:
            value = decode(frame, max_size=MAX_FRAME_BYTES)
            cls = _FRAME_TYPES.get(get_type_tag(value) or "")
            if cls is None:
                self.rejected["unknown-type"] += 1
                return []
            msg = from_value(cls, value)
        except EncodingError:
            self.rejected["malformed"] += 1
            return []
        if isinstance(msg, SignedProposal):
            return self._on_proposal(sender, msg)
        if isinstance(msg, Confirmation):
            return self._on_confirmation(msg)
        if isinstance(msg, Forward):
            for request in msg.requests[: self.config.max_block_requests]:
                self._add_request(request)
            return []
        if isinstance(msg, FetchAncestors):
            return self._serve_fetch(sender, msg)
        assert isinstance(msg, Ancestors)
        out: list[EngineEffect] = []
        for signed in msg.proposals[:MAX_FETCH]:
            out.extend(self._on_proposal(sender, signed))
        return out

    def on_tick(self, now_ms: int) -> list[EngineEffect]:
        self.now_ms = max(self.now_ms, now_ms)
        out = self._retry_unready()
        out.extend(self._produce())
        out.extend(self._resend_confirmations())
        return out

    def on_executed(self, height: int, header_hash: bytes) -> list[EngineEffect]:
        self.executed_hashes[height] = header_hash
        for old in [h for h in self.executed_hashes if h < height - self.window]:
            del self.executed_hashes[old]
        vote = BlockVote(self.chain_id, height, header_hash)
        conf = Confirmation(height, header_hash, self.me, sign_vote(self.ctx.key, vote))
        self.my_confirmations[height] = conf
        for old in [h for h in self.my_confirmations if h <= height - MAX_RESEND]:
            del self.my_confirmations[old]
        out = self._send_confirmation(conf)
        out.extend(self._finalize(height))
        return out

    def _send_confirmation(self, conf: Confirmation) -> list[EngineEffect]:
        out: list[EngineEffect] = []
        frame = encode(conf)
        for target in self._next_producers():
            if target == self.me:
                out.extend(self._add_confirmation(conf))
            else:
                out.append(SendFrame(target, frame))
        return out

    def _resend_confirmations(self) -> list[EngineEffect]:
        """Confirm again, to the next producers, heights that still have no proof here.

        The producers a confirmation went to may have crashed or been cut off;
        a later producer then gathers the certificate instead.
        """
        if self.now_ms < self.next_resend_ms:
            return []
        self.next_resend_ms = self.now_ms + 2 * self.interval
        out: list[EngineEffect] = []
        for height, conf in sorted(self.my_confirmations.items()):
            if height in self.finalized:
                del self.my_confirmations[height]
            elif height < self.anchor_height - 1:
                out.extend(self._send_confirmation(conf))
        return out

    def on_synced(self, height: int, header_hash: bytes, timestamp_ms: int) -> list[EngineEffect]:
        self.syncing = False
        if height <= self.anchor_height:
            return []
        self.executed_hashes[height] = header_hash
        known = list(self.blocks.values()) + list(self.orphans.values())
        self._set_anchor_from_chain(height)
        for signed in known:
            if signed.proposal.height == height and self._is_anchor(signed):
                self.anchor_id = signed.proposal.proposal_id
        out = self._relink(known)
        out.extend(self._finalize(height))
        return out

    # -- proposals --------------------------------------------------------------------

    def _on_proposal(self, sender: int, signed: SignedProposal) -> list[EngineEffect]:
        p = signed.proposal
        pid = p.proposal_id
        if pid in self.blocks or pid in self.orphans or pid in self.history:
            return []
        reason = self._check_proposal(signed)
        if reason is not None:
            self.rejected[reason] += 1
            return []
        out = self._check_double_production(signed)
        out.extend(self._take_certificates(sender, p))
        if p.height <= self.anchor_height:
            if self.anchor_id is None and self._is_anchor(signed):
                self.anchor_id = pid
                out.extend(self._relink(list(self.orphans.values())))
            return out
        round_ = p.slot // self.p
        if get_owner(self.get_schedule(round_), p.slot) != p.producer:
            if self.is_schedule_known(round_):
                self.rejected["not-slot-owner"] += 1
            else:  # judged again once the election of its round has executed here
                self.unready[pid] = signed
                while len(self.unready) > self.window:
                    self.unready.popitem(last=False)
            return out
        out.extend(self._link(sender, signed))
        return out

    def _check_proposal(self, signed: SignedProposal) -> str | None:
        """The reason to refuse a proposal outright (``None``: well formed and signed)."""
        p = signed.proposal
        key = self.keys.get(p.producer)
        if p.chain_id != self.chain_id:
            return "wrong-chain"
        if key is None:
            return "unknown-producer"
        if p.height < 1 or p.slot < 1:
            return "bad-height"
        if p.timestamp_ms != compute_slot_time(p.slot, self.genesis_ms, self.interval):
            return "bad-timestamp"
        if p.timestamp_ms > self.now_ms + self.interval:
            return "from-the-future"
        if len(p.requests) > self.config.max_block_requests:
            return "too-many-requests"
        if len(p.certificates) > MAX_CERTIFICATES:
            return "too-many-certificates"
        if not is_valid_signature_cached(key, PROPOSAL_SIG_TAG, p.proposal_id, signed.signature):
            return "bad-signature"
        return None

    def _check_double_production(self, signed: SignedProposal) -> list[EngineEffect]:
        p = signed.proposal
        first = self.by_slot.get(p.slot)
        if first is None:
            self.by_slot[p.slot] = signed
            for old in [s for s in self.by_slot if s < p.slot - self.window]:
                del self.by_slot[old]
            return []
        if (
            first.proposal.producer != p.producer
            or first.proposal.proposal_id == p.proposal_id
            or p.slot in self.evidence
        ):
            return []
        evidence = DoubleProduction(first, signed)
        self.evidence[p.slot] = evidence
        while len(self.evidence) > MAX_EVIDENCE:
            del self.evidence[min(self.evidence)]
        tx = Transaction.create(self.chain_id, EVIDENCE_KIND, evidence, self.ctx.key, p.slot)
        request = ClientRequest(tx.sender, p.slot, encode(tx))
        return self.on_request(request, self.now_ms)

    def _link(self, sender: int, signed: SignedProposal) -> list[EngineEffect]:
        """Put a checked proposal into the tree, or keep it as an orphan and ask for its parent."""
        p = signed.proposal
        parent = self._get_parent_info(p.parent)
        if parent is None:
            self.orphans[p.proposal_id] = signed
            while len(self.orphans) > self.window:
                self.orphans.popitem(last=False)
            return self._ask_parent(sender, p)
        parent_height, parent_slot = parent
        if p.height != parent_height + 1 or p.slot <= parent_slot:
            self.rejected["bad-link"] += 1
            return []
        pid = p.proposal_id
        self.blocks[pid] = signed
        moved = self.head_id is None or _rank(p) > _rank(self.blocks[self.head_id].proposal)
        if moved:
            self.head_id = pid
        children = [o for o in self.orphans.values() if o.proposal.parent == pid]
        out: list[EngineEffect] = []
        for child in children:
            del self.orphans[child.proposal.proposal_id]
            out.extend(self._link(sender, child))
        if moved:
            out.extend(self._advance_irreversible())
        return out

    def _get_parent_info(self, parent_id: bytes) -> tuple[int, int] | None:
        if self.anchor_id is not None and parent_id == self.anchor_id:
            return self.anchor_height, self.anchor_slot
        parent = self.blocks.get(parent_id)
        return None if parent is None else (parent.proposal.height, parent.proposal.slot)

    def _ask_parent(self, sender: int, p: Proposal) -> list[EngineEffect]:
        gap = p.height - self.anchor_height
        asked = self.fetch_asked.get(p.parent)
        if gap > MAX_FETCH or (asked is not None and self.now_ms - asked < self.interval):
            return []
        self.fetch_asked[p.parent] = self.now_ms
        if len(self.fetch_asked) > self.window:
            del self.fetch_asked[next(iter(self.fetch_asked))]
        return [SendFrame(sender, encode(FetchAncestors(p.parent, gap)))]

    def _relink(self, candidates: list[SignedProposal]) -> list[EngineEffect]:
        """Rebuild the tree above a new anchor from the proposals known so far."""
        self.blocks = {}
        self.head_id = None
        self.orphans = OrderedDict()
        out: list[EngineEffect] = []
        for signed in sorted(candidates, key=lambda s: s.proposal.height):
            p = signed.proposal
            if p.height > self.anchor_height and p.proposal_id not in self.blocks:
                out.extend(self._link(self.me, signed))
        return out

    def _is_anchor(self, signed: SignedProposal) -> bool:
        """Whether ``signed`` is the proposal the chain's block at the anchor height came from."""
        header = self.ctx.chain.get_header(self.anchor_height)
        p = signed.proposal
        return (
            header is not None
            and p.height == header.height
            and p.timestamp_ms == header.timestamp_ms
            and p.producer == header.proposer
        )

    def _set_anchor_from_chain(self, height: int) -> None:
        self.anchor_height = height
        header = self.ctx.chain.get_header(height)
        timestamp = self.genesis_ms if header is None else header.timestamp_ms
        self.anchor_slot = compute_slot(timestamp, self.genesis_ms, self.interval)
        self.executed_slot = self.anchor_slot
        self.anchor_id = genesis_block(self.ctx.genesis).header.header_hash if height == 0 else None
        self.head_id = None

    # -- irreversibility and execution ------------------------------------------------

    def _advance_irreversible(self) -> list[EngineEffect]:
        if self.head_id is None or self.syncing:
            return []
        producers: set[int] = set()
        cursor: bytes | None = self.head_id
        irreversible: bytes | None = None
        while cursor is not None and cursor in self.blocks:
            p = self.blocks[cursor].proposal
            producers.add(p.producer)
            if len(producers) >= self.irreversible_after:
                irreversible = cursor
                break
            cursor = p.parent
        if irreversible is None:
            return []
        path: list[SignedProposal] = []
        cursor = irreversible
        while cursor in self.blocks:
            path.append(self.blocks[cursor])
            cursor = self.blocks[cursor].proposal.parent
        out: list[EngineEffect] = []
        for signed in reversed(path):
            out.extend(self._execute(signed))
        self._prune()
        return out

    def _execute(self, signed: SignedProposal) -> list[EngineEffect]:
        p = signed.proposal
        pid = p.proposal_id
        del self.blocks[pid]
        self.anchor_id, self.anchor_height, self.anchor_slot = pid, p.height, p.slot
        self.executed_slot = p.slot
        self.irreversible_blocks += 1
        self.history[pid] = signed
        while len(self.history) > self.window:
            self.history.popitem(last=False)
        for request in p.requests:
            self.mempool.pop(request.payload, None)
        return [ExecuteBlock(p.height, p.requests, p.timestamp_ms, proposer=p.producer)]

    def _prune(self) -> None:
        """Drop branches that conflict with the new anchor."""
        keep: dict[bytes, SignedProposal] = {}
        for pid, signed in sorted(self.blocks.items(), key=lambda kv: kv[1].proposal.height):
            parent = signed.proposal.parent
            if parent == self.anchor_id or parent in keep:
                keep[pid] = signed
        self.blocks = keep
        if self.head_id not in keep:
            self.head_id = max(keep, key=lambda k: _rank(keep[k].proposal), default=None)
        for old in [k for k, o in self.orphans.items() if o.proposal.height <= self.anchor_height]:
            del self.orphans[old]

    # -- certificates -----------------------------------------------------------------

    def _take_certificates(self, sender: int, p: Proposal) -> list[EngineEffect]:
        out: list[EngineEffect] = []
        for compact in p.certificates:
            cert = compact.to_certificate(self.chain_id)
            if cert.height in self.finalized or cert.height in self.certs:
                self.announced.add(cert.height)
                continue
            try:
                check_confirmations(cert, self.validators, self.chain_id, self.confirm_threshold)
            except CertificateError:
                self.rejected["bad-certificate"] += 1
                continue
            self.announced.add(cert.height)
            self.certs[cert.height] = cert
            if cert.height > self.anchor_height + SYNC_GAP and not self.syncing:
                self.syncing = True
                out.append(NeedSync(cert.height, cert.header_hash, (sender,)))
            out.extend(self._finalize(cert.height))
        self._forget_old_certs()
        return out

    def _on_confirmation(self, conf: Confirmation) -> list[EngineEffect]:
        return self._add_confirmation(conf)

    def _add_confirmation(self, conf: Confirmation) -> list[EngineEffect]:
        key = self.keys.get(conf.replica_id)
        low = self.anchor_height - self.window
        if key is None or not low < conf.height <= self.anchor_height + self.window:
            self.rejected["stray-confirmation"] += 1
            return []
        if conf.height in self.my_certs or conf.height in self.finalized:
            return []
        vote = encode(BlockVote(self.chain_id, conf.height, conf.header_hash))
        if not is_valid_signature_cached(key, BLOCK_VOTE_TAG, vote, conf.signature):
            self.rejected["bad-confirmation"] += 1
            return []
        votes = self.confirmations.setdefault((conf.height, conf.header_hash), {})
        votes[conf.replica_id] = conf.signature
        if len(votes) < self.confirm_threshold:
            return []
        sigs = tuple(VoteSignature(r, s) for r, s in sorted(votes.items()))
        cert = CommitCertificate(self.chain_id, conf.height, conf.header_hash, sigs)
        self.my_certs[conf.height] = cert
        self.certs[conf.height] = cert
        del self.confirmations[(conf.height, conf.header_hash)]
        return self._finalize(conf.height)

    def _finalize(self, height: int) -> list[EngineEffect]:
        cert = self.certs.get(height)
        mine = self.executed_hashes.get(height)
        if mine is None and cert is not None and height <= self.anchor_height:
            header = self.ctx.chain.get_header(height)  # imported by state transfer
            mine = None if header is None else header.header_hash
        if cert is None or mine is None or height in self.finalized:
            return []
        if cert.header_hash != mine:
            self.rejected["certificate-for-another-header"] += 1
            return []
        self.finalized.add(height)
        del self.certs[height]
        return [Finalized(height, mine, cert)]

    def _forget_old_certs(self) -> None:
        low = self.anchor_height - self.window
        for h in [h for h in self.certs if h < low]:
            del self.certs[h]
        for h in [h for h in self.my_certs if h < low]:
            del self.my_certs[h]
        self.finalized = {h for h in self.finalized if h >= low}
        self.announced = {h for h in self.announced if h >= low}
        for k in [k for k in self.confirmations if k[0] < low]:
            del self.confirmations[k]

    # -- producing --------------------------------------------------------------------

    def _slot(self, now_ms: int) -> int:
        return compute_slot(now_ms, self.genesis_ms, self.interval)

    def _next_producers(self) -> list[int]:
        """The owners of the next slots (distinct, at most :data:`CONFIRM_FANOUT`)."""
        slot = self._slot(self.now_ms)
        out: list[int] = []
        for s in range(slot + 1, slot + 1 + 2 * CONFIRM_FANOUT):
            owner = get_owner(self.get_schedule(s // self.p), s)
            if owner not in out:
                out.append(owner)
            if len(out) == CONFIRM_FANOUT:
                break
        return out

    def _produce(self) -> list[EngineEffect]:
        slot = self._slot(self.now_ms)
        if slot <= self.produced_slot or slot < 1 or self.syncing or self.anchor_id is None:
            return []
        start = compute_slot_time(slot, self.genesis_ms, self.interval)
        if self.now_ms - start >= max(1, self.interval // 2):
            return []  # too late in the slot: the next producer may not wait for it
        if get_owner(self.get_schedule(slot // self.p), slot) != self.me:
            return []
        head = self.head
        if head is None:
            parent, height, parent_slot = self.anchor_id, self.anchor_height, self.anchor_slot
        else:
            parent, height, parent_slot = (
                head.proposal.proposal_id,
                head.proposal.height,
                head.proposal.slot,
            )
        if parent_slot >= slot:
            return []
        proposal = Proposal(
            chain_id=self.chain_id,
            height=height + 1,
            slot=slot,
            parent=parent,
            producer=self.me,
            timestamp_ms=start,
            requests=self._pick_requests(),
            certificates=self._pick_certificates(),
        )
        signed = sign_proposal(self.ctx.key, proposal)
        self.produced_slot = slot
        self.produced += 1
        out: list[EngineEffect] = [
            PersistState(LAST_SLOT_KEY, slot.to_bytes(8, "big")),
            BroadcastFrame(encode(signed)),
        ]
        out.extend(self._on_proposal(self.me, signed))
        return out

    def _pick_requests(self) -> tuple[ClientRequest, ...]:
        """Pending requests not already on the branch between the anchor and the head."""
        on_branch: set[bytes] = set()
        cursor = self.head_id
        while cursor is not None and cursor in self.blocks:
            p = self.blocks[cursor].proposal
            on_branch.update(r.payload for r in p.requests)
            cursor = p.parent
        picked: list[ClientRequest] = []
        for payload, request in self.mempool.items():
            if payload not in on_branch:
                picked.append(request)
                if len(picked) >= self.config.max_block_requests:
                    break
        return tuple(picked)

    def _pick_certificates(self) -> tuple[CompactCertificate, ...]:
        fresh = sorted(h for h in self.my_certs if h not in self.announced)
        return tuple(
            CompactCertificate.from_certificate(self.my_certs[h]) for h in fresh[-MAX_CERTIFICATES:]
        )

    def _add_request(self, request: ClientRequest) -> bool:
        if request.payload in self.mempool:
            return False
        self.mempool[request.payload] = request
        while len(self.mempool) > self.max_pending:
            self.mempool.popitem(last=False)
        return True

    # -- catch-up ---------------------------------------------------------------------

    def _retry_unready(self) -> list[EngineEffect]:
        """Judge again the proposals refused under a schedule that was not yet exact."""
        ready = [
            s for s in self.unready.values() if self.is_schedule_known(s.proposal.slot // self.p)
        ]
        out: list[EngineEffect] = []
        for signed in ready:
            del self.unready[signed.proposal.proposal_id]
            out.extend(self._on_proposal(signed.proposal.producer, signed))
        return out

    def _serve_fetch(self, sender: int, msg: FetchAncestors) -> list[EngineEffect]:
        found: list[SignedProposal] = []
        cursor = msg.block_id
        for _ in range(max(0, min(msg.count, MAX_FETCH))):
            signed = self.blocks.get(cursor) or self.history.get(cursor)
            if signed is None:
                break
            found.append(signed)
            cursor = signed.proposal.parent
        if not found:
            return []
        return [SendFrame(sender, encode(Ancestors(tuple(reversed(found)))))]


def _rank(p: Proposal) -> tuple[int, int, bytes]:
    """Fork choice: the longest branch; then the earlier slot; then the smaller id."""
    return (p.height, -p.slot, bytes(255 - b for b in p.proposal_id))


def build_dpos_engine(context: EngineContext) -> DposEngine:
    """The engine factory registered under ``dpos`` (refuses a genesis without a DPoS section)."""
    try:
        return DposEngine(context)
    except GridledgerError:
        raise
    except ValueError as exc:
        raise ConfigError(f"DPoS cannot start: {exc}") from None


register_engine(ENGINE_NAME, build_dpos_engine)
