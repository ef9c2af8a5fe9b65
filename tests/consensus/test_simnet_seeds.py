"""Safety and liveness over many seeded byzantine runs, and determinism of the simulator."""

from __future__ import annotations

import pytest

from gridledger.node.simnet import Behaviour, Partition, SimNetwork

from .byzantine import ATTACKS, PROGRESS_BUDGET_MS, build_scenario, watch_votes

N4_SEEDS = 200
N7_SEEDS = 40
CHUNK = 40  # seeds per test case, so that pytest-xdist can spread them
CASES = [(4, range(s, s + CHUNK)) for s in range(0, N4_SEEDS, CHUNK)] + [
    (7, range(s, min(s + CHUNK // 2, N7_SEEDS))) for s in range(0, N7_SEEDS, CHUNK // 2)
]


def _random_run(seed: int, n: int) -> tuple[SimNetwork, bool, list[str]]:
    """One bounded byzantine scenario (tests/consensus/byzantine.py, light form)."""
    sim, last_heal = build_scenario(seed, n, light=True)
    conflicts = watch_votes(sim)
    done = sim.run_until_done(last_heal + PROGRESS_BUDGET_MS)
    return sim, done, conflicts


@pytest.mark.parametrize(("n", "seeds"), CASES, ids=lambda x: str(x))
def test_byzantine_runs_are_safe_and_progress_after_every_heal(n: int, seeds: range) -> None:
    """Up to f byzantine replicas (equivocation, conflicting votes, wrong checkpoints,
    replays, forged view changes and NEW-VIEWs, withholding, floods, silence, tampering)
    with drops, delays, duplicates and healing partitions: no two honest replicas
    execute different blocks, none votes twice, every request completes after the heal."""
    failures = []
    for seed in seeds:
        sim, done, conflicts = _random_run(seed, n)
        problems = sim.check_safety() + conflicts
        if problems or not done:
            failures.append((seed, done, problems[:3]))
    assert failures == []


def test_the_scenarios_cover_every_attack() -> None:
    seen = set()
    for seed in range(0, N4_SEEDS, 2):
        sim, _ = build_scenario(seed, 4, light=True)
        seen |= {r.behaviour for r in sim.replicas}
    assert seen >= set(ATTACKS)


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
