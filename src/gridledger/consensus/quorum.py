"""The one BFT rule, as the consensus layer asks it: f, the quorum, the weak certificate.

The arithmetic lives once, in :mod:`gridledger.ledger.quorum` (below this layer, so
that commit certificates and finality rules use it too); this module names what
PBFT counts with it. With n = 3f+1 replicas (or more), at most f = floor((n-1)/3)
may be faulty. Two quorums of n - f replicas (2f+1 when n = 3f+1) always share an
honest replica, which is why a quorum of matching votes can never be
contradicted; f+1 replicas (a weak certificate) always include an honest one,
enough to believe a claim (a reply, a higher view) but not to decide on one.
"""

from __future__ import annotations

from gridledger.consensus.errors import ConfigInvalid
from gridledger.ledger import quorum as _rule

__all__ = ["compute_f", "compute_prepared_quorum", "compute_quorum", "compute_weak"]


def compute_f(n: int) -> int:
    """How many faulty replicas ``n`` replicas tolerate: floor((n-1)/3)."""
    if n < 1:
        raise ConfigInvalid(f"a consortium needs at least one replica, not {n}")
    return _rule.compute_f(n)


def compute_quorum(n: int) -> int:
    """Votes that decide: 2f+1 for n = 3f+1 (n - f in general)."""
    compute_f(n)
    return _rule.compute_quorum(n)


def compute_weak(n: int) -> int:
    """Votes that prove at least one honest replica agrees: f+1."""
    compute_f(n)
    return _rule.compute_weak_quorum(n)


def compute_prepared_quorum(n: int) -> int:
    """Matching PREPAREs from distinct backups that, with the pre-prepare, prepare a slot.

    2f when n = 3f+1; in general a quorum minus the primary, so that two prepared
    certificates for one ``(view, seq)`` always share an honest replica.
    """
    return compute_quorum(n) - 1
