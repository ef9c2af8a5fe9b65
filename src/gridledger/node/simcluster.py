"""An engine-neutral consortium in simulated time: node cores with any engine over a SimHub.

:mod:`gridledger.node.simnet` knows PBFT's messages (to make a primary lie);
this driver knows none. It runs one :class:`~gridledger.node.core.NodeCore`
per genesis validator, each with a memory store that plays its disk, whatever
engine the genesis names, and gives a test or a benchmark the faults every
engine must survive:

* :meth:`SimCluster.crash` / :meth:`SimCluster.restart`: a replica stops (its
  in-flight frames are lost) and comes back from what its store kept;
* :meth:`SimCluster.partition`: a time window in which only groups talk;
* :meth:`SimCluster.submit`: a client transaction handed to one replica;
* :meth:`SimCluster.inject`: an arbitrary engine frame from one replica to
  another (an attacker's message, built by the test);
* for engines that order through an outside log (``LogAppend`` effects), a
  simulated ordering service: one deduplicated, ordered log delivered to every
  running replica, from its own position after a restart; ``log_available``
  switches the service off (appends are lost, as unacknowledged publishes);

and records what it needs to judge the run: every block each replica committed
(height → header hash, in commit order), the first commit time of each
transaction, and :meth:`SimCluster.get_safety_violations` (two replicas with
different blocks at one height, or a replica whose chain changed under it).

Everything random comes from seeded streams and events run in
``(time, insertion)`` order, so a seed gives one trace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gridledger.consensus.params import ConsensusParams
from gridledger.consensus.simhub import NetworkModel, Partition, SimHub, compute_targets
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.plugins import build_registry
from gridledger.ledger.storage import MemoryBlockStore
from gridledger.node.core import (
    ENGINE_CHANNEL,
    BlockCommitted,
    LogAppend,
    NodeCore,
    NodeEffect,
    NodeLimits,
    Transmit,
)


@dataclass
class ClusterStats:
    """What a run did, for tests and benchmarks."""

    committed_blocks: int = 0
    submitted: int = 0
    crashes: int = 0
    restarts: int = 0
    submit_ms: dict[bytes, int] = field(default_factory=dict)  # tx hash -> first submit
    commit_ms: dict[bytes, int] = field(default_factory=dict)  # tx hash -> first commit anywhere
    final_ms: dict[int, int] = field(default_factory=dict)  # height -> first proof stored


class SimCluster:
    """n node cores of one genesis, driven in simulated time."""

    def __init__(
        self,
        genesis: GenesisConfig,
        keys: Sequence[Ed25519PrivateKey],
        *,
        model: NetworkModel | None = None,
        seed: str = "simcluster",
        params: ConsensusParams | None = None,
        limits: NodeLimits | None = None,
        tick_ms: int = 20,
        registry_factory: Callable[[GenesisConfig], ContractRegistry] = build_registry,
    ) -> None:
        if len(keys) != len(genesis.validators):
            raise ValueError("one key per genesis validator")
        self.genesis = genesis
        self.keys = {v.replica_id: k for v, k in zip(genesis.validators, keys, strict=True)}
        self.ids = [v.replica_id for v in genesis.validators]
        self.hub = SimHub(model or NetworkModel(), DeterministicRng(seed))
        self.seed = seed
        self.params = params or ConsensusParams()
        self.limits = limits or NodeLimits()
        self.tick_ms = tick_ms
        self.registry_factory = registry_factory
        self.stores = {i: MemoryBlockStore() for i in self.ids}
        self.cores: dict[int, NodeCore | None] = {}
        self.epochs = dict.fromkeys(self.ids, 0)
        self.chains: dict[int, dict[int, bytes]] = {i: {} for i in self.ids}
        self.violations: list[str] = []
        self.stats = ClusterStats()
        self.on_effect: Callable[[int, NodeEffect], None] | None = None
        # A simulated ordering service (for log engines): one ordered, deduplicated log.
        self.log: list[bytes] = []
        self.log_keys: set[str] = set()
        self.log_cursor = dict.fromkeys(self.ids, 0)
        self.log_available = True
        for i in self.ids:
            self._start(i)

    # -- reads ------------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        return self.hub.now_ms

    def get_core(self, replica_id: int) -> NodeCore:
        """The running core of ``replica_id`` (``KeyError`` if it is crashed)."""
        core = self.cores.get(replica_id)
        if core is None:
            raise KeyError(f"replica {replica_id} is not running")
        return core

    def get_live(self) -> list[NodeCore]:
        return [c for c in self.cores.values() if c is not None]

    def get_heights(self) -> dict[int, int]:
        """Each replica's executed height (from its store, crashed or not)."""
        return {i: self.stores[i].head_height() or 0 for i in self.ids}

    def get_safety_violations(self) -> list[str]:
        """Heights at which two replicas committed different blocks, or a replica changed one."""
        out = list(self.violations)
        first: dict[int, tuple[int, bytes]] = {}
        for rid, chain in self.chains.items():
            for height, digest in chain.items():
                seen = first.setdefault(height, (rid, digest))
                if seen[1] != digest:
                    out.append(f"height {height}: replica {seen[0]} and {rid} differ")
        return out

    # -- faults and clients -----------------------------------------------------------

    def crash(self, replica_id: int) -> None:
        """Stop ``replica_id`` now: its timers stop and frames to it are lost."""
        if self.cores.get(replica_id) is not None:
            self.cores[replica_id] = None
            self.epochs[replica_id] += 1
            self.stats.crashes += 1

    def restart(self, replica_id: int) -> None:
        """Start ``replica_id`` again from its store (no-op if it runs)."""
        if self.cores.get(replica_id) is None:
            self._start(replica_id)
            self.stats.restarts += 1

    def partition(self, groups: Sequence[Sequence[int]], start_ms: int, end_ms: int) -> None:
        """From ``start_ms`` to ``end_ms`` only replicas of one group reach each other."""
        cut = Partition(start_ms, end_ms, tuple(frozenset(g) for g in groups))
        self.hub.partitions.append(cut)

    def submit(self, replica_id: int, payload: bytes, at_ms: int | None = None) -> None:
        """Hand a client transaction (encoded) to ``replica_id`` at ``at_ms`` (default: now)."""
        self.hub.schedule(self.now_ms if at_ms is None else at_ms, "submit", replica_id, payload)

    def inject(self, sender: int, to: int, engine_frame: bytes, at_ms: int | None = None) -> None:
        """Deliver an engine frame as if ``sender`` had sent it (a byzantine replica's)."""
        frame = bytes([ENGINE_CHANNEL]) + engine_frame
        self.hub.schedule(self.now_ms if at_ms is None else at_ms, "deliver", to, (sender, frame))

    def at(self, at_ms: int, action: Callable[[], None]) -> None:
        """Run ``action`` at simulated time ``at_ms`` (a scheduled crash, restart, ...)."""
        self.hub.schedule(at_ms, "call", -1, action)

    def run_until(self, until_ms: int, max_events: int = 5_000_000) -> None:
        self.hub.run_until(until_ms, self._dispatch, max_events=max_events)

    def run_for(self, duration_ms: int) -> None:
        self.run_until(self.now_ms + duration_ms)

    # -- driver -----------------------------------------------------------------------

    def _start(self, replica_id: int) -> None:
        core = NodeCore(
            replica_id=replica_id,
            key=self.keys[replica_id],
            genesis=self.genesis,
            store=self.stores[replica_id],
            registry=self.registry_factory(self.genesis),
            params=self.params,
            rng=DeterministicRng(f"{self.seed}/{replica_id}/{self.epochs[replica_id]}"),
            limits=self.limits,
        )
        self.cores[replica_id] = core
        self.log_cursor[replica_id] = core.log_position
        self.hub.schedule(self.now_ms + 1, "log-pump", replica_id, None)
        offset = 1 + self.ids.index(replica_id) % max(1, self.tick_ms)
        self.hub.schedule(self.now_ms + offset, "tick", replica_id, self.epochs[replica_id])

    def _dispatch(self, kind: str, target: int, payload: object) -> None:
        if kind == "call":
            assert callable(payload)
            payload()
            return
        if kind == "log-append":
            assert isinstance(payload, tuple)
            self._on_log_append(payload[0], payload[1])
            return
        core = self.cores.get(target)
        if core is None:
            return
        now = self.hub.now_ms
        if kind == "tick":
            if payload != self.epochs[target]:
                return
            self._carry_out(target, core.on_tick(now))
            self.hub.schedule(now + self.tick_ms, "tick", target, payload)
        elif kind == "deliver":
            assert isinstance(payload, tuple)
            self._carry_out(target, core.on_frame(payload[0], payload[1], now))
        elif kind == "submit":
            assert isinstance(payload, bytes)
            results, effects = core.submit([payload], now)
            tx_hash = results[0].get("tx_hash")
            if isinstance(tx_hash, str):
                self.stats.submitted += 1
                self.stats.submit_ms.setdefault(bytes.fromhex(tx_hash), now)
            self._carry_out(target, effects)
        elif kind == "log-pump":
            self._pump_log(target, core)

    def _on_log_append(self, key: str, entry: bytes) -> None:
        """The ordering service stores an entry once per key (while it is available)."""
        if not self.log_available or key in self.log_keys:
            return
        self.log_keys.add(key)
        self.log.append(entry)
        for rid in self.ids:
            if self.cores.get(rid) is not None:
                self.hub.schedule(self.now_ms + self.hub.get_delay(), "log-pump", rid, None)

    def _pump_log(self, replica_id: int, core: NodeCore) -> None:
        """Deliver, in order, every log entry ``replica_id`` has not consumed yet."""
        cursor = self.log_cursor[replica_id]
        while cursor < len(self.log):
            cursor += 1
            self.log_cursor[replica_id] = cursor
            self._carry_out(replica_id, core.on_log(cursor, self.log[cursor - 1], self.now_ms))

    def _carry_out(self, sender: int, effects: list[NodeEffect]) -> None:
        for effect in effects:
            if self.on_effect is not None:
                self.on_effect(sender, effect)
            if isinstance(effect, Transmit):
                for to in compute_targets(sender, self.ids, effect.to):
                    self.hub.transmit(sender, to, effect.frame)
            elif isinstance(effect, BlockCommitted):
                self._record(sender, effect)
            elif isinstance(effect, LogAppend):
                at = self.now_ms + self.hub.get_delay()
                self.hub.schedule(at, "log-append", sender, (effect.key, effect.payload))
        core = self.cores.get(sender)
        if core is not None:
            self._record_finality(core)

    def _record(self, replica_id: int, effect: BlockCommitted) -> None:
        header = effect.block.header
        chain = self.chains[replica_id]
        known = chain.get(header.height)
        if known is not None and known != header.header_hash:
            self.violations.append(f"replica {replica_id} replaced block {header.height}")
        chain[header.height] = header.header_hash
        self.stats.committed_blocks += 1
        now = self.hub.now_ms
        for tx in effect.block.transactions:
            self.stats.commit_ms.setdefault(tx.tx_hash, now)

    def _record_finality(self, core: NodeCore) -> None:
        height = core.ledger.height
        final = self.stats.final_ms
        for h in range(height, max(0, height - 16), -1):
            if h in final:
                break
            if core.store.get_certificate(h) is not None:
                final[h] = self.hub.now_ms
