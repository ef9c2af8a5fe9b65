"""Safety over many seeded runs with random faults, and determinism of the simulator."""

from __future__ import annotations

import pytest

from gridledger.consensus.effects import Broadcast, Effect, Send
from gridledger.consensus.messages import Commit, Prepare, PrePrepare, decode_message
from gridledger.consensus.simnet import Behaviour, Partition, SimNetwork
from gridledger.crypto.rng import DeterministicRng

N4_SEEDS = 200
N7_SEEDS = 40
CHUNK = 40  # seeds per test case, so that pytest-xdist can spread them
CASES = [(4, range(s, s + CHUNK)) for s in range(0, N4_SEEDS, CHUNK)] + [
    (7, range(s, min(s + CHUNK // 2, N7_SEEDS))) for s in range(0, N7_SEEDS, CHUNK // 2)
]


def _watch_votes(sim: SimNetwork) -> list[str]:
    """Record every PRE-PREPARE/PREPARE/COMMIT honest replicas send, across crashes and
    restarts; the returned list collects any (replica, view, seq) sent with two digests."""
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


def _random_run(seed: int, n: int) -> tuple[SimNetwork, bool, list[str]]:
    """One bounded run: random network faults plus at most one faulty replica
    (or an equivocating primary and an honest backup that crashes and restarts)."""
    rng = DeterministicRng(f"consensus-test/{seed}/{n}")
    behaviours: dict[int, Behaviour] = {}
    fault = rng.randbelow(6)
    if fault in (1, 5):
        behaviours[0] = Behaviour.EQUIVOCATE
    elif fault == 2:
        behaviours[rng.randbelow(n)] = Behaviour.SILENT
    elif fault == 3:
        behaviours[rng.randbelow(n)] = Behaviour.TAMPER
    partitions = []
    if rng.randbelow(3) == 0:
        split = 1 + rng.randbelow(n - 1)
        order = list(range(n))
        for i in range(n - 1, 0, -1):  # seeded shuffle
            j = rng.randbelow(i + 1)
            order[i], order[j] = order[j], order[i]
        groups = (frozenset(order[:split]), frozenset(order[split:]))
        start = rng.randbelow(800)
        partitions.append(Partition(start, start + 200 + rng.randbelow(1500), groups))
    sim = SimNetwork(
        n,
        seed=seed,
        drop_rate=rng.randbelow(16) / 100,
        duplicate_rate=rng.randbelow(11) / 100,
        delay_ms=(1, 2 + rng.randbelow(40)),
        reorder=rng.randbelow(4) != 0,
        partitions=partitions,
        behaviours=behaviours,
    )
    if fault == 4:
        victim = rng.randbelow(n)
        sim.crash(victim, rng.randbelow(600))
        if rng.randbelow(2):
            sim.restart(victim, 800 + rng.randbelow(1500))
    if fault == 5:  # the backup's votes survive (simulated disk): it stays honest
        victim = 1 + rng.randbelow(n - 1)
        crash_ms = rng.randbelow(300)
        sim.crash(victim, crash_ms)
        sim.restart(victim, crash_ms + 20 + rng.randbelow(400))
    conflicts = _watch_votes(sim)
    for i in range(4):
        sim.submit(3, at_ms=i * 150)
    done = sim.run_until_done(30_000)
    return sim, done, conflicts


@pytest.mark.parametrize(("n", "seeds"), CASES, ids=lambda x: str(x))
def test_no_two_honest_replicas_execute_different_batches(n: int, seeds: range) -> None:
    failures = []
    for seed in seeds:
        sim, done, conflicts = _random_run(seed, n)
        problems = sim.check_safety() + conflicts
        if problems or not done:
            failures.append((seed, done, problems[:3]))
    assert failures == []


def test_same_seed_gives_the_same_trace() -> None:
    a, _, _ = _random_run(5, 4)
    b, _, _ = _random_run(5, 4)
    assert a.trace and a.trace == b.trace
    assert a.get_trace_digest() == b.get_trace_digest()
    assert a.stats == b.stats
    assert a.replicas[1].app.digests == b.replicas[1].app.digests
    c, _, _ = _random_run(6, 4)
    assert c.get_trace_digest() != a.get_trace_digest()


def test_same_seed_same_trace_with_every_fault() -> None:
    def run() -> SimNetwork:
        cut = Partition(100, 900, (frozenset({0, 1}), frozenset({2, 3})))
        sim = SimNetwork(
            4,
            seed=99,
            drop_rate=0.1,
            duplicate_rate=0.1,
            delay_ms=(1, 30),
            partitions=[cut],
            behaviours={1: Behaviour.TAMPER},
        )
        sim.crash(0, 300)
        sim.restart(0, 1500)
        for i in range(5):
            sim.submit(2, at_ms=i * 200)
        sim.run_until_done(30_000)
        return sim

    assert run().trace == run().trace
