"""Seeded byzantine scenarios for the simulator (shared by the tests and the benchmark).

One scenario: n replicas (4 or 7), up to f of them byzantine (each with one of the
simulator's attack behaviours, the primary of view 0 included), random drops,
delays, duplicates and reordering, and one or two partitions that heal. Clients
submit before, during and after the partitions. A run passes when no two honest
replicas executed different blocks at one height, no honest replica voted two
digests at one ``(view, seq)``, and every request completed (f+1 matching replies)
within a bounded simulated time after the last heal: progress after every heal.

Only the simulator's public API is used (``SimNetwork(...)``, ``submit``, ``crash``,
``restart``, ``run_until_done``, ``check_safety``, ``on_effect``), so the same
scenarios can drive the node-core simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridledger.consensus.effects import Broadcast, Effect, Send
from gridledger.consensus.messages import Commit, Prepare, PrePrepare, decode_message
from gridledger.crypto.rng import DeterministicRng
from gridledger.node.simnet import Behaviour, Partition, SimNetwork

ATTACKS = (
    Behaviour.EQUIVOCATE,
    Behaviour.CONFLICT,
    Behaviour.WRONG_CHECKPOINT,
    Behaviour.REPLAY,
    Behaviour.FORGE,
    Behaviour.WITHHOLD,
    Behaviour.FLOOD,
    Behaviour.SILENT,
    Behaviour.TAMPER,
)
PROGRESS_BUDGET_MS = 40_000  # simulated time allowed after the last heal


@dataclass(frozen=True)
class Outcome:
    """What one scenario showed."""

    seed: int
    n: int
    behaviours: tuple[str, ...]
    done: bool
    problems: tuple[str, ...]
    finished_ms: int
    last_heal_ms: int
    view_changes: int

    @property
    def ok(self) -> bool:
        return self.done and not self.problems


def watch_votes(sim: SimNetwork) -> list[str]:
    """Collect any (replica, view, seq) at which an honest replica sent two digests."""
    sent: dict[tuple[int, int, int], bytes] = {}
    conflicts: list[str] = []
    honest = {r.replica_id for r in sim.get_honest()}

    def watch(replica: int, effect: Effect) -> None:
        if replica not in honest or not isinstance(effect, (Send, Broadcast)):
            return
        msg = decode_message(effect.envelope.body)
        if isinstance(msg, (PrePrepare, Prepare, Commit)):
            first = sent.setdefault((replica, msg.view, msg.seq), msg.batch_digest)
            if first != msg.batch_digest:
                conflicts.append(f"r{replica} voted two digests at ({msg.view}, {msg.seq})")

    sim.on_effect = watch
    return conflicts


def _shuffled(rng: DeterministicRng, n: int) -> list[int]:
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.randbelow(i + 1)
        order[i], order[j] = order[j], order[i]
    return order


# Attacks under which a faulty replica still takes part in the normal case (so the
# others make progress without the replica they cut off).
PARTICIPATING = (
    Behaviour.WRONG_CHECKPOINT,
    Behaviour.CONFLICT,
    Behaviour.REPLAY,
    Behaviour.FORGE,
    Behaviour.FLOOD,
    Behaviour.TAMPER,
)


def build_isolation_scenario(seed: int, n: int, *, light: bool = False) -> tuple[SimNetwork, int]:
    """Issue 8's scenario: one honest replica cut off for several view-change timeouts
    while f byzantine replicas keep the others going (and feed it wrong checkpoints);
    after the heal the byzantine replicas crash, so progress needs the isolated one."""
    rng = DeterministicRng(f"isolation/{seed}/{n}")
    f = (n - 1) // 3
    order = _shuffled(rng, n)
    faulty, isolated = order[:f], order[f]
    behaviours = {rid: PARTICIPATING[rng.randbelow(len(PARTICIPATING))] for rid in faulty}
    start = 100 + rng.randbelow(500)
    heal = start + (1700 + rng.randbelow(1000) if light else 2500 + rng.randbelow(4000))
    rest = frozenset(range(n)) - {isolated}
    sim = SimNetwork(
        n,
        seed=seed,
        drop_rate=rng.randbelow(6) / 100,
        duplicate_rate=rng.randbelow(6) / 100,
        delay_ms=(1, 2 + rng.randbelow(20)),
        partitions=[Partition(start, heal, (frozenset({isolated}), rest))],
        behaviours=behaviours,
    )
    rounds = 3 if light else 6
    for i in range(rounds):
        sim.submit(2, at_ms=i * (heal // rounds))
    down = heal + 300 + rng.randbelow(1500)
    for rid in faulty:
        sim.crash(rid, down)
    sim.submit(3, at_ms=down + 100)
    return sim, down


def build_scenario(seed: int, n: int, *, light: bool = False) -> tuple[SimNetwork, int]:
    """A seeded scenario, ready to run; returns it with the time of its last heal.

    Every third seed is an isolation scenario. ``light`` (the test suite) keeps
    one partition, shorter, and fewer requests; the benchmark runs the full ones.
    """
    if seed % 3 == 2:
        return build_isolation_scenario(seed, n, light=light)
    rng = DeterministicRng(f"byzantine/{seed}/{n}")
    f = (n - 1) // 3
    behaviours: dict[int, Behaviour] = {}
    faulty = rng.randbelow(f + 1)  # 0..f byzantine replicas
    order = _shuffled(rng, n)
    if faulty and rng.randbelow(3) == 0 and 0 not in order[:faulty]:
        order[0], order[order.index(0)] = 0, order[0]  # often the first primary
    for rid in order[:faulty]:
        behaviours[rid] = ATTACKS[rng.randbelow(len(ATTACKS))]
    partitions: list[Partition] = []
    t = 0
    for _ in range(1 if light else 1 + rng.randbelow(2)):
        start = t + rng.randbelow(800 if light else 1500)
        end = start + 200 + rng.randbelow(1300 if light else 2500)
        cut = _shuffled(rng, n)
        split = 1 + rng.randbelow(n - 1)
        groups = (frozenset(cut[:split]), frozenset(cut[split:]))
        partitions.append(Partition(start, end, groups))
        t = end
    sim = SimNetwork(
        n,
        seed=seed,
        drop_rate=rng.randbelow(11) / 100,
        duplicate_rate=rng.randbelow(11) / 100,
        delay_ms=(1, 2 + rng.randbelow(30)),
        reorder=rng.randbelow(4) != 0,
        partitions=partitions,
        behaviours=behaviours,
    )
    if not faulty and rng.randbelow(2):  # no byzantine replica: a crash and a restart
        victim = rng.randbelow(n)
        crash_ms = rng.randbelow(1500)
        sim.crash(victim, crash_ms)
        sim.restart(victim, crash_ms + 100 + rng.randbelow(2000))
    rounds = 3 if light else 4
    for i in range(rounds):
        sim.submit(2, at_ms=i * (t // rounds + 1))
    sim.submit(2 if light else 3, at_ms=t + 50)  # after the last heal
    return sim, t


def run_scenario(seed: int, n: int, *, light: bool = False) -> Outcome:
    """Build and run one scenario to completion (or its simulated-time budget)."""
    sim, last_heal = build_scenario(seed, n, light=light)
    conflicts = watch_votes(sim)
    done = sim.run_until_done(last_heal + PROGRESS_BUDGET_MS)
    problems = tuple(sim.check_safety() + conflicts)
    views = sum(1 for line in sim.trace if " view " in line and "restart" not in line)
    behaviours = tuple(
        f"r{r.replica_id}:{r.behaviour.value}"
        for r in sim.replicas
        if r.behaviour is not Behaviour.HONEST
    )
    return Outcome(seed, n, behaviours, done, problems, sim.now_ms, last_heal, views)
