"""The DPoS system contract: members' votes, the slot record, elections at round boundaries.

Transactions:

* ``dpos.vote`` (:class:`DposVote`): a member names up to ``producers`` candidates
  (genesis validators); a later vote replaces the earlier one. Each member's
  vote weighs one (seed 002 has no stake; the identity layer decides who is a
  member, and the genesis may restrict voters to a list).
* ``dpos.evidence`` (:class:`~gridledger.consensus.dpos.messages.DoubleProduction`):
  two proposals one producer signed for one slot; the contract verifies them
  against the producer's genesis key and bars it from every later election.

At the end of every block (:meth:`DposContract.end_block`) the contract reads
the slot off the block's timestamp and records at once, on chain, every slot
skipped since the previous block (``missed/<slot>`` → owner, and the owner's
miss counter). At the first block of a new round ``c`` it tallies the votes and
stores the schedule of round ``c + 1``: candidates ranked by votes, producers
past the miss limit or with recorded double production replaced by standbys.

Why the next round and not this one: the engine executes a block only once it
is irreversible, about two thirds of a round after it was produced, so the
schedule of a round must be on chain a round ahead for every replica to know
who owns each slot. Seed 002 says both that a failing producer is "removed from
the list" and that it is "removed in the next round of elections"; we follow
the second (the election at the next round boundary decides, the round after
it runs without the producer) because a list changed mid-round would leave
replicas disagreeing about who owns a slot while blocks are still reversible.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.consensus.dpos.config import (
    NAMESPACE,
    SCHEDULE_PREFIX,
    DposConfig,
    Schedule,
    compute_election,
    compute_initial_schedule,
    compute_schedule_key,
    compute_slot,
    get_config,
    get_owner,
)
from gridledger.consensus.dpos.errors import DposRejection, EvidenceInvalid
from gridledger.consensus.dpos.messages import DoubleProduction, verify_double_production
from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.errors import EncodingError
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.contracts import BlockContext, Contract, StateView
from gridledger.ledger.tx import Transaction

VOTE_KIND = "dpos.vote"
EVIDENCE_KIND = "dpos.evidence"
MAX_RECORDED_GAP_ROUNDS = 4  # a longer outage records only its last rounds slot by slot
KEEP_SCHEDULES = 4


@wire_type("dpos.vote/1")
@dataclass(frozen=True)
class DposVote:
    """The candidates a member votes for (replaces the member's earlier vote)."""

    candidates: tuple[int, ...]


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def _id_key(prefix: bytes, replica_id: int) -> bytes:
    return prefix + replica_id.to_bytes(4, "big")


def _get_int(view: StateView, key: bytes, default: int = 0) -> int:
    raw = view.get(key)
    return default if raw is None else int.from_bytes(raw, "big")


class DposContract:
    """Votes, slot record and elections of one DPoS chain."""

    namespace = NAMESPACE
    kinds = frozenset({VOTE_KIND, EVIDENCE_KIND})

    def __init__(self, genesis: GenesisConfig, config: DposConfig) -> None:
        self.config = config
        self.genesis_ms = genesis.timestamp_ms
        self.keys = {v.replica_id: v.public_key for v in genesis.validators}
        self.candidates = tuple(sorted(self.keys))
        self.initial = compute_initial_schedule(genesis, config)

    # -- transactions -----------------------------------------------------------------

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        if tx.kind == VOTE_KIND:
            return self._process_vote(view, tx)
        return self._process_evidence(view, tx)

    def _process_vote(self, view: StateView, tx: Transaction) -> bytes:
        if self.config.voters and tx.sender not in self.config.voters:
            raise DposRejection("the sender is not a voting member")
        try:
            vote = decode_as(DposVote, tx.payload)
        except EncodingError as exc:
            raise DposRejection(f"malformed vote: {exc.reason}") from None
        if len(vote.candidates) > self.config.producers:
            raise DposRejection(f"a vote names at most {self.config.producers} candidates")
        if len(set(vote.candidates)) != len(vote.candidates):
            raise DposRejection("a vote names a candidate twice")
        unknown = [c for c in vote.candidates if c not in self.keys]
        if unknown:
            raise DposRejection(f"not candidates: {unknown[:5]}")
        view.put(b"votes/" + tx.sender, encode(vote))
        return b""

    def _process_evidence(self, view: StateView, tx: Transaction) -> bytes:
        try:
            evidence = decode_as(DoubleProduction, tx.payload)
        except EncodingError as exc:
            raise DposRejection(f"malformed evidence: {exc.reason}") from None
        producer = evidence.first.proposal.producer
        key = self.keys.get(producer)
        if key is None:
            raise DposRejection(f"{producer} is not a candidate")
        try:
            verify_double_production(evidence, key)
        except EvidenceInvalid as exc:
            raise DposRejection(f"evidence does not hold: {exc.reason}") from None
        offence = _id_key(b"offences/", producer)
        if view.get(offence) is None:
            view.put(offence, _u64(evidence.first.proposal.slot))
        return b""

    # -- end of block -----------------------------------------------------------------

    def end_block(self, view: StateView, ctx: BlockContext) -> None:
        """Record this block's slot and the slots skipped before it; elect at a new round."""
        p = self.config.producers
        slot = compute_slot(ctx.timestamp_ms, self.genesis_ms, self.config.block_interval_ms)
        last = _get_int(view, b"last-slot", 0)  # slot 0 is the genesis block's
        if slot <= last:
            return  # two blocks in one slot cannot pass the engine; never count twice
        first_missed = max(last + 1, slot - MAX_RECORDED_GAP_ROUNDS * p)
        for missed in range(first_missed, slot):
            owner = get_owner(self.get_schedule(view, missed // p), missed)
            view.put(b"missed/" + _u64(missed), owner.to_bytes(4, "big"))
            key = _id_key(b"misses/", owner)
            view.put(key, _u64(_get_int(view, key) + 1))
        key = _id_key(b"produced/", ctx.proposer)
        view.put(key, _u64(_get_int(view, key) + 1))
        view.put(b"last-slot", _u64(slot))
        round_ = slot // p
        if round_ > _get_int(view, b"last-round", 0):
            self._elect(view, round_ + 1)
        view.put(b"last-round", _u64(round_))

    def _elect(self, view: StateView, round_: int) -> None:
        """Store the schedule of ``round_`` and start a new miss count."""
        votes: dict[int, int] = {}
        for _, raw in view.scan(b"votes/"):
            for c in decode_as(DposVote, raw).candidates:
                votes[c] = votes.get(c, 0) + 1
        excluded: set[int] = set()
        for key, raw in view.scan(b"misses/"):
            if int.from_bytes(raw, "big") > self.config.miss_limit:
                excluded.add(int.from_bytes(key[len(b"misses/") :], "big"))
            view.delete(b"misses/" + key[len(b"misses/") :])
        for key, _ in view.scan(b"offences/"):
            excluded.add(int.from_bytes(key[len(b"offences/") :], "big"))
        schedule = compute_election(
            round_, self.candidates, votes, frozenset(excluded), self.config.producers
        )
        view.put(compute_schedule_key(round_), encode(schedule))
        stored = [k for k, _ in view.scan(SCHEDULE_PREFIX)]
        for old in stored[:-KEEP_SCHEDULES]:
            view.delete(old)

    def get_schedule(self, view: StateView, round_: int) -> Schedule:
        """The schedule in force in ``round_``: the latest stored for a round ≤ it."""
        best: bytes | None = None
        for key, raw in view.scan(SCHEDULE_PREFIX):
            if int.from_bytes(key[len(SCHEDULE_PREFIX) :], "big") <= round_:
                best = raw
        return self.initial if best is None else decode_as(Schedule, best)


@dataclass(frozen=True)
class DposPlugin:
    """Runs the DPoS contract on chains whose genesis has a DPoS section."""

    name: str = NAMESPACE

    def build_contracts(self, genesis: GenesisConfig) -> tuple[Contract, ...]:
        config = get_config(genesis)
        return () if config is None else (DposContract(genesis, config),)


PLUGIN = DposPlugin()
