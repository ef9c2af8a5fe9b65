"""The one place that says how many replicas may fail and how many must agree.

A byzantine-fault-tolerant consortium of n replicas tolerates f = ⌊(n−1)/3⌋
faulty ones; a quorum of n − f (2f+1 when n = 3f+1) intersects any other quorum
in at least one honest replica, and f+1 replicas include at least one honest
one. A crash-fault-tolerant service of n replicas needs a majority ⌊n/2⌋+1.
Everything that counts votes (PBFT, commit certificates, clients accepting
f+1 matching replies, configuration checks) calls these functions.
"""

from __future__ import annotations


def compute_f(n: int) -> int:
    """How many byzantine replicas n replicas tolerate: ⌊(n−1)/3⌋."""
    if n < 1:
        raise ValueError("a consortium has at least one replica")
    return (n - 1) // 3


def compute_quorum(n: int) -> int:
    """Votes that make a byzantine quorum: n − f (2f+1 for n = 3f+1)."""
    return n - compute_f(n)


def compute_weak_quorum(n: int) -> int:
    """Votes that include at least one honest replica: f + 1."""
    return compute_f(n) + 1


def compute_majority(n: int) -> int:
    """Votes that make a crash-fault-tolerant quorum: ⌊n/2⌋ + 1."""
    if n < 1:
        raise ValueError("a service has at least one replica")
    return n // 2 + 1
